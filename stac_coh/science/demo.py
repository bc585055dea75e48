"""The offline demo: a small local STAC catalog of simulated Sentinel-1 RTC acquisitions.

Items follow what Planetary Computer's ``sentinel-1-rtc`` publishes (property names and
types, the ``vv`` asset with float32 linear gamma0 and nodata -32768, UTM 10 m grids, even
the space-separated ``start_datetime``), so the demo goes through the same search, pairing,
loading, inference and publishing code as a real run. Pixels come from the simulator,
which also gives the true coherence, so the demo can say how accurate its maps are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from pyproj import Transformer

from stac_coh.io.cog import translate_to_cog
from stac_coh.science.sim import SceneSpec, simulate_scene

__all__ = ["DEMO_ACQUISITIONS", "INPUTS_FOLDER", "DemoCatalog", "build_demo_catalog", "source_dir"]

NODATA = -32768.0
"""Planetary Computer RTC nodata."""
TILE = 512
"""Edge of one simulated slice in 10 m pixels (5.12 km)."""
ORIGIN = (548_000.0, 4_186_000.0)
"""Upper-left corner of the first slice, UTM 10N: the San Francisco Bay area."""
CRS = "EPSG:32610"
COLLECTION = "sentinel-1-rtc"
INPUTS_FOLDER = "simulated-inputs"
"""Folder of the simulated source catalog inside the published coherence catalog."""


def source_dir(out: str | Path) -> Path:
    """Where the demo writes its simulated source catalog under its ``--out`` folder.

    Inside the published tree (``OUT/catalog/simulated-inputs``), so each coherence item's
    ``derived_from`` links are relative and resolve wherever the catalog is served.
    """
    return Path(out) / "catalog" / INPUTS_FOLDER


@dataclass(frozen=True)
class DemoAcquisition:
    """One simulated slice of one pass."""

    platform: str
    """``SENTINEL-1A`` or ``SENTINEL-1C`` (upper case, as Planetary Computer writes it)."""
    start: datetime
    """Acquisition start (UTC)."""
    relative_orbit: int
    """Track."""
    orbit_state: str
    """``ascending`` or ``descending``."""
    tile: int
    """Position of the slice (0, 1, 2 from west to east)."""
    scene_seed: int
    """Simulator seed of the pair this slice belongs to (never a training seed)."""
    date_in_pair: int
    """0 = the simulated pair's earlier image, 1 = its later image."""
    absolute_orbit: int
    """``sat:absolute_orbit``."""
    datatake: int
    """``s1:datatake_id`` (decimal; hex in the product id)."""


def _at(day: str, hms: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hms}+00:00").astimezone(UTC)


DEMO_ACQUISITIONS: tuple[DemoAcquisition, ...] = (
    # Track 35 descending, two slices per pass, 12 days apart: one pair of mosaics.
    DemoAcquisition(
        "SENTINEL-1A", _at("2026-06-04", "14:02:11"), 35, "descending", 0, 7001, 0, 64812, 535198
    ),
    DemoAcquisition(
        "SENTINEL-1A", _at("2026-06-04", "14:02:36"), 35, "descending", 1, 7002, 0, 64812, 535198
    ),
    DemoAcquisition(
        "SENTINEL-1A", _at("2026-06-16", "14:02:12"), 35, "descending", 0, 7001, 1, 64987, 536112
    ),
    DemoAcquisition(
        "SENTINEL-1A", _at("2026-06-16", "14:02:37"), 35, "descending", 1, 7002, 1, 64987, 536112
    ),
    # Track 137 ascending: Sentinel-1A and -1C six days apart, a cross-platform pair...
    DemoAcquisition(
        "SENTINEL-1A", _at("2026-06-09", "01:51:40"), 137, "ascending", 2, 7003, 0, 64885, 535611
    ),
    DemoAcquisition(
        "SENTINEL-1C", _at("2026-06-15", "01:51:02"), 137, "ascending", 2, 7003, 1, 8031, 99214
    ),
    # ...and a later pass 24 days on, which pairing must reject (baseline not 6 or 12 d).
    DemoAcquisition(
        "SENTINEL-1A", _at("2026-07-03", "01:51:41"), 137, "ascending", 2, 7003, 1, 65235, 537540
    ),
)
"""The demo's acquisitions: two valid pairs (one mosaicked from two slices) and a decoy."""


@dataclass(frozen=True)
class DemoCatalog:
    """What :func:`build_demo_catalog` wrote."""

    items_dir: Path
    """The local catalog: a directory of item JSONs (``--source`` for a search)."""
    bbox: tuple[float, float, float, float]
    """Area covering every slice (lon/lat)."""
    start: str
    """First day to search."""
    end: str
    """Last day to search."""
    truth: dict[int, Path]
    """Simulator seed -> true coherence GeoTIFF of that simulated pair."""


def build_demo_catalog(root: str | Path, *, tile: int = TILE) -> DemoCatalog:
    """Simulate the acquisitions and write COGs, items and a collection under ``root``.

    Deterministic: the same ``root`` content every time, so a re-run reuses it.
    """
    root = Path(root)
    items_dir, assets = root / "items", root / "assets"
    for folder in (items_dir, assets, root / "truth"):
        folder.mkdir(parents=True, exist_ok=True)
    scenes = {}
    truth = {}
    for seed in sorted({a.scene_seed for a in DEMO_ACQUISITIONS}):
        scenes[seed] = simulate_scene(seed, SceneSpec(size=tile))
        truth[seed] = root / "truth" / f"coherence_seed{seed}.tif"
    for acq in DEMO_ACQUISITIONS:
        transform = _tile_transform(acq.tile, tile)
        scene = scenes[acq.scene_seed]
        image = scene.t2 if acq.date_in_pair else scene.t1
        item_id = _item_id(acq)
        href = assets / f"{item_id}_vv.tif"
        if not href.exists():
            _write_cog(href, image, transform)
        truth_path = truth[acq.scene_seed]
        if not truth_path.exists():
            _write_cog(truth_path, scene.coherence, transform, nodata=float("nan"))
        # Relative hrefs, as in any static catalog: the folder can move.
        item = _item(acq, item_id, f"../assets/{href.name}", transform, image.shape)
        (items_dir / f"{item_id}.json").write_text(json.dumps(item, indent=2))
    (root / "collection.json").write_text(json.dumps(_collection(), indent=2))
    return DemoCatalog(items_dir, _bbox(tile), "2026-06-01", "2026-07-31", truth)


def _tile_transform(tile_index: int, tile: int) -> Affine:
    """Slices sit side by side, west to east."""
    x0, y0 = ORIGIN
    return Affine(10.0, 0.0, x0 + tile_index * tile * 10.0, 0.0, -10.0, y0)


def _bbox(tile: int) -> tuple[float, float, float, float]:
    """Lon/lat box around all three slices, slightly inside so every slice overlaps it."""
    x0, y0 = ORIGIN
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    west, south = to_lonlat.transform(x0 + 200.0, y0 - tile * 10.0 + 200.0)
    east, north = to_lonlat.transform(x0 + 3 * tile * 10.0 - 200.0, y0 - 200.0)
    return (round(west, 4), round(south, 4), round(east, 4), round(north, 4))


def _item_id(acq: DemoAcquisition) -> str:
    """Planetary Computer style: GRD product id without its CRC, plus ``_rtc``."""
    start = acq.start
    end = start + timedelta(seconds=25)
    unit = acq.platform[-1]
    return (
        f"S1{unit}_IW_GRDH_1SDV_{start:%Y%m%dT%H%M%S}_{end:%Y%m%dT%H%M%S}_"
        f"{acq.absolute_orbit:06d}_{acq.datatake:06X}_rtc"
    )


def _footprint(transform: Affine, shape: Sequence[int]) -> list[list[float]]:
    """Lon/lat ring of the raster's bounds."""
    height, width = shape
    corners = [(0, 0), (width, 0), (width, height), (0, height), (0, 0)]
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    ring = []
    for col, row in corners:
        x, y = transform * (col, row)
        lon, lat = to_lonlat.transform(x, y)
        ring.append([round(lon, 6), round(lat, 6)])
    return ring


def _item(
    acq: DemoAcquisition, item_id: str, href: str, transform: Affine, shape: Sequence[int]
) -> dict[str, Any]:
    """An item shaped like Planetary Computer's sentinel-1-rtc items."""
    ring = _footprint(transform, shape)
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    height, width = shape
    left, top = transform.c, transform.f
    end = acq.start + timedelta(seconds=25)
    mid = acq.start + timedelta(seconds=12.5)
    designator = {"A": "2014-016A", "B": "2016-025A", "C": "2024-235A", "D": "2025-000A"}
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": COLLECTION,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {
            "datetime": mid.isoformat().replace("+00:00", "Z"),
            # Planetary Computer writes these with a space, not RFC 3339; so do we.
            "start_datetime": acq.start.isoformat(sep=" "),
            "end_datetime": end.isoformat(sep=" "),
            "platform": acq.platform,
            "constellation": "Sentinel-1",
            "sat:orbit_state": acq.orbit_state,
            "sat:relative_orbit": acq.relative_orbit,
            "sat:absolute_orbit": acq.absolute_orbit,
            "sat:platform_international_designator": designator[acq.platform[-1]],
            "sar:instrument_mode": "IW",
            "sar:polarizations": ["VV"],
            "sar:product_type": "GRD",
            "sar:frequency_band": "C",
            "sar:center_frequency": 5.405,
            "sar:resolution_range": 20,
            "sar:resolution_azimuth": 22,
            "sar:pixel_spacing_range": 10,
            "sar:pixel_spacing_azimuth": 10,
            "sar:looks_range": 5,
            "sar:looks_azimuth": 1,
            "sar:looks_equivalent_number": 4.4,
            "sar:observation_direction": "right",
            "s1:datatake_id": str(acq.datatake),
            "s1:slice_number": str(acq.tile + 1),
            "s1:total_slices": "3",
            "s1:orbit_source": "RESORB",
            "s1:processing_level": "1",
            "s1:product_timeliness": "Fast-24h",
            "s1:resolution": "high",
            "proj:epsg": int(CRS.split(":")[1]),
            "proj:shape": [height, width],
            "proj:transform": [*transform[:6], 0.0, 0.0, 1.0],
            "proj:bbox": [left, top - 10.0 * height, left + 10.0 * width, top],
            "stac_coh:simulated": True,
        },
        "assets": {
            "vv": {
                "href": href,
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "title": "VV: vertical transmit, vertical receive (SIMULATED by stac-coh)",
                "roles": ["data"],
                "raster:bands": [
                    {"nodata": NODATA, "data_type": "float32", "spatial_resolution": 10.0}
                ],
            }
        },
        "links": [{"rel": "collection", "href": "../collection.json", "type": "application/json"}],
    }


def _collection() -> dict[str, Any]:
    """The source collection document of the demo catalog."""
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": COLLECTION,
        "title": "Simulated Sentinel-1 RTC (stac-coh demo)",
        "description": "Sentinel-1-like VV backscatter simulated by stac-coh (speckle, land "
        "cover, temporal decorrelation) on UTM grids, shaped like Planetary Computer's "
        "sentinel-1-rtc items. Not real data.",
        "license": "Apache-2.0",
        "extent": {
            "spatial": {"bbox": [list(_bbox(TILE))]},
            "temporal": {"interval": [["2026-06-01T00:00:00Z", "2026-07-31T23:59:59Z"]]},
        },
        "links": [],
    }


def _write_cog(
    path: Path, image: npt.NDArray[np.float32], transform: Affine, *, nodata: float = NODATA
) -> None:
    """Write one band as a float32 COG, NaN stored as ``nodata``."""
    raw = path.with_suffix(".raw.tif")
    data = np.where(np.isfinite(image), image, nodata).astype(np.float32)
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "width": data.shape[1],
        "height": data.shape[0],
        "crs": CRS,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(raw, "w", **profile) as dst:
        dst.write(data, 1)
    translate_to_cog(raw, path, resampling="average")
    raw.unlink()


def truth_on_grid(coherence_cog: str | Path, truth: Sequence[Path]) -> npt.NDArray[np.float32]:
    """The simulator's true coherence resampled (nearest) onto a published COG's grid."""
    from rasterio.warp import Resampling, reproject

    with rasterio.open(coherence_cog) as dst:
        out = np.full((dst.height, dst.width), np.nan, dtype=np.float32)
        for path in truth:
            with rasterio.open(path) as src:
                part = np.full_like(out, np.nan)
                reproject(
                    rasterio.band(src, 1),
                    part,
                    dst_transform=dst.transform,
                    dst_crs=dst.crs,
                    dst_nodata=np.nan,
                    resampling=Resampling.nearest,
                )
            out = np.where(np.isfinite(part), part, out)
    return out


def read_coherence(path: str | Path) -> npt.NDArray[np.float32]:
    """A published coherence COG decoded to [0, 1] with NaN nodata."""
    with rasterio.open(path) as src:
        data = src.read(1, masked=True).astype(np.float32)
        values = data.filled(np.nan) * np.float32(src.scales[0]) + np.float32(src.offsets[0])
    return values.astype(np.float32)
