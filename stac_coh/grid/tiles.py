"""The fixed, global output tile grid that cuts pairs into work units.

The default grid is MGRS's: 100 km squares of the UTM zone a place belongs to (Norway and
Svalbard exceptions included), and of Universal Polar Stereographic north of 84 N and
south of 80 S, named by their MGRS code (``MGRS-33UXP``, what Sentinel-2 users know).
Squares start at each zone's false origin (multiples of 100 km in its CRS), so

- every point of the Earth belongs to exactly one tile (a tile is its square clipped to
  its zone's longitudes and hemisphere), and
- pixel edges lie on multiples of the resolution in the zone's CRS: every pair over a
  tile is on the same pixel lattice and stacks in time without resampling.

A caller that asks for its own CRS gets the same cut in that one CRS
(:class:`CRSTileGrid`, codes like ``EPSG3031-X-12Y5``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any, Protocol

import numpy as np
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from stac_coh.errors import InputError
from stac_coh.grid.output import OutputGrid

__all__ = [
    "TILE_SIZE_M",
    "CRSTileGrid",
    "MGRSTileGrid",
    "Tile",
    "TileGrid",
    "TilePiece",
    "areal_part",
    "tile_grid_for",
]

TILE_SIZE_M = 100_000.0
"""Edge of a tile in metres: MGRS's 100 km square (100 MP at Sentinel-1's 10 m)."""

UTM_NORTH_LIMIT = 84.0
"""MGRS uses UTM up to 84 N, UPS beyond."""
UTM_SOUTH_LIMIT = -80.0
"""MGRS uses UTM down to 80 S, UPS beyond."""

_DENSIFY_DEG = 0.05
"""Longest lon/lat segment projected as a straight line (meridians curve in UTM)."""

LonLatBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Tile:
    """One square of the tile grid."""

    code: str
    """``grid:code`` value: designation, hyphen, code (``MGRS-33UXP``)."""
    crs: str
    """CRS of the tile and of every raster on it (``EPSG:32633``)."""
    index: tuple[int, int]
    """(column, row) of the square in its zone's ``GridSpec`` (tile_size units from the
    CRS origin)."""
    bounds: tuple[float, float, float, float]
    """The square (left, bottom, right, top) in ``crs``."""

    @property
    def name(self) -> str:
        """The code without its designation (``33UXP``): what ids and paths use."""
        return self.code.split("-", 1)[1]

    def grid(self, resolution: float) -> OutputGrid:
        """The whole tile on its pixel lattice (what composites of the tile load onto)."""
        return OutputGrid.from_bounds(self.crs, self.bounds, resolution)


@dataclass(frozen=True)
class TilePiece:
    """The part of an area inside one tile, and the raster grid that covers it."""

    tile: Tile
    """The tile."""
    area: BaseGeometry
    """The part, lon/lat (EPSG:4326)."""
    grid: OutputGrid
    """Bounds of the part snapped outward to the tile's pixel lattice, within the tile."""


class TileGrid(Protocol):
    """Cuts lon/lat areas into per-tile pieces on a fixed lattice."""

    name: str
    """Designation in ``grid:code`` (``MGRS``)."""

    def pieces(self, area: BaseGeometry, resolution: float) -> list[TilePiece]:
        """The non-empty parts of ``area`` (lon/lat) per tile, with their grids."""
        ...


@dataclass(frozen=True)
class _Zone:
    """One projection zone: its CRS, where it applies (lon/lat boxes) and its squares."""

    crs: str
    """``EPSG:326zz``, ``EPSG:327zz``, ``EPSG:32661`` or ``EPSG:32761``."""
    boxes: tuple[LonLatBox, ...]
    """(W, S, E, N) boxes whose union is where the zone applies."""
    tile_size: float = TILE_SIZE_M
    """Edge of a square in CRS units."""
    region: BaseGeometry = field(init=False, repr=False, compare=False)
    """Union of ``boxes``."""

    def __post_init__(self) -> None:
        region = shapely.union_all([shapely.geometry.box(*b) for b in self.boxes])
        object.__setattr__(self, "region", region)

    @cached_property
    def to_crs(self) -> Any:
        """lon/lat -> zone CRS, vectorised for ``shapely.transform``."""
        return _transformer("EPSG:4326", self.crs)

    @cached_property
    def to_lonlat(self) -> Any:
        """zone CRS -> lon/lat, vectorised for ``shapely.transform``."""
        return _transformer(self.crs, "EPSG:4326")


class _ZonedTileGrid:
    """Squares of several zones, each zone applying to its own lon/lat region."""

    name = "MGRS"

    def __init__(self, zones: Sequence[_Zone]) -> None:
        self.zones = tuple(zones)
        self._bounds = np.array([z.region.bounds for z in self.zones])

    def pieces(self, area: BaseGeometry, resolution: float) -> list[TilePiece]:
        """The non-empty parts of ``area`` (lon/lat) per tile, with their grids."""
        _check_resolution(resolution)
        w, s, e, n = area.bounds
        b = self._bounds
        near = np.nonzero((b[:, 0] < e) & (b[:, 2] > w) & (b[:, 1] < n) & (b[:, 3] > s))[0]
        out: list[TilePiece] = []
        for k in near:
            zone = self.zones[int(k)]
            part = areal_part(area.intersection(zone.region))
            if part is not None:
                out.extend(self._zone_pieces(zone, part, resolution))
        return out

    def _zone_pieces(self, zone: _Zone, part: BaseGeometry, resolution: float) -> list[TilePiece]:
        """Cut one zone's part of the area by the zone's squares (vectorised)."""
        # Rounded to 1 mm, so an edge on a zone's central meridian falls exactly on the
        # square edge there (no sliver stretching a unit's grid over the whole square).
        projected = shapely.transform(
            shapely.segmentize(part, max_segment_length=_DENSIFY_DEG),
            lambda c: np.round(zone.to_crs(c), 3),
        )
        size = zone.tile_size
        x0, y0, x1, y1 = projected.bounds
        cols = np.arange(math.floor(x0 / size), math.ceil(x1 / size))
        rows = np.arange(math.floor(y0 / size), math.ceil(y1 / size))
        ix, iy = (a.ravel() for a in np.meshgrid(cols, rows))
        squares = shapely.box(ix * size, iy * size, (ix + 1) * size, (iy + 1) * size)
        shapely.prepare(projected)
        hit = shapely.intersects(projected, squares)
        ix, iy, squares = ix[hit], iy[hit], squares[hit]
        cut = shapely.intersection(projected, squares)
        # Edges shared with a square edge come back as lines beside the polygon: drop them.
        mixed = np.nonzero(shapely.get_type_id(cut) == 7)[0]
        for k in mixed:
            cut[k] = areal_part(cut[k]) or shapely.geometry.Polygon()
        keep = shapely.area(cut) >= resolution * resolution * 1e-3
        ix, iy, cut = ix[keep], iy[keep], cut[keep]
        # Back to lon/lat, rounded to ~1 cm (7 decimals): manifests stay small.
        lonlat = shapely.transform(cut, lambda c: np.round(zone.to_lonlat(c), 7))
        return [
            TilePiece(
                self.tile(zone, int(i), int(j)),
                ll,
                _snapped_grid(zone.crs, piece.bounds, (i, j), size, resolution),
            )
            for i, j, piece, ll in zip(ix, iy, cut, lonlat, strict=True)
            if not ll.is_empty
        ]

    def tile(self, zone: _Zone, col: int, row: int) -> Tile:
        """The tile of square (col, row) of ``zone``."""
        return _tile(self, zone, col, row)


@cache
def _tile(grid: _ZonedTileGrid, zone: _Zone, col: int, row: int) -> Tile:
    """Tile of a square, its MGRS code read at a point of the square inside the zone."""
    size = zone.tile_size
    bounds = (col * size, row * size, (col + 1) * size, (row + 1) * size)
    square = shapely.segmentize(shapely.geometry.box(*bounds), size / 50)
    inside = areal_part(shapely.transform(square, zone.to_lonlat).intersection(zone.region))
    if inside is None:
        raise InputError(f"Square {col},{row} of {zone.crs} lies outside its zone.")
    # An edge on a zone boundary can leave a sliver of rounding width: shave it off, so
    # the point lies where the square really is in this zone.
    inside = areal_part(inside.buffer(-1e-6)) or inside
    parts = list(getattr(inside, "geoms", [inside]))
    point = max(parts, key=lambda g: g.area).representative_point()
    code = _mgrs(point.y, point.x)
    return Tile(f"{grid.name}-{code}", zone.crs, (col, row), bounds)


def _mgrs(lat: float, lon: float) -> str:
    """MGRS code of the 100 km square holding (lat, lon), e.g. ``33UXP`` or ``ZAH``."""
    import mgrs

    return str(mgrs.MGRS().toMGRS(lat, lon, MGRSPrecision=0))


class MGRSTileGrid(_ZonedTileGrid):
    """MGRS 100 km squares: UTM zones (with the Norway/Svalbard exceptions) and UPS."""

    def __init__(self) -> None:
        zones = [_Zone(f"EPSG:{32600 + z}", _north_boxes(z)) for z in range(1, 61)]
        zones += [
            _Zone(f"EPSG:{32700 + z}", (_zone_box(z, UTM_SOUTH_LIMIT, 0.0),)) for z in range(1, 61)
        ]
        zones.append(_Zone("EPSG:32661", ((-180.0, UTM_NORTH_LIMIT, 180.0, 90.0),)))
        zones.append(_Zone("EPSG:32761", ((-180.0, -90.0, 180.0, UTM_SOUTH_LIMIT),)))
        super().__init__([z for z in zones if z.boxes])


class CRSTileGrid(_ZonedTileGrid):
    """The same 100 km cut in one CRS the caller chose (codes ``EPSG3031-X-12Y5``)."""

    def __init__(self, crs: str) -> None:
        from pyproj import CRS

        parsed = CRS.from_user_input(crs)
        epsg = parsed.to_epsg()
        if not parsed.is_projected or epsg is None:
            raise InputError(
                f"--crs {crs!r} must be a projected CRS with an EPSG code (metres), e.g. "
                "EPSG:3031 (Antarctic polar stereographic) or EPSG:32633 (UTM 33N)."
            )
        self.name = f"EPSG{epsg}"
        # The whole globe: the caller chose this CRS for its area, wherever that is.
        super().__init__([_Zone(f"EPSG:{epsg}", ((-180.0, -90.0, 180.0, 90.0),))])

    def tile(self, zone: _Zone, col: int, row: int) -> Tile:
        """Tile (col, row), named by its indices."""
        size = zone.tile_size
        bounds = (col * size, row * size, (col + 1) * size, (row + 1) * size)
        return Tile(f"{self.name}-X{col}Y{row}", zone.crs, (col, row), bounds)


@cache
def tile_grid_for(crs: str | None = None) -> TileGrid:
    """The MGRS grid, or the 100 km cut of one CRS when the caller chose one."""
    return MGRSTileGrid() if crs is None else CRSTileGrid(crs)


def _north_boxes(zone: int) -> tuple[LonLatBox, ...]:
    """Where northern UTM zone ``zone`` applies: 6 degrees wide, but MGRS widens 32V to
    3-12 E and, in band X (72-84 N), gives 31/33/35/37 nine or twelve degrees and
    32/34/36 none."""
    lon0 = (zone - 1) * 6.0 - 180.0
    default = (lon0, lon0 + 6.0)
    band_v = {31: (0.0, 3.0), 32: (3.0, 12.0)}.get(zone, default)
    band_x: tuple[float, float] | None = {
        31: (0.0, 9.0),
        32: None,
        33: (9.0, 21.0),
        34: None,
        35: (21.0, 33.0),
        36: None,
        37: (33.0, 42.0),
    }.get(zone, default)
    boxes = [(default[0], 0.0, default[1], 56.0), (band_v[0], 56.0, band_v[1], 64.0)]
    boxes.append((default[0], 64.0, default[1], 72.0))
    if band_x is not None:
        boxes.append((band_x[0], 72.0, band_x[1], UTM_NORTH_LIMIT))
    return tuple(boxes)


def _zone_box(zone: int, south: float, north: float) -> LonLatBox:
    """The plain 6-degree box of UTM zone ``zone`` between two latitudes."""
    lon0 = (zone - 1) * 6.0 - 180.0
    return (lon0, south, lon0 + 6.0, north)


def _snapped_grid(
    crs: str,
    bounds: tuple[float, float, float, float],
    index: tuple[int, int],
    size: float,
    resolution: float,
) -> OutputGrid:
    """Bounds snapped outward to the zone's lattice, kept inside the (snapped) square."""
    col, row = index
    left, bottom, right, top = bounds
    res = resolution
    sq_left = math.floor(col * size / res + 1e-9) * res
    sq_right = math.ceil((col + 1) * size / res - 1e-9) * res
    sq_bottom = math.floor(row * size / res + 1e-9) * res
    sq_top = math.ceil((row + 1) * size / res - 1e-9) * res
    left = max(sq_left, math.floor(left / res + 1e-9) * res)
    right = min(sq_right, math.ceil(right / res - 1e-9) * res)
    bottom = max(sq_bottom, math.floor(bottom / res + 1e-9) * res)
    top = min(sq_top, math.ceil(top / res - 1e-9) * res)
    width = max(1, round((right - left) / res))
    height = max(1, round((top - bottom) / res))
    return OutputGrid(crs, (res, 0.0, left, 0.0, -res, top), width, height)


def _check_resolution(resolution: float) -> None:
    """A pixel size the grid can use: positive, at most a tile."""
    if not (0 < resolution <= TILE_SIZE_M) or not math.isfinite(resolution):
        raise InputError(
            f"Resolution {resolution} m must be positive and at most the tile size "
            f"({TILE_SIZE_M:g} m)."
        )


def areal_part(geom: BaseGeometry) -> BaseGeometry | None:
    """Only the areal part of ``geom`` (an intersection may add points and lines); ``None``
    when nothing of area is left."""
    if geom.is_empty:
        return None
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        geom = shapely.union_all(parts) if parts else shapely.geometry.Polygon()
    return None if geom.is_empty or geom.area <= 0 else geom


@cache
def _transformer(src: str, dst: str) -> Any:
    """A vectorised coordinate function for ``shapely.transform`` (built once per CRS pair)."""
    from pyproj import Transformer

    transformer = Transformer.from_crs(src, dst, always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return project
