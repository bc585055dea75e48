"""Classic coherence estimators: boxcar from SLCs, Siegert from intensities, backscatter lookup.

* :func:`boxcar_coherence` is the interferometric estimator that needs complex SLCs; it is
  how the paper's labels (and our simulated ``boxcar`` rasters) are made. With N independent
  looks it is biased upwards at low coherence (:func:`expected_boxcar_coherence`).
* :func:`siegert_coherence` needs only the two detected images: for circular Gaussian
  speckle the intensity correlation coefficient is ``rho_I = |gamma|^2`` (the Siegert
  relation), so ``gamma = sqrt(clip(rho_I, 0, 1))`` over a local window. Scene texture common
  to both dates inflates ``rho_I``, which is why this baseline is weak on real scenes.
* :class:`BackscatterLookup` predicts coherence from the two (locally averaged) dB values
  alone; it shows what brightness by itself can tell.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stac_coh.box_filters import box_mean, check_window, nan_box_mean
from stac_coh.errors import InputError

__all__ = [
    "BackscatterLookup",
    "SiegertPredictor",
    "box_mean",
    "boxcar_coherence",
    "expected_boxcar_coherence",
    "nan_box_mean",
    "region_coherence",
    "siegert_coherence",
]

FloatArray = npt.NDArray[np.floating]


def boxcar_coherence(z1: npt.ArrayLike, z2: npt.ArrayLike, window: int) -> npt.NDArray[np.float32]:
    """Coherence magnitude ``|<z1 z2*>| / sqrt(<|z1|^2><|z2|^2>)`` over a square window."""
    a = np.asarray(z1, dtype=np.complex128)
    b = np.asarray(z2, dtype=np.complex128)
    if a.shape != b.shape:
        raise InputError(f"SLC shapes differ: {a.shape} vs {b.shape}.")
    cross = box_mean(a * np.conj(b), window)
    power = box_mean(np.abs(a) ** 2, window) * box_mean(np.abs(b) ** 2, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma = np.abs(cross) / np.sqrt(power)
    return np.clip(gamma, 0.0, 1.0).astype(np.float32)


def expected_boxcar_coherence(gamma: float, looks: int, terms: int = 4000) -> float:
    """Mean of the boxcar estimate for true coherence ``gamma`` and ``looks`` independent looks.

    Touzi et al. (1999): ``E|g| = Gamma(N) Gamma(3/2) / Gamma(N + 1/2)
    * 3F2(3/2, N, N; N + 1/2, 1; |gamma|^2) * (1 - |gamma|^2)^N``. At ``gamma = 0`` this is
    about ``sqrt(pi / (4 N))``: 0.30 for 9 looks, 0.18 for 25.
    """
    n = int(looks)
    x = float(gamma) ** 2
    if n < 1 or not 0.0 <= x < 1.0:
        raise InputError(f"need looks >= 1 and 0 <= gamma < 1, got {looks}, {gamma}.")
    lead = math.lgamma(n) + math.lgamma(1.5) - math.lgamma(n + 0.5) + n * math.log1p(-x)
    total, log_term = 0.0, 0.0
    for k in range(terms):
        total += math.exp(lead + log_term)
        if x == 0.0:
            break
        # Ratio of consecutive 3F2 terms: (3/2+k)(N+k)^2 / ((N+1/2+k)(1+k)(1+k)) * x.
        log_term += (
            math.log(1.5 + k)
            + 2 * math.log(n + k)
            - math.log(n + 0.5 + k)
            - 2 * math.log(1 + k)
            + math.log(x)
        )
    return total


def siegert_coherence(
    t1: npt.ArrayLike, t2: npt.ArrayLike, window: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Intensity-only coherence ``sqrt(clip(rho_I, 0, 1))`` and its approximate std.

    ``t1``/``t2`` are linear power; NaN or non-positive pixels are ignored inside windows and
    are NaN in the output. The std follows from the large-sample variance of a correlation
    coefficient, ``(1 - rho^2)^2 / n``, carried through the square root.
    """
    i1 = np.asarray(t1, dtype=np.float64)
    i2 = np.asarray(t2, dtype=np.float64)
    if i1.shape != i2.shape:
        raise InputError(f"t1 and t2 shapes differ: {i1.shape} vs {i2.shape}.")
    valid = np.isfinite(i1) & np.isfinite(i2) & (i1 > 0) & (i2 > 0)
    i1 = np.where(valid, i1, np.nan)
    i2 = np.where(valid, i2, np.nan)
    m1, count = nan_box_mean(i1, window)
    m2, _ = nan_box_mean(i2, window)
    m11, _ = nan_box_mean(i1 * i1, window)
    m22, _ = nan_box_mean(i2 * i2, window)
    m12, _ = nan_box_mean(i1 * i2, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (m12 - m1 * m2) / np.sqrt((m11 - m1**2) * (m22 - m2**2))
        rho = np.clip(np.nan_to_num(rho, nan=0.0), 0.0, 1.0)
        gamma = np.sqrt(rho)
        rho_std = (1.0 - rho**2) / np.sqrt(np.maximum(count, 1.0))
        sigma = np.minimum(rho_std / (2.0 * np.maximum(gamma, 0.05)), 1.0)
    gamma[~valid] = np.nan
    sigma[~valid] = np.nan
    return gamma.astype(np.float32), sigma.astype(np.float32)


def region_coherence(
    t1: npt.ArrayLike, t2: npt.ArrayLike, looks: float | None = None
) -> tuple[float, float]:
    """Coherence of one homogeneous region from its intensities alone: (gamma, texture var).

    Over the region's mean, ``a = T S1`` and ``b = T S2``, with a texture ``T`` common to
    both dates (variance ``v``) and speckle of ``looks`` looks, ``var(a) = v + (1 + v) / L``
    and ``cov(a, b) = v + gamma^2 (1 + v) / L``. Given the looks this separates the
    texture, which biases the Siegert estimator upwards, from the coherence; without them
    (``None``) it is Siegert's ``sqrt(rho)`` over the region and the texture reads as 0.
    NaN for fewer than 9 valid pixels.
    """
    a, b = np.asarray(t1, np.float64).ravel(), np.asarray(t2, np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if ok.sum() < 9:
        return math.nan, math.nan
    a, b = a[ok] / a[ok].mean(), b[ok] / b[ok].mean()
    cov = float(np.mean((a - 1.0) * (b - 1.0)))
    if looks is None:
        rho = cov / float(np.sqrt(a.var() * b.var()))
        return math.sqrt(min(max(rho, 0.0), 1.0)), 0.0
    variance = 0.5 * float(a.var() + b.var())
    texture = max((variance - 1.0 / looks) / (1.0 + 1.0 / looks), 0.0)
    gamma2 = (cov - texture) * looks / (1.0 + texture)
    return math.sqrt(min(max(gamma2, 0.0), 1.0)), texture


@dataclass(frozen=True)
class SiegertPredictor:
    """The Siegert baseline as a tile predictor for ``stac-coh predict --estimator siegert``.

    Follows ``stac_coh.infer.engine.TilePredictor``: takes (N, 2, h, w) linear power with NaN and
    returns (N, 2, h, w) [coherence, uncertainty (std)].
    """

    window: int = 9
    """Odd window edge in pixels."""

    def __post_init__(self) -> None:
        check_window(self.window)

    @property
    def halo(self) -> int:
        """Context pixels each side a tile needs so windows at its edge are complete."""
        return self.window // 2

    @property
    def multiple(self) -> int:
        """Tiles of any size work."""
        return 1

    def __call__(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Estimate coherence tile by tile."""
        arr = np.asarray(batch, dtype=np.float32)
        if arr.ndim != 4 or arr.shape[1] != 2:
            raise InputError(f"SiegertPredictor needs (N, 2, h, w) input, got {arr.shape}.")
        out = np.empty_like(arr)
        for i, tile in enumerate(arr):
            out[i, 0], out[i, 1] = siegert_coherence(tile[0], tile[1], self.window)
        return out


def _to_db(power: FloatArray) -> FloatArray:
    """Linear power -> dB, NaN where not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(power > 0, 10.0 * np.log10(power), np.nan)


@dataclass(frozen=True)
class BackscatterLookup:
    """Mean coherence per (dB t1, dB t2) bin: a backscatter-only baseline.

    Intensities are box-averaged over ``smooth`` pixels before the dB conversion so the
    baseline sees each land cover's brightness rather than single-pixel speckle.
    """

    edges: tuple[float, ...] = tuple(float(v) for v in np.arange(-30.0, 5.5, 1.0))
    """Bin edges in dB, shared by both axes; values outside go to the end bins."""
    table: tuple[tuple[float, ...], ...] = ()
    """Mean coherence per bin (rows t1, columns t2); NaN-free once fitted."""
    smooth: int = 5
    """Odd box window applied to linear intensities before the dB conversion."""
    counts: tuple[tuple[int, ...], ...] = field(default=(), compare=False)
    """Training pixels per bin."""

    def _bins(self, t1: FloatArray, t2: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Bin index of each pixel along both axes, with -1 where a pixel is invalid."""
        edges = np.asarray(self.edges)
        out = []
        for image in (t1, t2):
            mean, _ = nan_box_mean(np.where(image > 0, image, np.nan), self.smooth)
            db = _to_db(mean)
            idx = np.clip(np.searchsorted(edges, db, side="right") - 1, 0, len(edges) - 2)
            out.append(np.where(np.isfinite(db), idx, -1))
        return out[0], out[1]

    @classmethod
    def fit(
        cls,
        scenes: list[tuple[FloatArray, FloatArray, FloatArray]],
        smooth: int = 5,
    ) -> BackscatterLookup:
        """Fit on (t1, t2, coherence) arrays; empty bins take the nearest filled bin's value."""
        proto = cls(smooth=check_window(smooth))
        nbins = len(proto.edges) - 1
        sums = np.zeros((nbins, nbins))
        counts = np.zeros((nbins, nbins), dtype=np.int64)
        for t1, t2, label in scenes:
            b1, b2 = proto._bins(np.asarray(t1, float), np.asarray(t2, float))
            good = (b1 >= 0) & (b2 >= 0) & np.isfinite(label)
            index = (b1[good].astype(np.intp), b2[good].astype(np.intp))
            np.add.at(sums, index, np.asarray(label)[good])
            np.add.at(counts, index, 1)
        if not counts.any():
            raise InputError("BackscatterLookup.fit got no valid pixels; check the inputs.")
        table = _fill_nearest(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))
        return cls(
            edges=proto.edges,
            table=tuple(tuple(float(v) for v in row) for row in table),
            smooth=proto.smooth,
            counts=tuple(tuple(int(v) for v in row) for row in counts),
        )

    def predict(self, t1: npt.ArrayLike, t2: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Coherence for each pixel of two linear-power images (NaN where either is invalid)."""
        a = np.asarray(t1, dtype=np.float64)
        b = np.asarray(t2, dtype=np.float64)
        b1, b2 = self._bins(a, b)
        table = np.asarray(self.table)
        out = table[np.maximum(b1, 0), np.maximum(b2, 0)]
        bad = (b1 < 0) | (b2 < 0) | ~(np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0))
        out[bad] = np.nan
        return out.astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write the lookup as JSON."""
        path = Path(path)
        body = {
            "format": "stac-coh/backscatter-lookup/1",
            "smooth": self.smooth,
            "edges": list(self.edges),
            "table": [list(r) for r in self.table],
            "counts": [list(r) for r in self.counts],
        }
        path.write_text(json.dumps(body))
        return path

    @classmethod
    def load(cls, path: str | Path) -> BackscatterLookup:
        """Read a lookup written by :meth:`save`."""
        try:
            body = json.loads(Path(path).read_text())
            return cls(
                edges=tuple(body["edges"]),
                table=tuple(tuple(r) for r in body["table"]),
                smooth=int(body["smooth"]),
                counts=tuple(tuple(r) for r in body.get("counts", [])),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path} is not a backscatter lookup JSON ({exc}).") from None


def _fill_nearest(table: FloatArray) -> FloatArray:
    """Replace NaN cells by the value of the nearest non-NaN cell (Euclidean in bin units)."""
    filled = table.copy()
    known = np.argwhere(np.isfinite(table))
    for r, c in np.argwhere(~np.isfinite(table)):
        nearest = known[np.argmin(((known - (r, c)) ** 2).sum(axis=1))]
        filled[r, c] = table[tuple(nearest)]
    return filled
