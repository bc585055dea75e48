"""Box filters over the last two axes: sums and means over a centred square window.

Integral images make every window cost the same whatever its size; NaN-aware means say
how many pixels each window held, so callers can keep only windows that were whole.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stac_coh.errors import InputError

__all__ = ["box_mean", "box_sum", "check_window", "nan_box_mean"]

FloatArray = npt.NDArray[np.floating]


def check_window(window: int) -> int:
    """Windows are odd and positive so they centre on a pixel."""
    if window < 1 or window % 2 == 0:
        raise InputError(f"window must be an odd positive number of pixels, got {window}.")
    return int(window)


def box_sum(x: FloatArray, window: int) -> FloatArray:
    """Sum over a centred ``window`` x ``window`` box (zero outside) via an integral image."""
    half = window // 2
    padded = np.pad(x, ((half + 1, half), (half + 1, half)))
    integral = padded.cumsum(axis=0).cumsum(axis=1)
    rows, cols = x.shape[-2:]
    return (
        integral[window:, window:]
        - integral[:rows, window:]
        - integral[window:, :cols]
        + integral[:rows, :cols]
    )


def box_mean(x: npt.ArrayLike, window: int) -> npt.NDArray[np.float64]:
    """Mean over a centred square window; windows cut by the edge average what they hold."""
    window = check_window(window)
    arr = np.asarray(x)
    dtype = np.complex128 if np.iscomplexobj(arr) else np.float64
    total = box_sum(arr.astype(dtype), window)
    count = box_sum(np.ones(arr.shape, dtype=np.float64), window)
    return total / count


def nan_box_mean(x: npt.ArrayLike, window: int) -> tuple[FloatArray, FloatArray]:
    """NaN-ignoring box mean and the count of finite pixels in each window."""
    window = check_window(window)
    arr = np.asarray(x, dtype=np.float64)
    good = np.isfinite(arr)
    total = box_sum(np.where(good, arr, 0.0), window)
    count = box_sum(good.astype(np.float64), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, count
