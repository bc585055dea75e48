"""Input-domain guard: is this pair like the data the weights were trained on?

A network that turns speckle statistics into coherence is only right for the speckle
regimes and levels it was trained on, and only for pairs whose dates line up.
:func:`estimate_domain` measures four things of a pair, cheaply and without a model:

* ``looks``: the equivalent number of looks. For L-look gamma speckle in a homogeneous
  area, ``ln(mean I) - mean(ln I) = ln L - digamma(L)``; that gap is measured in blocks
  of 12 x 12 pixels of both dates, and its lowest decile over blocks (least texture and
  fewest parcel edges) is inverted. Look-averaged speckle is not exactly gamma, the decile
  favours calm blocks and texture pushes the other way; :data:`LOOKS_CORRECTION` makes
  the estimate right on average over domain-randomised simulated scenes (1.5-8 looks,
  Gaussian, sinc and independent impulse responses, textured landscapes), where single
  scenes read within about 13 % (one standard deviation; extremes -35 % and +22 %).
* ``level_db``: the median backscatter of both dates in dB.
* ``relative_gain_db``: the median of ``dB(t2) - dB(t1)`` where both are valid (a
  calibration difference between the dates; speckle and changes average out).
* ``misregistration``: the shift of the second date against the first, from the pair's
  structure (:mod:`stac_coh.model.misregistration`).

:func:`check_domain` compares the first three with the card's
:class:`~stac_coh.model.card.TrainingDomain` and the shift with
:data:`MISREGISTRATION_LIMIT_PX`, and names what falls outside; inference records the
numbers in the summary and the STAC item and warns when a value is outside.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from stac_coh.errors import InputDomainWarning
from stac_coh.model.card import ModelCard, TrainingDomain
from stac_coh.model.misregistration import ShiftAccumulator, estimate_misregistration

if TYPE_CHECKING:
    from stac_coh.grid import OutputGrid, PairReader

__all__ = [
    "BLOCK",
    "LOOKS_CORRECTION",
    "MISREGISTRATION_LIMIT_PX",
    "DomainAccumulator",
    "DomainCheck",
    "DomainEstimate",
    "GuardedReader",
    "InputDomainWarning",
    "assess_reader",
    "check_domain",
    "digamma",
    "estimate_domain",
    "looks_from_log_gap",
]

BLOCK = 12
"""Edge of the blocks whose log gap measures the looks."""

QUANTILE = 0.1
"""Quantile of the blocks' log gaps taken as the homogeneous value."""

LOOKS_CORRECTION = 0.88
"""Multiplies the inverted looks; fitted on domain-randomised simulated scenes."""

MISREGISTRATION_LIMIT_PX = 0.25
"""Largest shift of t2 against t1 (pixels) the guard lets pass without a warning.

At 0.25 px along one axis, GRD-like speckle (ENL 4.4) keeps 85 % of its correlation
between the dates, so a coherence of 0.9 reads about 0.83; pixels of independent speckle
keep 46-66 %. Beyond it the loss grows quickly, whatever the weights.
"""

SHIFT_WINDOW = 256
"""Edge of the central part of each window that the misregistration estimate reads.

A pair has one shift, and a few windows' worth of pixels measure it; the centre of a
640 px window costs 10 ms on 2 CPU cores (64 ms whole), against seconds of inference.
"""

READ_WINDOW = 512
"""Edge of the windows :func:`assess_reader` reads (at most 3 x 3 of them)."""


def digamma(x: float) -> float:
    """The digamma function psi(x) for x > 0 (recurrence, then the asymptotic series)."""
    total = 0.0
    while x < 6.0:
        total -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))))
    return total + math.log(x) - 0.5 / x - series


def looks_from_log_gap(gap: float) -> float:
    """The L > 0 with ln L - digamma(L) = gap (bisection in log space, 0.05 .. 1e4)."""
    if not gap > 0:
        return math.inf
    lo, hi = math.log(0.05), math.log(1e4)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        x = math.exp(mid)
        lo, hi = (mid, hi) if math.log(x) - digamma(x) > gap else (lo, mid)
    return math.exp(0.5 * (lo + hi))


@dataclass(frozen=True)
class DomainEstimate:
    """What :func:`estimate_domain` measured."""

    looks: float
    """Equivalent number of looks (NaN when too few homogeneous blocks)."""
    level_db: float
    """Median backscatter of both dates, dB."""
    relative_gain_db: float
    """Median of dB(t2) - dB(t1), dB."""
    pixels: int
    """Valid pixels measured."""
    misregistration: tuple[float, float] = (math.nan, math.nan)
    """Shift (rows, cols) in pixels: t2 shows at p what t1 shows at p + shift (NaN: unmeasured)."""

    @property
    def misregistration_px(self) -> float:
        """Length of the shift of t2 against t1, in pixels."""
        return math.hypot(*self.misregistration)


@dataclass(frozen=True)
class DomainCheck:
    """An estimate compared with a training domain."""

    estimate: DomainEstimate
    """The pair's numbers."""
    domain: TrainingDomain
    """What the weights were trained on."""
    outside: tuple[str, ...]
    """One sentence per value outside the domain; empty when all are inside."""

    @property
    def ok(self) -> bool:
        """True when every measured value is inside the training domain."""
        return not self.outside

    def properties(self) -> dict[str, Any]:
        """STAC item properties (``coh:input_*``) recording the check."""

        def num(value: float) -> float | None:
            return None if not math.isfinite(value) else round(value, 2)

        e = self.estimate
        return {
            "coh:input_looks": num(e.looks),
            "coh:input_level_db": num(e.level_db),
            "coh:input_relative_gain_db": num(e.relative_gain_db),
            "coh:input_misregistration_px": num(e.misregistration_px),
            "coh:input_in_training_domain": self.ok,
            "coh:input_domain_warnings": list(self.outside),
        }


def _block_log_gaps(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """ln(mean I) - mean(ln I) of every fully valid BLOCK x BLOCK block."""
    rows, cols = (s // BLOCK * BLOCK for s in image.shape)
    if rows == 0 or cols == 0:
        return np.empty(0)
    tiles = image[:rows, :cols].astype(np.float64)
    tiles = tiles.reshape(rows // BLOCK, BLOCK, cols // BLOCK, BLOCK).transpose(0, 2, 1, 3)
    tiles = tiles.reshape(-1, BLOCK * BLOCK)
    tiles = tiles[(np.isfinite(tiles) & (tiles > 0)).all(axis=1)]
    return np.log(tiles.mean(axis=1)) - np.log(tiles).mean(axis=1)


def _looks_from_gaps(gaps: npt.NDArray[np.float64]) -> float:
    """ENL from the blocks' lowest-decile log gap (NaN with fewer than 8 blocks)."""
    if gaps.size < 8:
        return math.nan
    return LOOKS_CORRECTION * looks_from_log_gap(float(np.quantile(gaps, QUANTILE)))


def estimate_domain(t1: npt.ArrayLike, t2: npt.ArrayLike) -> DomainEstimate:
    """Looks, level, relative gain and misregistration of a pair of linear power images."""
    a, b = np.asarray(t1, np.float32), np.asarray(t2, np.float32)
    gaps = np.concatenate([_block_log_gaps(a), _block_log_gaps(b)])
    return _estimate(gaps, a, b, estimate_misregistration(a, b))


def _estimate(
    gaps: npt.NDArray[np.float64],
    a: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32],
    misregistration: tuple[float, float],
) -> DomainEstimate:
    good1, good2 = np.isfinite(a) & (a > 0), np.isfinite(b) & (b > 0)
    both = good1 & good2
    with np.errstate(divide="ignore", invalid="ignore"):
        db1, db2 = 10.0 * np.log10(a), 10.0 * np.log10(b)
    levels = np.concatenate([db1[good1], db2[good2]])
    return DomainEstimate(
        looks=_looks_from_gaps(gaps),
        level_db=float(np.median(levels)) if levels.size else math.nan,
        relative_gain_db=float(np.median(db2[both] - db1[both])) if both.any() else math.nan,
        pixels=int(both.sum()),
        misregistration=misregistration,
    )


def check_domain(estimate: DomainEstimate, domain: TrainingDomain) -> DomainCheck:
    """Name every measured value outside ``domain`` (unmeasurable values are not flagged).

    The misregistration is checked against :data:`MISREGISTRATION_LIMIT_PX`, not the card:
    what a shift costs depends on the pair's speckle, not on the weights.
    """
    outside = []
    for label, value, (lo, hi), unit in (
        ("looks (ENL)", estimate.looks, domain.looks, ""),
        ("median level", estimate.level_db, domain.level_db, " dB"),
        ("relative gain t2 - t1", estimate.relative_gain_db, domain.relative_gain_db, " dB"),
    ):
        if math.isfinite(value) and not lo <= value <= hi:
            outside.append(
                f"{label} {value:.2f}{unit} is outside the training range [{lo:g}, {hi:g}]{unit}"
            )
    shift = estimate.misregistration_px
    if math.isfinite(shift) and shift > MISREGISTRATION_LIMIT_PX:
        outside.append(
            f"misregistration of t2 against t1 {shift:.2f} px is above "
            f"{MISREGISTRATION_LIMIT_PX:g} px (a shift decorrelates the dates' speckle, "
            "which reads as lower coherence)"
        )
    return DomainCheck(estimate, domain, tuple(outside))


class DomainAccumulator:
    """Collects the guard's statistics from windows as they are read (bounded memory).

    Block gaps of every window and every ``stride``-th pixel in both directions are kept;
    past ``cap`` values, every other one is dropped, so a whole scene costs a few MB.
    """

    def __init__(self, *, stride: int = 4, cap: int = 1_000_000) -> None:
        self.stride = stride
        self.cap = cap
        self._gaps: list[npt.NDArray[np.float64]] = []
        self._pixels: list[npt.NDArray[np.float32]] = []
        self._counts = [0, 0]
        self._shift = ShiftAccumulator()

    def add(self, pair: npt.ArrayLike) -> None:
        """Add one (2, h, w) window of linear power (t1, t2; NaN = nodata)."""
        arr = np.asarray(pair, dtype=np.float32)
        gaps = np.concatenate([_block_log_gaps(arr[0]), _block_log_gaps(arr[1])])
        rows, cols = arr.shape[1:]
        top, left = max(0, (rows - SHIFT_WINDOW) // 2), max(0, (cols - SHIFT_WINDOW) // 2)
        centre = arr[:, top : top + SHIFT_WINDOW, left : left + SHIFT_WINDOW]
        self._shift.add(centre[0], centre[1])
        pixels = arr[:, :: self.stride, :: self.stride].reshape(2, -1)
        pixels = pixels[:, np.isfinite(pixels).any(axis=0)]
        self._gaps.append(gaps)
        self._pixels.append(pixels)
        self._counts[0] += gaps.size
        self._counts[1] += pixels.shape[1]
        if self._counts[0] > self.cap:
            self._gaps = [np.concatenate(self._gaps)[::2]]
            self._counts[0] = self._gaps[0].size
        if self._counts[1] > self.cap:
            self._pixels = [np.concatenate(self._pixels, axis=1)[:, ::2]]
            self._counts[1] = self._pixels[0].shape[1]

    def estimate(self) -> DomainEstimate:
        """The pair's looks, level, relative gain and misregistration from what was added."""
        gaps = np.concatenate(self._gaps) if self._gaps else np.empty(0)
        pixels = np.concatenate(self._pixels, axis=1) if self._pixels else np.empty((2, 0))
        return _estimate(
            gaps,
            pixels[0].astype(np.float32),
            pixels[1].astype(np.float32),
            self._shift.estimate(),
        )

    def check(self, card: ModelCard, *, warn: bool = True) -> DomainCheck:
        """Compare with the card's training domain; warn when outside."""
        result = check_domain(self.estimate(), card.training_domain)
        if warn and not result.ok:
            warnings.warn(
                f"Input outside the training domain of weights '{card.name}': "
                + "; ".join(result.outside)
                + ". The coherence may be biased; check it against reference data.",
                InputDomainWarning,
                stacklevel=3,
            )
        return result


class GuardedReader:
    """A pair reader that hands every window it reads to a :class:`DomainAccumulator`.

    The inference engine reads each tile once (with its halo); the guard sees the same
    data at no extra I/O. Halos are seen twice, which does not move medians and quantiles.
    """

    def __init__(self, reader: PairReader, accumulator: DomainAccumulator) -> None:
        self.reader = reader
        self.accumulator = accumulator

    @property
    def grid(self) -> OutputGrid:
        """The wrapped reader's grid."""
        return self.reader.grid

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Read from the wrapped reader and observe the window."""
        window = self.reader.read(row_off, col_off, height, width)
        self.accumulator.add(window)
        return window

    def close(self) -> None:
        """Close the wrapped reader."""
        self.reader.close()


def _sample_windows(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """Up to 3 x 3 windows of READ_WINDOW px spread evenly over the grid."""

    def starts(size: int) -> list[int]:
        edge = min(size, READ_WINDOW)
        count = min(3, max(1, size // READ_WINDOW))
        if count == 1:
            return [(size - edge) // 2]
        return [round(i * (size - edge) / (count - 1)) for i in range(count)]

    rows, cols = starts(height), starts(width)
    h, w = min(height, READ_WINDOW), min(width, READ_WINDOW)
    return [(r, c, h, w) for r in rows for c in cols]


def assess_reader(reader: PairReader, card: ModelCard, *, warn: bool = True) -> DomainCheck:
    """Estimate the domain from a sample of the reader's windows and check it against the card.

    Reads at most nine 512 x 512 windows (a few MB). Inference does not call this: it
    observes the windows it reads anyway (:class:`GuardedReader`). With ``warn`` an
    :class:`InputDomainWarning` names what is outside the training domain.
    """
    accumulator = DomainAccumulator(stride=1)
    grid = reader.grid
    for r, c, h, w in _sample_windows(grid.height, grid.width):
        accumulator.add(reader.read(r, c, h, w))
    return accumulator.check(card, warn=warn)
