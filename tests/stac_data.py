"""Fixture STAC items (tests/data/stac) and small COGs written on the grids they declare."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely.geometry
from affine import Affine
from pyproj import Transformer
from rasterio.features import geometry_mask
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

STAC = Path(__file__).parent / "data" / "stac"
PC_RTC = STAC / "planetary-computer" / "sentinel-1-rtc"
PC_RTC_SUBSET = STAC / "planetary-computer" / "sentinel-1-rtc-fields-subset"
PC_GRD = STAC / "planetary-computer" / "sentinel-1-grd"
ES_GRD = STAC / "earth-search" / "sentinel-1-grd"

VALID_PAIRS = {
    (
        "S1A_IW_GRDH_1SDV_20260417T004011_20260417T004036_064112_08117A_rtc",
        "S1A_IW_GRDH_1SDV_20260429T004011_20260429T004036_064287_0817FF_rtc",
    ),
    (
        "S1A_IW_GRDH_1SDV_20260604T004010_20260604T004035_064812_082A9E_rtc",
        "S1A_IW_GRDH_1SDV_20260616T004009_20260616T004034_064987_0830B0_rtc",
    ),
    (
        "S1D_IW_GRDH_1SDV_20260729T003930_20260729T003955_003881_00701D_rtc",
        "S1D_IW_GRDH_1SDV_20260810T003931_20260810T003956_004056_007638_rtc",
    ),
}
"""The fixture README's valid 6/12-day candidates (reference id, secondary id)."""

NODATA = -32768.0
"""PC sentinel-1-rtc nodata."""


def items(*folders: Path) -> list[dict[str, Any]]:
    """Every item JSON of ``folders``, sorted by file name."""
    return [json.loads(p.read_text()) for f in folders for p in sorted(f.glob("*.json"))]


def collection(source: str, collection_id: str) -> dict[str, Any]:
    """A recorded collection document."""
    path = STAC / source / "collections" / f"{collection_id}.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def rtc_items() -> list[dict[str, Any]]:
    """All PC sentinel-1-rtc items (full and fields-subset recordings)."""
    return items(PC_RTC, PC_RTC_SUBSET)


def item(folder: Path, prefix: str) -> dict[str, Any]:
    """The one item of ``folder`` whose id starts with ``prefix``."""
    (found,) = [it for it in items(folder) if it["id"].startswith(prefix)]
    return found


def scaled(item_: dict[str, Any], factor: int) -> dict[str, Any]:
    """Copy of an item with its declared grid coarsened ``factor`` times.

    The origin snaps to a multiple of the new pixel size, as PC's 10 m grids sit on
    multiples of 10 m, and the shape still covers the declared extent.
    """
    out = copy.deepcopy(item_)
    props = out["properties"]
    a, b, c, d, e, f = props["proj:transform"][:6]
    height, width = props["proj:shape"]
    px, py = a * factor, abs(e) * factor
    left, top = math.floor(c / px) * px, math.ceil(f / py) * py
    props["proj:transform"] = [px, b, left, d, -py, top, 0.0, 0.0, 1.0]
    props["proj:shape"] = [
        math.ceil((top - (f + e * height)) / py),
        math.ceil((c + a * width - left) / px),
    ]
    for asset in out["assets"].values():
        for band in asset.get("raster:bands", []):
            band["spatial_resolution"] = abs(a) * factor
    return out


def reprojected(item_: dict[str, Any], epsg: int, pixel: float) -> dict[str, Any]:
    """Copy of an item whose assets lie on a ``pixel``-sized grid in another CRS."""
    out = copy.deepcopy(item_)
    fp = shapely.geometry.shape(out["geometry"])
    to = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    xs, ys = to.transform(*np.asarray(shapely.segmentize(fp, 0.01).exterior.coords).T)
    left, top = math.floor(min(xs) / pixel) * pixel, math.ceil(max(ys) / pixel) * pixel
    width = math.ceil((max(xs) - left) / pixel)
    height = math.ceil((top - min(ys)) / pixel)
    props = out["properties"]
    props["proj:epsg"] = epsg
    props["proj:transform"] = [pixel, 0.0, left, 0.0, -pixel, top, 0.0, 0.0, 1.0]
    props["proj:shape"] = [height, width]
    props.pop("proj:bbox", None)
    for asset in out["assets"].values():
        for band in asset.get("raster:bands", []):
            band["spatial_resolution"] = pixel
    return out


def shifted_in_time(item_: dict[str, Any], days: int, tag: str) -> dict[str, Any]:
    """Copy of an item as if acquired ``days`` later on the same track (new id)."""
    out = copy.deepcopy(item_)
    props = out["properties"]
    when = datetime.fromisoformat(props["datetime"].replace("Z", "+00:00")) + timedelta(days=days)
    props["datetime"] = when.isoformat().replace("+00:00", "Z")
    for key in ("start_datetime", "end_datetime"):
        props.pop(key, None)
    if "sat:absolute_orbit" in props:
        props["sat:absolute_orbit"] += 175 * days // 12
    out["id"] = f"{out['id']}_{tag}"
    return out


def field(x: np.ndarray, y: np.ndarray, seed: float) -> np.ndarray:
    """A smooth positive 'backscatter' field over map coordinates (metres)."""
    return (0.06 + 0.04 * np.sin(x / 23_000.0 + seed) * np.cos(y / 17_000.0 - seed)).astype(
        np.float32
    )


def write_item_cog(item_: dict[str, Any], path: Path, *, seed: float, asset: str = "vv") -> Path:
    """Write a COG on the grid ``item_`` declares: a smooth field inside its footprint,
    nodata outside it and in one small block inside; point ``asset`` at it."""
    props = item_["properties"]
    height, width = props["proj:shape"]
    transform = Affine(*props["proj:transform"][:6])
    crs = f"EPSG:{props['proj:epsg']}"
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x, y = transform * (cols, rows)
    data = field(np.asarray(x), np.asarray(y), seed)
    to = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    fp = shapely.segmentize(shapely.geometry.shape(item_["geometry"]), 0.01)
    fp_map = shapely.transform(fp, lambda c: np.column_stack(to.transform(c[:, 0], c[:, 1])))
    outside = geometry_mask([fp_map], out_shape=(height, width), transform=transform)
    data[outside] = NODATA
    data[height // 3 : height // 3 + 3, width // 2 : width // 2 + 4] = NODATA
    raw = path.with_suffix(".raw.tif")
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "width": width,
        "height": height,
        "crs": crs,
        "transform": transform,
        "nodata": NODATA,
    }
    with rasterio.open(raw, "w", **profile) as dst:
        dst.write(data, 1)
    cog = cog_profiles.get("deflate")
    cog.update(blockxsize=64, blockysize=64)
    cog_translate(str(raw), str(path), cog, quiet=True, overview_level=0)
    raw.unlink()
    item_["assets"][asset]["href"] = str(path)
    return path
