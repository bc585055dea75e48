"""Tiled, streaming coherence inference: any tile predictor, two tilings, COG outputs.

``fast`` mode (default) runs the fully convolutional network on large tiles read with a
halo as wide as its receptive field and keeps only each tile's core, so every pixel is
computed about once and the result does not depend on where tile boundaries fall: it
equals one pass over the whole scene. ``reference`` mode reproduces the published tiling
exactly (128 x 128 patches, stride 32, Kaiser-weighted average), which computes every
pixel about 16 times.

Both modes read windows from a :class:`~stac_coh.grid.PairReader` in a read-ahead thread
and hand finished core windows to the caller, so memory depends on tile size and batch,
not on the scene. :func:`predict_to_cogs` writes them to COGs; :func:`predict_array` keeps
them in memory for small inputs (tests, evaluation).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from stac_coh.constants import DEFAULT_REFERENCE_BLOCK, DEFAULT_TILE, MODES
from stac_coh.errors import InputError
from stac_coh.grid import PairReader
from stac_coh.infer.network import (
    NetworkPredictor,
    receptive_field,
    resolve_device,
    reuse_freed_memory,
)
from stac_coh.infer.streaming import CogSink, capture_gdal_options, prefetch
from stac_coh.infer.tiling import (
    PatchBlock,
    TileWindow,
    kaiser_window_2d,
    plan_reference,
    plan_tiles,
)
from stac_coh.io.cog import encoding_for
from stac_coh.model.card import ModelCard, Tiling
from stac_coh.model.preprocess import FLOAT32_EPS, valid_mask

__all__ = [
    "DEFAULT_REFERENCE_BLOCK",
    "DEFAULT_TILE",
    "MODES",
    "Mode",
    "NetworkPredictor",
    "PredictionSummary",
    "ProgressCallback",
    "TilePredictor",
    "iter_predictions",
    "plan_units",
    "predict_array",
    "predict_to_cogs",
    "receptive_field",
    "resolve_device",
    "reuse_freed_memory",
]

Mode = Literal["fast", "reference"]
ProgressCallback = Callable[[int, int], None]
"""``on_progress(done_units, total_units)``, called after each tile or block is written."""


@runtime_checkable
class TilePredictor(Protocol):
    """Anything that maps tiles of two linear backscatter images to coherence.

    The network (:class:`NetworkPredictor`) and classic estimators
    (``stac_coh.infer.estimators.SiegertPredictor``) both run through the same I/O path.
    """

    @property
    def halo(self) -> int:
        """Context pixels on each side of a tile's core that its output depends on."""
        ...

    @property
    def multiple(self) -> int:
        """Tile height and width must be multiples of this."""
        ...

    def __call__(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(N, 2, h, w) linear power (t1, t2; NaN = no data) -> (N, 2, h, w).

        Channel 0 is coherence in [0, 1], channel 1 its uncertainty (a standard deviation).
        """
        ...


Unit = TileWindow | PatchBlock


def plan_units(
    height: int,
    width: int,
    predictor: TilePredictor,
    *,
    mode: str = "fast",
    tile: int | None = None,
    tiling: Tiling | None = None,
) -> list[TileWindow] | list[PatchBlock]:
    """The work units of a scene: halo tiles (``fast``) or patch blocks (``reference``)."""
    tile = tile or (DEFAULT_TILE if mode == "fast" else DEFAULT_REFERENCE_BLOCK)
    if tile < 1:
        raise InputError(f"--tile must be a positive number of pixels, got {tile}.")
    if mode == "fast":
        return plan_tiles(height, width, tile, predictor.halo, predictor.multiple)
    if mode == "reference":
        t = tiling or Tiling()
        if t.patch_size % predictor.multiple:
            raise InputError(
                f"Reference patches of {t.patch_size} px do not fit a predictor that needs "
                f"multiples of {predictor.multiple}."
            )
        return plan_reference(height, width, block=tile, patch=t.patch_size, stride=t.stride)
    raise InputError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}.")


def _finish(values: npt.NDArray[np.float32], inputs: npt.NDArray[np.float32]) -> np.ndarray:
    """Clip coherence to [0, 1] and set NaN wherever either input is not valid backscatter."""
    out = np.array(values, dtype=np.float32, copy=True)
    out[0] = np.clip(out[0], 0.0, 1.0)
    out[:, ~valid_mask(inputs[0], inputs[1])] = np.nan
    return out


def _run_fast(
    data: Iterator[tuple[TileWindow, np.ndarray]],
    predictor: TilePredictor,
    batch_size: int,
) -> Iterator[tuple[TileWindow, np.ndarray]]:
    """Batch tiles of equal read shape, predict, crop each core."""
    pending: list[tuple[TileWindow, np.ndarray]] = []

    def flush() -> Iterator[tuple[TileWindow, np.ndarray]]:
        predicted = predictor(np.stack([d for _t, d in pending]))
        for (tile, inputs), values in zip(pending, predicted, strict=True):
            yield tile, _finish(tile.crop(values), tile.crop(inputs))
        pending.clear()

    for tile, inputs in data:
        if pending and pending[0][0].read_shape != tile.read_shape:
            yield from flush()
        pending.append((tile, inputs))
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()


def _run_reference(
    data: Iterator[tuple[PatchBlock, np.ndarray]],
    predictor: TilePredictor,
    batch_size: int,
    kaiser_beta: float,
) -> Iterator[tuple[TileWindow, np.ndarray]]:
    """The published aggregation, block by block: sum(w * p) / max(sum(w), eps), clipped."""
    for block, inputs in data:
        size = block.patch
        weight = kaiser_window_2d(size, kaiser_beta)
        total = np.zeros((2, *block.window.read_shape), dtype=np.float32)
        weights = np.zeros(block.window.read_shape, dtype=np.float32)
        origins = block.patches
        for start in range(0, len(origins), batch_size):
            chunk = origins[start : start + batch_size]
            patches = np.stack([inputs[:, r : r + size, c : c + size] for r, c in chunk])
            for (r, c), predicted in zip(chunk, predictor(patches), strict=True):
                total[:, r : r + size, c : c + size] += predicted * weight
                weights[r : r + size, c : c + size] += weight
        averaged = total / np.maximum(weights, np.float32(FLOAT32_EPS))
        window = block.window
        yield window, _finish(window.crop(averaged), window.crop(inputs))


def iter_predictions(
    reader: PairReader,
    predictor: TilePredictor,
    units: Sequence[TileWindow] | Sequence[PatchBlock],
    *,
    batch_size: int | None = None,
    tiling: Tiling | None = None,
    gdal_options: Mapping[str, Any] | None = None,
) -> Iterator[tuple[TileWindow, npt.NDArray[np.float32]]]:
    """Yield ``(core window, (2, h, w) [coherence, uncertainty])`` as units finish.

    Units come from :func:`plan_units`. ``batch_size`` defaults to 1 tile (``fast``; big
    tiles already fill a CPU) or the card's batch of patches (``reference``).
    """
    t = tiling or Tiling()
    options = dict(gdal_options) if gdal_options is not None else capture_gdal_options()

    def read(unit: Unit) -> np.ndarray:
        w = unit.window if isinstance(unit, PatchBlock) else unit
        return reader.read(w.read_row_off, w.read_col_off, w.read_height, w.read_width)

    if units and isinstance(units[0], PatchBlock):
        size = batch_size or t.batch_size
        blocks = prefetch(units, read, depth=1, gdal_options=options)
        yield from _run_reference(blocks, predictor, size, t.kaiser_beta)  # type: ignore[arg-type]
        return
    size = batch_size or 1
    # Equal read shapes together, so batches fill; output windows can land in any order.
    tiles = sorted(units, key=lambda u: u.read_shape)  # type: ignore[union-attr]
    data = prefetch(tiles, read, depth=2 * size, gdal_options=options)
    yield from _run_fast(data, predictor, size)  # type: ignore[arg-type]


def _tiling_of(predictor: TilePredictor, tiling: Tiling | None) -> Tiling:
    """The reference tiling: given, else the predictor's model card, else the published."""
    if tiling is not None:
        return tiling
    card = getattr(predictor, "card", None)
    return card.tiling if isinstance(card, ModelCard) else Tiling()


def predict_array(
    t1: npt.ArrayLike,
    t2: npt.ArrayLike,
    predictor: TilePredictor,
    *,
    mode: str = "fast",
    tile: int | None = None,
    batch_size: int | None = None,
    tiling: Tiling | None = None,
) -> npt.NDArray[np.float32]:
    """Predict (2, H, W) [coherence, uncertainty] for two in-memory images (NaN = nodata)."""
    from stac_coh.load.file_pair import ArrayPairReader

    reader = ArrayPairReader(t1, t2)
    height, width = reader.grid.shape
    tiling = _tiling_of(predictor, tiling)
    units = plan_units(height, width, predictor, mode=mode, tile=tile, tiling=tiling)
    out = np.full((2, height, width), np.nan, dtype=np.float32)
    for w, values in iter_predictions(
        reader, predictor, units, batch_size=batch_size, tiling=tiling, gdal_options={}
    ):
        out[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] = values
    return out


@dataclass(frozen=True)
class PredictionSummary:
    """What one prediction produced: where, how much, how long."""

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

    @property
    def valid_fraction(self) -> float:
        """Share of the grid with a value."""
        return self.valid_pixels / self.total_pixels if self.total_pixels else 0.0


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
) -> PredictionSummary:
    """Predict coherence over ``reader``'s grid and write it (and optionally its uncertainty).

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
        on_progress: called with (done, total) units after each one is written.
        workdir: where intermediate GeoTIFFs go; default beside ``out_path``.
        gdal_options: GDAL options for the read-ahead thread; default the caller's
            active ``rasterio.Env`` (or the cloud defaults).
        tiling: reference tiling; default the predictor's model card, else the published.

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
    tiling = _tiling_of(predictor, tiling)
    units = plan_units(grid.height, grid.width, predictor, mode=mode, tile=tile, tiling=tiling)
    scratch = Path(workdir) if workdir is not None else None
    with CogSink(grid, outputs, encoding, workdir=scratch) as sink:
        predictions = iter_predictions(
            reader,
            predictor,
            units,
            batch_size=batch_size,
            tiling=tiling,
            gdal_options=gdal_options,
        )
        # closing(): an error here stops the read-ahead thread now, not at garbage collection.
        with contextlib.closing(predictions):
            for done, (window, values) in enumerate(predictions, start=1):
                for channel, name in enumerate(outputs):
                    sink.write(name, window, values[channel])
                if on_progress is not None:
                    on_progress(done, len(units))
        sink.commit()
    stats = sink.stats["coherence"]
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
    )
