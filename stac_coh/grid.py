"""The processing grid: where output pixels lie (CRS, affine transform, shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from affine import Affine
from rasterio.crs import CRS

__all__ = ["OutputGrid", "PairReader"]


@dataclass(frozen=True)
class OutputGrid:
    """A north-up raster grid; every pair and every prediction runs on one."""

    crs: str
    """CRS as an authority string, e.g. ``EPSG:32643`` (UTM) or WKT if it has none."""
    transform: tuple[float, float, float, float, float, float]
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

    @classmethod
    def from_bounds(
        cls, crs: str, bounds: tuple[float, float, float, float], resolution: float
    ) -> OutputGrid:
        """Grid covering ``bounds`` with square pixels, snapped outward to the resolution."""
        import math

        left, bottom, right, top = bounds
        left = math.floor(left / resolution) * resolution
        top = math.ceil(top / resolution) * resolution
        width = max(1, math.ceil((right - left) / resolution - 1e-9))
        height = max(1, math.ceil((top - bottom) / resolution - 1e-9))
        return cls(crs, (resolution, 0.0, left, 0.0, -resolution, top), width, height)

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
        t = tuple(float(v) for v in data["transform"][:6])
        return cls(str(data["crs"]), t, int(data["width"]), int(data["height"]))  # type: ignore[arg-type]


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
