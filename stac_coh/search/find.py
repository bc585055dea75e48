"""Search a source, pair what it returns, and write it all down as a manifest."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

from stac_coh import __version__
from stac_coh.errors import NoPairsError, SearchError, StacCohError, StacCohWarning
from stac_coh.search.manifest import Manifest
from stac_coh.search.pairing import find_pairs, format_rejections
from stac_coh.search.query import SearchQuery
from stac_coh.search.sources import Source
from stac_coh.search.tiling import TilingSummary, summarize_units

__all__ = ["SearchQuery", "SearchResult", "search_pairs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchResult:
    """A manifest of valid pairs and the account of everything rejected."""

    manifest: Manifest
    """Pairs, their items (unsigned) and the source to read them from."""
    rejected_counts: dict[str, int]
    """Reason code (see :data:`stac_coh.search.pairing.REASONS`) -> count."""
    n_items: int
    """Items the search returned."""
    query: SearchQuery
    """The query searched."""
    truncated: bool = False
    """The search stopped at ``max_items``: more items (and pairs) may exist."""
    n_pairs: int = 0
    """Pairs of acquisitions found; the manifest lists their work units (pair x tile)."""

    @property
    def tiling(self) -> TilingSummary:
        """How the pairs fall on the tile grid (units, tiles, sizes)."""
        return summarize_units(self.manifest.pairs)

    @property
    def summary(self) -> str:
        """The one-line account of rejected combinations."""
        return format_rejections(self.rejected_counts, self.query)


def search_pairs(source: Source, query: SearchQuery) -> SearchResult:
    """Find every valid pair for ``query`` in ``source``.

    Raises:
        SearchError: the search found no items.
        NoPairsError: items were found but no combination satisfies the pairing rules;
            the message gives the count per reason.
        SourceUnreachableError: the API could not be reached.
    """
    items = source.search(query)
    spec = source.spec
    where = f"{spec.collection or 'the catalog'} at {spec.url}"
    if not items:
        raise SearchError(
            f"No items in {where} intersect the area between {query.start:%Y-%m-%d} and "
            f"{query.end:%Y-%m-%d}; widen the dates or the area, or check --collection."
        )
    truncated = len(items) >= query.max_items
    if truncated:
        warnings.warn(
            f"The search stopped at --limit {query.max_items} items; pairs with items beyond "
            "it are missing. Raise --limit or narrow the dates.",
            StacCohWarning,
            stacklevel=2,
        )
    result = find_pairs(items, query)
    if not result.pairs:
        raise NoPairsError(
            f"{len(items)} items in {where} ({len(result.passes)} acquisitions), but no valid "
            f"pair. {format_rejections(result.rejected, query)} "
            f"{_what_to_try(items, query, result.rejected)}"
        )
    used = {item_id for p in result.pairs for item_id in p.item_ids}
    manifest = Manifest(
        source=spec,
        query=query.to_dict(),
        pairs=result.pairs,
        items={str(it["id"]): it for it in items if it.get("id") in used},
        created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        software=f"stac-coh {__version__}",
    )
    log.info(
        "%d items -> %d pairs -> %d work units from %s",
        len(items),
        len(result.pass_pairs),
        len(result.pairs),
        where,
    )
    return SearchResult(
        manifest, result.rejected, len(items), query, truncated, len(result.pass_pairs)
    )


def _what_to_try(items: list[dict], query: SearchQuery, rejected: dict[str, int]) -> str:
    """The hint of a search without pairs: the polarisation when no item has the wanted one."""
    if rejected.get("polarization", 0) >= len(items):
        from stac_coh.search.slices import normalize_item

        found: set[str] = set()
        for item in items:
            try:
                found |= normalize_item(item).polarizations
            except StacCohError:
                continue
        if found:
            choices = " or ".join(f"--pol {p}" for p in sorted(found))
            return (
                f"None of them has {query.polarization}; they have {', '.join(sorted(found))}: "
                f"try {choices}."
            )
    return "Try other --baselines, a lower --min-coverage or a longer date range."
