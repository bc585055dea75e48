"""Slices grouped into passes (acquisitions), and the pairs of passes pairing keeps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

import shapely
from shapely.geometry.base import BaseGeometry

from stac_coh.search.manifest import Acquisition
from stac_coh.search.slices import Slice

__all__ = ["SAME_PASS_MAX_GAP", "Pass", "PassPair", "acquisition_of", "group_acquisitions"]

SAME_PASS_MAX_GAP = timedelta(hours=1)
"""Slices of one track and platform closer than this belong to one pass (an IW datatake
lasts at most ~25 min; the same platform returns to a track only 12 days later)."""


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
    def track(self) -> tuple[int, str, str]:
        """(relative orbit, orbit state, instrument mode): only passes of one track pair."""
        first = self.first
        return (first.relative_orbit, first.orbit_state, first.instrument_mode)

    @cached_property
    def footprint(self) -> BaseGeometry:
        """Union of the slices' footprints."""
        return shapely.union_all([s.footprint for s in self.slices])

    @cached_property
    def slice_index(self) -> shapely.STRtree:
        """Spatial index of the slices' footprints (which slices touch a tile)."""
        return shapely.STRtree([s.footprint for s in self.slices])

    def slices_touching(self, area: BaseGeometry) -> tuple[Slice, ...]:
        """The slices whose footprint intersects ``area``, in along-track order."""
        hits = sorted(int(i) for i in self.slice_index.query(area, predicate="intersects"))
        return tuple(self.slices[i] for i in hits)

    def acquisition(self) -> Acquisition:
        """The manifest's record of this pass."""
        return acquisition_of(self.slices)


def acquisition_of(slices: Sequence[Slice]) -> Acquisition:
    """The manifest's record of some slices of one pass (all of it, or those on a tile)."""
    first = slices[0]
    datatakes = sorted({s.datatake_id for s in slices if s.datatake_id})
    orbits = [s.absolute_orbit for s in slices if s.absolute_orbit is not None]
    return Acquisition(
        platform=first.platform,
        datetime=first.datetime,
        item_ids=tuple(s.item_id for s in slices),
        relative_orbit=first.relative_orbit,
        orbit_state=first.orbit_state,
        instrument_mode=first.instrument_mode,
        absolute_orbit=orbits[0] if orbits else None,
        datatake_id="+".join(datatakes) if datatakes else None,
    )


@dataclass(frozen=True)
class PassPair:
    """Two passes of one track that pairing kept, before the tile grid cuts them."""

    reference: Pass
    """The earlier pass (model channel t1)."""
    secondary: Pass
    """The later pass (model channel t2)."""
    baseline_days: float
    """Temporal baseline in days."""
    area: BaseGeometry
    """Where both cover the area (lon/lat)."""
    coverage: float
    """Share of the imaged part of the area that both cover."""


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
