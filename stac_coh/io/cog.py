"""Cloud-Optimized GeoTIFF encoding of the coherence product (see docs: PRODUCT.md facts).

Coherence is stored as uint8 with scale 1/250 and nodata 255 by default (quantisation error
<= 0.002, far under model error), or float32 with NaN nodata. Scale, offset and nodata are
written into the GeoTIFF itself so GDAL and rasterio decode it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import rasterio
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

__all__ = [
    "COG_MEDIA_TYPE",
    "FLOAT32",
    "UINT8_UNIT",
    "Encoding",
    "decode",
    "encode",
    "encoding_for",
    "overview_levels",
    "padded_size",
    "translate_to_cog",
]

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
"""The exact media type STAC Browser needs to draw a COG."""

COG_BLOCKSIZE = 512
"""Internal tile edge."""

OVERVIEW_MIN_SIZE = 256
"""Overviews are added until the coarsest one's long side is at most this many pixels."""


@dataclass(frozen=True)
class Encoding:
    """How values in [0, 1] are stored: ``value = stored * scale + offset``."""

    dtype: Literal["uint8", "float32"]
    """Stored data type."""
    scale: float
    """Multiply stored values by this..."""
    offset: float
    """...then add this."""
    nodata: float
    """Stored nodata value (NaN for float32)."""


UINT8_UNIT = Encoding("uint8", 0.004, 0.0, 255)
"""Default: 0..250 -> 0..1, 255 = nodata."""

FLOAT32 = Encoding("float32", 1.0, 0.0, math.nan)
"""Full precision, NaN = nodata."""


def encoding_for(dtype: str) -> Encoding:
    """The encoding of ``--dtype uint8|float32``."""
    try:
        return {"uint8": UINT8_UNIT, "float32": FLOAT32}[dtype]
    except KeyError:
        raise ValueError(f"--dtype must be uint8 or float32, not {dtype!r}") from None


def encode(values: npt.NDArray[np.floating], encoding: Encoding) -> npt.NDArray[np.generic]:
    """Values in [0, 1] with NaN as nodata -> stored array."""
    values = np.asarray(values, dtype=np.float32)
    if encoding.dtype == "float32":
        return np.where(np.isfinite(values), np.clip(values, 0.0, 1.0), np.nan).astype(np.float32)
    top = round((1.0 - encoding.offset) / encoding.scale)
    stored = np.rint((np.clip(values, 0.0, 1.0) - encoding.offset) / encoding.scale)
    stored = np.clip(np.nan_to_num(stored, nan=encoding.nodata), 0, max(top, encoding.nodata))
    stored[~np.isfinite(values)] = encoding.nodata
    return stored.astype(np.uint8)


def decode(stored: npt.NDArray[np.generic], encoding: Encoding) -> npt.NDArray[np.float32]:
    """Stored array -> values with NaN as nodata."""
    stored = np.asarray(stored)
    if encoding.dtype == "float32":
        return stored.astype(np.float32)
    values = stored.astype(np.float32) * np.float32(encoding.scale) + np.float32(encoding.offset)
    values[stored == encoding.nodata] = np.nan
    return values


def overview_levels(width: int, height: int, smallest: int = OVERVIEW_MIN_SIZE) -> int:
    """Number of 2x overview levels until the long side is at most ``smallest`` pixels."""
    levels, side = 0, max(width, height)
    while side > smallest:
        side = math.ceil(side / 2)
        levels += 1
    return levels


def padded_size(width: int, height: int) -> tuple[int, int, int]:
    """(width, height, levels): the size rounded up so every overview halves exactly.

    OpenLayers (what STAC Browser draws COGs with) derives each overview's resolution from
    its size; when an overview's height or width is rounded up (469 -> 235), the x and y
    resolutions differ a little, its reprojected tiles get a fractional size, and it
    uploads RGBA data as RGB: the map shows stripes. Padding the bottom and right edges
    with nodata to multiples of ``2 ** levels`` makes every level an exact halving.
    """
    levels = overview_levels(width, height)
    step = 2**levels
    return -(-width // step) * step, -(-height // step) * step, levels


_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


def _padded_vrt(ds: rasterio.io.DatasetReader, width: int, height: int) -> str:
    """VRT XML of ``ds`` enlarged to ``width`` x ``height``; new pixels are nodata (or 0)."""
    from xml.sax.saxutils import escape

    bands = []
    for i in range(ds.count):
        nodata = ds.nodatavals[i]
        desc = ds.descriptions[i]
        parts = [
            f'<VRTRasterBand dataType="{_GDAL_TYPES[ds.dtypes[i]]}" band="{i + 1}">',
            f"<ColorInterp>{ds.colorinterp[i].name.capitalize()}</ColorInterp>",
            f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else "",
            f"<Scale>{ds.scales[i]!r}</Scale><Offset>{ds.offsets[i]!r}</Offset>",
            f"<Description>{escape(desc)}</Description>" if desc else "",
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(ds.name)}</SourceFilename>',
            f"<SourceBand>{i + 1}</SourceBand>",
            f'<SrcRect xOff="0" yOff="0" xSize="{ds.width}" ySize="{ds.height}"/>',
            f'<DstRect xOff="0" yOff="0" xSize="{ds.width}" ySize="{ds.height}"/>',
            "</SimpleSource></VRTRasterBand>",
        ]
        bands.append("".join(parts))
    geo = ", ".join(repr(v) for v in ds.transform.to_gdal())
    srs = f"<SRS>{escape(ds.crs.to_wkt())}</SRS>" if ds.crs else ""
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}'
        f"<GeoTransform>{geo}</GeoTransform>{''.join(bands)}</VRTDataset>"
    )


def translate_to_cog(
    src: str | Path,
    dst: str | Path,
    *,
    resampling: Literal["average", "nearest"] = "average",
    compress: Literal["DEFLATE", "ZSTD"] = "DEFLATE",
    alpha_to_mask: bool = False,
) -> None:
    """Rewrite a GeoTIFF as a COG: 512 tiles, overviews down to ~256 px, compression.

    Scale, offset, nodata, colour interpretation and band descriptions of ``src`` are
    kept. The raster is padded at the bottom and right (nodata, or 0 = transparent for an
    alpha band) so every overview halves exactly (see :func:`padded_size`); the origin
    and pixel size do not change. ``alpha_to_mask`` turns an RGBA source into RGB with an
    internal GDAL mask (at every overview level too): OpenLayers, which STAC Browser draws
    COGs with, honours a mask or a nodata value but replaces a plain alpha band with its
    own coverage, so RGBA nodata drew opaque black wherever the COG was reprojected.
    """
    with rasterio.open(src) as ds:
        is_float = np.dtype(ds.dtypes[0]).kind == "f"
        width, height, levels = padded_size(ds.width, ds.height)
        source = str(src)
        if (width, height) != (ds.width, ds.height):
            source = _padded_vrt(ds, width, height)
    profile = cog_profiles.get(compress.lower()).copy()
    profile.update(
        blockxsize=COG_BLOCKSIZE,
        blockysize=COG_BLOCKSIZE,
        predictor=3 if is_float else 2,
    )
    cog_translate(
        source,
        str(dst),
        profile,
        overview_resampling=resampling,
        overview_level=levels,
        quiet=True,
        in_memory=False,
        use_cog_driver=False,
        add_mask=alpha_to_mask,
    )
