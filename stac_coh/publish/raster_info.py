"""What a STAC item says about a published raster: band metadata, statistics, footprint.

Statistics describe STORED values, the way rio-stac computes them (a read decimated to at
most ``max_size`` pixels on the long side, nodata masked): STAC Browser stretches stored
values between ``statistics.minimum`` and ``maximum`` and applies no scale/offset. So a
band whose values are scaled says in its ``description`` that its statistics are of the
stored values, next to the ``raster:scale`` that turns them into coherence.
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
    "band_object",
    "ensure_cog",
    "footprint",
    "footprint_from_mask",
    "grid_outline",
    "raster_band_v1",
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

    def to_dict(self, *, integer: bool = False) -> dict[str, float]:
        """STAC ``statistics`` object, rounded for reading (``integer``: stored integers)."""
        digits = 2 if integer else 4
        extremes = int if integer else lambda v: round(v, digits)
        return {
            "minimum": extremes(self.minimum),
            "maximum": extremes(self.maximum),
            "mean": round(self.mean, digits),
            "stddev": round(self.stddev, digits),
            "valid_percent": round(self.valid_percent, 2),
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
    def is_scaled(self) -> bool:
        """Whether stored values need scale/offset to become physical values."""
        return (self.scale, self.offset) != (1.0, 0.0)

    @property
    def is_integer(self) -> bool:
        """Whether values are stored as integers."""
        return np.dtype(self.data_type).kind in "iu"

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


def band_object(info: BandInfo, *, name: str, meaning: str, unit: str | None) -> dict[str, Any]:
    """STAC 1.1 ``bands`` entry (core fields only): what STAC Browser 5 draws with.

    ``meaning`` says what the values are (one sentence); the description goes on with how
    they are stored and what the statistics are of.
    """
    band: dict[str, Any] = {
        "name": name,
        "description": f"{meaning} {_storage_sentence(info)}".strip(),
        "data_type": info.data_type,
    }
    if info.stac_nodata is not None:
        band["nodata"] = info.stac_nodata
    if unit:
        band["unit"] = unit
    if info.statistics is not None:
        band["statistics"] = info.statistics.to_dict(integer=info.is_integer)
    return band


def raster_band_v1(info: BandInfo, *, spatial_resolution: float) -> dict[str, Any]:
    """raster v1.1 ``raster:bands`` entry: how to decode stored values (stackstac reads it)."""
    band: dict[str, Any] = {"data_type": info.data_type}
    if info.stac_nodata is not None:
        band["nodata"] = info.stac_nodata
    band.update(scale=info.scale, offset=info.offset, spatial_resolution=spatial_resolution)
    return band


def _storage_sentence(info: BandInfo) -> str:
    """How the values are stored, and what the statistics describe."""
    nodata = info.stac_nodata
    missing = "" if nodata is None else f"; {'NaN' if nodata == 'nan' else nodata} = no data"
    if not info.is_scaled:
        return f"Stored as {info.data_type}{missing}."
    top = round((1.0 - info.offset) / info.scale)
    offset = f" + {info.offset:g}" if info.offset else ""
    return (
        f"Stored as {info.data_type} 0-{top}{missing}; value = stored × {info.scale:g}{offset} "
        "(raster:bands scale and offset). Statistics are of the stored values."
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
        mean=float(values.mean()),
        stddev=float(values.std()),
        valid_percent=100.0 * valid / values.size,
    )


def _decimated_shape(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(rows, cols) no larger than ``max_size`` on the long side, aspect kept."""
    factor = max(1.0, max(height, width) / max_size)
    return max(1, round(height / factor)), max(1, round(width / factor))


def footprint(path: str | Path, *, max_size: int = FOOTPRINT_MAX_SIZE) -> dict[str, Any] | None:
    """GeoJSON (EPSG:4326) outline of the valid pixels, simplified; ``None`` if none.

    Traced on a mask decimated to ``max_size`` pixels (see :func:`footprint_from_mask`).
    """
    with rasterio.open(path) as ds:
        rows, cols = _decimated_shape(ds.height, ds.width, max_size)
        mask = ds.read_masks(1, out_shape=(rows, cols), resampling=Resampling.nearest) > 0
        transform = ds.transform * ds.transform.scale(ds.width / cols, ds.height / rows)
        crs = ds.crs
    return footprint_from_mask(mask, transform, crs)


def footprint_from_mask(mask: np.ndarray, transform: Any, crs: Any) -> dict[str, Any] | None:
    """GeoJSON (EPSG:4326) outline of a (decimated) valid mask; ``None`` if nothing is valid.

    Simplified to one mask pixel, densified before reprojection so long UTM edges follow
    their curve, cut at the antimeridian. Inference keeps such a mask while it writes
    (``PredictionSummary.valid_mask``), so publishing need not read the raster for it.
    """
    rows, cols = mask.shape
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
