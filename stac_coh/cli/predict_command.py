"""`stac-coh predict T1 T2 -o OUT.tif`: coherence from two backscatter rasters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stac_coh.constants import (
    DEFAULT_REFERENCE_BLOCK,
    DEFAULT_TILE,
    DEVICES,
    DTYPES,
    ESTIMATORS,
    MODES,
    PRECISIONS,
)
from stac_coh.errors import InputError, UnusableResultError

if TYPE_CHECKING:
    from stac_coh.infer.engine import PredictionSummary
    from stac_coh.infer.predictors import LoadedPredictor
    from stac_coh.io.output import OutputFile

__all__ = ["register"]

CUDA_FAST_BATCH = 4
"""Tiles per batch in fast mode on a GPU (a CPU gains nothing from batching big tiles)."""


def _paragraphs(*paragraphs: str) -> str:
    """Join help paragraphs; Typer's rich mode keeps single newlines, so none inside one."""
    return "\n\n".join(paragraphs)


_HELP = _paragraphs(
    "Predict InSAR coherence from two detected backscatter rasters into a COG.",
    "T1 is the earlier image, T2 the later one, as local paths or anything GDAL reads "
    "(https://..., /vsicurl/..., s3://...). Values are linear power (sigma0 or gamma0); "
    "add --db when they are in dB, e.g. Earth Engine exports (mostly negative values without "
    "--db, or none with it, are refused). "
    "The output lies on T1's pixel grid (same origin, pixel size and CRS), cropped to where "
    "T2 overlaps it; T2 is resampled onto it when the grids differ (bilinear, or averaging "
    "when T2's pixels are much finer). Output pixels are nodata wherever either input is "
    "nodata, NaN or not positive; a result without any valid pixel exits 6.",
    "The output is a Cloud-Optimized GeoTIFF: uint8 with scale 0.004 and nodata 255 "
    "(decoded by GDAL, rasterio, QGIS), or float32 with NaN nodata (--dtype float32). "
    "Its bottom and right edges are padded with a few nodata pixels so that every "
    "overview halves exactly (web maps such as STAC Browser need it), so it can be a few "
    "rows or columns larger than the overlap. --uncertainty writes the model's second "
    "head (a predicted standard deviation) the same way. -o and --uncertainty take a "
    "path or s3://bucket/key; files appear only when complete.",
    "--mode fast (default) runs the network on large tiles with a 144-pixel halo (its "
    "receptive field), computing each pixel about once; results do not depend on --tile. "
    "--mode reference reproduces the published tiling exactly (128-pixel patches, stride "
    "32, Kaiser-weighted average): about 10-15x slower. Memory grows with --tile and "
    "--batch-size, not with the scene.",
    "--precision auto (default) runs the network in bf16 on CPUs with AVX512-BF16 or AMX "
    "and on GPUs from sm_80 (Ampere), in fp16 on older GPUs, and in fp32 elsewhere; "
    "--precision fp32 always gives full-precision results. bf16 changes coherence by about "
    "0.001 on average (docs/inference.md), far under the model's own error.",
    "Examples:",
    "  stac-coh predict s1_20240101_vv.tif s1_20240113_vv.tif -o coherence.tif",
    "  stac-coh predict t1_db.tif t2_db.tif --db -o coh.tif --uncertainty sigma.tif",
    "  stac-coh predict t1.tif t2.tif -o coh.tif --weights hf://FPSica/beyond-backscatter-grd-gee",
    "  stac-coh predict t1.tif t2.tif -o coh.tif --device cuda --tile 2048 --batch-size 2",
    "  stac-coh predict t1.tif t2.tif -o ref.tif --mode reference --dtype float32",
    "  stac-coh predict t1.tif t2.tif -o coh.tif --precision fp32",
    "  stac-coh predict t1.tif t2.tif -o siegert.tif --estimator siegert",
    "  stac-coh predict t1.tif t2.tif -o s3://my-bucket/coherence/coh.tif",
)


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    """Return ``value`` if allowed, else a one-line error listing the choices."""
    if value not in allowed:
        raise InputError(f"{option} must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def _summary_line(
    summary: PredictionSummary, loaded: LoadedPredictor, outputs: list[OutputFile]
) -> str:
    """The final line: where, how many pixels, mean coherence, time, which weights."""
    line = (
        f"Wrote {' and '.join(str(o) for o in outputs)}"
        + f": {summary.valid_pixels:,} of {summary.total_pixels:,} pixels valid "
        f"({100 * summary.valid_fraction:.1f}%), mean coherence {summary.mean:.3f}, "
        f"{summary.seconds:.1f} s ({summary.mode} mode, {summary.tiles} tiles, {loaded.device}, "
        f"{loaded.precision}), "
        f"weights: {loaded.card.name}"
    )
    return line


def predict_command(
    t1: str = typer.Argument(..., metavar="T1", help="Earlier image: path or GDAL URL."),
    t2: str = typer.Argument(..., metavar="T2", help="Later image: path or GDAL URL."),
    output: str = typer.Option(
        ..., "--output", "-o", help="Coherence COG to write: a path or s3://bucket/key."
    ),
    db: bool = typer.Option(False, "--db", help="Inputs are in dB, not linear power."),
    band: int = typer.Option(1, "--band", min=1, help="Band of each input to read."),
    weights: str | None = typer.Option(
        None,
        "--weights",
        help="auto (the published weights, fetched once and cached), bundled, our "
        ".safetensors file, a Keras .h5, a folder, hf://owner/repo or s3://. "
        "Default: STAC_COH_WEIGHTS, else auto.",
    ),
    estimator: str = typer.Option(
        "resunet", "--estimator", help="resunet (the network) or siegert (classic baseline)."
    ),
    mode: str = typer.Option("fast", "--mode", help="fast (halo tiles) or reference."),
    device: str | None = typer.Option(
        None, "--device", help="auto, cpu, cuda or mps. Default: STAC_COH_DEVICE, else auto."
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="auto (bf16 on CPUs with AVX512-BF16/AMX and GPUs from sm_80, fp16 on older "
        "GPUs, else fp32), fp32, bf16 or fp16. Default: STAC_COH_PRECISION, else auto.",
    ),
    tile: int | None = typer.Option(
        None,
        "--tile",
        min=16,
        help=f"Largest core tile edge (fast; default {DEFAULT_TILE}, reads at most tile + "
        f"2 x 144 px) or block edge (reference; default {DEFAULT_REFERENCE_BLOCK}).",
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        help=f"Tiles (fast) or patches (reference) per pass. Default: 1 tile on CPU, "
        f"{CUDA_FAST_BATCH} on CUDA; the model card's 8 patches in reference mode.",
    ),
    dtype: str = typer.Option("uint8", "--dtype", help="uint8 (scale 0.004) or float32."),
    uncertainty: str | None = typer.Option(
        None, "--uncertainty", help="Also write the uncertainty (std) COG here (path or s3://)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Predict coherence from two backscatter rasters into a COG."""
    from stac_coh.io.guard import check_replaceable_cog
    from stac_coh.io.output import OutputFile

    _choice(estimator, ESTIMATORS, "--estimator")
    _choice(mode, MODES, "--mode")
    _choice(dtype, DTYPES, "--dtype")
    if device is not None:
        _choice(device, DEVICES, "--device")
    if precision is not None:
        _choice(precision, PRECISIONS, "--precision")
    out = OutputFile.parse(output, option="-o")
    unc = OutputFile.parse(uncertainty, option="--uncertainty") if uncertainty else None
    if unc is not None and unc.location == out.location:
        raise InputError("--uncertainty must name a different file than -o/--output.")
    outputs = [out] if unc is None else [out, unc]
    for target in outputs:  # before any work: a bad location fails in seconds
        target.check(overwrite=overwrite)
        if target.kind == "local":  # --overwrite replaces only what stac-coh wrote
            check_replaceable_cog(target.path)
    summary, loaded = _predict(
        t1,
        t2,
        out,
        unc,
        db=db,
        band=band,
        predictor=dict(estimator=estimator, weights=weights, device=device, precision=precision),
        run=dict(mode=mode, tile=tile, batch_size=batch_size, dtype=dtype),
    )
    typer.echo(_summary_line(summary, loaded, outputs))


def _predict(
    t1: str,
    t2: str,
    out: OutputFile,
    unc: OutputFile | None,
    *,
    db: bool,
    band: int,
    predictor: dict[str, Any],
    run: dict[str, Any],
) -> tuple[PredictionSummary, LoadedPredictor]:
    """Read, check the units, predict into the outputs; refuse a result with no valid pixel."""
    from stac_coh.infer.engine import predict_to_cogs, reuse_freed_memory
    from stac_coh.infer.predictors import build_predictor
    from stac_coh.io.gdal_env import gdal_env, gdal_options
    from stac_coh.load.file_pair import RasterPairReader
    from stac_coh.settings import get_settings

    settings = get_settings()
    options = gdal_options()
    reuse_freed_memory()
    with (
        gdal_env(options),
        RasterPairReader(t1, t2, db=db, band=band, check_units=True) as reader,
    ):
        loaded = build_predictor(
            predictor["estimator"],
            weights=predictor["weights"] or settings.weights or "auto",
            device=predictor["device"] or settings.device,
            cache_dir=settings.cache_dir,
            precision=predictor["precision"] or settings.precision,
        )
        if run["batch_size"] is None and run["mode"] == "fast" and loaded.device == "cuda":
            run = {**run, "batch_size": CUDA_FAST_BATCH}
        with (
            out.staged(suffix=".tif") as out_path,
            unc.staged(suffix=".tif") if unc else contextlib.nullcontext() as unc_path,
            _progress() as (progress, task),
        ):
            summary = predict_to_cogs(
                reader,
                loaded.predictor,
                out_path,
                uncertainty_path=unc_path,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                gdal_options=options,
                **run,
            )
            if summary.valid_pixels == 0:
                for path in (out_path, unc_path):
                    if path is not None:
                        Path(path).unlink(missing_ok=True)
                raise UnusableResultError(
                    f"No valid pixel in the result (0 of {summary.total_pixels:,}): T1 and T2 "
                    "have no valid value in common (nodata, NaN or not positive everywhere they "
                    "overlap). Nothing was written. Check the inputs' nodata, their units "
                    "(--db) and --band."
                )
    return summary, loaded


@contextlib.contextmanager
def _progress() -> Iterator[tuple[Progress, Any]]:
    """A transient tile progress bar on stderr."""
    with Progress(
        TextColumn("[bold]predict[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tiles"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        yield progress, progress.add_task("predict", total=None)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("predict", help=_HELP)(predict_command)
