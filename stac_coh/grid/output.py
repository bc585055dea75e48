"""The processing grid of one work unit: where output pixels lie (CRS, affine, shape).

A thin, frozen, JSON-friendly contract over odc-geo's ``GeoBox``: the manifest stores it,
the loaders and the inference engine read windows of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.crs import CRS

__all__ = ["OutputGrid", "PairReader", "Transform", "as_transform"]

Transform = tuple[float, float, float, float, float, float]
"""Affine coefficients (a, b, c, d, e, f) as rasterio/GDAL order them."""


def as_transform(values: Any) -> Transform:
    """The first six coefficients of an ``Affine`` or a sequence, as floats."""
    a, b, c, d, e, f = (float(v) for v in tuple(values)[:6])
    return (a, b, c, d, e, f)


@dataclass(frozen=True)
class OutputGrid:
    """A north-up raster grid; every pair and every prediction runs on one."""

    crs: str
    """CRS as an authority string, e.g. ``EPSG:32643`` (UTM) or WKT if it has none."""
    transform: Transform
    """Affine coefficients (a, b, c, d, e, f) as rasterio/GDAL order them."""
    width: int
    """Columns."""
    height: int
    """Rows."""

    @property
    def affine(self) -> Affine:
        """The transform as an ``affine.Affine``."""
        return Affine(*self.transform)

    @property
    def rasterio_crs(self) -> CRS:
        """The CRS as a ``rasterio.crs.CRS``."""
        return CRS.from_user_input(self.crs)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), as numpy orders it."""
        return (self.height, self.width)

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (abs(self.transform[0]), abs(self.transform[4]))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid's CRS."""
        a = self.affine
        left, top = a.c, a.f
        right, bottom = a * (self.width, self.height)
        return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))

    @property
    def geobox(self) -> GeoBox:
        """The grid as an odc-geo ``GeoBox`` (what odc-stac loads onto)."""
        return GeoBox((self.height, self.width), self.affine, self.crs)

    @classmethod
    def from_geobox(cls, geobox: GeoBox) -> OutputGrid:
        """The grid of an odc-geo ``GeoBox``."""
        crs = geobox.crs
        epsg = crs.epsg if crs is not None else None
        text = f"EPSG:{epsg}" if epsg else str(crs.to_wkt() if crs is not None else "")
        return cls(text, as_transform(geobox.affine), int(geobox.width), int(geobox.height))

    @classmethod
    def from_bounds(
        cls, crs: str, bounds: tuple[float, float, float, float], resolution: float
    ) -> OutputGrid:
        """Grid covering ``bounds`` with square pixels, snapped outward to the resolution.

        Pixel edges lie on multiples of ``resolution`` from the CRS origin: every grid of
        one CRS and resolution shares one pixel lattice.
        """
        geobox = GeoBox.from_bbox(bounds, crs, resolution=resolution, tol=1e-9)
        width, height = max(1, int(geobox.width)), max(1, int(geobox.height))
        return cls(crs, as_transform(geobox.affine), width, height)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest's JSON form."""
        return {
            "crs": self.crs,
            "transform": list(self.transform),
            "width": self.width,
            "height": self.height,
            "resolution": list(self.resolution),
            "bounds": list(self.bounds),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputGrid:
        """Parse the manifest's JSON form (derived keys are ignored)."""
        t = as_transform(data["transform"])
        return cls(str(data["crs"]), t, int(data["width"]), int(data["height"]))


@runtime_checkable
class PairReader(Protocol):
    """Reads windows of two co-located backscatter images on one grid.

    Implemented by ``stac_coh.load.file_pair`` (two raster files, ``stac-coh predict``) and by
    ``stac_coh.load.stac_pair`` (STAC items of a pair). The inference engine only sees this.
    """

    @property
    def grid(self) -> OutputGrid:
        """The grid every window refers to."""
        ...

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Return (2, height, width) float32 linear power (t1, t2); NaN where no data.

        The window may extend past the grid (tiles with a halo at the border); pixels
        outside the grid are NaN.
        """
        ...

    def close(self) -> None:
        """Release open datasets."""
        ...
