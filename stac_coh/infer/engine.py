"""Tiled, streaming coherence inference: any tile predictor, two tilings, COG outputs.

``fast`` mode (default) runs the fully convolutional network on large tiles read with a
halo as wide as its receptive field and keeps only each tile's core, so every pixel is
computed about once and the result does not depend on where tile boundaries fall: it
equals one pass over the whole scene. ``reference`` mode reproduces the published tiling
exactly (128 x 128 patches, stride 32, Kaiser-weighted average), which computes every
pixel about 16 times.

Both modes read windows from a :class:`~stac_coh.grid.PairReader` in a read-ahead thread
and hand finished core windows to the caller, so memory depends on tile size and batch,
not on the scene. :func:`predict_to_cogs` encodes and writes them to COGs in a
write-behind thread (with statistics, a footprint mask and any renders such as the
``visual`` picture, all in the same pass); :func:`predict_array` keeps them in memory for
small inputs (tests, evaluation).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from stac_coh.constants import DEFAULT_REFERENCE_BLOCK, DEFAULT_TILE, MODES
from stac_coh.errors import InputError
from stac_coh.grid import OutputGrid, PairReader
from stac_coh.infer.network import (
    NetworkPredictor,
    receptive_field,
    resolve_device,
    reuse_freed_memory,
)
from stac_coh.infer.outputs import DecimatedMask, OutputFacts, StageTimes
from stac_coh.infer.streaming import (
    CogSink,
    RenderFactory,
    RenderSink,
    WriteBehind,
    capture_gdal_options,
    run_concurrently,
)
from stac_coh.infer.tiling import PatchBlock, TileWindow
from stac_coh.infer.units import (
    Mode,
    ProgressCallback,
    TilePredictor,
    iter_predictions,
    plan_units,
    predict_array,
    tiling_of,
)
from stac_coh.io.cog import decode, encoding_for
from stac_coh.model.card import ModelCard, Tiling
from stac_coh.model.domain import DomainAccumulator, DomainCheck, GuardedReader

__all__ = [
    "DEFAULT_REFERENCE_BLOCK",
    "DEFAULT_TILE",
    "MODES",
    "Mode",
    "NetworkPredictor",
    "PredictionSummary",
    "ProgressCallback",
    "RenderFactory",
    "TilePredictor",
    "iter_predictions",
    "plan_units",
    "predict_array",
    "predict_to_cogs",
    "receptive_field",
    "resolve_device",
    "reuse_freed_memory",
]


@dataclass(frozen=True)
class PredictionSummary:
    """What one prediction produced: where, how much, how long, and what it knows."""

    path: Path
    """The coherence COG."""
    uncertainty_path: Path | None
    """The uncertainty COG, if asked for."""
    mode: str
    """``fast`` or ``reference``."""
    tiles: int
    """Tiles (fast) or patch blocks (reference) processed."""
    valid_pixels: int
    """Pixels with a coherence value."""
    total_pixels: int
    """Pixels of the output grid."""
    mean: float
    """Mean coherence over valid pixels, as stored (NaN when none)."""
    min: float
    """Smallest stored coherence (NaN when none)."""
    max: float
    """Largest stored coherence (NaN when none)."""
    std: float
    """Standard deviation of stored coherence (NaN when none)."""
    seconds: float
    """Wall time of the whole prediction, COG conversion included."""
    grid: OutputGrid | None = None
    """The output grid (the COGs are padded past it at the bottom and right)."""
    outputs: Mapping[str, OutputFacts] = field(default_factory=dict)
    """``coherence`` (and ``uncertainty``): encoding, stored size, exact statistics."""
    valid_mask: DecimatedMask | None = None
    """Where coherence has a value, decimated (what the item's footprint is traced on)."""
    renders: Mapping[str, Path] = field(default_factory=dict)
    """Pictures rendered in the same pass (e.g. ``visual``), by name."""
    precision: str | None = None
    """Numeric precision of the predictor (``fp32``, ``bf16``, ``fp16``), if it has one."""
    timings: Mapping[str, float] = field(default_factory=dict)
    """Seconds per stage (``read``, ``network``, ``write``, ``cog``...; see docs/inference.md)."""
    domain: DomainCheck | None = None
    """Input-domain guard: the pair's looks, level, relative gain vs the card (network only)."""

    @property
    def valid_fraction(self) -> float:
        """Share of the grid with a value."""
        return self.valid_pixels / self.total_pixels if self.total_pixels else 0.0


class _TileWriter:
    """The write-behind work for one tile: encode, write, statistics, footprint, renders."""

    def __init__(
        self,
        sink: CogSink,
        names: Sequence[str],
        mask: DecimatedMask,
        renders: Mapping[str, RenderSink],
        times: StageTimes,
    ) -> None:
        self.sink, self.names, self.mask = sink, names, mask
        self.renders, self.times = renders, times
        self.encoding = sink.encoding

    def __call__(self, item: tuple[TileWindow, np.ndarray]) -> None:
        window, values = item
        with self.times.measure("write"):
            stored = [self.sink.write(n, window, values[c]) for c, n in enumerate(self.names)]
            coherence = decode(stored[0], self.encoding)
            self.mask.add(window.row_off, window.col_off, np.isfinite(coherence))
        if self.renders:
            with self.times.measure("render"):
                for render in self.renders.values():
                    render.write(window.row_off, window.col_off, coherence)


def predict_to_cogs(
    reader: PairReader,
    predictor: TilePredictor,
    out_path: str | PathLike[str],
    *,
    uncertainty_path: str | PathLike[str] | None = None,
    mode: str = "fast",
    tile: int | None = None,
    batch_size: int | None = None,
    dtype: str = "uint8",
    on_progress: ProgressCallback | None = None,
    workdir: str | PathLike[str] | None = None,
    gdal_options: Mapping[str, Any] | None = None,
    tiling: Tiling | None = None,
    renders: Mapping[str, RenderFactory] | None = None,
) -> PredictionSummary:
    """Predict coherence over ``reader``'s grid and write it (and optionally its uncertainty).

    Reading (a read-ahead thread), the predictor (this thread) and encoding, writing,
    statistics and renders (a write-behind thread) overlap; at the end every COG is
    converted at once.

    Args:
        reader: the two images on the output grid.
        predictor: a :class:`NetworkPredictor` or any other :class:`TilePredictor`.
        out_path: the coherence COG; replaced atomically when complete.
        uncertainty_path: the uncertainty COG (channel 1), if wanted.
        mode: ``fast`` (halo tiles, each pixel once) or ``reference`` (published tiling).
        tile: inner core tile edge (fast) or block edge (reference); default
            ``DEFAULT_TILE`` or ``DEFAULT_REFERENCE_BLOCK``.
        batch_size: tiles (fast) or patches (reference) per predictor call.
        dtype: ``uint8`` (scale 0.004, nodata 255) or ``float32`` (NaN nodata).
        on_progress: called (in this thread) with (done, total) units after each one is
            written.
        workdir: where intermediate GeoTIFFs go; default beside ``out_path``.
        gdal_options: GDAL options for the read-ahead thread; default the caller's
            active ``rasterio.Env`` (or the cloud defaults).
        tiling: reference tiling; default the predictor's model card, else the published.
        renders: pictures to render from the stored coherence in the same pass, by name
            (e.g. ``{"visual": publish.render.VisualSink.factory(path)}``).

    Returns:
        Statistics of the stored coherence and where it went. On any error no output file
        is created and no intermediate file is left.
    """
    started = time.perf_counter()
    try:
        encoding = encoding_for(dtype)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    outputs = {"coherence": Path(out_path)}
    if uncertainty_path is not None:
        outputs["uncertainty"] = Path(uncertainty_path)
        if outputs["uncertainty"].resolve() == outputs["coherence"].resolve():
            raise InputError("--uncertainty must name a different file than -o/--output.")
    grid = reader.grid
    tiling = tiling_of(predictor, tiling)
    units = plan_units(grid.height, grid.width, predictor, mode=mode, tile=tile, tiling=tiling)
    options = dict(gdal_options) if gdal_options is not None else capture_gdal_options()
    times = StageTimes()
    before = dict(getattr(predictor, "timings", {}))  # a predictor may serve many pairs
    mask = DecimatedMask(grid.height, grid.width)
    card = getattr(predictor, "card", None)
    guard = None
    if isinstance(card, ModelCard) and card.architecture.name == "resunet":
        guard = DomainAccumulator()  # the input-domain guard sees every window read
        reader = GuardedReader(reader, guard)
    scratch = Path(workdir) if workdir is not None else None
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(CogSink(grid, outputs, encoding, workdir=scratch))
        pictures = {}
        for name, factory in (renders or {}).items():
            pictures[name] = factory(grid)
            stack.callback(pictures[name].close)
        _stream(
            reader,
            predictor,
            units,
            sink,
            mask,
            pictures,
            times,
            on_progress,
            batch_size=batch_size,
            tiling=tiling,
            options=options,
        )
        with times.measure("cog"):
            tasks: dict[str, Callable[[], Path]] = dict(sink.conversions())
            tasks.update({f"render:{n}": r.commit for n, r in pictures.items()})
            # Nothing else runs now: let GDAL compress each COG's blocks on every core.
            done = run_concurrently(tasks, {"GDAL_NUM_THREADS": "ALL_CPUS", **options})
            sink.publish()
    facts = sink.facts()
    stats = facts["coherence"].stats
    timings = dict(times.seconds)
    for stage, seconds in getattr(predictor, "timings", {}).items():
        timings[f"network: {stage}"] = seconds - before.get(stage, 0.0)
    return PredictionSummary(
        path=outputs["coherence"],
        uncertainty_path=outputs.get("uncertainty"),
        mode=mode,
        tiles=len(units),
        valid_pixels=stats.count,
        total_pixels=grid.width * grid.height,
        mean=stats.mean,
        min=stats.minimum if stats.count else float("nan"),
        max=stats.maximum if stats.count else float("nan"),
        std=stats.std,
        seconds=time.perf_counter() - started,
        grid=grid,
        outputs=facts,
        valid_mask=mask,
        renders={n: done[f"render:{n}"] for n in pictures},
        precision=_precision_of(predictor),
        timings=timings,
        domain=guard.check(card) if guard is not None and isinstance(card, ModelCard) else None,
    )


def _stream(
    reader: PairReader,
    predictor: TilePredictor,
    units: Sequence[TileWindow] | Sequence[PatchBlock],
    sink: CogSink,
    mask: DecimatedMask,
    renders: Mapping[str, RenderSink],
    times: StageTimes,
    on_progress: ProgressCallback | None,
    *,
    batch_size: int | None,
    tiling: Tiling,
    options: Mapping[str, Any],
) -> None:
    """Predict every unit and hand each finished window to the write-behind thread."""
    predictions = iter_predictions(
        reader,
        predictor,
        units,
        batch_size=batch_size,
        tiling=tiling,
        gdal_options=options,
        times=times,
    )
    write = _TileWriter(sink, list(sink.outputs), mask, renders, times)
    reported = 0

    def report() -> None:
        nonlocal reported
        while on_progress is not None and reported < writer.done:
            reported += 1
            on_progress(reported, len(units))

    # closing(): an error here stops the read-ahead thread now, not at garbage collection.
    with (
        contextlib.closing(predictions),
        WriteBehind(write, depth=2, gdal_options=options, times=times) as writer,
    ):
        for item in predictions:
            writer.put(item)
            report()
        with times.measure("drain writer"):
            writer.close()
    report()


def _precision_of(predictor: TilePredictor) -> str | None:
    """The predictor's numeric precision name, when it has one (the network does)."""
    choice = getattr(predictor, "precision", None)
    return getattr(choice, "name", None)
