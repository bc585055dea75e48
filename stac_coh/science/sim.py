"""Physics-based simulation of Sentinel-1-like detected image pairs with known coherence.

A scene is a land-cover map (water, urban, bare, forest, crops) from one of the landscape
generators of :mod:`stac_coh.science.landscapes` (by default two nested, domain-warped
Voronoi tessellations). Every parcel draws its own backscatter, change between dates and
coherence from class-typical distributions that overlap between classes, so brightness
alone cannot tell coherence. A smooth texture common to both dates (tree crowns,
buildings) is what fools the intensity-only Siegert estimator.

Speckle is physical: complex SLC samples on a grid ``oversample`` times finer than the
output, a and b iid circular complex Gaussians low-passed by an impulse response,
``z1 = sqrt(P1) a`` and ``z2 = sqrt(P2) (g a + sqrt(1 - g^2) b)``. By default the detected
images are ``|z|^2`` block-averaged to the 10 m grid (ENL about 4.5, like GRD/RTC);
``SceneSpec.speckle`` picks any other :class:`~stac_coh.science.speckle.SpeckleModel`
(looks, impulse response, sampling, correlated pixels). A sub-pixel misregistration
shifts the speckle of the second date (or, with ``shift_scene``, the whole second date)
only for its detected image; the boxcar label is computed from the interferometrically
coregistered SLCs. Thermal noise (NESZ) adds to both dates and lowers the true coherence
of dark surfaces accordingly. Calibration gains
and incidence ramps (``gain_db``, ``relative_gain_db``, ``ramp_db``) scale the detected
images only: they change no coherence.

Every option defaults to the first simulator, which it reproduces bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stac_coh.science.landscapes import LandCover, make_landscape, smooth_noise
from stac_coh.science.speckle import SpeckleModel, detect_correlated, detect_pair
from stac_coh.science.speckle import _shift_ramp as _shift_ramp

__all__ = [
    "CLASS_PARAMS",
    "ClassParams",
    "LandCover",
    "SceneSpec",
    "SimulatedScene",
    "random_shift",
    "simulate_scene",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClassParams:
    """Class-typical statistics (C-band VV, 12-day pairs); each parcel draws its own values."""

    db_mean: float
    """Mean sigma0 of parcels in dB."""
    db_std: float
    """Spread of parcel sigma0 in dB."""
    change_db_std: float
    """Std of the parcel's sigma0 change between dates in dB."""
    coherence: tuple[float, float]
    """Parcel coherence drawn uniformly in this range."""
    texture: float
    """Std of the log of the smooth texture shared by both dates."""


CLASS_PARAMS: dict[LandCover, ClassParams] = {
    LandCover.WATER: ClassParams(-21.0, 2.5, 2.0, (0.0, 0.12), 0.1),
    LandCover.URBAN: ClassParams(-5.0, 3.0, 0.4, (0.55, 0.92), 0.6),
    LandCover.BARE: ClassParams(-12.0, 3.0, 1.0, (0.45, 0.88), 0.2),
    LandCover.FOREST: ClassParams(-8.0, 1.3, 0.5, (0.08, 0.38), 0.35),
    LandCover.CROPS: ClassParams(-13.0, 3.0, 2.5, (0.08, 0.8), 0.15),
}
"""Defaults for each class."""


@dataclass(frozen=True)
class SceneSpec:
    """How to simulate one scene (defaults: the first simulator, GRD-like, 12 days)."""

    size: int = 256
    """Output edge in 10 m pixels."""
    oversample: int = 3
    """SLC samples per output pixel along each axis (default speckle model only)."""
    psf_sigma: float = 0.65
    """Std (in SLC samples) of the Gaussian impulse response (default speckle model only)."""
    zone_px: float = 140.0
    """Typical edge of a land-cover zone in output pixels."""
    parcel_px: float = 28.0
    """Typical edge of a field, stand or block in output pixels."""
    nesz_db: float = -23.0
    """Noise-equivalent sigma0 (thermal noise) in dB."""
    boxcar_window: int = 7
    """Window of the boxcar label, in SLC samples (odd)."""
    misregistration: tuple[float, float] = (0.0, 0.0)
    """Shift (rows, cols) of the second date's detected image, in output pixels."""
    shift_scene: bool = False
    """Shift the whole second date (power, texture, parcel edges and speckle), as a
    geolocation error does; by default only its speckle moves."""
    nodata_border: bool = True
    """Give some scenes a slanted swath edge of nodata."""
    pixel_size: float = 10.0
    """Output pixel size in metres (UTM)."""
    speckle: SpeckleModel | None = None
    """Speckle model; None is the first simulator's (oversample x psf_sigma, block looks)."""
    generator: str = "parcels"
    """Landscape generator (see :mod:`stac_coh.science.landscapes`)."""
    baseline_days: float = 12.0
    """Temporal baseline: coherence decays and changes grow with it."""
    decoupled: bool = False
    """Draw parcel coherence uniformly in [0, 0.97] regardless of class and brightness."""
    texture_scale: float = 1.0
    """Multiplies every class's texture strength."""
    texture_px: float = 1.5
    """Correlation length of the common texture in pixels."""
    nodata_shift_px: float = 4.0
    """Largest offset between the two dates' swath edges (pixels)."""
    nodata_holes: bool = False
    """Also cut a blob of nodata into one date in some scenes (and vary edge slopes)."""
    gain_db: float = 0.0
    """Calibration gain common to both dates (dB)."""
    relative_gain_db: float = 0.0
    """Extra gain of the second date (dB)."""
    ramp_db: float = 0.0
    """Incidence-angle ramp common to both dates: dB change across the scene."""
    ramp_angle: float = 0.0
    """Direction of the ramp (radians; 0 = along columns, i.e. range)."""


@dataclass(frozen=True)
class SimulatedScene:
    """Rasters of one simulated pair on a 10 m UTM grid; NaN marks nodata."""

    t1: F32
    """Earlier detected image, linear sigma0."""
    t2: F32
    """Later detected image, linear sigma0."""
    coherence: F32
    """True coherence (including thermal-noise decorrelation)."""
    boxcar: F32
    """Boxcar coherence estimated from the coregistered SLCs (the paper's kind of label)."""
    landcover: npt.NDArray[np.uint8]
    """:class:`LandCover` codes."""
    crs: str
    """CRS of the grid."""
    transform: tuple[float, float, float, float, float, float]
    """Affine coefficients of the grid."""
    seed: int
    """Seed that reproduces the scene."""
    misregistration: tuple[float, float]
    """Applied shift of t2 in output pixels."""


def simulate_scene(seed: int, spec: SceneSpec | None = None) -> SimulatedScene:
    """Simulate one pair; the same seed and spec always give the same rasters."""
    spec = spec or SceneSpec()
    rng = np.random.default_rng(seed)
    shape = (spec.size, spec.size)
    land = make_landscape(spec.generator, shape, spec.zone_px, spec.parcel_px, rng)
    landcover = land.landcover
    p1, p2, gamma = _parcel_fields(landcover, land.parcels, spec, rng, land.wobble_coherence)
    if land.wobble_db:
        wobble = 10.0 ** (land.wobble_db * smooth_noise(shape, 10.0, rng) / 10.0)
        p1, p2 = p1 * wobble, p2 * wobble
    t1, t2, boxcar = _speckle(p1, p2, gamma, spec, rng)
    t1, t2 = _calibration(t1, t2, spec)
    mask1, mask2 = _nodata_masks(shape, spec, rng)
    t1[~mask1] = np.nan
    t2[~mask2] = np.nan
    both = mask1 & mask2
    coherence = np.where(both, gamma, np.nan).astype(np.float32)
    boxcar = np.where(both, boxcar, np.nan).astype(np.float32)
    landcover = np.where(both, landcover, LandCover.NODATA).astype(np.uint8)
    # Scenes sit side by side in UTM zone 10N so their footprints never overlap.
    x0 = 500_000.0 + (seed % 1000) * spec.size * spec.pixel_size
    y0 = 4_200_000.0 - (seed // 1000) * spec.size * spec.pixel_size
    transform = (spec.pixel_size, 0.0, x0, 0.0, -spec.pixel_size, y0)
    return SimulatedScene(
        t1=t1,
        t2=t2,
        coherence=coherence,
        boxcar=boxcar,
        landcover=landcover,
        crs="EPSG:32610",
        transform=transform,
        seed=seed,
        misregistration=spec.misregistration,
    )


def _parcel_fields(
    landcover: npt.NDArray[np.uint8],
    parcels: npt.NDArray[np.int64],
    spec: SceneSpec,
    rng: np.random.Generator,
    wobble: float = 0.04,
) -> tuple[F64, F64, F64]:
    """Total power of both dates (signal + noise) and total coherence on the output grid."""
    shape = landcover.shape
    count = int(parcels.max()) + 1
    db1 = np.zeros(count)
    change = np.zeros(count)
    coh = np.zeros(count)
    tex = np.zeros(count)
    first = np.zeros(count, dtype=np.int64)
    first[parcels.ravel()] = np.arange(parcels.size)  # any pixel: parcels are one class
    parcel_class = landcover.ravel()[first]
    for code, params in CLASS_PARAMS.items():
        sel = parcel_class == code
        n = int(sel.sum())
        db1[sel] = rng.normal(params.db_mean, params.db_std, n)
        change[sel] = rng.normal(0.0, params.change_db_std, n)
        coh[sel] = rng.uniform(*params.coherence, n)
        tex[sel] = params.texture * spec.texture_scale
    years = spec.baseline_days / 12.0  # in units of the 12-day reference
    if years != 1.0:
        change *= np.sqrt(years)
    # Fields that changed a lot between dates also lost coherence (harvest, tillage).
    coh *= np.exp(-np.abs(change) / 8.0)
    if spec.decoupled:
        coh = rng.uniform(0.0, 0.97, count)
    elif years != 1.0:
        coh = coh ** (years**0.6)  # temporal decorrelation, slower than exponential
    texture = np.exp(tex[parcels] * smooth_noise(shape, spec.texture_px, rng))
    texture /= texture.mean()
    signal1 = 10.0 ** (db1[parcels] / 10.0) * texture
    drift = 10.0 ** (0.5 * smooth_noise(shape, 20.0, rng) / 10.0)  # moisture, wind
    signal2 = 10.0 ** ((db1 + change)[parcels] / 10.0) * texture * drift
    within = wobble * smooth_noise(shape, 6.0, rng)
    gamma_scene = np.clip(coh[parcels] + within, 0.0, 0.97)
    noise = 10.0 ** (spec.nesz_db / 10.0)
    p1, p2 = signal1 + noise, signal2 + noise
    gamma = gamma_scene * np.sqrt(signal1 * signal2 / (p1 * p2))
    return p1, p2, gamma


def _speckle(
    p1: F64, p2: F64, gamma: F64, spec: SceneSpec, rng: np.random.Generator
) -> tuple[F32, F32, F32]:
    """Correlated SLCs on the fine grid -> detected multilooked t1, t2 and the boxcar label."""
    if spec.speckle is not None:
        return detect_pair(
            p1,
            p2,
            gamma,
            spec.speckle,
            spec.misregistration,
            rng,
            spec.boxcar_window,
            shift_scene=spec.shift_scene,
        )
    f = spec.oversample
    transfer = _gaussian_transfer((p1.shape[0] * f, p1.shape[1] * f), spec.psf_sigma)
    return detect_correlated(
        p1,
        p2,
        gamma,
        transfer,
        f,
        spec.misregistration,
        rng,
        lambda power: _multilook(power, f),
        spec.boxcar_window,
        shift_scene=spec.shift_scene,
    )


def _gaussian_transfer(shape: tuple[int, int], sigma: float) -> F64:
    """Fourier transfer function of a Gaussian kernel with std ``sigma`` samples."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))


def _multilook(power: F64, f: int) -> F32:
    """Average f x f blocks of SLC samples into one output pixel."""
    rows, cols = power.shape[0] // f, power.shape[1] // f
    return power.reshape(rows, f, cols, f).mean(axis=(1, 3)).astype(np.float32)


def _calibration(t1: F32, t2: F32, spec: SceneSpec) -> tuple[F32, F32]:
    """Apply the common gain, the second date's relative gain and the incidence ramp."""
    if not (spec.gain_db or spec.relative_gain_db or spec.ramp_db):
        return t1, t2
    rows, cols = t1.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    along = np.cos(spec.ramp_angle) * xx / max(cols - 1, 1) + np.sin(spec.ramp_angle) * yy / max(
        rows - 1, 1
    )
    along = along - along.mean()
    common_db = spec.gain_db + spec.ramp_db * along / max(float(np.ptp(along)), 1e-9)
    common = 10.0 ** (common_db / 10.0)
    second = 10.0 ** (spec.relative_gain_db / 10.0)
    return (t1 * common).astype(np.float32), (t2 * common * second).astype(np.float32)


def _nodata_masks(
    shape: tuple[int, int], spec: SceneSpec, rng: np.random.Generator
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Valid-data masks of both dates: slanted swath edges, different per date."""
    rows, cols = shape
    full = np.ones(shape, dtype=bool)
    if not spec.nodata_border or rng.random() < 0.5:
        return full, full.copy()
    yy, xx = np.mgrid[0:rows, 0:cols]
    side = rng.integers(4)
    along, across = [(xx, yy), (yy, xx), (xx, rows - 1 - yy), (yy, cols - 1 - xx)][side]
    width = rng.uniform(0.03, 0.15) * max(rows, cols)
    slope = rng.uniform(-0.1, 0.1)
    masks = []
    for extra in (0.0, rng.uniform(0.0, spec.nodata_shift_px)):
        tilt = slope + (rng.uniform(-0.05, 0.05) if spec.nodata_holes else 0.0)
        masks.append(across >= width + extra + tilt * (along - along.mean()))
    if spec.nodata_holes and rng.random() < 0.4:
        cy, cx = rng.uniform(0, rows), rng.uniform(0, cols)
        radius = rng.uniform(0.03, 0.12) * max(rows, cols)
        hole = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        masks[int(rng.integers(2))] &= ~hole
    return masks[0], masks[1]


def random_shift(rng: np.random.Generator, max_px: float) -> tuple[float, float]:
    """A shift of random direction whose length is uniform in [0, max_px]."""
    if max_px <= 0:
        return (0.0, 0.0)
    length = rng.uniform(0.0, max_px)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return (float(length * np.sin(angle)), float(length * np.cos(angle)))
