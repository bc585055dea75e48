"""Every pairing rule, and nowhere else: items -> slices -> acquisitions -> pairs -> units.

1. :func:`~stac_coh.search.slices.normalize_item` reads each item as a canonical
   :class:`~stac_coh.search.slices.Slice` (every property quirk is absorbed in
   :mod:`stac_coh.search.slices`).
2. :func:`~stac_coh.search.passes.group_acquisitions` merges the slices of one pass (same
   platform, track, absolute orbit, within an hour) into one acquisition; they are never
   paired together.
3. :func:`match_passes` pairs acquisitions of the same relative orbit, orbit state and
   instrument mode whose temporal baseline is one of the requested ones (within a
   tolerance) and whose footprints overlap inside the area; platforms may differ. Passes
   are grouped by track and sorted in time first, so only the passes a requested baseline
   away are looked at (not every combination); every rejected combination is still
   counted by reason.
4. :func:`~stac_coh.search.tiling.tile_pair` cuts each pair by the fixed tile grid into
   work units (:mod:`stac_coh.grid.tiles`): what the manifest lists.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from stac_coh.errors import InputError
from stac_coh.grid.tiles import areal_part
from stac_coh.search.manifest import Pair
from stac_coh.search.passes import Pass, PassPair, group_acquisitions
from stac_coh.search.query import SearchQuery
from stac_coh.search.slices import Slice, item_datetime, normalize_item
from stac_coh.search.tiling import DEFAULT_RESOLUTION_M, iter_units

__all__ = [
    "DEFAULT_RESOLUTION_M",
    "REASONS",
    "PairingResult",
    "Pass",
    "PassPair",
    "Slice",
    "find_pairs",
    "format_rejections",
    "group_acquisitions",
    "item_datetime",
    "match_passes",
    "normalize_item",
]

REASONS: dict[str, str] = {
    "unusable": "items without orbit/datetime/footprint",
    "polarization": "items without the polarisation",
    "orbit_state_filter": "items of the other orbit state",
    "relative_orbit_filter": "items of other relative orbits",
    "same_pass": "slice combinations of one pass (merged, never paired)",
    "track": "different relative orbit or orbit state",
    "mode": "different instrument mode",
    "baseline": "baseline not requested",
    "coverage": "footprints overlap too little in the area",
}
"""Reason code -> what it means, for the one-line summary and error messages."""


@dataclass(frozen=True)
class PairingResult:
    """Work units found, the pairs they come from, and why everything else was rejected."""

    pairs: tuple[Pair, ...]
    """Work units, one per (pair, tile), by pair (reference then secondary time) then tile."""
    rejected: dict[str, int]
    """Reason code (see :data:`REASONS`) -> count."""
    passes: tuple[Pass, ...]
    """Every acquisition considered."""
    pass_pairs: tuple[PassPair, ...] = ()
    """The pairs of passes kept, before the tile grid cut them into units."""


# --------------------------------------------------------------------------------------
# 3. pairing


def find_pairs(items: Iterable[Mapping[str, Any]], query: SearchQuery) -> PairingResult:
    """Apply every pairing rule to the items of a search and cut the pairs into units."""
    pass_pairs, rejected, passes = match_passes(items, query)
    units = tuple(iter_units(pass_pairs, query))
    return PairingResult(units, rejected, tuple(passes), tuple(pass_pairs))


def match_passes(
    items: Iterable[Mapping[str, Any]], query: SearchQuery
) -> tuple[list[PassPair], dict[str, int], list[Pass]]:
    """Pairs of passes (by reference then secondary time), rejections by reason, passes."""
    rejected: Counter[str] = Counter()
    aoi = shapely.geometry.shape(query.aoi)
    shapely.prepare(aoi)
    passes = group_acquisitions(_usable_slices(items, query, rejected))
    for p in passes:
        rejected["same_pass"] += math.comb(len(p.slices), 2)
    by_orbit: dict[tuple[int, str], list[Pass]] = {}
    for p in passes:
        by_orbit.setdefault(p.track[:2], []).append(p)
    rejected["track"] += math.comb(len(passes), 2) - sum(
        math.comb(len(g), 2) for g in by_orbit.values()
    )
    found: list[PassPair] = []
    clipped = _Clipped(aoi)
    for group in by_orbit.values():
        by_mode: dict[str, list[Pass]] = {}
        for p in group:
            by_mode.setdefault(p.track[2], []).append(p)
        rejected["mode"] += math.comb(len(group), 2) - sum(
            math.comb(len(g), 2) for g in by_mode.values()
        )
        for track in by_mode.values():
            found.extend(_pairs_of_track(track, query, rejected, clipped))
    found.sort(
        key=lambda pp: (
            pp.reference.first.datetime,
            pp.secondary.first.datetime,
            pp.reference.first.item_id,
            pp.secondary.first.item_id,
        )
    )
    return found, {k: v for k, v in rejected.items() if v}, passes


def _pairs_of_track(
    track: list[Pass], query: SearchQuery, rejected: Counter[str], clipped: _Clipped
) -> list[PassPair]:
    """Pairs among the passes of one track: only those a requested baseline apart."""
    track = sorted(track, key=lambda p: (p.first.datetime, p.first.item_id))
    days = [p.first.datetime.timestamp() / 86400.0 for p in track]
    tol = query.baseline_tolerance_days
    lo_gap, hi_gap = min(query.baselines) - tol, max(query.baselines) + tol
    out: list[PassPair] = []
    matched = 0
    for i, ref in enumerate(track):
        first = bisect.bisect_left(days, days[i] + lo_gap, lo=i + 1)
        last = bisect.bisect_right(days, days[i] + hi_gap, lo=first)
        for j in range(first, last):
            gap = days[j] - days[i]
            if not any(abs(gap - want) <= tol for want in query.baselines):
                continue
            matched += 1
            sec = track[j]
            area, coverage = clipped.overlap(ref, sec)
            if area is None or coverage < query.min_coverage or coverage <= 0:
                rejected["coverage"] += 1
                continue
            out.append(PassPair(ref, sec, round(gap, 6), area, coverage))
    rejected["baseline"] += math.comb(len(track), 2) - matched
    return out


class _Clipped:
    """Passes' footprints inside the area and their areas, computed once per pass.

    Areas are taken in one Lambert azimuthal equal-area projection centred on the area
    (equal-area everywhere but at the antipode): exact ratios for the coverage rule.
    """

    def __init__(self, aoi: BaseGeometry) -> None:
        self.aoi = aoi
        self._inside: dict[int, tuple[BaseGeometry | None, float]] = {}
        centre = aoi.centroid
        self._project = _laea(round(centre.x, 6), round(centre.y, 6))

    def inside(self, p: Pass) -> tuple[BaseGeometry | None, float]:
        """(footprint inside the area, its area in m²)."""
        key = id(p)
        if key not in self._inside:
            part = areal_part(p.footprint.intersection(self.aoi))
            self._inside[key] = (part, self.area(part) if part is not None else 0.0)
        return self._inside[key]

    def area(self, geom: BaseGeometry) -> float:
        """Area of a lon/lat geometry, m²."""
        return float(shapely.area(shapely.transform(geom, self._project)))

    def overlap(self, ref: Pass, sec: Pass) -> tuple[BaseGeometry | None, float]:
        """(area both cover, coverage): the share of the imaged part of the area both cover.

        Coverage = area(aoi ∩ ref ∩ sec) / area(aoi ∩ (ref ∪ sec)): 1 when both images
        cover the same part of the area, whatever the area's size (a continent-wide area
        is not penalised for being larger than a scene).
        """
        (ref_in, ref_area), (sec_in, sec_area) = self.inside(ref), self.inside(sec)
        if ref_in is None or sec_in is None or not ref_in.intersects(sec_in):
            return None, 0.0
        common = areal_part(ref_in.intersection(sec_in))
        if common is None:
            return None, 0.0
        covered = self.area(common)
        imaged = ref_area + sec_area - covered
        # Areas of different polygons round differently: keep the share in [0, 1].
        return common, (min(1.0, covered / imaged) if imaged > 0 else 0.0)


def _usable_slices(
    items: Iterable[Mapping[str, Any]], query: SearchQuery, rejected: Counter[str]
) -> list[Slice]:
    """Normalise items and drop those that cannot be in any pair of this query."""
    out = []
    for item in items:
        try:
            s = normalize_item(item)
        except InputError:
            rejected["unusable"] += 1
            continue
        if query.polarization not in s.polarizations:
            rejected["polarization"] += 1
        elif query.orbit_state and s.orbit_state != query.orbit_state:
            rejected["orbit_state_filter"] += 1
        elif query.relative_orbit and s.relative_orbit != query.relative_orbit:
            rejected["relative_orbit_filter"] += 1
        else:
            out.append(s)
    return out


@cache
def _laea(lon: float, lat: float) -> Any:
    """Vectorised lon/lat -> Lambert azimuthal equal-area (m) around (lon, lat)."""
    from pyproj import Transformer

    transformer = Transformer.from_crs(
        "EPSG:4326",
        f"+proj=laea +lat_0={lat} +lon_0={lon} +ellps=WGS84 +units=m",
        always_xy=True,
    )

    def project(coords: Any) -> Any:
        import numpy as np

        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return project


# --------------------------------------------------------------------------------------
# reporting


def format_rejections(rejected: Mapping[str, int], query: SearchQuery | None = None) -> str:
    """One line: ``Rejected: 12 baseline not in 6/12 d, 1 different track, ...``."""
    if not rejected:
        return "Rejected: nothing."
    parts = []
    for code, count in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        text = REASONS.get(code, code)
        if code == "baseline" and query is not None:
            wanted = "/".join(f"{b:g}" for b in query.baselines)
            text = f"baseline not {wanted} d (±{query.baseline_tolerance_days:g})"
        if code == "coverage" and query is not None:
            text = f"footprints overlap < {query.min_coverage:.0%} in the area"
        parts.append(f"{count} {text}")
    return "Rejected: " + ", ".join(parts) + "."
