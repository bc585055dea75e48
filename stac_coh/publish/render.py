"""Pictures of a coherence map: the colour map, the PNG thumbnail and the ``visual`` COG.

Viewers (STAC Browser, QGIS, web maps) show the ``visual`` asset as is, so they need not
know that the data asset stores uint8 with a scale. Both pictures are colour-mapped decoded
coherence (0..1) with transparent nodata: an alpha channel in the PNG, an internal GDAL
mask in the RGB ``visual`` COG (see :func:`~stac_coh.io.cog.translate_to_cog`).

The ``visual`` COG is written by a :class:`VisualSink`, window by window: from a finished
coherence COG (:func:`write_visual`) or, in the same pass as inference, from each tile as
the engine stores it (``predict_to_cogs(renders={"visual": VisualSink.factory(path)})``),
which saves reading the coherence back.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.enums import ColorInterp, Resampling
from rasterio.windows import Window

from stac_coh.grid import OutputGrid
from stac_coh.io.cog import COG_BLOCKSIZE, translate_to_cog

__all__ = [
    "COLORMAP_NAME",
    "THUMBNAIL_MAX_SIZE",
    "VisualSink",
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


class VisualSink:
    """The ``visual`` COG, rendered window by window from decoded coherence.

    Windows go as RGBA into an uncompressed tiled GeoTIFF in a scratch directory;
    :meth:`commit` turns it into the COG at ``dst``, whose alpha becomes an internal mask;
    :meth:`close` removes the scratch files.
    """

    def __init__(self, dst: str | Path, width: int, height: int, crs: Any, transform: Any) -> None:
        self.dst = Path(dst)
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix=".stac-coh-visual-", dir=self.dst.parent))
        self._plain = self._scratch / "visual.tif"
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": 4,
            "dtype": "uint8",
            "crs": crs,
            "transform": transform,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "photometric": "RGB",
            "sparse_ok": True,
        }
        try:
            self._out: Any = rasterio.open(self._plain, "w", **profile)
            self._out.colorinterp = [
                ColorInterp.red,
                ColorInterp.green,
                ColorInterp.blue,
                ColorInterp.alpha,
            ]
        except BaseException:
            self.close()
            raise

    @classmethod
    def factory(cls, dst: str | Path) -> Callable[[OutputGrid], VisualSink]:
        """What ``predict_to_cogs(renders=...)`` takes: a sink on the prediction's grid."""
        return lambda grid: cls(dst, grid.width, grid.height, grid.rasterio_crs, grid.affine)

    def write(self, row_off: int, col_off: int, values: npt.NDArray[np.float32]) -> None:
        """Colour-map one window of decoded coherence (NaN = nodata) and write it."""
        height, width = values.shape
        self._out.write(colorize(values), window=Window(col_off, row_off, width, height))

    def commit(self) -> Path:
        """Write the COG (overviews, compression), move it to ``dst``, return ``dst``."""
        self._out.close()
        partial = self._scratch / "visual.cog.tif"
        translate_to_cog(self._plain, partial, alpha_to_mask=True)
        partial.replace(self.dst)
        return self.dst

    def close(self) -> None:
        """Remove the scratch files (idempotent)."""
        out = getattr(self, "_out", None)
        if out is not None and not out.closed:
            out.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


def write_visual(coherence: str | Path, dst: str | Path) -> Path:
    """RGB uint8 COG of the colour-mapped coherence, masked at nodata, with overviews.

    Written block by block as RGBA (memory bounded by one block whatever the scene size),
    then translated to a COG whose alpha becomes an internal mask.
    """
    with rasterio.open(coherence) as src:
        sink = VisualSink(dst, src.width, src.height, src.crs, src.transform)
        try:
            for _, window in _blocks(src.width, src.height):
                values = read_values(src, window=window)
                sink.write(int(window.row_off), int(window.col_off), values)
            return sink.commit()
        finally:
            sink.close()


def _blocks(width: int, height: int, size: int = COG_BLOCKSIZE) -> list[tuple[int, Window]]:
    """Windows of ``size`` pixels tiling the raster, edges included."""
    return [
        (i, Window(col, row, min(size, width - col), min(size, height - row)))
        for i, (row, col) in enumerate(
            (r, c) for r in range(0, height, size) for c in range(0, width, size)
        )
    ]
