"""`stac-coh predict T1 T2 -o OUT.tif`: coherence from two backscatter rasters."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stac_coh.constants import DEFAULT_REFERENCE_BLOCK, DEFAULT_TILE, ESTIMATORS, MODES
from stac_coh.errors import InputError

if TYPE_CHECKING:
    from stac_coh.infer.engine import PredictionSummary
    from stac_coh.infer.predictors import LoadedPredictor

__all__ = ["register"]

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("uint8", "float32")
CUDA_FAST_BATCH = 4
"""Tiles per batch in fast mode on a GPU (a CPU gains nothing from batching big tiles)."""


def _paragraphs(*paragraphs: str) -> str:
    """Join help paragraphs; Typer's rich mode keeps single newlines, so none inside one."""
    return "\n\n".join(paragraphs)


_HELP = _paragraphs(
    "Predict InSAR coherence from two detected backscatter rasters into a COG.",
    "T1 is the earlier image, T2 the later one, as local paths or anything GDAL reads "
    "(https://..., /vsicurl/..., s3://...). Values are linear power (sigma0 or gamma0); "
    "add --db when they are in dB, e.g. Earth Engine exports. The output lies on T1's grid, "
    "cropped to where T2 overlaps it; T2 is resampled onto it when the grids differ "
    "(bilinear, or averaging when T2's pixels are much finer). Output pixels are nodata "
    "wherever either input is nodata, NaN or not positive.",
    "The output is a Cloud-Optimized GeoTIFF: uint8 with scale 0.004 and nodata 255 "
    "(decoded by GDAL, rasterio, QGIS), or float32 with NaN nodata (--dtype float32). "
    "--uncertainty writes the model's second head (a predicted standard deviation) the "
    "same way. Files appear only when complete.",
    "--mode fast (default) runs the network on large tiles with a 144-pixel halo (its "
    "receptive field), computing each pixel about once; results do not depend on --tile. "
    "--mode reference reproduces the published tiling exactly (128-pixel patches, stride "
    "32, Kaiser-weighted average): about 10-15x slower. Memory grows with --tile and "
    "--batch-size, not with the scene.",
    "Examples:",
    "  stac-coh predict s1_20240101_vv.tif s1_20240113_vv.tif -o coherence.tif",
    "  stac-coh predict t1_db.tif t2_db.tif --db -o coh.tif --uncertainty sigma.tif",
    "  stac-coh predict t1.tif t2.tif -o coh.tif --weights hf://FPSica/beyond-backscatter-grd-gee",
    "  stac-coh predict t1.tif t2.tif -o coh.tif --device cuda --tile 2048 --batch-size 2",
    "  stac-coh predict t1.tif t2.tif -o ref.tif --mode reference --dtype float32",
    "  stac-coh predict t1.tif t2.tif -o siegert.tif --estimator siegert",
)


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    """Return ``value`` if allowed, else a one-line error listing the choices."""
    if value not in allowed:
        raise InputError(f"{option} must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def _refuse_clobber(paths: list[Path | None], overwrite: bool) -> None:
    """Existing outputs are kept unless --overwrite says otherwise."""
    for path in paths:
        if path is not None and path.exists() and not overwrite:
            raise InputError(f"{path} exists; pass --overwrite to replace it.")


def _summary_line(summary: PredictionSummary, loaded: LoadedPredictor) -> str:
    """The final line: where, how many pixels, mean coherence, time, which weights."""
    line = (
        f"Wrote {summary.path}"
        + (f" and {summary.uncertainty_path}" if summary.uncertainty_path else "")
        + f": {summary.valid_pixels:,} of {summary.total_pixels:,} pixels valid "
        f"({100 * summary.valid_fraction:.1f}%), mean coherence {summary.mean:.3f}, "
        f"{summary.seconds:.1f} s ({summary.mode} mode, {summary.tiles} tiles, {loaded.device}), "
        f"weights: {loaded.card.name}"
    )
    return line


def predict_command(
    t1: str = typer.Argument(..., metavar="T1", help="Earlier image: path or GDAL URL."),
    t2: str = typer.Argument(..., metavar="T2", help="Later image: path or GDAL URL."),
    output: Path = typer.Option(..., "--output", "-o", help="Coherence COG to write."),
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
    uncertainty: Path | None = typer.Option(
        None, "--uncertainty", help="Also write the uncertainty (std) COG here."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Predict coherence from two backscatter rasters into a COG."""
    from stac_coh.infer.engine import predict_to_cogs, reuse_freed_memory
    from stac_coh.infer.predictors import build_predictor
    from stac_coh.io.gdal_env import gdal_env, gdal_options
    from stac_coh.load.file_pair import RasterPairReader
    from stac_coh.settings import get_settings

    _choice(estimator, ESTIMATORS, "--estimator")
    _choice(mode, MODES, "--mode")
    _choice(dtype, DTYPES, "--dtype")
    settings = get_settings()
    device = _choice(device or settings.device, DEVICES, "--device")
    _refuse_clobber([output, uncertainty], overwrite)
    options = gdal_options()
    reuse_freed_memory()
    console = Console(stderr=True)
    with gdal_env(options), RasterPairReader(t1, t2, db=db, band=band) as reader:
        loaded = build_predictor(
            estimator,
            weights=weights or settings.weights or "auto",
            device=device,
            cache_dir=settings.cache_dir,
        )
        if batch_size is None and mode == "fast" and loaded.device == "cuda":
            batch_size = CUDA_FAST_BATCH
        with Progress(
            TextColumn("[bold]predict[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tiles"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("predict", total=None)
            summary = predict_to_cogs(
                reader,
                loaded.predictor,
                output,
                uncertainty_path=uncertainty,
                mode=mode,
                tile=tile,
                batch_size=batch_size,
                dtype=dtype,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                gdal_options=options,
            )
    typer.echo(_summary_line(summary, loaded))


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("predict", help=_HELP)(predict_command)
