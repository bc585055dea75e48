"""Landscape generators of the simulator: land-cover codes and parcels of one scene.

Three generators make differently shaped worlds, so a network cannot learn one layout:

* ``parcels``: nested, domain-warped Voronoi tessellations: zones (~140 px) of one kind
  (water, urban, forest, agriculture) cut into parcels (~28 px);
* ``fields``: the same zones, cut into a rotated grid of rectangular fields of varied
  widths and lengths (irrigated plains, planned cities);
* ``terrain``: no zones; water, urban and forest follow thresholded smooth random fields
  (rivers, lakes, settlements, woods with ragged borders), parcels are small Voronoi
  cells, and values vary smoothly within parcels.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from stac_coh.errors import InputError

__all__ = ["GENERATORS", "LandCover", "Landscape", "make_landscape", "smooth_noise"]

GENERATORS = ("parcels", "fields", "terrain")
"""Names of the landscape generators."""

I64 = npt.NDArray[np.int64]


class LandCover(IntEnum):
    """Land-cover codes of the simulated ``landcover`` raster (0 = nodata)."""

    NODATA = 0
    WATER = 1
    URBAN = 2
    BARE = 3
    FOREST = 4
    CROPS = 5


ZONE_WEIGHTS = {
    LandCover.WATER: 0.12,
    LandCover.URBAN: 0.18,
    LandCover.FOREST: 0.22,
    LandCover.CROPS: 0.48,  # an agricultural zone: crop fields mixed with bare parcels
}
"""Probability of each zone type."""


@dataclass(frozen=True)
class Landscape:
    """What a generator returns."""

    landcover: npt.NDArray[np.uint8]
    """:class:`LandCover` codes."""
    parcels: I64
    """Parcel ids 0..n-1; one class per parcel."""
    wobble_coherence: float = 0.04
    """Std of the smooth coherence variation within parcels."""
    wobble_db: float = 0.0
    """Std (dB) of a smooth brightness variation within parcels, common to both dates."""


def smooth_noise(
    shape: tuple[int, int], sigma: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Gaussian random field with correlation length ``sigma`` pixels, zero mean, unit std."""
    white = rng.standard_normal(shape)
    field = np.fft.ifft2(np.fft.fft2(white) * gaussian_transfer(shape, sigma)).real
    return (field - field.mean()) / max(float(field.std()), 1e-12)


def gaussian_transfer(shape: tuple[int, int], sigma: float) -> npt.NDArray[np.float64]:
    """Fourier transfer function of a Gaussian kernel with std ``sigma`` samples."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))


def _voronoi(shape: tuple[int, int], cell_px: float, rng: np.random.Generator) -> I64:
    """Label map of a Voronoi tessellation with domain-warped (irregular) borders."""
    rows, cols = shape
    count = max(2, round(rows * cols / cell_px**2))
    seeds = rng.uniform((0, 0), (rows, cols), size=(count, 2))
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    warp = cell_px / 4.0
    yy += warp * smooth_noise(shape, cell_px / 4.0, rng)
    xx += warp * smooth_noise(shape, cell_px / 4.0, rng)
    best = np.full(shape, np.inf)
    labels = np.zeros(shape, dtype=np.int64)
    for i, (sy, sx) in enumerate(seeds):
        dist = (yy - sy) ** 2 + (xx - sx) ** 2
        closer = dist < best
        best[closer] = dist[closer]
        labels[closer] = i
    return labels


def _zone_landcover(
    zones: I64, parcels: I64, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], I64]:
    """Land cover per zone, a quarter of agricultural parcels bare; compact parcel ids."""
    shape = zones.shape
    kinds = list(ZONE_WEIGHTS)
    weights = np.array(list(ZONE_WEIGHTS.values()))
    zone_kind = rng.choice(len(kinds), size=zones.max() + 1, p=weights / weights.sum())
    landcover = np.array([int(kinds[k]) for k in zone_kind], dtype=np.uint8)[zones]
    parcel_id = zones * (parcels.max() + 1) + parcels
    ids, inverse = np.unique(parcel_id, return_inverse=True)
    bare = rng.random(ids.size) < 0.25
    agri = landcover == LandCover.CROPS
    landcover[agri & bare[inverse.reshape(shape)]] = LandCover.BARE
    return landcover, inverse.reshape(shape)


def _rect_fields(shape: tuple[int, int], parcel_px: float, rng: np.random.Generator) -> I64:
    """Rotated grid of rectangular fields: strips of random width, cut at random lengths."""
    rows, cols = shape
    angle = rng.uniform(0.0, np.pi)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    u = np.cos(angle) * xx + np.sin(angle) * yy
    v = -np.sin(angle) * xx + np.cos(angle) * yy
    span = float(u.max() - u.min()) + 1.0
    widths = rng.uniform(0.4, 1.4, size=int(span / (0.4 * parcel_px)) + 2) * parcel_px
    edges = u.min() + np.cumsum(widths)
    strip = np.searchsorted(edges, u)
    lengths = rng.uniform(0.6, 2.5, size=strip.max() + 1) * parcel_px
    offsets = rng.uniform(0.0, 1.0, size=strip.max() + 1) * lengths
    along = np.floor((v - v.min() + offsets[strip]) / lengths[strip]).astype(np.int64)
    return strip * (int(along.max()) + 1) + along


def _terrain(
    shape: tuple[int, int], zone_px: float, parcel_px: float, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], I64]:
    """Land cover from thresholded smooth fields; small Voronoi parcels per class."""
    landcover = np.full(shape, LandCover.CROPS, dtype=np.uint8)
    bare = smooth_noise(shape, parcel_px / 3.0, rng) > rng.uniform(0.3, 1.2)
    landcover[bare] = LandCover.BARE
    for code, share, scale in (
        (LandCover.FOREST, rng.uniform(0.1, 0.45), zone_px / 4.0),
        (LandCover.URBAN, rng.uniform(0.0, 0.2), zone_px / 5.0),
        (LandCover.WATER, rng.uniform(0.0, 0.15), zone_px / 3.0),
    ):
        field = smooth_noise(shape, scale, rng) + 0.3 * smooth_noise(shape, scale / 6.0, rng)
        landcover[field > np.quantile(field, 1.0 - share)] = code
    cells = _voronoi(shape, parcel_px / 2.0, rng)
    _ids, inverse = np.unique(cells * 8 + landcover, return_inverse=True)
    return landcover, inverse.reshape(shape)


def make_landscape(
    generator: str,
    shape: tuple[int, int],
    zone_px: float,
    parcel_px: float,
    rng: np.random.Generator,
) -> Landscape:
    """Land cover and parcels from the named generator (see the module docstring)."""
    if generator == "parcels":
        zones = _voronoi(shape, zone_px, rng)
        parcels = _voronoi(shape, parcel_px, rng)
        return Landscape(*_zone_landcover(zones, parcels, rng))
    if generator == "fields":
        zones = _voronoi(shape, zone_px, rng)
        landcover, parcels = _zone_landcover(zones, _rect_fields(shape, parcel_px, rng), rng)
        return Landscape(landcover, parcels, wobble_coherence=0.03)
    if generator == "terrain":
        landcover, parcels = _terrain(shape, zone_px, parcel_px, rng)
        return Landscape(landcover, parcels, wobble_coherence=0.1, wobble_db=1.5)
    raise InputError(f"Unknown landscape generator {generator!r}; use one of {GENERATORS}.")
