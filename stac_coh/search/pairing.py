"""Every pairing rule, and nowhere else: items -> slices -> acquisitions -> pairs.

1. :func:`~stac_coh.search.slices.normalize_item` reads each item as a canonical
   :class:`~stac_coh.search.slices.Slice` (every property quirk is absorbed in
   :mod:`stac_coh.search.slices`).
2. :func:`group_acquisitions` merges the slices of one pass (same platform, track,
   absolute orbit, within an hour) into one acquisition; they are never paired together.
3. :func:`find_pairs` pairs acquisitions of the same relative orbit, orbit state and
   instrument mode whose temporal baseline is one of the requested ones (within a
   tolerance) and whose footprints overlap inside the area; platforms may differ. Every
   rejected combination is counted by reason.
4. :func:`pair_grid` chooses the processing grid: the reference's UTM CRS at the asset's
   native pixel size unless told otherwise, covering the area clipped to the common
   footprint.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from stac_coh.errors import InputError
from stac_coh.grid import OutputGrid
from stac_coh.search.manifest import Acquisition, Pair, pair_id
from stac_coh.search.query import SearchQuery
from stac_coh.search.slices import Slice, item_datetime, normalize_item

__all__ = [
    "DEFAULT_RESOLUTION_M",
    "REASONS",
    "PairingResult",
    "Pass",
    "Slice",
    "find_pairs",
    "format_rejections",
    "group_acquisitions",
    "item_datetime",
    "normalize_item",
    "pair_grid",
]

DEFAULT_RESOLUTION_M = 10.0
"""Pixel size when neither the user nor the item says (Sentinel-1 GRD/RTC is 10 m)."""

SAME_PASS_MAX_GAP = timedelta(hours=1)
"""Slices of one track and platform closer than this belong to one pass (an IW datatake
lasts at most ~25 min; the same platform returns to a track only 12 days later)."""

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
class Pass:
    """The slices of one pass over the area: one acquisition."""

    slices: tuple[Slice, ...]
    """Slices in time (along-track) order."""

    @property
    def first(self) -> Slice:
        """The earliest slice."""
        return self.slices[0]

    @property
    def footprint(self) -> BaseGeometry:
        """Union of the slices' footprints."""
        return shapely.union_all([s.footprint for s in self.slices])

    def acquisition(self) -> Acquisition:
        """The manifest's record of this pass."""
        first = self.first
        datatakes = sorted({s.datatake_id for s in self.slices if s.datatake_id})
        orbits = [s.absolute_orbit for s in self.slices if s.absolute_orbit is not None]
        return Acquisition(
            platform=first.platform,
            datetime=first.datetime,
            item_ids=tuple(s.item_id for s in self.slices),
            relative_orbit=first.relative_orbit,
            orbit_state=first.orbit_state,
            instrument_mode=first.instrument_mode,
            absolute_orbit=orbits[0] if orbits else None,
            datatake_id="+".join(datatakes) if datatakes else None,
        )


@dataclass(frozen=True)
class PairingResult:
    """Pairs found, and why every other combination was rejected."""

    pairs: tuple[Pair, ...]
    """Valid pairs, by reference then secondary time."""
    rejected: dict[str, int]
    """Reason code (see :data:`REASONS`) -> count."""
    passes: tuple[Pass, ...]
    """Every acquisition considered."""


# --------------------------------------------------------------------------------------
# 2. grouping slices into acquisitions


def group_acquisitions(slices: Iterable[Slice]) -> list[Pass]:
    """Merge the slices of each pass; passes come out in time order."""
    by_track: dict[tuple[str, int, str, str], list[Slice]] = {}
    for s in slices:
        key = (s.platform, s.relative_orbit, s.orbit_state, s.instrument_mode)
        by_track.setdefault(key, []).append(s)
    passes: list[Pass] = []
    for members in by_track.values():
        members.sort(key=lambda s: (s.datetime, s.slice_number or 0, s.item_id))
        current = [members[0]]
        for s in members[1:]:
            if _same_pass(current[-1], s):
                current.append(s)
            else:
                passes.append(Pass(tuple(current)))
                current = [s]
        passes.append(Pass(tuple(current)))
    passes.sort(key=lambda p: (p.first.datetime, p.first.item_id))
    return passes


def _same_pass(a: Slice, b: Slice) -> bool:
    """Consecutive slices (time-sorted) of one track and platform from the same pass."""
    known = a.absolute_orbit is not None and b.absolute_orbit is not None
    if known and a.absolute_orbit != b.absolute_orbit:
        return False
    return b.datetime - a.datetime <= SAME_PASS_MAX_GAP


# --------------------------------------------------------------------------------------
# 3. pairing


def find_pairs(items: Iterable[Mapping[str, Any]], query: SearchQuery) -> PairingResult:
    """Apply every pairing rule to the items of a search."""
    rejected: Counter[str] = Counter()
    aoi = shapely.geometry.shape(query.aoi)
    slices = _usable_slices(items, query, rejected)
    passes = group_acquisitions(slices)
    for p in passes:
        rejected["same_pass"] += math.comb(len(p.slices), 2)
    pairs: list[Pair] = []
    for i, ref in enumerate(passes):
        for sec in passes[i + 1 :]:
            reason, pair = _try_pair(ref, sec, aoi, query)
            if pair is not None:
                pairs.append(pair)
            else:
                rejected[reason] += 1
    return PairingResult(tuple(pairs), {k: v for k, v in rejected.items() if v}, tuple(passes))


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


def _try_pair(
    ref: Pass, sec: Pass, aoi: BaseGeometry, query: SearchQuery
) -> tuple[str, Pair | None]:
    """The pair of two passes (``ref`` earlier), or the first rule it breaks."""
    a, b = ref.first, sec.first
    if (a.relative_orbit, a.orbit_state) != (b.relative_orbit, b.orbit_state):
        return "track", None
    if a.instrument_mode != b.instrument_mode:
        return "mode", None
    days = (b.datetime - a.datetime).total_seconds() / 86400.0
    if not any(abs(days - want) <= query.baseline_tolerance_days for want in query.baselines):
        return "baseline", None
    area, coverage = _overlap(ref.footprint, sec.footprint, aoi)
    if area is None or coverage < query.min_coverage or coverage <= 0:
        return "coverage", None
    grid = pair_grid(ref, area, crs=query.crs, resolution=query.resolution)
    reference, secondary = ref.acquisition(), sec.acquisition()
    pair = Pair(
        id=pair_id(reference, secondary, query.polarization, grid),
        reference=reference,
        secondary=secondary,
        polarization=query.polarization,
        baseline_days=round(days, 6),
        aoi=shapely.geometry.mapping(area),
        grid=grid,
        coverage=round(coverage, 4),
    )
    return "", pair


def _overlap(
    ref: BaseGeometry, sec: BaseGeometry, aoi: BaseGeometry
) -> tuple[BaseGeometry | None, float]:
    """(area both cover, coverage): the share of the imaged part of the area both cover.

    Coverage = area(aoi ∩ ref ∩ sec) / area(aoi ∩ (ref ∪ sec)), in an equal-area
    projection: 1 when both images cover the same part of the area, whatever the area's
    size (a continent-wide area is not penalised for being larger than a scene).
    """
    ref_in, sec_in = ref.intersection(aoi), sec.intersection(aoi)
    common = ref_in.intersection(sec_in)
    common = _polygons_only(common)
    if common is None:
        return None, 0.0
    union = ref_in.union(sec_in)
    equal_area = _laea(union.centroid)
    covered = shapely.transform(common, equal_area).area
    imaged = shapely.transform(union, equal_area).area
    return common, (covered / imaged if imaged > 0 else 0.0)


def _polygons_only(geom: BaseGeometry) -> BaseGeometry | None:
    """Drop points/lines an intersection may add; ``None`` when no area is left."""
    if geom.is_empty:
        return None
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        geom = shapely.union_all(parts) if parts else shapely.geometry.Polygon()
    return None if geom.is_empty or geom.area <= 0 else geom


def _laea(center: BaseGeometry) -> Any:
    """Vectorised lon/lat -> Lambert azimuthal equal-area (metres) around ``center``."""
    from pyproj import Transformer

    transformer = Transformer.from_crs(
        "EPSG:4326",
        f"+proj=laea +lat_0={center.y} +lon_0={center.x} +ellps=WGS84 +units=m",
        always_xy=True,
    )

    def project(coords: Any) -> Any:
        import numpy as np

        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return project


# --------------------------------------------------------------------------------------
# 4. the processing grid


def pair_grid(
    ref: Pass, area: BaseGeometry, *, crs: str | None = None, resolution: float | None = None
) -> OutputGrid:
    """Grid of a pair: reference's UTM CRS at native resolution over ``area`` (lon/lat).

    When the grid keeps the reference's CRS and pixel size it also keeps its pixel
    lattice, so the reference is read without resampling.
    """
    target = crs or _reference_utm(ref) or _utm_of(area.centroid)
    native = next((s for s in ref.slices if s.resolution and s.epsg and _is_utm(s.epsg)), None)
    if resolution is None:
        # A pixel size only carries over when it is in metres of a projected CRS;
        # Earth Search GRD items state their footprint grid in degrees of EPSG:4326.
        resolution = native.resolution if native and native.resolution else DEFAULT_RESOLUTION_M
    bounds = _projected_bounds(area, target)
    anchor = (0.0, 0.0)
    same_lattice = native and f"EPSG:{native.epsg}" == target and native.resolution == resolution
    if native and native.origin and same_lattice:
        anchor = (native.origin[0] % resolution, native.origin[1] % resolution)
    left, bottom, right, top = bounds
    ax, ay = anchor
    grid = OutputGrid.from_bounds(
        target, (left - ax, bottom - ay, right - ax, top - ay), resolution
    )
    a, b, c, d, e, f = grid.transform
    return OutputGrid(target, (a, b, c + ax, d, e, f + ay), grid.width, grid.height)


def _reference_utm(ref: Pass) -> str | None:
    """``EPSG:326nn``/``327nn`` of the reference's assets, when they are on UTM."""
    codes = Counter(s.epsg for s in ref.slices if s.epsg is not None and _is_utm(s.epsg))
    return f"EPSG:{codes.most_common(1)[0][0]}" if codes else None


def _is_utm(epsg: int) -> bool:
    """WGS 84 / UTM north (326nn) or south (327nn)."""
    return 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760


def _utm_of(point: BaseGeometry) -> str:
    """UTM zone of a lon/lat point (the standard 6-degree zones)."""
    zone = min(60, max(1, math.floor((point.x + 180.0) / 6.0) + 1))
    return f"EPSG:{(32600 if point.y >= 0 else 32700) + zone}"


def _projected_bounds(area: BaseGeometry, crs: str) -> tuple[float, float, float, float]:
    """Bounds of a lon/lat geometry in ``crs``, edges densified so curvature is kept."""
    from pyproj import Transformer

    transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    dense = shapely.segmentize(area, max_segment_length=0.01)

    def project(coords: Any) -> Any:
        import numpy as np

        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return tuple(shapely.transform(dense, project).bounds)  # type: ignore[return-value]


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
