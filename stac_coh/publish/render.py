"""Pictures of a coherence map: the colour map, the PNG thumbnail and the ``visual`` COG.

Viewers (STAC Browser, QGIS, web maps) show the ``visual`` asset as is, so they need not
know that the data asset stores uint8 with a scale. Both pictures are colour-mapped decoded
coherence (0..1) with transparent nodata: an alpha channel in the PNG, an internal GDAL
mask in the RGB ``visual`` COG (see :func:`~stac_coh.io.cog.translate_to_cog`).
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.enums import ColorInterp, Resampling
from rasterio.windows import Window

from stac_coh.io.cog import COG_BLOCKSIZE, translate_to_cog

__all__ = [
    "COLORMAP_NAME",
    "THUMBNAIL_MAX_SIZE",
    "colorize",
    "colormap_lut",
    "read_values",
    "write_thumbnail",
    "write_visual",
]

COLORMAP_NAME = "viridis"
"""Matplotlib/titiler colour map of every picture (perceptually uniform, colour-blind safe)."""

THUMBNAIL_MAX_SIZE = 512
"""Long side of the PNG thumbnail in pixels."""


@cache
def colormap_lut(name: str = COLORMAP_NAME) -> npt.NDArray[np.uint8]:
    """(256, 4) uint8 RGBA lookup table: coherence ``v`` maps to row ``round(v * 255)``."""
    from matplotlib import colormaps

    table = colormaps[name](np.linspace(0.0, 1.0, 256))
    return np.round(table * 255).astype(np.uint8)


def colorize(values: npt.NDArray[np.floating], name: str = COLORMAP_NAME) -> npt.NDArray[np.uint8]:
    """(H, W) coherence in [0, 1] with NaN nodata -> (4, H, W) RGBA, alpha 0 where NaN."""
    values = np.asarray(values, dtype=np.float32)
    valid = np.isfinite(values)
    index = np.rint(np.clip(np.where(valid, values, 0.0), 0.0, 1.0) * 255).astype(np.uint8)
    rgba = colormap_lut(name)[index]
    rgba[~valid] = 0
    return np.moveaxis(rgba, -1, 0)


def read_values(
    ds: rasterio.io.DatasetReader,
    *,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """Band 1 decoded with the file's own scale/offset; NaN where nodata."""
    kwargs: dict[str, object] = {"masked": True, "window": window}
    if out_shape is not None:
        kwargs.update(out_shape=out_shape, resampling=Resampling.average)
    data = ds.read(1, **kwargs)
    scale = ds.scales[0] if ds.scales else 1.0
    offset = ds.offsets[0] if ds.offsets else 0.0
    values = data.astype(np.float32) * np.float32(scale) + np.float32(offset)
    return np.ma.filled(np.ma.masked_invalid(values), np.nan).astype(np.float32)


def write_thumbnail(
    coherence: str | Path, dst: str | Path, *, max_size: int = THUMBNAIL_MAX_SIZE
) -> Path:
    """Colour-mapped PNG of a coherence raster, at most ``max_size`` on the long side."""
    from PIL import Image

    with rasterio.open(coherence) as ds:
        factor = max(1.0, max(ds.width, ds.height) / max_size)
        shape = (max(1, round(ds.height / factor)), max(1, round(ds.width / factor)))
        values = read_values(ds, out_shape=shape)
    rgba = np.moveaxis(colorize(values), 0, -1)
    Image.fromarray(rgba, mode="RGBA").save(dst, format="PNG", optimize=True)
    return Path(dst)


def write_visual(coherence: str | Path, dst: str | Path) -> Path:
    """RGB uint8 COG of the colour-mapped coherence, masked at nodata, with overviews.

    Written block by block as RGBA (memory bounded by one block whatever the scene size),
    then translated to a COG whose alpha becomes an internal mask.
    """
    with rasterio.open(coherence) as src, tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "visual.tif"
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "count": 4,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": src.transform,
            "tiled": True,
            "blockxsize": COG_BLOCKSIZE,
            "blockysize": COG_BLOCKSIZE,
            "photometric": "RGB",
            "compress": "DEFLATE",
        }
        with rasterio.open(plain, "w", **profile) as out:
            out.colorinterp = [
                ColorInterp.red,
                ColorInterp.green,
                ColorInterp.blue,
                ColorInterp.alpha,
            ]
            for _, window in _blocks(src.width, src.height):
                out.write(colorize(read_values(src, window=window)), window=window)
        translate_to_cog(plain, dst, alpha_to_mask=True)
    return Path(dst)


def _blocks(width: int, height: int, size: int = COG_BLOCKSIZE) -> list[tuple[int, Window]]:
    """Windows of ``size`` pixels tiling the raster, edges included."""
    return [
        (i, Window(col, row, min(size, width - col), min(size, height - row)))
        for i, (row, col) in enumerate(
            (r, c) for r in range(0, height, size) for c in range(0, width, size)
        )
    ]
