"""Radiometric calibration of GRD digital numbers: thermal noise removal, then sigma0.

sigma0 = (DN^2 - noise) / A_sigma^2, with the noise and calibration lookup tables
interpolated to the pixels of one window (never the whole scene): per annotated line
linearly along range, then linearly between annotated lines, i.e. bilinear on the LUT
grid when every vector has the same samples.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stac_coh.load.grd.annotation import (
    CalibrationAnnotation,
    LutVectors,
    NoiseAnnotation,
    NoiseAzimuthBlock,
)

__all__ = [
    "SIGMA0_FLOOR",
    "calibration_window",
    "interpolate_lut",
    "noise_window",
    "sigma0_window",
]

FloatArray = npt.NDArray[np.float64]

SIGMA0_FLOOR = 1e-5
"""Linear sigma0 that noise-dominated pixels (DN^2 <= noise) are raised to: -50 dB.

Below the noise-equivalent sigma0 of Sentinel-1 IW (about -22 to -28 dB) and far below
the model's -20 dB clip, so a floored pixel reads as "dark, valid" to the model, keeps
its logarithm finite, and is not mistaken for nodata (which is NaN, only where DN == 0).
"""


def interpolate_lut(lut: LutVectors, rows: npt.ArrayLike, cols: npt.ArrayLike) -> FloatArray:
    """Values of ``lut`` at every (row, col) of a window: shape (len(rows), len(cols)).

    Outside the annotated lines or samples the nearest annotated value is kept (the LUTs
    reach the image edges, so this only touches sub-pixel margins).
    """
    rows_a = np.asarray(rows, dtype=np.float64)
    cols_a = np.asarray(cols, dtype=np.float64)
    lo, hi = _bracket(lut.lines, rows_a)
    needed = range(int(lo.min()), int(hi.max()) + 1)
    along_range = {k: np.interp(cols_a, lut.pixels[k], lut.values[k]) for k in needed}
    top = np.stack([along_range[int(k)] for k in lo])
    bottom = np.stack([along_range[int(k)] for k in hi])
    weight = _weights(lut.lines, lo, hi, rows_a)[:, None]
    return top * (1.0 - weight) + bottom * weight


def calibration_window(
    calibration: CalibrationAnnotation, rows: npt.ArrayLike, cols: npt.ArrayLike
) -> FloatArray:
    """A_sigma (sigmaNought LUT) at every pixel of a window."""
    return interpolate_lut(calibration.sigma_nought, rows, cols)


def noise_window(noise: NoiseAnnotation, rows: npt.ArrayLike, cols: npt.ArrayLike) -> FloatArray:
    """Thermal noise power (DN^2 units) at every pixel of a window.

    IPF >= 2.9: range LUT times the azimuth profile of the block the pixel lies in.
    Pixels in no block keep the range term alone (ESA's blocks tile the image, so this
    only guards against gaps in a malformed file). Older IPF: the range LUT alone.
    """
    rows_a = np.asarray(rows, dtype=np.float64)
    cols_a = np.asarray(cols, dtype=np.float64)
    power = interpolate_lut(noise.range_lut, rows_a, cols_a)
    if noise.azimuth_blocks:
        power *= _azimuth_scaling(noise.azimuth_blocks, rows_a, cols_a)
    return power


def sigma0_window(
    dn: npt.ArrayLike,
    row_off: int,
    col_off: int,
    calibration: CalibrationAnnotation,
    noise: NoiseAnnotation | None,
    *,
    floor: float = SIGMA0_FLOOR,
) -> npt.NDArray[np.float32]:
    """Calibrated, noise-removed linear sigma0 of a DN window whose corner is (row_off, col_off).

    NaN where DN == 0 (GRD nodata); values at or below the noise floor become ``floor``.
    ``noise=None`` skips thermal noise removal.
    """
    amplitude = np.asarray(dn)
    height, width = amplitude.shape
    rows = np.arange(row_off, row_off + height, dtype=np.float64)
    cols = np.arange(col_off, col_off + width, dtype=np.float64)
    power = amplitude.astype(np.float64) ** 2
    if noise is not None:
        power -= noise_window(noise, rows, cols)
    sigma0 = power / calibration_window(calibration, rows, cols) ** 2
    sigma0 = np.maximum(sigma0, floor)
    sigma0[amplitude == 0] = np.nan
    return sigma0.astype(np.float32)


def _bracket(lines: FloatArray, rows: FloatArray) -> tuple[npt.NDArray[np.intp], ...]:
    """Index of the annotated line at or above, and at or below, each row."""
    hi = np.clip(np.searchsorted(lines, rows, side="left"), 0, len(lines) - 1)
    lo = np.clip(np.searchsorted(lines, rows, side="right") - 1, 0, len(lines) - 1)
    return lo, hi


def _weights(
    lines: FloatArray, lo: npt.NDArray[np.intp], hi: npt.NDArray[np.intp], rows: FloatArray
) -> FloatArray:
    """Linear weight of the lower vector for each row (0 on an annotated line)."""
    span = lines[hi] - lines[lo]
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (rows - lines[lo]) / safe, 0.0)


def _azimuth_scaling(
    blocks: tuple[NoiseAzimuthBlock, ...], rows: FloatArray, cols: FloatArray
) -> FloatArray:
    """Azimuth noise scaling of every pixel: each block's profile over its own rectangle."""
    scale = np.ones((rows.size, cols.size))
    for block in blocks:
        in_rows = (rows >= block.first_line) & (rows <= block.last_line)
        in_cols = (cols >= block.first_sample) & (cols <= block.last_sample)
        if not in_rows.any() or not in_cols.any():
            continue
        profile = np.interp(rows[in_rows], block.lines, block.values)
        scale[np.ix_(in_rows, in_cols)] = profile[:, None]
    return scale
