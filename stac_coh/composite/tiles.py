"""Which pairs stack: one composite grid per output tile, every pair on its pixel lattice.

Pairs stack when their pixels coincide: same CRS, same pixel size, origins on the same
lattice (origin modulo pixel size). Items on the fixed output tile grid say so with
``grid:code``; older items (planned without it) are grouped by their lattice, then split
into clusters of overlapping footprints so two distant areas in one UTM zone do not make
one huge, empty grid. :func:`stack_key` is the one place that decides.

A tile's grid is the union of its pairs' grids, snapped to the lattice, so every pair
reads into it through an integer window: no resampling, the composite sees the pixels
the pairs published.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from affine import Affine

from stac_coh.composite.pairs import PairRecord
from stac_coh.errors import InputError

__all__ = ["Lattice", "TileStack", "group_tiles", "lattice_of", "stack_key"]

log = logging.getLogger(__name__)

_SNAP = 1e-3
"""Largest misfit, in pixels, of a pair's origin on its tile's lattice."""


@dataclass(frozen=True)
class Lattice:
    """A pixel lattice: CRS, pixel size, origin modulo pixel size."""

    crs: str
    """CRS of the pixels."""
    res_x: float
    """Pixel width in CRS units."""
    res_y: float
    """Pixel height in CRS units (positive; grids are north-up)."""
    offset_x: float
    """Origin x modulo ``res_x``."""
    offset_y: float
    """Origin y modulo ``res_y``."""

    @property
    def code(self) -> str:
        """Short stable name, e.g. ``EPSG32610-10m`` (offsets added when not zero)."""
        crs = self.crs.replace(":", "")
        if len(crs) > 24:  # a WKT: a short digest keeps the code stable across processes
            crs = "CRS" + hashlib.sha256(self.crs.encode()).hexdigest()[:10]
        res = f"{self.res_x:g}m" if self.res_x == self.res_y else f"{self.res_x:g}x{self.res_y:g}m"
        off = f"-o{self.offset_x:g}_{self.offset_y:g}" if self.offset_x or self.offset_y else ""
        return f"{crs}-{res}{off}"


def lattice_of(pair: PairRecord) -> Lattice:
    """The lattice of a pair's grid."""
    a, _, c, _, e, f = pair.transform
    rx, ry = abs(a), abs(e)
    return Lattice(pair.crs, rx, ry, _mod(c, rx), _mod(f, ry))


def stack_key(pair: PairRecord) -> str:
    """Which composite tile a pair feeds: its output-grid tile, else its pixel lattice."""
    return pair.grid_code or lattice_of(pair).code


@dataclass(frozen=True)
class TileStack:
    """One composite tile: a grid on one lattice and the pairs that fall on it."""

    code: str
    """Tile code: ``grid:code`` (``MGRS-33UXP``) or lattice and corner for untiled pairs."""
    grid_code: str | None
    """``grid:code`` of the tile, when its pairs carry one."""
    lattice: Lattice
    """The pixel lattice."""
    left: float
    """x of the grid's upper-left corner."""
    top: float
    """y of the grid's upper-left corner."""
    width: int
    """Columns."""
    height: int
    """Rows."""
    pairs: tuple[PairRecord, ...]
    """Pairs on the tile (every polarisation and period), sorted by time."""

    @property
    def transform(self) -> Affine:
        """Affine of the tile's grid."""
        return Affine(self.lattice.res_x, 0.0, self.left, 0.0, -self.lattice.res_y, self.top)

    @property
    def polarizations(self) -> tuple[str, ...]:
        """Polarisations of its pairs."""
        return tuple(sorted({p.polarization for p in self.pairs}))

    def window(self, pair: PairRecord) -> tuple[int, int, int, int]:
        """(row, col, height, width) of ``pair``'s grid in the tile's pixels."""
        _, _, c, _, _, f = pair.transform
        col = (c - self.left) / self.lattice.res_x
        row = (self.top - f) / self.lattice.res_y
        if abs(col - round(col)) > _SNAP or abs(row - round(row)) > _SNAP:
            raise InputError(
                f"Pair {pair.id} is not on the pixel lattice of tile {self.code}; "
                "was it published with another --resolution?"
            )
        return (round(row), round(col), pair.height, pair.width)


def group_tiles(pairs: Iterable[PairRecord]) -> list[TileStack]:
    """Group pairs into tiles (:func:`stack_key`), each with the union grid of its pairs."""
    groups: dict[tuple[str, Lattice], list[PairRecord]] = defaultdict(list)
    for pair in pairs:
        groups[(stack_key(pair), lattice_of(pair))].append(pair)
    lattices_per_key: dict[str, int] = defaultdict(int)
    for key, _ in groups:
        lattices_per_key[key] += 1
    tiles = []
    for (key, lattice), members in groups.items():
        grid_code = members[0].grid_code
        clusters = [members] if grid_code else _overlapping(members)
        for cluster in clusters:
            code = key
            if grid_code and lattices_per_key[key] > 1:
                code = f"{key}-{lattice.code}"
            tiles.append(_tile(code, grid_code, lattice, cluster))
    tiles.sort(key=lambda t: t.code)
    codes = [t.code for t in tiles]
    if len(set(codes)) != len(codes):
        raise InputError(f"Two composite tiles got the same code among {codes}; report this.")
    return tiles


def _tile(
    code: str, grid_code: str | None, lattice: Lattice, pairs: Sequence[PairRecord]
) -> TileStack:
    """The union grid of ``pairs`` on ``lattice``."""
    left = min(p.bounds[0] for p in pairs)
    bottom = min(p.bounds[1] for p in pairs)
    right = max(p.bounds[2] for p in pairs)
    top = max(p.bounds[3] for p in pairs)
    width = round((right - left) / lattice.res_x)
    height = round((top - bottom) / lattice.res_y)
    if not grid_code:
        code = f"{code}-{left:.0f}-{top:.0f}"
    ordered = tuple(sorted(pairs, key=lambda p: (p.start, p.id)))
    return TileStack(code, grid_code, lattice, left, top, width, height, ordered)


def _overlapping(pairs: Sequence[PairRecord]) -> list[list[PairRecord]]:
    """Clusters of pairs whose grids overlap or touch (union-find over an R-tree)."""
    import shapely
    from shapely.strtree import STRtree

    boxes = [shapely.box(*p.bounds) for p in pairs]
    tree = STRtree(boxes)
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    left, right = tree.query(boxes, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        parent[find(i)] = find(j)
    clusters: dict[int, list[PairRecord]] = defaultdict(list)
    for i, pair in enumerate(pairs):
        clusters[find(i)].append(pair)
    return list(clusters.values())


def _mod(value: float, step: float) -> float:
    """``value`` modulo ``step``, 0 when within a thousandth of a pixel of the lattice."""
    if step <= 0 or not math.isfinite(step):
        raise InputError(f"Pixel size {step} is not positive; the item's proj:transform is wrong.")
    rest = math.fmod(value, step)
    if rest < 0:
        rest += step
    if rest < _SNAP * step or step - rest < _SNAP * step:
        return 0.0
    return round(rest, 6)
