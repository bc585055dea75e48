"""`stac-coh simulate`, `train` and `evaluate`: simulation, training, accuracy."""

from __future__ import annotations

import shlex
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stac_coh.errors import InputError

if TYPE_CHECKING:
    from stac_coh.science.train import TrainConfig

SIMULATE_HELP = """Write simulated Sentinel-1-like pairs with known coherence (GeoTIFFs, 10 m UTM).

Each scene is a land-cover map (water, urban, bare, forest, crops) whose parcels draw
class-typical backscatter, change and coherence; correlated complex SLCs are detected and
multilooked (ENL ~4.5) into linear sigma0 images. Per scene it writes
OUTDIR/t1, t2 (inputs), coherence (true), boxcar (estimated from the SLCs, the paper's
kind of label) and landcover, plus OUTDIR/index.json, the layout `stac-coh train` reads.
Scene k uses seed SEED+k, so the same command always writes the same rasters.

Examples:

  stac-coh simulate sim/ --scenes 8 --size 256 --seed 0

  stac-coh simulate sim-test/ --scenes 4 --seed 10000 --misregistration 0.3
"""

TRAIN_HELP = """Train or fine-tune the ResUNet on input rasters + label rasters.

DATA is a folder written by `stac-coh simulate` (or its index.json), or a CSV with a
header: t1,t2,<label>[,split][,id], paths relative to the CSV. t1/t2 are linear
backscatter (e.g. HyP3 RTC power), the label a coherence raster (e.g. HyP3 or SNAP
coherence) on the same grid; 'split' (train/val) is optional. The loss is the Gaussian
negative log-likelihood of the two heads (mean, log-variance), see --beta. Checkpoints go
to OUT/checkpoints (safetensors + JSON), validation to OUT/history.jsonl, the best weights
with a model card to OUT/model.safetensors.

Examples:

  stac-coh train sim/ --out runs/small --base 8 --steps 200

  stac-coh train sim/ --out runs/small --resume          # continue after an interruption

  stac-coh train my_pairs.csv --out runs/ft --init model.weights.h5 --lr 1e-4 --steps 2000
"""

EVALUATE_HELP = """Compare coherence maps with the truth: RMSE, MAE, bias, R2 overall and per bin.

PRED and TRUTH are rasters on the same grid (COGs or GeoTIFFs; scale/offset/nodata are
decoded) or folders of them matched by file name, pooled. --baseline adds other
predictions (e.g. the Siegert estimator) to the tables and plot; --classes adds a table
per land-cover class (a simulated landcover raster or folder). --png writes a 2-D
histogram of predicted vs true and the error by coherence bin; --json the numbers.

Examples:

  stac-coh evaluate pred.tif sim/coherence/scene_10000.tif --png eval.png

  stac-coh evaluate preds/ sim/coherence/ --baseline siegert9/ --classes sim/landcover/
"""


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    app.command("simulate", help=SIMULATE_HELP)(simulate_command)
    app.command("train", help=TRAIN_HELP)(train_command)
    app.command("evaluate", help=EVALUATE_HELP)(evaluate_command)


def simulate_command(
    outdir: Path = typer.Argument(..., help="Folder to write (created)."),
    scenes: int = typer.Option(4, "--scenes", help="Number of scenes."),
    size: int = typer.Option(256, "--size", help="Scene edge in 10 m pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first scene; scene k uses SEED+k."),
    misregistration: float = typer.Option(
        0.0,
        "--misregistration",
        help="Largest sub-pixel shift of t2 (pixels); each scene draws its own length.",
    ),
    nodata_border: bool = typer.Option(
        True, "--nodata-border/--no-nodata-border", help="Give some scenes swath-edge nodata."
    ),
    randomize: bool = typer.Option(
        False,
        "--randomize",
        help="Domain randomisation per scene: looks 1.5-8, impulse responses, sampling, "
        "shifts, baselines, generators, textures, nodata (what the bundled weights train on).",
    ),
    setting: str | None = typer.Option(
        None,
        "--setting",
        help="Randomised test scenes of one held-out setting (e.g. looks-1.5-2.5), with "
        "calibration gains and ramps; 'calibration' for the uncertainty calibration set.",
    ),
) -> None:
    """Write simulated pairs."""
    from rich.progress import Progress

    from stac_coh.science.randomize import simulate_randomized
    from stac_coh.science.settings import calibration_randomization, held_out_randomization
    from stac_coh.science.sim_files import simulate_dataset

    with Progress(transient=True) as progress:
        task = progress.add_task("simulating", total=scenes)
        if randomize or setting:
            ranges = None
            if setting == "calibration":
                ranges = calibration_randomization()
            elif setting:
                ranges = held_out_randomization(setting)
            index = simulate_randomized(
                outdir,
                scenes=scenes,
                size=size,
                seed=seed,
                randomization=ranges,
                on_scene=lambda _k: progress.advance(task),
            )
        else:
            index = simulate_dataset(
                outdir,
                scenes=scenes,
                size=size,
                seed=seed,
                misregistration=misregistration,
                nodata_border=nodata_border,
                on_scene=lambda _k: progress.advance(task),
            )
    typer.echo(f"Wrote {scenes} scenes; index: {index}")


def train_command(
    data: str = typer.Argument(..., help="Dataset folder, index.json or CSV."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder."),
    label: str = typer.Option("coherence", "--label", help="Label kind / CSV column."),
    base: int = typer.Option(32, "--base", help="ResUNet width (32 = published, 8 = tiny)."),
    patch: int = typer.Option(64, "--patch", help="Patch edge, multiple of 16."),
    batch: int = typer.Option(8, "--batch", help="Patches per step."),
    steps: int = typer.Option(2000, "--steps", help="Total optimizer steps."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (AdamW)."),
    weight_decay: float = typer.Option(1e-4, "--weight-decay", help="AdamW weight decay."),
    warmup: int = typer.Option(100, "--warmup", help="Warm-up steps."),
    beta: float = typer.Option(
        0.5, "--beta", help="beta-NLL exponent (0 = plain Gaussian NLL; 0.5 = balanced)."
    ),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Scenes held out."),
    val_every: int = typer.Option(200, "--val-every", help="Validate every N steps."),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every", help="Checkpoint interval."),
    seed: int = typer.Option(0, "--seed", help="Seed of init, split and sampling."),
    init: str | None = typer.Option(
        None, "--init", help="Fine-tune from weights (safetensors, Keras .h5, hf://...)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0 = default)."),
    input_mode: str = typer.Option(
        "published",
        "--input-mode",
        help="Input preprocessing: published (MODEL.md) or wide-masked (wide dB window, "
        "nodata channel); recorded in the model card.",
    ),
    augment_gain_db: float = typer.Option(
        0.0, "--augment-gain-db", help="Gain common to both dates per patch, +-dB."
    ),
    augment_relative_db: float = typer.Option(
        0.0, "--augment-relative-db", help="Gain of one date per patch, +-dB."
    ),
    augment_ramp_db: float = typer.Option(
        0.0, "--augment-ramp-db", help="Ramp across a patch, +-dB."
    ),
    augment_nodata: float = typer.Option(
        0.0, "--augment-nodata", help="Probability of a one-date nodata edge per patch."
    ),
    exclude: str = typer.Option(
        "", "--exclude", help="Leave these held-out settings out (comma-separated names)."
    ),
    only: str = typer.Option(
        "",
        "--only",
        help="Train only on the scenes of these held-out settings (comma-separated names): "
        "what a network reaches on a setting it knows, to compare a held-out run with.",
    ),
) -> None:
    """Train the ResUNet."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from stac_coh.science.train import TrainConfig, train, training_entries

    if threads > 0:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if val_every < 1 or checkpoint_every < 1 or steps < 1:
        raise InputError("--steps, --val-every and --checkpoint-every must be positive.")
    config = TrainConfig(
        data=data,
        out=str(out),
        label=label,
        base=base,
        patch=patch,
        batch=batch,
        steps=steps,
        lr=lr,
        weight_decay=weight_decay,
        warmup=warmup,
        beta=beta,
        val_fraction=val_fraction,
        val_every=val_every,
        checkpoint_every=checkpoint_every,
        seed=seed,
        init=init,
        device=device,
        input_mode=input_mode,
        augment_gain_db=augment_gain_db,
        augment_relative_db=augment_relative_db,
        augment_ramp_db=augment_ramp_db,
        augment_nodata=augment_nodata,
        exclude=exclude,
        only=only,
    )
    command = train_command_line(config, threads)
    training_entries(config)  # a dataset or setting error is reported before the progress bar
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task("training", total=steps, loss=math_nan())

        def on_step(step: int, loss: float) -> None:
            progress.update(task, completed=step, loss=loss)

        def on_validate(record: dict[str, float]) -> None:
            progress.console.print(
                f"step {int(record['step'])}: val RMSE {record['val_rmse']:.4f}, "
                f"val NLL {record['val_nll']:.4f}"
            )

        result = train(
            config, resume=resume, on_step=on_step, on_validate=on_validate, command=command
        )
    typer.echo(f"Done at step {result.step}; weights: {result.weights}")


def train_command_line(config: TrainConfig, threads: int) -> str:
    """The full ``stac-coh train`` command that reproduces ``config`` (for the model card)."""
    args = ["stac-coh", "train", config.data, "--out", config.out]
    defaults = {"data", "out", "init", "device"}
    for name, value in asdict(config).items():
        # An empty option (no --exclude/--only) is the default; `--exclude ''` only confuses.
        if name not in defaults and value != "":
            args += [f"--{name.replace('_', '-')}", str(value)]
    if config.init:
        args += ["--init", config.init]
    if threads > 0:
        args += ["--threads", str(threads)]
    return shlex.join(args)


def math_nan() -> float:
    """NaN for the progress bar before the first step."""
    return float("nan")


def evaluate_command(
    pred: Path = typer.Argument(..., help="Predicted coherence raster or folder."),
    truth: Path = typer.Argument(..., help="True/reference coherence raster or folder."),
    baseline: list[Path] = typer.Option(
        [], "--baseline", help="Another prediction to compare (repeatable)."
    ),
    classes: Path | None = typer.Option(
        None, "--classes", help="Land-cover raster/folder for per-class metrics."
    ),
    png: Path | None = typer.Option(None, "--png", help="Write the plots here."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the metrics as JSON."),
    bins: int = typer.Option(5, "--bins", help="Coherence bins of the per-bin table."),
) -> None:
    """Evaluate coherence maps."""
    from rich.console import Console

    from stac_coh.science.evaluate import evaluate_paths, render_tables, write_json, write_png

    report = evaluate_paths(pred, truth, baselines=baseline, classes=classes, bins=bins)
    console = Console()
    for table in render_tables(report):
        console.print(table)
    if png is not None:
        write_png(report, png)
        console.print(f"plot: {png}")
    if json_out is not None:
        write_json(report, json_out)
        console.print(f"metrics: {json_out}")
