"""What a STAC item says about a published raster: band metadata, statistics, footprint.

Statistics describe STORED values, the way rio-stac computes them (a read decimated to at
most ``max_size`` pixels on the long side, nodata masked): STAC Browser stretches stored
values between ``statistics.minimum`` and ``maximum`` and applies no scale/offset.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from rasterio.enums import Resampling
from rasterio.features import shapes
from rasterio.warp import transform_geom
from shapely.geometry import mapping, shape

from stac_coh.io.cog import translate_to_cog

__all__ = [
    "BandInfo",
    "Statistics",
    "band_info",
    "ensure_cog",
    "footprint",
    "grid_outline",
    "sha256_multihash",
]

STATS_MAX_SIZE = 1024
"""Long side of the decimated read statistics come from (rio-stac's default)."""

FOOTPRINT_MAX_SIZE = 512
"""Long side of the decimated valid mask a footprint is traced on."""


@dataclass(frozen=True)
class Statistics:
    """Statistics of stored values (nodata excluded)."""

    minimum: float
    """Smallest stored value."""
    maximum: float
    """Largest stored value."""
    mean: float
    """Mean stored value."""
    stddev: float
    """Population standard deviation of stored values."""
    valid_percent: float
    """Percentage of pixels that are not nodata."""

    def to_dict(self) -> dict[str, float]:
        """STAC ``statistics`` object."""
        return {
            "minimum": self.minimum,
            "maximum": self.maximum,
            "mean": self.mean,
            "stddev": self.stddev,
            "valid_percent": self.valid_percent,
        }


@dataclass(frozen=True)
class BandInfo:
    """Band metadata of a single-band raster as its GeoTIFF declares it."""

    data_type: str
    """numpy/STAC data type name, e.g. ``uint8``."""
    nodata: float | None
    """Stored nodata value (NaN allowed), ``None`` if unset."""
    scale: float
    """GeoTIFF scale: ``value = stored * scale + offset``."""
    offset: float
    """GeoTIFF offset."""
    statistics: Statistics | None
    """Stored-value statistics; ``None`` if every pixel is nodata."""
    width: int
    """Columns."""
    height: int
    """Rows."""

    @property
    def stac_nodata(self) -> float | str | None:
        """Nodata as STAC writes it (``"nan"`` for NaN)."""
        if self.nodata is None:
            return None
        if math.isnan(self.nodata):
            return "nan"
        return int(self.nodata) if float(self.nodata).is_integer() else self.nodata


def band_info(path: str | Path, *, max_size: int = STATS_MAX_SIZE) -> BandInfo:
    """Read band 1's declared encoding and its stored-value statistics."""
    with rasterio.open(path) as ds:
        shape_ = _decimated_shape(ds.height, ds.width, max_size)
        data = ds.read(1, masked=True, out_shape=shape_)
        stats = _statistics(data)
        return BandInfo(
            data_type=str(ds.dtypes[0]),
            nodata=ds.nodata,
            scale=float(ds.scales[0]) if ds.scales else 1.0,
            offset=float(ds.offsets[0]) if ds.offsets else 0.0,
            statistics=stats,
            width=ds.width,
            height=ds.height,
        )


def _statistics(data: np.ma.MaskedArray) -> Statistics | None:
    """rio-stac-style statistics of a masked array."""
    values = np.ma.masked_invalid(data.astype(np.float64))
    valid = int(values.count())
    if valid == 0:
        return None
    return Statistics(
        minimum=float(values.min()),
        maximum=float(values.max()),
        mean=round(float(values.mean()), 6),
        stddev=round(float(values.std()), 6),
        valid_percent=round(100.0 * valid / values.size, 4),
    )


def _decimated_shape(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(rows, cols) no larger than ``max_size`` on the long side, aspect kept."""
    factor = max(1.0, max(height, width) / max_size)
    return max(1, round(height / factor)), max(1, round(width / factor))


def footprint(path: str | Path, *, max_size: int = FOOTPRINT_MAX_SIZE) -> dict[str, Any] | None:
    """GeoJSON (EPSG:4326) outline of the valid pixels, simplified; ``None`` if none.

    Traced on a mask decimated to ``max_size`` pixels, simplified to one decimated pixel,
    densified before reprojection so long UTM edges follow their curve, cut at the
    antimeridian.
    """
    with rasterio.open(path) as ds:
        rows, cols = _decimated_shape(ds.height, ds.width, max_size)
        mask = ds.read_masks(1, out_shape=(rows, cols), resampling=Resampling.nearest) > 0
        transform = ds.transform * ds.transform.scale(ds.width / cols, ds.height / rows)
        crs = ds.crs
    if not mask.any():
        return None
    polygons = [
        shape(geom)
        for geom, value in shapes(mask.astype(np.uint8), mask=mask, transform=transform)
        if value
    ]
    pixel = max(abs(transform.a), abs(transform.e))
    outline = shapely.union_all(polygons).simplify(pixel, preserve_topology=True)
    outline = shapely.segmentize(outline, max_segment_length=pixel * max(rows, cols) / 8)
    geometry = shape(
        transform_geom(crs, "EPSG:4326", mapping(outline), antimeridian_cutting=True, precision=7)
    )
    # Drop the densified vertices where the edge stays straight within half a pixel.
    west, _, east, _ = geometry.bounds
    geometry = geometry.simplify(0.5 * (east - west) / cols, preserve_topology=True)
    return _plain(mapping(shapely.make_valid(geometry).normalize()))


def grid_outline(path: str | Path) -> dict[str, Any]:
    """GeoJSON (EPSG:4326) of the raster's full extent, for rasters with no valid pixel."""
    with rasterio.open(path) as ds:
        box = shapely.segmentize(shapely.box(*ds.bounds), max(ds.res) * max(ds.shape) / 16)
        return _plain(transform_geom(ds.crs, "EPSG:4326", mapping(box), precision=7))


def _plain(geometry: Mapping[str, Any]) -> dict[str, Any]:
    """GeoJSON with lists instead of shapely's tuples (what JSON and validators expect)."""
    return json.loads(json.dumps(geometry))


def ensure_cog(src: Path, workdir: Path) -> Path:
    """``src`` if it is already a valid COG, else a COG copy of it written in ``workdir``."""
    from rio_cogeo.cogeo import cog_validate

    is_valid, _errors, _warnings = cog_validate(str(src), quiet=True)
    if is_valid:
        return src
    dst = workdir / f"{src.stem}.cog.tif"
    translate_to_cog(src, dst)
    return dst


def sha256_multihash(path: str | Path) -> str:
    """``file:checksum``: multihash of SHA2-256 (code 0x12, length 0x20) as hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as source:
        while chunk := source.read(2**22):
            digest.update(chunk)
    return "1220" + digest.hexdigest()
