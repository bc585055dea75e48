"""Speckle models of detected SAR images: impulse response, sampling and look averaging.

A :class:`SpeckleModel` says how the complex SLC samples behind one output pixel are made
and turned into detected power:

* ``oversample`` SLC samples per output pixel along each axis;
* an impulse response per axis: ``gaussian``, ``sinc`` (a rectangular spectrum, optionally
  Hamming-weighted, as SAR processors do) or ``independent`` (iid samples, no correlation);
  ``samples_per_cell`` is the sampling rate over the bandwidth (1.5-3 in real products);
* the detected power ``|z|^2`` is averaged with a boxcar of ``look_window`` samples per axis
  (fractional edges allowed) and sampled every ``oversample`` samples. A window wider
  than the output pixel gives spatially correlated speckle, as in GRD products whose
  pixel is half their resolution.

Looks (ENL) and the intensity correlation of neighbouring output pixels follow exactly
from these choices (:meth:`SpeckleModel.looks`, :meth:`SpeckleModel.pixel_correlation`),
so every simulated scene records the regime it was made in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stac_coh.errors import InputError
from stac_coh.infer.estimators import boxcar_coherence

__all__ = ["PSF_KINDS", "SpeckleModel", "detect_correlated", "detect_pair", "speckle_for_looks"]

PSF_KINDS = ("gaussian", "sinc", "independent")
"""Impulse responses the simulator knows."""

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_GAUSS_FWHM = 2.0 * np.sqrt(np.log(2.0))  # intensity FWHM of an amplitude PSF of std 1
_AC_LENGTH = 512  # samples used for autocorrelation sums (far beyond any support)


@dataclass(frozen=True)
class SpeckleModel:
    """How SLC samples are made and detected into one output pixel."""

    oversample: int = 3
    """SLC samples per output pixel along each axis."""
    psf: str = "gaussian"
    """Impulse response: ``gaussian``, ``sinc`` or ``independent``."""
    samples_per_cell: tuple[float, float] = (1.5, 1.5)
    """Samples per resolution cell (rows, cols); ignored for ``independent``."""
    hamming: float = 1.0
    """Spectral weighting of ``sinc``: 1 = none, 0.54 = Hamming, 0.75 = Sentinel-1-like."""
    look_window: tuple[float, float] = (3.0, 3.0)
    """Width in samples (rows, cols) of the boxcar averaging detected power."""

    def __post_init__(self) -> None:
        if self.psf not in PSF_KINDS or self.oversample < 1 or min(self.look_window) < 1:
            raise InputError(f"Invalid speckle model {self}: psf one of {PSF_KINDS}.")

    def transfer(self, n: int, axis: int) -> F64:
        """Amplitude transfer function on the ``n`` DFT frequencies of one axis."""
        nu = np.fft.fftfreq(n)
        q = self.samples_per_cell[axis]
        if self.psf == "independent":
            return np.ones(n)
        if self.psf == "gaussian":
            sigma = q / _GAUSS_FWHM * np.sqrt(2.0)  # intensity FWHM = q samples
            return np.exp(-2.0 * (np.pi * sigma * nu) ** 2)
        band = 1.0 / q
        inside = np.abs(nu) <= band / 2.0
        weight = self.hamming + (1.0 - self.hamming) * np.cos(2.0 * np.pi * nu / band)
        return np.where(inside, weight, 0.0)

    def look_weights(self, axis: int) -> tuple[npt.NDArray[np.int64], F64]:
        """Sample offsets and boxcar weights of the look average (centred on the pixel)."""
        f, w = self.oversample, self.look_window[axis]
        centre = (f - 1) / 2.0
        lo, hi = centre - w / 2.0, centre + w / 2.0
        k = np.arange(int(np.floor(lo)) - 1, int(np.ceil(hi)) + 2)
        weights = np.clip(np.minimum(k + 0.5, hi) - np.maximum(k - 0.5, lo), 0.0, 1.0)
        keep = weights > 0
        return k[keep], weights[keep]

    def _intensity_cov(self, axis: int, lag: int, shift: float = 0.0) -> float:
        """Sum of w_i w_j |R(i - j + lag + shift)|^2 along one axis (R: amplitude autocorrelation).

        ``shift`` (in samples, fractional) moves one field as the simulator's Fourier shift
        does, so R there is the band-limited (periodic) interpolation of the sampled one.
        """
        h2 = self.transfer(_AC_LENGTH, axis) ** 2
        r0 = np.fft.ifft(h2).real[0]
        if shift:
            ramp = np.exp(2j * np.pi * np.fft.fftfreq(_AC_LENGTH) * shift)
            r2 = np.abs(np.fft.ifft(h2 * ramp) / r0) ** 2
        else:
            r2 = (np.fft.ifft(h2).real / r0) ** 2
        k, w = self.look_weights(axis)
        d = (k[:, None] - k[None, :] + lag) % _AC_LENGTH
        return float((w[:, None] * w[None, :] * r2[d]).sum())

    def _axis_looks(self, axis: int) -> float:
        """Equivalent looks contributed by one axis."""
        _k, w = self.look_weights(axis)
        return float(w.sum() ** 2 / self._intensity_cov(axis, 0))

    def looks(self) -> float:
        """Equivalent number of looks of the detected output (mean^2 / variance)."""
        return self._axis_looks(0) * self._axis_looks(1)

    def pixel_correlation(self) -> float:
        """Largest intensity correlation of two neighbouring output pixels (over both axes)."""
        f = self.oversample
        return max(self._intensity_cov(a, f) / self._intensity_cov(a, 0) for a in (0, 1))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SpeckleModel:
        """The model a scene's recorded ``domain.speckle`` (:meth:`describe`) stands for."""
        try:
            return cls(
                oversample=int(record["oversample"]),
                psf=str(record["psf"]),
                samples_per_cell=tuple(record["samples_per_cell"]),
                hamming=float(record["hamming"]),
                look_window=tuple(record["look_window"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"Not a speckle model record ({exc}): {record}") from None

    def shift_correlation(self, shift: tuple[float, float]) -> float:
        """Intensity correlation of the two dates at coherence 1 when t2 is shifted by ``shift`` px.

        1 unshifted; a coherence gamma then shows as ``gamma * sqrt(shift_correlation)`` to
        any estimator of the local intensity correlation (Siegert, and a network reading
        speckle), which cannot tell the two apart within one parcel.
        """
        return self.lag_correlation(shift, (0, 0))

    def lag_correlation(self, shift: tuple[float, float], lag: tuple[int, int]) -> float:
        """Intensity correlation at coherence 1 of t1 at pixel p and t2 at p + ``lag``.

        t2 is shifted by ``shift`` px as the simulator shifts it. Where a shift lowers the
        correlation at lag 0, this says whether it reappears at a neighbouring pixel (where
        the pair could show its misregistration) or is lost.
        """
        f = self.oversample
        return float(
            np.prod(
                [
                    self._intensity_cov(a, lag[a] * f, shift[a] * f) / self._intensity_cov(a, 0)
                    for a in (0, 1)
                ]
            )
        )

    def describe(self) -> dict[str, object]:
        """JSON-ready record of the model and its looks (stored with every scene)."""
        return {
            "psf": self.psf,
            "oversample": self.oversample,
            "samples_per_cell": [round(v, 3) for v in self.samples_per_cell],
            "hamming": round(self.hamming, 3),
            "look_window": [round(v, 3) for v in self.look_window],
            "enl": round(self.looks(), 3),
            "pixel_correlation": round(self.pixel_correlation(), 3),
        }


def _window_for_looks(model: SpeckleModel, axis: int, target: float) -> float:
    """Look-window width (samples) along ``axis`` that gives ``target`` looks on that axis."""
    lo, hi = 1.0, 3.0 * model.oversample + 1.0

    def looks_at(width: float) -> float:
        rows, cols = model.look_window
        window = (width, cols) if axis == 0 else (rows, width)
        return SpeckleModel(
            model.oversample, model.psf, model.samples_per_cell, model.hamming, window
        )._axis_looks(axis)

    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if looks_at(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def speckle_for_looks(
    rng: np.random.Generator,
    enl: float,
    *,
    psf: str,
    oversample: int,
    samples_per_cell: tuple[float, float] = (1.5, 3.0),
) -> SpeckleModel | None:
    """A random speckle model of kind ``psf`` with about ``enl`` looks; None if unreachable."""
    q = (float(rng.uniform(*samples_per_cell)), float(rng.uniform(*samples_per_cell)))
    hamming = float(rng.choice([1.0, 0.75, 0.54])) if psf == "sinc" else 1.0
    split = float(rng.uniform(0.35, 0.65))
    model = SpeckleModel(oversample, psf, q, hamming, (1.0, 1.0))
    widths = (
        _window_for_looks(model, 0, enl**split),
        _window_for_looks(model, 1, enl ** (1 - split)),
    )
    model = SpeckleModel(oversample, psf, q, hamming, widths)
    return model if abs(model.looks() / enl - 1.0) < 0.05 else None


def _shift_ramp(shape: tuple[int, int], dy: float, dx: float) -> npt.NDArray[np.complex128]:
    """Fourier phase ramp that samples a band-limited field at (y + dy, x + dx)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return np.exp(2j * np.pi * (fy * dy + fx * dx))


def _sample_at(field: npt.NDArray[np.floating[Any]], dy: float, dx: float) -> F64:
    """Bilinear samples of ``field`` at (y + dy, x + dx), edges held (fields with steps)."""
    rows, cols = field.shape
    y = np.clip(np.arange(rows) + dy, 0, rows - 1)
    x = np.clip(np.arange(cols) + dx, 0, cols - 1)
    y0 = np.minimum(np.floor(y).astype(np.int64), rows - 2)
    x0 = np.minimum(np.floor(x).astype(np.int64), cols - 2)
    wy, wx = (y - y0)[:, None], (x - x0)[None, :]
    field = field.astype(np.float64)
    top = field[y0][:, x0] * (1 - wx) + field[y0][:, x0 + 1] * wx
    bottom = field[y0 + 1][:, x0] * (1 - wx) + field[y0 + 1][:, x0 + 1] * wx
    return top * (1 - wy) + bottom * wy


def _look_average(power: F64, model: SpeckleModel) -> F32:
    """Boxcar-average detected power (FFT, periodic like the fields) and decimate."""
    f = model.oversample
    spectrum = np.fft.fft2(power)
    for axis in (0, 1):
        n = power.shape[axis]
        k, w = model.look_weights(axis)
        kernel = np.zeros(n)
        np.add.at(kernel, k % n, w / w.sum())
        # out[m] = sum_k w_k I[m + k]: a correlation, hence the conjugate spectrum.
        shape = [1, 1]
        shape[axis] = n
        spectrum = spectrum * np.conj(np.fft.fft(kernel)).reshape(shape)
    averaged = np.fft.ifft2(spectrum).real
    return np.maximum(averaged[::f, ::f], 0.0).astype(np.float32)


def detect_pair(
    p1: F64,
    p2: F64,
    gamma: F64,
    model: SpeckleModel,
    shift: tuple[float, float],
    rng: np.random.Generator,
    boxcar_window: int = 7,
    *,
    shift_scene: bool = False,
) -> tuple[F32, F32, F32]:
    """Correlated SLCs -> detected t1, t2 (t2 shifted by ``shift`` px) and the boxcar label."""
    f = model.oversample
    fine = (p1.shape[0] * f, p1.shape[1] * f)
    transfer = model.transfer(fine[0], 0)[:, None] * model.transfer(fine[1], 1)[None, :]
    return detect_correlated(
        p1,
        p2,
        gamma,
        transfer,
        f,
        shift,
        rng,
        lambda power: _look_average(power, model),
        boxcar_window,
        shift_scene=shift_scene,
    )


def detect_correlated(
    p1: F64,
    p2: F64,
    gamma: F64,
    transfer: F64,
    oversample: int,
    shift: tuple[float, float],
    rng: np.random.Generator,
    look: Callable[[F64], F32],
    boxcar_window: int = 7,
    *,
    shift_scene: bool = False,
) -> tuple[F32, F32, F32]:
    """Two SLCs of coherence ``gamma`` through ``transfer`` on the fine grid, detected by ``look``.

    ``transfer`` is the impulse response's Fourier transfer function on the fine grid
    (``oversample`` samples per pixel); t2 is shifted by ``shift`` pixels: its speckle only,
    or with ``shift_scene`` its power and coherence too (everything moves, as with a
    geolocation error). The label is the boxcar coherence of the coregistered SLCs,
    sampled at pixel centres.
    """
    f = oversample
    fine = transfer.shape
    gain = 1.0 / np.sqrt((transfer**2).mean())  # unit power after filtering
    spectra = [
        np.fft.fft2((rng.standard_normal(fine) + 1j * rng.standard_normal(fine)) / np.sqrt(2.0))
        * transfer
        * gain
        for _ in range(2)
    ]
    a, b = (np.fft.ifft2(s) for s in spectra)
    up = np.ones((f, f))
    g = np.kron(gamma, up)
    z1 = np.sqrt(np.kron(p1, up)) * a
    amp2 = np.sqrt(np.kron(p2, up))
    z2 = amp2 * (g * a + np.sqrt(1.0 - g**2) * b)
    dy, dx = (v * f for v in shift)
    if dy or dx:
        ramp = _shift_ramp((fine[0], fine[1]), dy, dx)
        a_s, b_s = (np.fft.ifft2(s * ramp) for s in spectra)
        if shift_scene:
            amp2, g = _sample_at(amp2, dy, dx), _sample_at(g, dy, dx)
        z2_detected = amp2 * (g * a_s + np.sqrt(1.0 - g**2) * b_s)
    else:
        z2_detected = z2
    t1 = look(np.abs(z1) ** 2)
    t2 = look(np.abs(z2_detected) ** 2)
    boxcar = boxcar_coherence(z1, z2, boxcar_window)[f // 2 :: f, f // 2 :: f]
    return t1, t2, boxcar.astype(np.float32)
