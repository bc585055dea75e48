"""Pair readers over raster files (``stac-coh predict``) and in-memory arrays.

:class:`RasterPairReader` puts two rasters on one grid: T1's grid, cropped to where T2
overlaps it. T2 is read as is when it shares T1's CRS and pixel grid (any extent), and is
otherwise warped onto T1's grid with a ``WarpedVRT``:

* bilinear interpolation when the two resolutions are comparable - smooth, and it keeps
  speckle statistics close to the original's at a similar pixel size;
* averaging when T2's pixels are at least 1.5x finer than T1's, because there bilinear
  would sample a few fine pixels and alias speckle, while the average is what a coarser
  sensor pixel would have measured.

Interpolation works in the file's own units (dB for ``--db`` inputs). Source nodata (or,
for linear files that declare none, zero power) is excluded from the interpolation.
"""

from __future__ import annotations

import math
from os import PathLike
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window

from stac_coh.errors import InputError, RasterReadError
from stac_coh.grid import OutputGrid

__all__ = ["ArrayPairReader", "RasterPairReader", "crs_string", "db_to_linear"]

PathLikeStr = str | PathLike[str]

AVERAGE_RATIO = 1.5
"""T2 pixels this much finer than T1's (or more) are averaged instead of interpolated."""

_SAMPLE_MIN = 100
"""Fewer valid values than this in a window do not decide the units check."""

_EDGE_TOLERANCE = 1e-6
"""Fraction of a pixel ignored when snapping the overlap to T1's pixel edges."""


def crs_string(crs: CRS) -> str:
    """``AUTHORITY:CODE`` when the CRS has one, else its WKT."""
    authority = crs.to_authority()
    return f"{authority[0]}:{authority[1]}" if authority else crs.to_wkt()


def _open(path: PathLikeStr, band: int, role: str) -> Any:
    """Open a raster and read one pixel, so unreadable files fail before any output exists."""
    from stac_coh.io.net import check_resolves

    check_resolves(str(path))  # GDAL would retry a host that does not resolve for ~50 s
    try:
        ds = rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise RasterReadError(
            f"Cannot open {role} raster {path}: {_gdal_reason(exc)}. Check that the path or "
            "URL exists and is readable by GDAL (for s3:// or https:// also check credentials)."
        ) from None
    try:
        if not 1 <= band <= ds.count:
            raise InputError(
                f"{role} raster {path} has {ds.count} band(s); --band {band} is not one."
            )
        if ds.crs is None:
            raise InputError(
                f"{role} raster {path} has no CRS; georeference it (e.g. gdal_translate -a_srs)."
            )
        ds.read(band, window=Window(0, 0, 1, 1))
    except RasterioError as exc:
        ds.close()
        raise RasterReadError(f"Cannot read {role} raster {path}: {_gdal_reason(exc)}") from None
    except BaseException:
        ds.close()
        raise
    return ds


_CORRUPT = ("Read error", "TIFFRead", "IReadBlock", "not recognized as", "Short read", "bytes")


def _gdal_reason(error: BaseException) -> str:
    """GDAL's own, most specific words in ``error``'s chain, plus what to do if corrupt.

    rasterio raises "Read failed. See previous exception for details." and chains what
    GDAL said; the last link holds the cause (e.g. "got 261942 bytes, expected 262144").
    """
    messages: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = " ".join(str(current).split())
        if text and "See previous exception" not in text:
            messages.append(text.rstrip("."))
        current = current.__cause__ or current.__context__
    reason = messages[-1] if messages else type(error).__name__
    if any(marker in m for m in messages for marker in _CORRUPT):
        reason += (
            ". The file looks truncated or corrupt (an interrupted download or copy?): "
            "fetch or export it again"
        )
    return reason + "."


def _integer_offset(t1: Any, t2: Any) -> tuple[int, int] | None:
    """(rows, cols) of T1's origin in T2's pixels when both share CRS and pixel grid."""
    a, b = t1.transform, t2.transform
    if t1.crs != t2.crs or not np.allclose(
        (a.a, a.b, a.d, a.e), (b.a, b.b, b.d, b.e), rtol=1e-9, atol=0
    ):
        return None
    col, row = ~b * (a.c, a.f)
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        return None
    return round(row), round(col)


def _snap_window(
    bounds: tuple[float, float, float, float], transform: Affine, height: int, width: int
) -> tuple[int, int, int, int]:
    """T1 pixel window (row0, col0, row1, col1) covering ``bounds``, clipped to T1."""
    inverse = ~transform
    xs, ys = zip(*(inverse * (x, y) for x in bounds[0::2] for y in bounds[1::2]), strict=True)
    col0 = max(0, math.floor(min(xs) + _EDGE_TOLERANCE))
    col1 = min(width, math.ceil(max(xs) - _EDGE_TOLERANCE))
    row0 = max(0, math.floor(min(ys) + _EDGE_TOLERANCE))
    row1 = min(height, math.ceil(max(ys) - _EDGE_TOLERANCE))
    return row0, col0, row1, col1


def _boundless(
    row_off: int, col_off: int, height: int, width: int, grid_h: int, grid_w: int
) -> tuple[Window, tuple[slice, slice]] | None:
    """Part of a window inside a (grid_h, grid_w) grid, and where it sits in the window."""
    r0, c0 = max(row_off, 0), max(col_off, 0)
    r1, c1 = min(row_off + height, grid_h), min(col_off + width, grid_w)
    if r0 >= r1 or c0 >= c1:
        return None
    inner = (slice(r0 - row_off, r1 - row_off), slice(c0 - col_off, c1 - col_off))
    return Window(c0, r0, c1 - c0, r1 - r0), inner


def _to_linear(values: npt.NDArray[np.floating], db: bool) -> npt.NDArray[np.float32]:
    """dB -> linear if asked; NaN wherever the power is not finite and positive."""
    values = np.array(values, dtype=np.float32)
    if db:
        values = db_to_linear(values)
    with np.errstate(invalid="ignore"):
        values[~(np.isfinite(values) & (values > 0))] = np.nan
    return values


class RasterPairReader:
    """Two rasters (paths or GDAL URLs) read as a :class:`~stac_coh.grid.PairReader`.

    Args:
        t1_path: the earlier image; its grid (cropped to the overlap) is the output grid.
        t2_path: the later image, resampled onto T1's grid when the grids differ.
        db: the files hold dB (``10 log10`` of power) rather than linear power.
        band: band of each file to read (1-based).
        check_units: raise :class:`InputError` when the values do not look like what
            ``db`` says (mostly negative without it: dB; none negative with it: linear).

    Raises:
        RasterReadError: a file is missing or unreadable (raised here, before any output).
        InputError: the files do not overlap, lack a CRS, or lack the band.
    """

    def __init__(
        self,
        t1_path: PathLikeStr,
        t2_path: PathLikeStr,
        *,
        db: bool = False,
        band: int = 1,
        check_units: bool = False,
    ) -> None:
        self.paths = (str(t1_path), str(t2_path))
        self.db = db
        self.band = band
        self.check_units = check_units
        self._units_known = [False, False]
        self._datasets: list[Any] = []
        try:
            self._t1 = self._keep(_open(t1_path, band, "T1"))
            self._t2 = self._keep(_open(t2_path, band, "T2"))
            self._setup()
        except BaseException:
            self.close()
            raise

    def _keep(self, ds: Any) -> Any:
        self._datasets.append(ds)
        return ds

    def _setup(self) -> None:
        """Choose how T2 is read (direct or warped) and crop T1's grid to the overlap."""
        t1, t2 = self._t1, self._t2
        offset = _integer_offset(t1, t2)
        self.resampling: Resampling | None = None
        if offset is not None:
            self._t2_view, self._t2_offset = t2, offset
            r, c = offset
            bounds_rows = (-r, t2.height - r)
            bounds_cols = (-c, t2.width - c)
            row0, row1 = max(0, bounds_rows[0]), min(t1.height, bounds_rows[1])
            col0, col1 = max(0, bounds_cols[0]), min(t1.width, bounds_cols[1])
        else:
            self.resampling = self._choose_resampling()
            self._t2_view = self._keep(self._warped())
            self._t2_offset = (0, 0)
            t2_bounds = transform_bounds(t2.crs, t1.crs, *t2.bounds, densify_pts=21)
            row0, col0, row1, col1 = _snap_window(t2_bounds, t1.transform, t1.height, t1.width)
        if row1 <= row0 or col1 <= col0:
            raise InputError(
                f"T1 {self.paths[0]} and T2 {self.paths[1]} do not overlap; "
                "give two images of the same place."
            )
        self._origin = (row0, col0)
        transform = t1.window_transform(Window(col0, row0, col1 - col0, row1 - row0))
        self._grid = OutputGrid(
            crs_string(t1.crs),
            tuple(transform)[:6],
            col1 - col0,
            row1 - row0,
        )

    def _choose_resampling(self) -> Resampling:
        """Average when T2 is much finer than T1 (see the module docstring), else bilinear."""
        t1, t2 = self._t1, self._t2
        t2_in_t1, _w, _h = calculate_default_transform(
            t2.crs, t1.crs, t2.width, t2.height, *t2.bounds
        )
        t1_size = math.sqrt(abs(t1.transform.determinant))
        t2_size = math.sqrt(abs(t2_in_t1.determinant))
        return Resampling.average if t1_size >= AVERAGE_RATIO * t2_size else Resampling.bilinear

    def _warped(self) -> WarpedVRT:
        """T2 on T1's full grid, float32, NaN outside T2 and where T2 has no data."""
        t1, t2 = self._t1, self._t2
        src_nodata = t2.nodata
        if src_nodata is None:
            # Zero power is no data in a linear file; in a dB file 0 dB is a real value.
            src_nodata = math.nan if self.db else 0.0
        return WarpedVRT(
            t2,
            crs=t1.crs,
            transform=t1.transform,
            width=t1.width,
            height=t1.height,
            resampling=self.resampling,
            src_nodata=src_nodata,
            nodata=math.nan,
            dtype="float32",
        )

    @property
    def grid(self) -> OutputGrid:
        """T1's grid cropped to the overlap of T1 and T2."""
        return self._grid

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """(2, height, width) float32 linear power; NaN outside the grid and where no data."""
        out = np.full((2, height, width), np.nan, dtype=np.float32)
        part = _boundless(row_off, col_off, height, width, self._grid.height, self._grid.width)
        if part is None:
            return out
        window, inner = part
        r0, c0 = self._origin
        t1_win = Window(window.col_off + c0, window.row_off + r0, window.width, window.height)
        dr, dc = self._t2_offset
        t2_win = Window(t1_win.col_off + dc, t1_win.row_off + dr, window.width, window.height)
        out[(0, *inner)] = self._read_one(self._t1, t1_win, 0)
        out[(1, *inner)] = self._read_one(self._t2_view, t2_win, 1)
        return out

    def _read_one(self, ds: Any, window: Window, index: int) -> npt.NDArray[np.float32]:
        """Read one band window with nodata as NaN, converted to linear power."""
        path = self.paths[index]
        try:
            data = ds.read(self.band, window=window, masked=True, out_dtype="float32")
        except RasterioError as exc:
            raise RasterReadError(f"Reading {path} failed: {_gdal_reason(exc)}") from None
        raw = np.ma.filled(data, np.nan)
        if self.check_units and not self._units_known[index]:
            self._check_units(raw, index)
        return _to_linear(raw, self.db)

    def _check_units(self, raw: npt.NDArray[np.float32], index: int) -> None:
        """Refuse values that do not look like what ``db`` says (decided on the first
        window with enough valid values, so it costs no extra read).

        Backscatter in dB is mostly negative (sigma0 of land and sea lies around -25 to
        0 dB); linear power is never negative. Read as linear, a dB image is almost all no
        data (only positive dB values survive); read as dB, a linear image comes out flat.
        """
        values = raw[np.isfinite(raw) & (raw != 0)]
        if values.size < _SAMPLE_MIN:
            return  # mostly no data here: decide on a later window
        self._units_known[index] = True
        role, path = ("T1", "T2")[index], self.paths[index]
        negative = float(np.mean(values < 0))
        median = float(np.median(values))
        if not self.db and negative > 0.5:
            raise InputError(
                f"{role} {path} looks like dB ({negative:.0%} of its values are negative, "
                f"median {median:.1f}): add --db. Read as linear power it would be almost "
                "all no data."
            )
        if self.db and negative < 0.01 and median < 1.0:
            raise InputError(
                f"{role} {path} looks like linear power, not dB (no negative values, median "
                f"{median:.3g}): drop --db."
            )

    def close(self) -> None:
        """Close the files (warped view first)."""
        while self._datasets:
            self._datasets.pop().close()

    def __enter__(self) -> RasterPairReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ArrayPairReader:
    """Two in-memory (H, W) images of linear power as a :class:`~stac_coh.grid.PairReader`."""

    def __init__(
        self, t1: npt.ArrayLike, t2: npt.ArrayLike, grid: OutputGrid | None = None
    ) -> None:
        a1, a2 = np.asarray(t1), np.asarray(t2)
        if a1.ndim != 2 or a1.shape != a2.shape:
            raise InputError(
                f"t1 and t2 must be 2-D and equal in shape, got {a1.shape}, {a2.shape}."
            )
        self._data = np.stack([_to_linear(a1, False), _to_linear(a2, False)])
        height, width = a1.shape
        self._grid = grid or OutputGrid(
            "EPSG:3857", (1.0, 0.0, 0.0, 0.0, -1.0, float(height)), width, height
        )
        if self._grid.shape != a1.shape:
            raise InputError(f"grid shape {self._grid.shape} differs from the images' {a1.shape}.")

    @property
    def grid(self) -> OutputGrid:
        """The grid (a unit pixel grid unless given)."""
        return self._grid

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """(2, height, width) float32 linear power; NaN outside the images."""
        out = np.full((2, height, width), np.nan, dtype=np.float32)
        part = _boundless(row_off, col_off, height, width, *self._grid.shape)
        if part is not None:
            window, inner = part
            rows, cols = window.toslices()
            out[(slice(None), *inner)] = self._data[:, rows, cols]
        return out

    def close(self) -> None:
        """Nothing to release."""


def db_to_linear(db: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Convert dB to linear power (for inputs given in dB, e.g. Earth Engine exports)."""
    return np.power(np.float32(10.0), np.asarray(db, dtype=np.float32) / np.float32(10.0))
