"""Composite runs: plan (which tiles, periods and pairs), then make and publish each unit.

A unit is one item: a tile, a period and a polarisation. :func:`plan_composites` reads
the pair records once and lists the units per tile (what ``--plan`` prints and what a
Batch child is handed: one tile); :func:`run_unit` composites, fits, renders and
publishes one unit. A unit whose item exists and links exactly the same pairs is
skipped, so a re-run (or a retried Batch child) only redoes what changed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from stac_coh.composite.catalog import publish_composite
from stac_coh.composite.decay import MIN_BASELINES
from stac_coh.composite.item import CompositeInputs, build_composite_item, composite_item_id
from stac_coh.composite.layers import coherence_key
from stac_coh.composite.pairs import PairRecord
from stac_coh.composite.periods import Period
from stac_coh.composite.sources import PairSource
from stac_coh.composite.stack import DEFAULT_CHUNK, Stat, composite_tile
from stac_coh.composite.tiles import TileStack, group_tiles
from stac_coh.constants import DEFAULT_COMPOSITE_COLLECTION_ID
from stac_coh.errors import InputError
from stac_coh.io.storage import LocalStore, Store
from stac_coh.publish.collection import item_key
from stac_coh.publish.render import write_thumbnail, write_visual

__all__ = [
    "DEFAULT_BASELINES",
    "CompositePlan",
    "CompositeRequest",
    "CompositeUnit",
    "UnitResult",
    "plan_composites",
    "run_unit",
]

log = logging.getLogger(__name__)

DEFAULT_BASELINES = (6, 12, 18, 24, 36, 48)
"""The baselines of the Global Seasonal Sentinel-1 coherence data set."""

BASELINE_TOLERANCE_DAYS = 0.5
"""A pair counts for baseline B when its baseline is within this many days of B."""

PREVIEW_ORDER = (12, 6, 24, 18, 36, 48)
"""Baseline the visual and thumbnail show: 12 days when present (the model's own)."""


@dataclass(frozen=True)
class CompositeRequest:
    """What to composite."""

    periods: tuple[Period, ...]
    """Periods (seasons, months or one range)."""
    baselines: tuple[int, ...] = DEFAULT_BASELINES
    """Baselines to composite, in days."""
    stat: Stat = "median"
    """``median`` or ``mean``."""
    collection_id: str = DEFAULT_COMPOSITE_COLLECTION_ID
    """Collection the composites go to."""
    chunk: int = DEFAULT_CHUNK
    """Chunk edge in pixels (memory ~ 128 MiB per 512 x 512 chunk for the median)."""
    overwrite: bool = False
    """Remake units whose item is up to date."""

    @property
    def start(self) -> datetime:
        """Earliest instant of any period."""
        return min(p.start for p in self.periods)

    @property
    def stop(self) -> datetime:
        """First instant after every period."""
        return max(p.stop for p in self.periods)

    def baseline_of(self, pair: PairRecord) -> int | None:
        """The requested baseline a pair counts for, if any."""
        for baseline in self.baselines:
            if abs(pair.baseline_days - baseline) <= BASELINE_TOLERANCE_DAYS:
                return baseline
        return None

    def period_of(self, pair: PairRecord) -> Period | None:
        """The period holding a pair's reference acquisition, if any."""
        return next((p for p in self.periods if p.contains(pair.start)), None)


@dataclass(frozen=True)
class CompositeUnit:
    """One composite item to make: tile, period, polarisation and its pairs per baseline."""

    tile: TileStack
    """The tile."""
    period: Period
    """The period."""
    polarization: str
    """The polarisation."""
    pairs: Mapping[int, tuple[PairRecord, ...]]
    """Baseline -> pairs."""
    stat: Stat
    """The statistic."""

    @property
    def item_id(self) -> str:
        """Id of the item it publishes."""
        return composite_item_id(self.tile.code, self.period, self.polarization, self.stat)

    @property
    def n_pairs(self) -> int:
        """Pairs over all baselines."""
        return sum(len(v) for v in self.pairs.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``--plan --json``."""
        return {
            "item_id": self.item_id,
            "tile": self.tile.code,
            "period": self.period.label,
            "start": self.period.start.isoformat(),
            "stop": self.period.stop.isoformat(),
            "polarization": self.polarization,
            "pairs_per_baseline": {str(b): len(p) for b, p in sorted(self.pairs.items())},
            "decay_fit": len(self.pairs) >= MIN_BASELINES,
        }


@dataclass(frozen=True)
class CompositePlan:
    """Every unit of a request, grouped by tile, and what was left out."""

    tiles: tuple[TileStack, ...]
    """Tiles with at least one unit, by code."""
    units: tuple[CompositeUnit, ...]
    """Units, by tile, period and polarisation."""
    ignored: Mapping[str, int] = field(default_factory=dict)
    """Pairs left out, by reason (``baseline``, ``period``)."""

    def for_tiles(self, codes: Sequence[str]) -> CompositePlan:
        """The plan restricted to some tiles (``--tile``); unknown codes are an error."""
        known = {t.code for t in self.tiles}
        if missing := [c for c in codes if c not in known]:
            listed = ", ".join(sorted(known)[:20]) or "none"
            raise InputError(
                f"No composite tile {', '.join(missing)} in this catalog and period "
                f"(tiles: {listed}); list them with --plan."
            )
        wanted = set(codes)
        return CompositePlan(
            tuple(t for t in self.tiles if t.code in wanted),
            tuple(u for u in self.units if u.tile.code in wanted),
            self.ignored,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``--plan --json``: tiles with their grids and units."""
        return {
            "tiles": [
                {
                    "code": t.code,
                    "grid_code": t.grid_code,
                    "crs": t.lattice.crs,
                    "resolution": t.lattice.res_x,
                    "width": t.width,
                    "height": t.height,
                    "units": [u.to_dict() for u in self.units if u.tile.code == t.code],
                }
                for t in self.tiles
            ],
            "ignored_pairs": dict(self.ignored),
        }


@dataclass(frozen=True)
class UnitResult:
    """What happened to one unit."""

    item_id: str
    """The item."""
    status: Literal["published", "up-to-date"]
    """``up-to-date``: its item already linked exactly these pairs."""
    item_href: str
    """Where the item is."""
    baselines: tuple[int, ...]
    """Baselines composited."""
    fitted: bool
    """Whether decay layers were made."""


def plan_composites(records: Iterable[PairRecord], request: CompositeRequest) -> CompositePlan:
    """Group pair records into units: tile (pixel lattice), period, polarisation, baseline."""
    kept: list[tuple[PairRecord, int, Period]] = []
    ignored: dict[str, int] = defaultdict(int)
    for record in records:
        baseline, period = request.baseline_of(record), request.period_of(record)
        if baseline is None:
            ignored["baseline"] += 1
        elif period is None:
            ignored["period"] += 1
        else:
            kept.append((record, baseline, period))
    tiles = group_tiles(r for r, _, _ in kept)
    where = {p.id: t for t in tiles for p in t.pairs}
    grouped: dict[tuple[str, str, str], dict[int, list[PairRecord]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for record, baseline, period in kept:
        grouped[(where[record.id].code, period.label, record.polarization)][baseline].append(record)
    by_code = {t.code: t for t in tiles}
    periods = {p.label: p for p in request.periods}
    units = [
        CompositeUnit(
            by_code[code],
            periods[label],
            pol,
            {b: tuple(sorted(ps, key=_pair_order)) for b, ps in sorted(pairs.items())},
            request.stat,
        )
        for (code, label, pol), pairs in grouped.items()
    ]
    order = {p.label: i for i, p in enumerate(request.periods)}
    units.sort(key=lambda u: (u.tile.code, order[u.period.label], u.polarization))
    return CompositePlan(tuple(tiles), tuple(units), dict(ignored))


def _pair_order(record: PairRecord) -> tuple[datetime, str]:
    """Time, then id: a unit's stack does not depend on the order a source lists pairs in."""
    return record.start, record.id


def run_unit(
    unit: CompositeUnit,
    request: CompositeRequest,
    store: Store,
    source: PairSource,
    *,
    gdal_options: Mapping[str, Any] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> UnitResult:
    """Composite, fit, render and publish one unit (skipped when its item is up to date)."""
    links = derived_from_links(unit, store, source, request.collection_id)
    ikey = item_key(request.collection_id, unit.item_id)
    if not request.overwrite and (existing := store.get_or_none(ikey)) is not None:
        item = json.loads(existing.data)
        old = {link["href"] for link in item.get("links", []) if link.get("rel") == "derived_from"}
        if old == {href for href, _ in links}:
            return UnitResult(
                unit.item_id,
                "up-to-date",
                store.href_for(ikey),
                tuple(unit.pairs),
                "tau" in item["assets"],
            )
    with tempfile.TemporaryDirectory(prefix="stac-coh-composite-") as tmp:
        workdir = Path(tmp)
        layers = composite_tile(
            unit.tile,
            unit.pairs,
            workdir,
            stat=request.stat,
            chunk=request.chunk,
            gdal_options=gdal_options,
            on_chunk=on_chunk,
        )
        preview = next(b for b in (*PREVIEW_ORDER, *layers.baselines) if b in layers.baselines)
        files = dict(layers.files)
        files["visual"] = write_visual(files[coherence_key(preview)], workdir / "visual.tif")
        files["thumbnail"] = write_thumbnail(
            files[coherence_key(preview)], workdir / "thumbnail.png"
        )
        item = build_composite_item(
            CompositeInputs(
                tile=unit.tile,
                period=unit.period,
                polarization=unit.polarization,
                stat=request.stat,
                files=files,
                specs=layers.specs,
                baselines=layers.baselines,
                pairs=unit.pairs,
                derived_from=links,
                fitted=layers.fitted,
                preview_baseline=preview,
                collection_id=request.collection_id,
                processing_datetime=datetime.now(UTC),
            )
        )
        href = publish_composite(
            store,
            item,
            files,
            collection_id=request.collection_id,
            pair_collection_id=source.collection_id if _same_store(store, source) else None,
        )
    return UnitResult(unit.item_id, "published", href, layers.baselines, layers.fitted)


def derived_from_links(
    unit: CompositeUnit, store: Store, source: PairSource, collection_id: str
) -> list[tuple[str, str]]:
    """(href, title) of each pair item: relative inside one catalog, else absolute."""
    item_dir = Path(collection_id) / unit.item_id
    links = []
    for baseline, pairs in sorted(unit.pairs.items()):
        for pair in pairs:
            key = source.item_key(pair)
            if key is not None and _same_store(store, source):
                href = f"../../{key}"
            elif isinstance(store, LocalStore) and "://" not in pair.item_href:
                href = os.path.relpath(pair.item_href, store.root / item_dir)
            else:
                href = pair.item_href
            links.append((href, f"{pair.id} ({baseline}-day pair)"))
    return links


def _same_store(store: Store, source: PairSource) -> bool:
    """Whether the composites go into the catalog the pairs come from."""
    return source.store is not None and source.store.url.rstrip("/") == store.url.rstrip("/")
