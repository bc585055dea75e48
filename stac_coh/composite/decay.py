"""The temporal decay model of coherence, fitted per pixel to composites of several baselines.

``gamma(t) = (1 - rho_inf) * exp(-t / tau) + rho_inf`` (Kellndorfer et al. 2022, after
Zebker and Villasenor 1992 and Rocca 2007): coherence starts at 1 for a zero baseline and
decays with time constant ``tau`` (days) to the long-term coherence ``rho_inf``.

The fit is least squares, unweighted across baselines, with ``rho_inf`` in [0, 1] and
``tau`` in [:data:`TAU_MIN`, :data:`TAU_MAX`] days. For a fixed ``tau`` the model is linear
in ``rho_inf``, whose optimum is closed-form; so the fit scans ``tau`` on a log grid for
every pixel at once (matrix products), then refines it by golden-section search between
the grid neighbours of the best node. No iteration can diverge and the cost is fixed:
about 120 evaluations per pixel, vectorised. A pixel needs composites at
:data:`MIN_BASELINES` baselines or more: two points fit the two parameters exactly and
leave no residual to judge the fit by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MIN_BASELINES", "TAU_MAX", "TAU_MIN", "DecayFit", "decay_model", "fit_decay"]

MIN_BASELINES = 3
"""Baselines with a composite a pixel needs before its decay model is fitted."""

TAU_MIN = 1.0
"""Shortest decay time considered (days): below it every baseline >= 6 d sees rho_inf."""

TAU_MAX = 1000.0
"""Longest decay time considered (days): beyond it 6-48 d baselines see a straight line."""

_GRID = 97
"""Nodes of the log-spaced tau scan (7.5 % apart over 1..1000 d)."""

_GOLDEN_STEPS = 20
"""Golden-section steps after the scan (the bracket shrinks to 0.618**20 = 7e-5 of itself)."""

_BLOCK = 16384
"""Pixels per block of the vectorised scan (keeps its matrices near 10 MB each)."""

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class DecayFit:
    """Per-pixel fit results (NaN where the pixel had too few baselines)."""

    rho_inf: F32
    """Long-term coherence in [0, 1]."""
    tau: F32
    """Decay time in days."""
    rmse: F32
    """Root mean square residual of the fit over the pixel's baselines."""
    n_baselines: npt.NDArray[np.uint8]
    """Baselines the pixel's fit used."""


def decay_model(
    t: npt.ArrayLike, rho_inf: npt.ArrayLike, tau: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """``(1 - rho_inf) * exp(-t / tau) + rho_inf``, broadcast."""
    t_, r_, tau_ = (np.asarray(v, dtype=np.float64) for v in (t, rho_inf, tau))
    return (1.0 - r_) * np.exp(-t_ / tau_) + r_


def fit_decay(
    baselines: npt.ArrayLike, composites: npt.ArrayLike, *, min_baselines: int = MIN_BASELINES
) -> DecayFit:
    """Fit the decay model to ``composites`` (B, ...) at ``baselines`` (B,) days; NaN = none."""
    t = np.asarray(baselines, dtype=np.float64)
    values = np.asarray(composites, dtype=np.float64)
    if values.shape[0] != t.size:
        raise ValueError(f"{t.size} baselines for {values.shape[0]} composite layers")
    shape = values.shape[1:]
    flat = values.reshape(t.size, -1).T  # (P, B)
    valid = np.isfinite(flat)
    n = valid.sum(axis=1)
    out_rho = np.full(flat.shape[0], np.nan, dtype=np.float32)
    out_tau = np.full_like(out_rho, np.nan)
    out_rmse = np.full_like(out_rho, np.nan)
    todo = np.flatnonzero(n >= max(min_baselines, 2))
    for i in range(0, todo.size, _BLOCK):
        idx = todo[i : i + _BLOCK]
        g = np.where(valid[idx], flat[idx], 0.0)
        w = valid[idx].astype(np.float64)
        rho, tau, sse = _fit_block(t, g, w)
        out_rho[idx], out_tau[idx] = rho, tau
        out_rmse[idx] = np.sqrt(sse / n[idx])
    return DecayFit(
        rho_inf=out_rho.reshape(shape),
        tau=out_tau.reshape(shape),
        rmse=out_rmse.reshape(shape),
        n_baselines=np.minimum(n, 255).astype(np.uint8).reshape(shape),
    )


def _fit_block(
    t: npt.NDArray[np.float64], g: npt.NDArray[np.float64], w: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Scan then refine tau for a block of pixels: g, w are (P, B) values and 0/1 weights."""
    log_grid = np.linspace(np.log(TAU_MIN), np.log(TAU_MAX), _GRID)
    e = np.exp(-t[:, None] / np.exp(log_grid)[None, :])  # (B, K)
    u = 1.0 - e
    gg = (w * g * g).sum(axis=1, keepdims=True)
    cross = g @ u - w @ (e * u)  # sum w (g - e) u
    uu = w @ (u * u)
    res0 = gg - 2.0 * (g @ e) + w @ (e * e)  # sum w (g - e)^2
    rho = np.clip(cross / np.maximum(uu, 1e-12), 0.0, 1.0)
    sse = res0 - 2.0 * rho * cross + rho * rho * uu
    best = np.argmin(sse, axis=1)
    lo = log_grid[np.maximum(best - 1, 0)]
    hi = log_grid[np.minimum(best + 1, _GRID - 1)]
    log_tau = _golden(t, g, w, lo, hi)
    rho, sse = _rho_sse(t, g, w, log_tau)
    return rho, np.exp(log_tau), np.maximum(sse, 0.0)


def _golden(
    t: npt.NDArray[np.float64],
    g: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Golden-section minimum of the profile SSE(log tau) in [lo, hi], per pixel.

    Each step keeps the inner point on the better side, so it costs one evaluation.
    """
    r = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo.copy(), hi.copy()
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = _rho_sse(t, g, w, c)[1], _rho_sse(t, g, w, d)[1]
    for _ in range(_GOLDEN_STEPS):
        left = fc < fd  # the minimum lies in [a, d]: d becomes the new upper inner point
        a, b = np.where(left, a, c), np.where(left, d, b)
        c, d = np.where(left, b - r * (b - a), d), np.where(left, c, a + r * (b - a))
        fx = _rho_sse(t, g, w, np.where(left, c, d))[1]
        fc, fd = np.where(left, fx, fd), np.where(left, fc, fx)
    return (a + b) / 2.0


def _rho_sse(
    t: npt.NDArray[np.float64],
    g: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    log_tau: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Best rho_inf in [0, 1] and the SSE for one tau per pixel."""
    e = np.exp(-t[None, :] / np.exp(log_tau)[:, None])  # (P, B)
    u = 1.0 - e
    cross = (w * (g - e) * u).sum(axis=1)
    uu = (w * u * u).sum(axis=1)
    rho = np.clip(cross / np.maximum(uu, 1e-12), 0.0, 1.0)
    resid = w * (g - e - rho[:, None] * u)
    return rho, (resid * resid).sum(axis=1)
