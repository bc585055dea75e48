"""Work units of a prediction: plan them, predict them, stitch their cores.

The part of the engine that does not write files: :func:`plan_units` cuts a scene into
halo tiles (``fast``) or blocks of published patches (``reference``),
:func:`iter_predictions` reads them ahead in a thread and yields finished core windows,
and :func:`predict_array` assembles them in memory. ``stac_coh.infer.engine`` re-exports
all of it and adds the COG writer.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from stac_coh.constants import DEFAULT_REFERENCE_BLOCK, DEFAULT_TILE, MODES
from stac_coh.errors import InputError
from stac_coh.grid import PairReader
from stac_coh.infer.outputs import StageTimes
from stac_coh.infer.streaming import capture_gdal_options, prefetch
from stac_coh.infer.tiling import (
    PatchBlock,
    TileWindow,
    kaiser_window_2d,
    plan_reference,
    plan_tiles,
)
from stac_coh.model.card import ModelCard, Tiling
from stac_coh.model.preprocess import FLOAT32_EPS, valid_mask

__all__ = [
    "Mode",
    "ProgressCallback",
    "TilePredictor",
    "iter_predictions",
    "plan_units",
    "predict_array",
    "tiling_of",
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


def _finish(values: npt.NDArray[Any], inputs: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Clip coherence to [0, 1] and set NaN wherever either input is not valid backscatter."""
    out = np.array(values, dtype=np.float32, copy=True)
    out[0] = np.clip(out[0], 0.0, 1.0)
    out[:, ~valid_mask(inputs[0], inputs[1])] = np.nan
    return out


@runtime_checkable
class PreparingPredictor(TilePredictor, Protocol):
    """A predictor whose preprocessing can run ahead, in the read-ahead thread."""

    def prepare(self, tile: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """(2, h, w) linear power -> the predictor's input for that tile (thread-safe)."""
        ...

    def predict_prepared(
        self, x: npt.NDArray[np.float32], height: int, width: int
    ) -> npt.NDArray[np.float32]:
        """Stacked :meth:`prepare` outputs -> (N, 2, height, width), like ``__call__``."""
        ...


Read = tuple[np.ndarray, np.ndarray | None]
"""A tile's inputs and, for a :class:`PreparingPredictor`, its prepared input."""


def _run_fast(
    data: Iterator[tuple[TileWindow, Read]],
    predictor: TilePredictor,
    batch_size: int,
    times: StageTimes,
) -> Iterator[tuple[TileWindow, np.ndarray]]:
    """Batch tiles of equal read shape, predict, crop each core."""
    pending: list[tuple[TileWindow, Read]] = []

    def flush() -> Iterator[tuple[TileWindow, np.ndarray]]:
        with times.measure("network"):
            prepared = [p for _t, (_i, p) in pending if p is not None]
            if len(prepared) == len(pending) and isinstance(predictor, PreparingPredictor):
                height, width = pending[0][0].read_shape
                predicted = predictor.predict_prepared(np.stack(prepared), height, width)
            else:
                predicted = predictor(np.stack([i for _t, (i, _p) in pending]))
        for (tile, (inputs, _p)), values in zip(pending, predicted, strict=True):
            with times.measure("clip and mask"):
                finished = _finish(tile.crop(values), tile.crop(inputs))
            yield tile, finished
        pending.clear()

    for tile, read in data:
        if pending and pending[0][0].read_shape != tile.read_shape:
            yield from flush()
        pending.append((tile, read))
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()


def _run_reference(
    data: Iterator[tuple[PatchBlock, np.ndarray]],
    predictor: TilePredictor,
    batch_size: int,
    kaiser_beta: float,
    times: StageTimes,
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
            with times.measure("network"):
                outputs = predictor(patches)
            for (r, c), predicted in zip(chunk, outputs, strict=True):
                total[:, r : r + size, c : c + size] += predicted * weight
                weights[r : r + size, c : c + size] += weight
        with times.measure("clip and mask"):
            averaged = total / np.maximum(weights, np.float32(FLOAT32_EPS))
            window = block.window
            finished = _finish(window.crop(averaged), window.crop(inputs))
        yield window, finished


def iter_predictions(
    reader: PairReader,
    predictor: TilePredictor,
    units: Sequence[TileWindow] | Sequence[PatchBlock],
    *,
    batch_size: int | None = None,
    tiling: Tiling | None = None,
    gdal_options: Mapping[str, Any] | None = None,
    times: StageTimes | None = None,
) -> Generator[tuple[TileWindow, npt.NDArray[np.float32]], None, None]:
    """Yield ``(core window, (2, h, w) [coherence, uncertainty])`` as units finish.

    Units come from :func:`plan_units`. ``batch_size`` defaults to 1 tile (``fast``; big
    tiles already fill a CPU) or the card's batch of patches (``reference``). A
    :class:`PreparingPredictor` (the network) preprocesses in the read-ahead thread too.
    ``times`` gets the seconds spent reading, preparing, waiting for input, in the
    predictor and clipping.
    """
    t = tiling or Tiling()
    times = times or StageTimes()
    options = dict(gdal_options) if gdal_options is not None else capture_gdal_options()

    def read(unit: Any) -> np.ndarray:
        w = unit.window if isinstance(unit, PatchBlock) else unit
        with times.measure("read"):
            return reader.read(w.read_row_off, w.read_col_off, w.read_height, w.read_width)

    if units and isinstance(units[0], PatchBlock):
        size = batch_size or t.batch_size
        blocks = prefetch(units, read, depth=1, gdal_options=options, times=times)
        # plan_units returns PatchBlocks or TileWindows, never a mix: checking the first suffices
        yield from _run_reference(blocks, predictor, size, t.kaiser_beta, times)  # type: ignore[arg-type]
        return
    size = batch_size or 1
    prepare = predictor.prepare if isinstance(predictor, PreparingPredictor) else None

    def read_ahead(tile: TileWindow) -> Read:
        inputs = read(tile)
        if prepare is None:
            return inputs, None
        with times.measure("prepare"):
            return inputs, prepare(inputs)

    # Equal read shapes together, so batches fill; output windows can land in any order.
    # (TileWindows only: see above.)
    tiles: list[TileWindow] = sorted(units, key=lambda u: u.read_shape)  # type: ignore[arg-type]
    data = prefetch(tiles, read_ahead, depth=2 * size, gdal_options=options, times=times)
    yield from _run_fast(data, predictor, size, times)


def tiling_of(predictor: TilePredictor, tiling: Tiling | None) -> Tiling:
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
    tiling = tiling_of(predictor, tiling)
    units = plan_units(height, width, predictor, mode=mode, tile=tile, tiling=tiling)
    out = np.full((2, height, width), np.nan, dtype=np.float32)
    for w, values in iter_predictions(
        reader, predictor, units, batch_size=batch_size, tiling=tiling, gdal_options={}
    ):
        out[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] = values
    return out
