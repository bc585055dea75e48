"""Simulated multi-baseline coherence stacks with known per-pixel decay parameters.

The ground truth for testing composites and the decay fit. A landscape and its 12-day
coherence come from :func:`stac_coh.science.sim.simulate_scene` (its parcels, classes
and within-parcel texture); each pixel gets a long-term coherence ``rho_inf`` and a
decay time ``tau`` from class-typical ranges, placed inside the range by where the
pixel's 12-day coherence lies in its class's range (so parcels differ, and classes
overlap as in the simulator). Acquisitions repeat every ``revisit`` days; every pair
whose baseline is requested gets the coherence

    gamma(t) = (1 - rho_inf) * exp(-t / tau) + rho_inf   (+ estimation noise, clipped)

with the pair's own swath-edge nodata, so pixel counts differ across the tile.
:func:`write_stack_catalog` publishes the pairs as a stac-coh catalog (uint8 COGs and
items shaped like published pair items) that ``stac-coh composite`` reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine

from stac_coh.io.cog import COG_MEDIA_TYPE, UINT8_UNIT, encode, translate_to_cog
from stac_coh.science.sim import CLASS_PARAMS, LandCover, SceneSpec, simulate_scene

__all__ = [
    "DECAY_RANGES",
    "DecayStackSpec",
    "DecayTruth",
    "StackCatalog",
    "StackPair",
    "decay_truth",
    "iter_stack_pairs",
    "write_stack_catalog",
]

F32 = npt.NDArray[np.float32]

DECAY_RANGES: dict[LandCover, tuple[tuple[float, float], tuple[float, float]]] = {
    LandCover.WATER: ((0.0, 0.05), (1.5, 4.0)),
    LandCover.URBAN: ((0.45, 0.8), (30.0, 150.0)),
    LandCover.BARE: ((0.25, 0.55), (15.0, 60.0)),
    LandCover.FOREST: ((0.02, 0.15), (3.0, 10.0)),
    LandCover.CROPS: ((0.05, 0.35), (5.0, 30.0)),
}
"""Class -> (rho_inf range, tau range in days), C-band VV, plausible not measured."""


@dataclass(frozen=True)
class DecayStackSpec:
    """How to simulate a stack."""

    size: int = 128
    """Tile edge in pixels."""
    start: datetime = datetime(2026, 6, 1, 14, 2, 11, tzinfo=UTC)
    """First acquisition."""
    n_dates: int = 16
    """Acquisitions, every ``revisit`` days."""
    revisit: int = 6
    """Days between acquisitions."""
    baselines: tuple[int, ...] = (6, 12, 18, 24, 36, 48)
    """Pairs made: every two dates this many days apart."""
    max_pairs_per_baseline: int | None = None
    """Keep only the first this many pairs of each baseline."""
    noise: float = 0.0
    """Std of the per-pair estimation error of coherence (white, per pixel)."""
    gaps: bool = True
    """Give about half the pairs a swath edge of nodata (left or right, up to a quarter)."""
    pixel_size: float = 10.0
    """Metres."""
    origin: tuple[float, float] = (600_000.0, 4_150_000.0)
    """Upper-left corner (UTM 10N)."""
    crs: str = "EPSG:32610"
    """CRS."""
    grid_code: str | None = None
    """``grid:code`` for every item (``None``: items without the tile grid)."""
    relative_orbit: int = 35
    """Track of every pair."""

    @property
    def transform(self) -> Affine:
        """Affine of the tile."""
        x0, y0 = self.origin
        return Affine(self.pixel_size, 0.0, x0, 0.0, -self.pixel_size, y0)


@dataclass(frozen=True)
class DecayTruth:
    """The true decay parameters of every pixel (NaN outside the scene)."""

    rho_inf: F32
    """Long-term coherence."""
    tau: F32
    """Decay time, days."""
    landcover: npt.NDArray[np.uint8]
    """Class of each pixel (0 = nodata)."""


@dataclass(frozen=True)
class StackPair:
    """One simulated pair: dates, baseline and its observed coherence (NaN = nodata)."""

    reference: datetime
    """Earlier date."""
    secondary: datetime
    """Later date."""
    baseline: int
    """Days between them."""
    coherence: F32
    """Observed coherence."""


@dataclass(frozen=True)
class StackCatalog:
    """What :func:`write_stack_catalog` wrote."""

    root: Path
    """The catalog folder (``--catalog`` of ``stac-coh composite``)."""
    truth: DecayTruth
    """True parameters."""
    pairs_per_baseline: dict[int, int]
    """Pairs written per baseline."""
    counts: dict[int, npt.NDArray[np.uint16]] = field(repr=False)
    """Baseline -> how many of its pairs are valid at each pixel."""


def decay_truth(seed: int, size: int) -> DecayTruth:
    """Per-pixel rho_inf and tau from the classes and 12-day coherence of a simulated scene."""
    scene = simulate_scene(seed, SceneSpec(size=size, nodata_border=False))
    rho = np.full((size, size), np.nan, dtype=np.float32)
    tau = np.full_like(rho, np.nan)
    for cls, ((r_lo, r_hi), (t_lo, t_hi)) in DECAY_RANGES.items():
        sel = scene.landcover == cls
        c_lo, c_hi = CLASS_PARAMS[cls].coherence
        u = np.clip((scene.coherence[sel] - c_lo) / max(c_hi - c_lo, 1e-6), 0.0, 1.0)
        rho[sel] = r_lo + u * (r_hi - r_lo)
        tau[sel] = t_lo * (t_hi / t_lo) ** u
    return DecayTruth(rho, tau, scene.landcover)


def iter_stack_pairs(truth: DecayTruth, spec: DecayStackSpec, seed: int) -> Iterator[StackPair]:
    """Every pair of the stack, one at a time (memory: one pair)."""
    rng = np.random.default_rng([seed, 7])
    dates = [spec.start + timedelta(days=spec.revisit * k) for k in range(spec.n_dates)]
    taken: dict[int, int] = {}
    for i, ref in enumerate(dates):
        for sec in dates[i + 1 :]:
            days = round((sec - ref).total_seconds() / 86400)
            if days not in spec.baselines:
                continue
            if spec.max_pairs_per_baseline and taken.get(days, 0) >= spec.max_pairs_per_baseline:
                continue
            taken[days] = taken.get(days, 0) + 1
            yield StackPair(ref, sec, days, _observe(truth, days, spec, rng))


def _observe(truth: DecayTruth, days: int, spec: DecayStackSpec, rng: np.random.Generator) -> F32:
    """Model coherence at ``days`` plus noise, clipped to [0, 1], with this pair's nodata."""
    gamma = (1.0 - truth.rho_inf) * np.exp(-days / truth.tau) + truth.rho_inf
    if spec.noise > 0:
        gamma = gamma + rng.normal(0.0, spec.noise, gamma.shape)
    gamma = np.clip(gamma, 0.0, 1.0).astype(np.float32)
    if spec.gaps and rng.random() < 0.5:
        width = int(rng.integers(1, max(2, spec.size // 4)))
        if rng.random() < 0.5:
            gamma[:, :width] = np.nan
        else:
            gamma[:, -width:] = np.nan
    return gamma


def write_stack_catalog(
    root: str | Path,
    *,
    seed: int = 0,
    spec: DecayStackSpec | None = None,
    collection_id: str = "sentinel-1-coherence",
) -> StackCatalog:
    """Simulate a stack and publish it as a stac-coh pair catalog under ``root``."""
    spec = spec or DecayStackSpec()
    root = Path(root)
    truth = decay_truth(seed, spec.size)
    counts: dict[int, npt.NDArray[np.uint16]] = {}
    per_baseline: dict[int, int] = {}
    links = []
    for pair in iter_stack_pairs(truth, spec, seed):
        item = _write_pair(root / collection_id, pair, spec, collection_id)
        links.append(
            {
                "rel": "item",
                "href": f"./{item['id']}/{item['id']}.json",
                "type": "application/geo+json",
            }
        )
        count = counts.setdefault(pair.baseline, np.zeros((spec.size, spec.size), np.uint16))
        count += np.isfinite(pair.coherence)
        per_baseline[pair.baseline] = per_baseline.get(pair.baseline, 0) + 1
    _write_json(root / collection_id / "collection.json", _collection(collection_id, spec, links))
    _write_json(root / "catalog.json", _catalog(collection_id))
    return StackCatalog(root, truth, per_baseline, counts)


def _write_pair(
    folder: Path, pair: StackPair, spec: DecayStackSpec, collection_id: str
) -> dict[str, Any]:
    """One pair's uint8 coherence COG and item JSON."""
    item_id = f"SIM_{pair.reference:%Y%m%d}_{pair.secondary:%Y%m%d}_{pair.baseline:02d}d_VV"
    (folder / item_id).mkdir(parents=True, exist_ok=True)
    cog = folder / item_id / f"{item_id}_coherence.tif"
    plain = cog.with_suffix(".plain.tif")
    profile = {
        "driver": "GTiff",
        "width": spec.size,
        "height": spec.size,
        "count": 1,
        "dtype": "uint8",
        "crs": spec.crs,
        "transform": spec.transform,
        "nodata": UINT8_UNIT.nodata,
    }
    with rasterio.open(plain, "w", **profile) as ds:
        ds.write(encode(pair.coherence, UINT8_UNIT), 1)
        ds.scales, ds.offsets = (UINT8_UNIT.scale,), (UINT8_UNIT.offset,)
    translate_to_cog(plain, cog)
    plain.unlink()
    item = _item(item_id, pair, spec, collection_id)
    _write_json(folder / item_id / f"{item_id}.json", item)
    return item


def _item(
    item_id: str, pair: StackPair, spec: DecayStackSpec, collection_id: str
) -> dict[str, Any]:
    """An item with the fields a published pair item has that compositing reads."""
    from pyproj import Transformer

    x0, y0 = spec.origin
    side = spec.size * spec.pixel_size
    to_lonlat = Transformer.from_crs(spec.crs, "EPSG:4326", always_xy=True)
    ring = [
        list(to_lonlat.transform(x, y))
        for x, y in ((x0, y0), (x0 + side, y0), (x0 + side, y0 - side), (x0, y0 - side), (x0, y0))
    ]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    props: dict[str, Any] = {
        "datetime": None,
        "start_datetime": _iso(pair.reference),
        "end_datetime": _iso(pair.secondary),
        "constellation": "sentinel-1",
        "platform": "sentinel-1a",
        "sar:polarizations": ["VV"],
        "sat:relative_orbit": spec.relative_orbit,
        "sat:orbit_state": "descending",
        "proj:code": spec.crs,
        "proj:shape": [spec.size, spec.size],
        "proj:transform": list(spec.transform)[:6],
        "coh:baseline_days": float(pair.baseline),
        "coh:reference_platform": "sentinel-1a",
        "coh:secondary_platform": "sentinel-1a",
        "stac_coh:simulated": True,
    }
    if spec.grid_code:
        props["grid:code"] = spec.grid_code
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": collection_id,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": props,
        "assets": {
            "coherence": {
                "href": f"./{item_id}_coherence.tif",
                "type": COG_MEDIA_TYPE,
                "roles": ["data"],
                "title": "Coherence (SIMULATED decay stack)",
                "raster:bands": [
                    {
                        "data_type": "uint8",
                        "nodata": UINT8_UNIT.nodata,
                        "scale": UINT8_UNIT.scale,
                        "offset": UINT8_UNIT.offset,
                        "spatial_resolution": spec.pixel_size,
                    }
                ],
            }
        },
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        ],
    }


def _collection(
    collection_id: str, spec: DecayStackSpec, links: list[dict[str, str]]
) -> dict[str, Any]:
    """The pair collection of the simulated stack."""
    end = spec.start + timedelta(days=spec.revisit * (spec.n_dates - 1))
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": collection_id,
        "description": "SIMULATED coherence pairs with a known exponential decay per pixel "
        "(stac_coh.science.decay_stack): test data for composites, not real data.",
        "license": "Apache-2.0",
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[_iso(spec.start), _iso(end)]]},
        },
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            *links,
        ],
    }


def _catalog(collection_id: str) -> dict[str, Any]:
    """The root catalog."""
    return {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "stac-coh",
        "description": "SIMULATED decay stack (stac-coh)",
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": "application/json"},
            {
                "rel": "child",
                "href": f"./{collection_id}/collection.json",
                "type": "application/json",
            },
        ],
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def _iso(value: datetime) -> str:
    """RFC 3339 UTC with ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
