"""What one streaming pass learns about its outputs, so nobody has to read them again.

While tiles are written, the engine keeps exact statistics of the stored values (a
256-bin histogram for uint8), a decimated valid-pixel mask (for the item's footprint) and
the wall time of each stage. :class:`~stac_coh.infer.engine.PredictionSummary` hands them
to the caller; publishing uses them instead of re-reading the COGs.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from affine import Affine

from stac_coh.io.cog import Encoding, decode

__all__ = ["DecimatedMask", "OutputFacts", "OutputStats", "StageTimes", "StoredStatistics"]

FOOTPRINT_MASK_SIZE = 512
"""Long side of the decimated valid mask kept for the footprint (what publishing traces)."""


@dataclass(frozen=True)
class StoredStatistics:
    """Exact statistics of the STORED values of a raster (nodata excluded), all pixels."""

    minimum: float
    """Smallest stored value."""
    maximum: float
    """Largest stored value."""
    mean: float
    """Mean stored value."""
    stddev: float
    """Population standard deviation of stored values."""
    valid_percent: float
    """Percentage of the raster's pixels (as stored, padding included) that hold a value."""


class OutputStats:
    """Running statistics of one output, exact over every pixel written.

    uint8 outputs keep a histogram of stored values (cheap, exact, and it gives stored and
    decoded statistics alike); float32 outputs keep float64 sums of the finite values.
    Properties describe DECODED values (what GDAL readers see after scale/offset).
    """

    def __init__(self, encoding: Encoding) -> None:
        self.encoding = encoding
        self.histogram: npt.NDArray[np.int64] | None = (
            np.zeros(256, dtype=np.int64) if encoding.dtype == "uint8" else None
        )
        self._count = 0
        self._total = 0.0
        self._total_sq = 0.0
        self._minimum = math.inf
        self._maximum = -math.inf

    def add(self, stored: npt.NDArray[np.generic]) -> None:
        """Accumulate an array of stored values (nodata is skipped)."""
        if self.histogram is not None:
            self.histogram += np.bincount(np.asarray(stored, np.uint8).ravel(), minlength=256)
            return
        values = np.asarray(stored)
        finite = values[np.isfinite(values)].astype(np.float64)
        if finite.size == 0:
            return
        self._count += int(finite.size)
        self._total += float(finite.sum())
        self._total_sq += float(np.square(finite).sum())
        self._minimum = min(self._minimum, float(finite.min()))
        self._maximum = max(self._maximum, float(finite.max()))

    def _moments(self, decoded: bool) -> tuple[int, float, float, float, float]:
        """(count, sum, sum of squares, min, max) of decoded or stored values."""
        if self.histogram is None:  # float32: stored values are the decoded values
            return self._count, self._total, self._total_sq, self._minimum, self._maximum
        levels = np.arange(256)
        values = levels.astype(np.float64)
        if decoded:
            values = decode(levels.astype(np.uint8), self.encoding).astype(np.float64)
        keep = (self.histogram > 0) & (levels != self.encoding.nodata)
        counts, values = self.histogram[keep], values[keep]
        if counts.size == 0:
            return 0, 0.0, 0.0, math.inf, -math.inf
        return (
            int(counts.sum()),
            float((counts * values).sum()),
            float((counts * values**2).sum()),
            float(values.min()),
            float(values.max()),
        )

    @property
    def count(self) -> int:
        """Pixels with a value."""
        return self._moments(True)[0]

    @property
    def mean(self) -> float:
        """Mean decoded value (NaN when none)."""
        count, total, *_ = self._moments(True)
        return total / count if count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation of decoded values (NaN when none)."""
        count, total, total_sq, *_ = self._moments(True)
        if not count:
            return math.nan
        return math.sqrt(max(total_sq / count - (total / count) ** 2, 0.0))

    @property
    def minimum(self) -> float:
        """Smallest decoded value (inf when none)."""
        return self._moments(True)[3]

    @property
    def maximum(self) -> float:
        """Largest decoded value (-inf when none)."""
        return self._moments(True)[4]

    def stored(self, pixels: int) -> StoredStatistics | None:
        """Statistics of stored values over a raster of ``pixels``; ``None`` when all nodata."""
        count, total, total_sq, low, high = self._moments(False)
        if not count:
            return None
        mean = total / count
        return StoredStatistics(
            minimum=low,
            maximum=high,
            mean=mean,
            stddev=math.sqrt(max(total_sq / count - mean**2, 0.0)),
            valid_percent=100.0 * count / pixels if pixels else 0.0,
        )


class DecimatedMask:
    """The valid-pixel mask of a grid, sampled at most ``max_size`` pixels on the long side.

    Each decimated pixel takes the value of the full-resolution pixel nearest its centre,
    so tiles can fill it in any order and the result does not depend on the tiling.
    """

    def __init__(self, height: int, width: int, max_size: int = FOOTPRINT_MASK_SIZE) -> None:
        factor = max(1.0, max(height, width) / max_size)
        rows, cols = max(1, round(height / factor)), max(1, round(width / factor))
        self.height, self.width = height, width
        self.mask = np.zeros((rows, cols), dtype=bool)
        self._rows = np.minimum(
            ((np.arange(rows) + 0.5) * height / rows).astype(np.int64), height - 1
        )
        self._cols = np.minimum(
            ((np.arange(cols) + 0.5) * width / cols).astype(np.int64), width - 1
        )

    def add(self, row_off: int, col_off: int, valid: npt.NDArray[np.bool_]) -> None:
        """Record the valid pixels of a window starting at (``row_off``, ``col_off``)."""
        h, w = valid.shape
        r = np.flatnonzero((self._rows >= row_off) & (self._rows < row_off + h))
        c = np.flatnonzero((self._cols >= col_off) & (self._cols < col_off + w))
        if r.size and c.size:
            sub = valid[np.ix_(self._rows[r] - row_off, self._cols[c] - col_off)]
            self.mask[np.ix_(r, c)] = sub

    def transform(self, grid_transform: Affine) -> Affine:
        """Affine transform of the decimated mask, given the full grid's."""
        rows, cols = self.mask.shape
        return grid_transform * Affine.scale(self.width / cols, self.height / rows)


@dataclass(frozen=True)
class OutputFacts:
    """One written COG as a reader will find it, known without reading it."""

    path: Path
    """Where the COG is."""
    encoding: Encoding
    """dtype, scale, offset, nodata of band 1."""
    width: int
    """Columns as stored (the grid padded so overviews halve exactly)."""
    height: int
    """Rows as stored."""
    stats: OutputStats
    """Exact statistics of every pixel written."""

    @property
    def stored_statistics(self) -> StoredStatistics | None:
        """Exact stored-value statistics over the stored raster; ``None`` when all nodata."""
        return self.stats.stored(self.width * self.height)


@dataclass
class StageTimes:
    """Wall seconds per stage of a pass, summed over tiles; safe to add from any thread."""

    seconds: dict[str, float] = field(default_factory=dict)
    """Stage name -> seconds."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to ``stage``."""
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Time the ``with`` block into ``stage``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)
