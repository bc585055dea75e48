"""How far the second date sits from the first: a pair's misregistration, from its structure.

Two detected images of one pair are geocoded independently, and a geolocation error moves
the whole second date: parcel edges, texture and speckle together. A sub-pixel shift
decorrelates the two dates' speckle (``SpeckleModel.shift_correlation`` in
:mod:`stac_coh.science.speckle`), and anything reading coherence from intensities, a
network included, reads that loss as low coherence. The input-domain guard therefore
measures the shift.

The log intensity of each date, averaged over ``SMOOTH`` x ``SMOOTH`` pixels, minus its
mean over ``HIGHPASS`` x ``HIGHPASS`` pixels (so gains, incidence ramps and slow changes
drop out) is cross-correlated at lags up to
``MAX_LAG`` pixels in both directions, over pixels whose whole window is valid in both
dates. The sums of products are kept per lag, so windows read one by one add up in
bounded memory. A Gaussian through the peak and its neighbours places it to a fraction of
a pixel.

The smoothing matters where pixels of speckle are independent: the part of the speckle
that stays aligned correlates at lag 0 only and pulls an unsmoothed estimate towards
zero; averaging 3 x 3 pixels divides that speckle's weight by about 9 and keeps the
structure. ``benchmarks/misregistration_guard.py`` measures the accuracy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from stac_coh.box_filters import nan_box_mean

__all__ = ["HIGHPASS", "MAX_LAG", "SMOOTH", "ShiftAccumulator", "estimate_misregistration"]

SMOOTH = 3
"""Edge (pixels) of the mean that calms the speckle of the log intensities."""

HIGHPASS = 15
"""Edge (pixels) of the local mean taken off the log intensities."""

MAX_LAG = 2
"""Largest lag (pixels) of the cross-correlation, along each axis."""

MIN_PIXELS = 2000
"""Fewest pixels valid in both dates at every lag for an estimate."""

MIN_PEAK = 0.15
"""Least correlation of the dates at the peak for an estimate (below it, nothing lines up)."""

_LAGS = range(-MAX_LAG, MAX_LAG + 1)


def _highpassed_log(image: npt.NDArray[np.float32]) -> npt.NDArray[np.floating[Any]]:
    """ln I averaged over SMOOTH px minus its HIGHPASS-px mean; NaN where a window is not whole."""
    valid = np.isfinite(image) & (image > 0)
    log = np.where(valid, np.log(np.where(valid, image, 1.0)), np.nan)
    smooth, smooth_count = nan_box_mean(log, SMOOTH)
    local, count = nan_box_mean(log, HIGHPASS)
    out = smooth - local
    out[(count < HIGHPASS**2 - 0.5) | (smooth_count < SMOOTH**2 - 0.5)] = np.nan
    return out


def _gaussian_vertex(before: float, peak: float, after: float) -> float:
    """Offset of the vertex of a Gaussian through three samples (0 if not a peak)."""
    if min(before, peak, after) <= 0:
        return 0.0
    a, p, b = math.log(before), math.log(peak), math.log(after)
    curvature = a - 2.0 * p + b
    return 0.0 if curvature >= 0 else max(-1.0, min(1.0, 0.5 * (a - b) / curvature))


class ShiftAccumulator:
    """Sums of the two dates' cross-products per lag, over windows added one by one."""

    def __init__(self) -> None:
        size = len(_LAGS)
        self._sums = np.zeros((size, size))
        self._counts = np.zeros((size, size))
        self._power = np.zeros(2)

    def add(self, t1: npt.ArrayLike, t2: npt.ArrayLike) -> None:
        """Add one window of both dates (linear power; NaN = nodata)."""
        h1 = _highpassed_log(np.asarray(t1, np.float32))
        h2 = _highpassed_log(np.asarray(t2, np.float32))
        rows, cols = h1.shape
        if rows <= 2 * MAX_LAG or cols <= 2 * MAX_LAG:
            return
        # Zeros where invalid: a product then counts only where both dates are valid.
        valid1, valid2 = np.isfinite(h1), np.isfinite(h2)
        h1, h2 = np.where(valid1, h1, 0.0), np.where(valid2, h2, 0.0)
        m1, m2 = valid1.astype(np.float64), valid2.astype(np.float64)
        core = (slice(MAX_LAG, rows - MAX_LAG), slice(MAX_LAG, cols - MAX_LAG))
        inner, inner_valid = h1[core], m1[core]
        both = inner_valid * m2[core]
        self._power += (np.vdot(inner * inner, both), np.vdot(h2[core] * h2[core], both))
        for i, dy in enumerate(_LAGS):
            for j, dx in enumerate(_LAGS):
                lagged = (
                    slice(MAX_LAG + dy, rows - MAX_LAG + dy),
                    slice(MAX_LAG + dx, cols - MAX_LAG + dx),
                )
                self._sums[i, j] += np.einsum("ij,ij->", inner, h2[lagged])
                self._counts[i, j] += np.einsum("ij,ij->", inner_valid, m2[lagged])

    def estimate(self) -> tuple[float, float]:
        """The shift (rows, cols) in pixels: t2 shows at p what t1 shows at p + shift.

        NaN when fewer than :data:`MIN_PIXELS` pixels were valid in both dates, or when
        the dates correlate by less than :data:`MIN_PEAK` at every lag.
        """
        if self._counts.min() < MIN_PIXELS or not self._power.all():
            return (math.nan, math.nan)
        centre = self._counts[MAX_LAG, MAX_LAG]
        table = self._sums / self._counts / math.sqrt(self._power.prod() / centre**2)
        if table.max() < MIN_PEAK:
            return (math.nan, math.nan)
        peak = np.unravel_index(int(np.argmax(table)), table.shape)
        i, j = (min(max(int(k), 1), 2 * MAX_LAG - 1) for k in peak)
        dy = i - MAX_LAG + _gaussian_vertex(table[i - 1, j], table[i, j], table[i + 1, j])
        dx = j - MAX_LAG + _gaussian_vertex(table[i, j - 1], table[i, j], table[i, j + 1])
        # t1 at p matches t2 at p + lag when t2 at p shows t1's p + shift: lag = -shift.
        return (-float(dy), -float(dx))


def estimate_misregistration(t1: npt.ArrayLike, t2: npt.ArrayLike) -> tuple[float, float]:
    """The shift (rows, cols) of t2 against t1 in pixels, from one pair of arrays."""
    accumulator = ShiftAccumulator()
    accumulator.add(t1, t2)
    return accumulator.estimate()
