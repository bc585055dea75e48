"""Geocode radar-geometry GRD windows onto a map grid with the product's GCPs.

**Which mapping.** Image (row, col) <-> longitude/latitude is GDAL's thin-plate spline
through the geolocation grid points (``GCPTransformer(tps=True)``), not a global
polynomial. Each grid point was located at its own terrain height, so the grid is not
smooth where the ground is not flat: on the two real IW GRDH annotations in our test
fixtures a least-squares polynomial misses its own grid points by a median 117-196 m
(order 3) to 180-280 m (order 2), p95 400-770 m, while the spline passes through every
point exactly and, between points, is as close as ESA's bilinear interpolation of the
grid (held-out points: median about 100-120 m for both). What remains between grid
points is relief displacement that only a DEM removes (see ``docs/inputs.md``).

**How pixels move.** The spline is evaluated exactly on a lattice of output pixels
anchored to the *grid* (every :data:`LATTICE_STEP` rows and columns) and interpolated
bilinearly in between (the mapping is smooth at that scale: well under 0.01 px of
error), then the calibrated sigma0 is sampled bilinearly. GDAL's warper was not used
because it approximates the transformation per processing chunk (0.125 px tolerance,
which rasterio 1.4's ``reproject`` does not expose) and sizes its kernel from each
chunk's shape: the same output pixel came out a few percent different depending on the
tile it was read in. Anchoring the lattice to the grid makes every read of a pixel
identical, so tiles with halos stitch exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pyproj import Geod
from rasterio.control import GroundControlPoint
from rasterio.transform import GCPTransformer
from rasterio.warp import transform
from rasterio.windows import Window

from stac_coh.errors import AnnotationError
from stac_coh.grid import OutputGrid

__all__ = ["LATTICE_STEP", "GcpGeocoder", "GridWindow", "SourceCoords"]

LATTICE_STEP = 16
"""Output pixels between two exact evaluations of the spline (both axes)."""

_MARGIN = 2
"""Source pixels read beyond the sampled footprint (bilinear needs one neighbour)."""

_MIN_WEIGHT = 0.5
"""A sample needs this much bilinear weight on valid pixels, else it is NaN.

Keeps data edges (swath borders, DN == 0) within half a pixel of where they are.
"""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GridWindow:
    """A window of the output grid: rows/cols may reach past the grid (halo tiles)."""

    row_off: int
    """First row."""
    col_off: int
    """First column."""
    height: int
    """Rows."""
    width: int
    """Columns."""


@dataclass(frozen=True, eq=False)
class SourceCoords:
    """Where each output pixel centre of a window lies in the radar image."""

    rows: FloatArray
    """(height, width) source row, GDAL image coordinates (0 = top edge of the image)."""
    cols: FloatArray
    """(height, width) source column, GDAL image coordinates."""


@dataclass(frozen=True)
class GcpGeocoder:
    """Maps one GRD image's pixels to a map grid through its GCPs (thin-plate spline)."""

    gcps: tuple[GroundControlPoint, ...]
    """GCPs in GDAL image coordinates (corner of the first pixel at 0, 0)."""
    gcp_crs: str
    """CRS of the GCPs' x/y (``EPSG:4326`` for Sentinel-1)."""
    image_width: int
    """Columns of the radar-geometry image."""
    image_height: int
    """Rows of the radar-geometry image."""

    @classmethod
    def from_gcps(
        cls,
        gcps: Sequence[GroundControlPoint],
        image_width: int,
        image_height: int,
        gcp_crs: str = "EPSG:4326",
    ) -> GcpGeocoder:
        """Build from any GCP sequence (e.g. ``dataset.gcps[0]``)."""
        return cls(tuple(gcps), gcp_crs, image_width, image_height)

    def pixel_spacing_m(self) -> float:
        """Mean ground distance between neighbouring pixels, measured between GCPs."""
        geod = Geod(ellps="WGS84")
        rows = np.array([g.row for g in self.gcps])
        spacings = []
        for along_row in (True, False):
            key = rows if along_row else np.array([g.col for g in self.gcps])
            line = [g for g, k in zip(self.gcps, key, strict=True) if k == key[0]]
            if len(line) < 2:
                continue
            a, b = line[0], line[-1]
            pixels = abs((b.col - a.col) if along_row else (b.row - a.row))
            if pixels > 0:
                spacings.append(geod.inv(a.x, a.y, b.x, b.y)[2] / pixels)
        if not spacings:
            raise AnnotationError(
                "Cannot measure the pixel spacing of the GRD product: its geolocation grid "
                "points are not on a regular grid; is the annotation complete?"
            )
        return float(np.mean(spacings))

    def source_coords(self, grid: OutputGrid, window: GridWindow) -> SourceCoords:
        """Radar-image position of every output pixel centre of ``window``."""
        row_nodes, row_idx, row_t = _lattice_axis(window.row_off, window.height)
        col_nodes, col_idx, col_t = _lattice_axis(window.col_off, window.width)
        cc, rr = np.meshgrid(col_nodes + 0.5, row_nodes + 0.5)
        # affine maps arrays element-wise; its type hints only know tuples of floats.
        xs, ys = grid.affine * (cc.ravel(), rr.ravel())  # type: ignore[operator]
        lon, lat = transform(grid.rasterio_crs, self.gcp_crs, list(xs), list(ys))
        with GCPTransformer(list(self.gcps), tps=True) as tps:
            node_rows, node_cols = tps.rowcol(lon, lat, op=np.positive)
        shape = (row_nodes.size, col_nodes.size)
        return SourceCoords(
            rows=_bilinear_nodes(
                np.asarray(node_rows).reshape(shape), row_idx, row_t, col_idx, col_t
            ),
            cols=_bilinear_nodes(
                np.asarray(node_cols).reshape(shape), row_idx, row_t, col_idx, col_t
            ),
        )

    def source_window(self, coords: SourceCoords, block: int = 1) -> Window | None:
        """Image window holding every sampled position (plus a margin); None if outside.

        The window's offset and size are multiples of ``block`` (aligned to the image) so
        block averages are the same whichever output window asked for them.
        """
        inside = (
            (coords.rows > -1)
            & (coords.rows < self.image_height + 1)
            & (coords.cols > -1)
            & (coords.cols < self.image_width + 1)
        )
        if not inside.any():
            return None
        margin = _MARGIN * block
        row0 = _floor_to(max(0, math.floor(coords.rows[inside].min()) - margin), block)
        col0 = _floor_to(max(0, math.floor(coords.cols[inside].min()) - margin), block)
        row1 = min(
            self.image_height, _ceil_to(math.ceil(coords.rows[inside].max()) + margin, block)
        )
        col1 = min(self.image_width, _ceil_to(math.ceil(coords.cols[inside].max()) + margin, block))
        if row1 <= row0 or col1 <= col0:
            return None
        return Window(col0, row0, col1 - col0, row1 - row0)

    def sample(
        self,
        source: npt.NDArray[np.float32],
        source_window: Window,
        coords: SourceCoords,
        block: int = 1,
    ) -> npt.NDArray[np.float32]:
        """Bilinear samples of ``source`` (read at ``source_window``) at ``coords``.

        With ``block`` > 1 the source is first averaged over ``block`` x ``block`` pixels
        (for output pixels that much coarser than the GRD spacing). NaN in the source is
        nodata; samples without enough valid weight are NaN.
        """
        data = _block_mean(np.asarray(source, dtype=np.float32), block)
        y = (coords.rows - source_window.row_off) / block - 0.5
        x = (coords.cols - source_window.col_off) / block - 0.5
        return _bilinear_sample(data, y, x)


def _lattice_axis(start: int, size: int) -> tuple[FloatArray, npt.NDArray[np.intp], FloatArray]:
    """Lattice nodes (multiples of the step) covering ``start .. start+size-1``.

    Returns the node positions, and for each pixel the index of the node at or before
    it and the fractional distance to the next node.
    """
    step = LATTICE_STEP
    first = (start // step) * step
    last = max(-(-(start + size - 1) // step) * step, first + step)
    nodes = np.arange(first, last + 1, step, dtype=np.float64)
    pixels = np.arange(start, start + size, dtype=np.float64)
    idx = np.minimum(((pixels - first) // step).astype(np.intp), nodes.size - 2)
    return nodes, idx, (pixels - nodes[idx]) / step


def _bilinear_nodes(
    values: FloatArray,
    row_idx: npt.NDArray[np.intp],
    row_t: FloatArray,
    col_idx: npt.NDArray[np.intp],
    col_t: FloatArray,
) -> FloatArray:
    """Interpolate lattice node values to every pixel of the window."""
    top = values[row_idx][:, col_idx] * (1 - col_t) + values[row_idx][:, col_idx + 1] * col_t
    bottom = (
        values[row_idx + 1][:, col_idx] * (1 - col_t) + values[row_idx + 1][:, col_idx + 1] * col_t
    )
    return top * (1 - row_t)[:, None] + bottom * row_t[:, None]


def _bilinear_sample(
    data: npt.NDArray[np.float32], y: FloatArray, x: FloatArray
) -> npt.NDArray[np.float32]:
    """NaN-aware bilinear interpolation of ``data`` at continuous indices (y, x)."""
    height, width = data.shape
    # A NaN frame (1 before, 2 after) lets every neighbour index be gathered unchecked.
    stride = width + 3
    framed = np.full((height + 3, stride), np.nan, dtype=np.float32)
    framed[1 : height + 1, 1 : width + 1] = data
    flat = framed.ravel()
    y0 = np.floor(y)
    x0 = np.floor(x)
    fy = (y - y0).astype(np.float32)
    fx = (x - x0).astype(np.float32)
    base = (np.clip(y0, -1, height).astype(np.intp) + 1) * stride + (
        np.clip(x0, -1, width).astype(np.intp) + 1
    )
    num = np.zeros(y.shape, dtype=np.float32)
    den = np.zeros(y.shape, dtype=np.float32)
    for offset, weight in (
        (0, (1 - fy) * (1 - fx)),
        (1, (1 - fy) * fx),
        (stride, fy * (1 - fx)),
        (stride + 1, fy * fx),
    ):
        value = flat[base + offset]
        ok = ~np.isnan(value)
        num += np.where(ok, weight * value, 0.0)
        den += np.where(ok, weight, 0.0)
    # Clipping moved points far outside onto the frame; they have no data.
    far = (y < -1) | (y >= height) | (x < -1) | (x >= width)
    good = (den >= _MIN_WEIGHT) & ~far
    out = np.full(y.shape, np.nan, dtype=np.float32)
    out[good] = num[good] / den[good]
    return out


def _block_mean(data: npt.NDArray[np.float32], block: int) -> npt.NDArray[np.float32]:
    """NaN-aware mean over ``block`` x ``block`` cells (partial cells at the far edges)."""
    if block == 1:
        return data
    height, width = data.shape
    rows, cols = -(-height // block), -(-width // block)
    padded = np.full((rows * block, cols * block), np.nan, dtype=np.float32)
    padded[:height, :width] = data
    cells = padded.reshape(rows, block, cols, block)
    valid = np.isfinite(cells)
    total = np.where(valid, cells, 0.0).sum(axis=(1, 3))
    count = valid.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


def _floor_to(value: int, multiple: int) -> int:
    """``value`` rounded down to a multiple of ``multiple``."""
    return (value // multiple) * multiple


def _ceil_to(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return -(-value // multiple) * multiple
