"""Compositing one tile in bounded memory: spatial chunks, pairs streamed through statistics.

The tile is cut into chunks of ``chunk`` x ``chunk`` pixels (512 by default, the COG
block). For each chunk and baseline, every pair that overlaps the chunk is read (one
integer window of its COG: pairs share the tile's lattice) and folded into a running
statistic, then dropped. Nothing holds more than one pair's window at a time, so memory
depends on the chunk size, not on the number of pairs:

- ``mean``: a float64 sum and a count per pixel (exact);
- ``median``: exact on the 251 levels the uint8 product stores (0, 0.004, ..., 1.0),
  the mean of the two middle values for an even count, as ``numpy.median``. With up to
  :data:`SORT_MAX_PAIRS` pairs of a baseline over a chunk their levels are kept (one
  byte per pair and pixel) and sorted; beyond that, a per-pixel histogram of the 251
  levels (uint16 counters: 502 bytes per pixel, 128 MiB for a 512 x 512 chunk) whose
  cumulative sum gives the median. So memory grows with the pairs of a chunk only up
  to 128 bytes per pixel, and never past the histogram's 502, whatever the number of
  pairs. Float32 pair items are binned to the same 0.004 steps first (error <= 0.002,
  the product's own quantisation).

Why not odc-stac/stackstac: both would give the same pixels here (one lattice, no
resampling) but as a (time, y, x) array, and a median over time needs the whole time
axis of a chunk in memory at once: memory would grow with the number of pairs. The
tests check the result against numpy's median of the stack odc-stac loads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.windows import Window

from stac_coh.composite.decay import MIN_BASELINES, fit_decay
from stac_coh.composite.layers import LayerSpec, LayerWriter, decay_layers, layers_for
from stac_coh.composite.pairs import PairRecord
from stac_coh.composite.tiles import TileStack
from stac_coh.errors import InputError, RasterReadError
from stac_coh.io.gdal_env import gdal_env

__all__ = [
    "LEVELS",
    "STATISTICS",
    "CompositeLayers",
    "HistogramMedian",
    "RunningMean",
    "SortedMedian",
    "as_stat",
    "composite_tile",
]

log = logging.getLogger(__name__)

Stat = Literal["median", "mean"]
STATISTICS: tuple[Stat, ...] = ("median", "mean")
"""What ``--stat`` accepts."""


def as_stat(value: str) -> Stat:
    """``--stat``'s value as a :data:`Stat`, or an input error naming what it accepts."""
    for stat in STATISTICS:
        if stat == value:
            return stat
    raise InputError(f"--stat {value!r}: use {' or '.join(STATISTICS)}.")


LEVELS = 251
"""Coherence levels of the uint8 product (0..250 x 0.004)."""

SORT_MAX_PAIRS = 128
"""Up to this many pairs of a baseline per chunk the median keeps their levels (1 byte per
pair and pixel) and sorts them; beyond, a histogram (2 bytes per level and pixel)."""

_EMPTY = 255

DEFAULT_CHUNK = 512
"""Chunk edge in pixels (one COG block)."""

F32 = npt.NDArray[np.float32]


class Accumulator(Protocol):
    """A running per-pixel statistic over a stream of rasters."""

    def add(self, values: F32, rows: slice, cols: slice) -> None:
        """Fold ``values`` (NaN = nodata) in at ``[rows, cols]`` of the chunk."""

    def result(self) -> tuple[F32, npt.NDArray[np.uint32]]:
        """(statistic with NaN where no value, count of values) per pixel."""


class RunningMean:
    """Exact running mean: a float64 sum and a count per pixel."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.total = np.zeros(shape, dtype=np.float64)
        self.count = np.zeros(shape, dtype=np.uint32)

    def add(self, values: F32, rows: slice, cols: slice) -> None:
        """Fold in one raster window."""
        valid = np.isfinite(values)
        self.total[rows, cols] += np.where(valid, values, 0.0)
        self.count[rows, cols] += valid

    def result(self) -> tuple[F32, npt.NDArray[np.uint32]]:
        """Mean and count."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self.count > 0, self.total / self.count, np.nan)
        return mean.astype(np.float32), self.count


class HistogramMedian:
    """Exact median of values on the product's 0.004 steps, from per-pixel histograms."""

    def __init__(self, shape: tuple[int, int], max_values: int) -> None:
        self.shape = shape
        self.dtype = np.uint16 if max_values < np.iinfo(np.uint16).max else np.uint32
        self.hist = np.zeros((LEVELS, shape[0] * shape[1]), dtype=self.dtype)
        self.index = np.arange(shape[0] * shape[1], dtype=np.intp).reshape(shape)

    def add(self, values: F32, rows: slice, cols: slice) -> None:
        """Fold in one raster window (each pixel once, so fancy indexing adds correctly)."""
        valid = np.isfinite(values)
        self.hist[_levels(values[valid]), self.index[rows, cols][valid]] += 1

    def result(self, block: int = 16384) -> tuple[F32, npt.NDArray[np.uint32]]:
        """Median (mean of the two middle values for an even count) and count."""
        pixels = self.hist.shape[1]
        median = np.full(pixels, np.nan, dtype=np.float32)
        count = self.hist.sum(axis=0, dtype=np.uint32)
        used = np.flatnonzero(self.hist.any(axis=1))  # levels that occur at all
        if used.size:
            lo, hi = int(used[0]), int(used[-1]) + 1
            for start in range(0, pixels, block):
                part = np.cumsum(self.hist[lo:hi, start : start + block], axis=0, dtype=self.dtype)
                n = count[start : start + block]
                low = np.argmax(part >= ((n + 1) // 2).astype(self.dtype), axis=0)
                high = np.argmax(part >= (n // 2 + 1).astype(self.dtype), axis=0)
                value = (low + high + 2 * lo) / (2.0 * (LEVELS - 1))
                median[start : start + block] = np.where(n > 0, value, np.nan)
        return median.reshape(self.shape), count.reshape(self.shape)


class SortedMedian:
    """Exact median of a few values per pixel: their levels kept as uint8, sorted at the end.

    Used while a chunk has at most :data:`SORT_MAX_PAIRS` pairs of a baseline: it then
    needs fewer bytes per pixel than the histogram (and is much faster to read out);
    the histogram's bound holds either way.
    """

    def __init__(self, shape: tuple[int, int], max_values: int) -> None:
        self.levels = np.full((max(max_values, 1), *shape), _EMPTY, dtype=np.uint8)
        self.used = 0

    def add(self, values: F32, rows: slice, cols: slice) -> None:
        """Keep one raster window's levels (nodata stays 255, which sorts last)."""
        valid = np.isfinite(values)
        layer = self.levels[self.used, rows, cols]
        layer[valid] = _levels(values[valid])
        self.used += 1

    def result(self) -> tuple[F32, npt.NDArray[np.uint32]]:
        """Median (mean of the two middle values for an even count) and count."""
        levels = np.sort(self.levels[: self.used], axis=0) if self.used else self.levels[:1]
        count = (levels != _EMPTY).sum(axis=0, dtype=np.uint32)
        low = np.take_along_axis(levels, ((count.astype(np.intp) - 1) // 2)[None], axis=0)[0]
        high = np.take_along_axis(levels, (count.astype(np.intp) // 2)[None], axis=0)[0]
        value = (low.astype(np.float64) + high) / (2.0 * (LEVELS - 1))
        return np.where(count > 0, value, np.nan).astype(np.float32), count


def _levels(values: F32) -> npt.NDArray[np.intp]:
    """Values in [0, 1] -> the product's levels 0..250 (nearest)."""
    return np.rint(np.clip(values, 0.0, 1.0) * (LEVELS - 1)).astype(np.intp)


@dataclass(frozen=True)
class CompositeLayers:
    """The COGs of one composite: tile, period and polarisation."""

    files: dict[str, Path]
    """Asset key -> COG path (composites and counts per baseline, decay layers)."""
    specs: dict[str, LayerSpec]
    """Asset key -> how it is stored."""
    baselines: tuple[int, ...]
    """Baselines with at least one pair, ascending."""
    fitted: bool
    """Whether decay layers were made (at least :data:`MIN_BASELINES` baselines)."""


def composite_tile(
    tile: TileStack,
    by_baseline: Mapping[int, Sequence[PairRecord]],
    workdir: Path,
    *,
    stat: Stat = "median",
    chunk: int = DEFAULT_CHUNK,
    min_baselines: int = MIN_BASELINES,
    gdal_options: Mapping[str, Any] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> CompositeLayers:
    """Composite per baseline, count pairs, fit the decay model; write COGs in ``workdir``."""
    baselines = tuple(sorted(b for b, pairs in by_baseline.items() if pairs))
    fitted = len(baselines) >= min_baselines
    specs: list[LayerSpec] = [spec for b in baselines for spec in layers_for(b, stat)]
    if fitted:
        specs.extend(decay_layers())
    windows = {p.id: tile.window(p) for b in baselines for p in by_baseline[b]}
    chunks = [
        (row, col, min(chunk, tile.height - row), min(chunk, tile.width - col))
        for row in range(0, tile.height, chunk)
        for col in range(0, tile.width, chunk)
    ]
    writer = LayerWriter(
        specs,
        workdir,
        crs=tile.lattice.crs,
        transform=tile.transform,
        shape=(tile.height, tile.width),
    )
    try:
        with gdal_env(gdal_options):
            for i, (row, col, height, width) in enumerate(chunks):
                window = Window(col, row, width, height)
                stack = np.full((len(baselines), height, width), np.nan, dtype=np.float32)
                for k, baseline in enumerate(baselines):
                    members = [
                        p
                        for p in by_baseline[baseline]
                        if _overlap(windows[p.id], row, col, height, width)
                    ]
                    values, count = _composite_chunk(
                        members, windows, (row, col, height, width), stat
                    )
                    stack[k] = values
                    coherence, counts = layers_for(baseline, stat)
                    writer.write(coherence.key, values, window)
                    writer.write(counts.key, count, window)
                if fitted:
                    fit = fit_decay(baselines, stack, min_baselines=min_baselines)
                    for spec, layer in zip(
                        decay_layers(), (fit.rho_inf, fit.tau, fit.rmse), strict=True
                    ):
                        writer.write(spec.key, layer, window)
                if on_chunk is not None:
                    on_chunk(i + 1, len(chunks))
    except BaseException:
        writer.close()
        raise
    files = writer.finish()
    return CompositeLayers(files, {s.key: s for s in specs}, baselines, fitted)


def _composite_chunk(
    members: Sequence[PairRecord],
    windows: Mapping[str, tuple[int, int, int, int]],
    box: tuple[int, int, int, int],
    stat: Stat,
) -> tuple[F32, npt.NDArray[np.uint32]]:
    """One baseline's statistic over one chunk, reading one pair window at a time."""
    row, col, height, width = box
    acc: Accumulator
    if stat == "mean":
        acc = RunningMean((height, width))
    elif len(members) <= SORT_MAX_PAIRS:
        acc = SortedMedian((height, width), len(members))
    else:
        acc = HistogramMedian((height, width), len(members))
    for pair in members:
        prow, pcol, ph, pw = windows[pair.id]
        r0, r1 = max(row, prow), min(row + height, prow + ph)
        c0, c1 = max(col, pcol), min(col + width, pcol + pw)
        values = read_window(pair.coherence_href, Window(c0 - pcol, r0 - prow, c1 - c0, r1 - r0))
        acc.add(values, slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
    return acc.result()


def read_window(href: str, window: Window) -> F32:
    """Decoded values of band 1 in ``window`` (the file's scale/offset; NaN at nodata)."""
    try:
        with rasterio.open(href) as ds:
            data = ds.read(1, window=window, masked=True)
            scale = ds.scales[0] if ds.scales else 1.0
            offset = ds.offsets[0] if ds.offsets else 0.0
    except rasterio.errors.RasterioIOError as exc:
        raise RasterReadError(
            f"Cannot read the pair coherence {href}: {exc}. Is the catalog complete "
            "(run `stac-coh finalize`) and readable with these credentials?"
        ) from None
    values = data.astype(np.float32) * np.float32(scale) + np.float32(offset)
    return np.ma.filled(np.ma.masked_invalid(values), np.nan).astype(np.float32)


def _overlap(
    window: tuple[int, int, int, int], row: int, col: int, height: int, width: int
) -> bool:
    """Whether a pair's window overlaps the chunk."""
    prow, pcol, ph, pw = window
    return prow < row + height and row < prow + ph and pcol < col + width and col < pcol + pw
