"""Pairs of passes cut by the fixed tile grid into work units: one per (pair, tile).

A work unit is a :class:`~stac_coh.search.manifest.Pair` like any other (loaders,
inference and publishing see one grid per unit), restricted to one tile of
:mod:`stac_coh.grid.tiles`: its area is the pair's area inside the tile, its grid covers
that part on the tile's pixel lattice, its acquisitions list only the slices touching it,
and its id and ``tile`` name the tile. A small area inside one tile gives one unit per
pair, its grid covering just the area, as before the tile grid existed.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from stac_coh.grid import TileGrid, TilePiece, tile_grid_for
from stac_coh.search.manifest import Pair, pair_id
from stac_coh.search.passes import Pass, PassPair, acquisition_of
from stac_coh.search.query import SearchQuery
from stac_coh.search.slices import Slice

__all__ = [
    "DEFAULT_RESOLUTION_M",
    "TilingSummary",
    "iter_units",
    "pair_resolution",
    "summarize_units",
    "tile_pair",
]

DEFAULT_RESOLUTION_M = 10.0
"""Pixel size when neither the user nor the item says (Sentinel-1 GRD/RTC is 10 m)."""


def tile_pair(pair: PassPair, query: SearchQuery, tiles: TileGrid | None = None) -> list[Pair]:
    """The work units of one pair of passes: its area cut by the tile grid."""
    tiles = tiles or tile_grid_for(query.crs)
    resolution = pair_resolution(pair.reference, query)
    pieces = tiles.pieces(pair.area, resolution)
    if not pieces:
        return []
    areas = np.array([piece.area for piece in pieces], dtype=object)
    ref_slices = _touching(pair.reference, areas)
    sec_slices = _touching(pair.secondary, areas)
    shapes = [json.loads(text) for text in shapely.to_geojson(areas)]
    units = []
    for piece, shape, ref, sec in zip(pieces, shapes, ref_slices, sec_slices, strict=True):
        if ref and sec:  # a pass that only grazes a tile gives no unit there
            units.append(_unit(pair, piece, shape, ref, sec, query))
    return units


def iter_units(
    pairs: Iterable[PassPair], query: SearchQuery, tiles: TileGrid | None = None
) -> Iterator[Pair]:
    """Work units of many pairs, pair after pair (memory: one pair's units at a time)."""
    tiles = tiles or tile_grid_for(query.crs)
    for pair in pairs:
        yield from tile_pair(pair, query, tiles)


def pair_resolution(ref: Pass, query: SearchQuery) -> float:
    """The user's pixel size, else the reference's native one in metres, else 10 m."""
    if query.resolution is not None:
        return query.resolution
    # A pixel size only carries over when it is in metres of a projected CRS; Earth
    # Search GRD items state their footprint grid in degrees of EPSG:4326.
    native = next((s for s in ref.slices if s.resolution and s.epsg and _is_utm(s.epsg)), None)
    return native.resolution if native and native.resolution else DEFAULT_RESOLUTION_M


def _touching(p: Pass, areas: np.ndarray) -> list[tuple[Slice, ...]]:
    """For each area, the slices of ``p`` that intersect it (one spatial-index query)."""
    found: list[list[int]] = [[] for _ in range(len(areas))]
    where, which = p.slice_index.query(areas, predicate="intersects")
    for k, i in zip(where.tolist(), which.tolist(), strict=True):
        found[k].append(i)
    return [tuple(p.slices[i] for i in sorted(hits)) for hits in found]


def _unit(
    pair: PassPair,
    piece: TilePiece,
    shape: dict[str, Any],
    ref_slices: tuple[Slice, ...],
    sec_slices: tuple[Slice, ...],
    query: SearchQuery,
) -> Pair:
    """The unit of ``pair`` on one tile."""
    reference, secondary = acquisition_of(ref_slices), acquisition_of(sec_slices)
    return Pair(
        id=pair_id(reference, secondary, query.polarization, piece.grid, tile=piece.tile.name),
        reference=reference,
        secondary=secondary,
        polarization=query.polarization,
        baseline_days=round(pair.baseline_days, 6),
        aoi=shape,
        grid=piece.grid,
        coverage=round(pair.coverage, 4),
        tile=piece.tile.code,
    )


def _is_utm(epsg: int) -> bool:
    """WGS 84 / UTM north (326nn) or south (327nn)."""
    return 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760


@dataclass(frozen=True)
class TilingSummary:
    """How a run's pairs fall on the tile grid (what a dry-run plan shows)."""

    pairs: int
    """Pairs of passes (before tiling)."""
    units: int
    """Work units: (pair, tile)."""
    tiles: int
    """Distinct tiles."""
    units_per_pair: tuple[int, int, float]
    """(min, max, mean) units per pair."""
    megapixels: tuple[float, float, float]
    """(min, max, total) megapixels of the units' grids."""
    largest: tuple[str, int, int]
    """(unit id, width, height) of the largest unit."""

    def lines(self) -> list[str]:
        """Human-readable plan lines."""
        lo, hi, mean = self.units_per_pair
        mp_lo, mp_hi, mp_total = self.megapixels
        uid, w, h = self.largest
        return [
            f"Tiles: {self.pairs} pairs -> {self.units} work units on {self.tiles} tiles "
            f"(MGRS 100 km squares; {lo}-{hi} tiles per pair, mean {mean:.1f}).",
            f"Unit sizes: {mp_lo:.1f}-{mp_hi:.1f} MP each, {mp_total:,.0f} MP in all; "
            f"largest {uid} ({w} x {h} px).",
        ]


def summarize_units(units: Sequence[Pair] | Iterable[Pair]) -> TilingSummary:
    """Count units, tiles, units per pair and unit sizes."""
    per_pair: Counter[tuple[str, ...]] = Counter()
    tiles: set[str] = set()
    n, mp_lo, mp_hi, total = 0, math.inf, 0.0, 0.0
    largest = ("", 0, 0)
    for unit in units:
        n += 1
        per_pair[_pair_key(unit)] += 1
        tiles.add(unit.tile or unit.grid.crs)
        mp = unit.grid.width * unit.grid.height / 1e6
        total += mp
        mp_lo = min(mp_lo, mp)
        if mp > mp_hi:
            mp_hi, largest = mp, (unit.id, unit.grid.width, unit.grid.height)
    counts = list(per_pair.values()) or [0]
    return TilingSummary(
        pairs=len(per_pair),
        units=n,
        tiles=len(tiles),
        units_per_pair=(min(counts), max(counts), n / max(1, len(per_pair))),
        megapixels=(0.0 if n == 0 else mp_lo, mp_hi, total),
        largest=largest,
    )


def _pair_key(unit: Pair) -> tuple[str, ...]:
    """What the units of one pair of passes share: platforms, track, dates, polarisation."""
    ref, sec = unit.reference, unit.secondary
    return (
        ref.platform,
        sec.platform,
        str(ref.relative_orbit),
        ref.orbit_state,
        f"{ref.datetime:%Y%m%d}",
        f"{sec.datetime:%Y%m%d}",
        unit.polarization,
    )
