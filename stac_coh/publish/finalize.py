"""Finalize a catalog: rebuild the listings from the items, link the catalog, export, push.

Publishers write items only; the listings are built here, at the end of a run (the local
run's last step, or the Batch finalize job). ``finalize`` streams the item JSONs actually
in the store (the source of truth: an item exists only once complete) and rewrites the
sub-catalogs (:mod:`stac_coh.publish.layout`) and the collection's extent and summaries
from them alone, in memory bounded by a chunk of items (:mod:`stac_coh.publish.rebuild`),
so after it every item is listed exactly once. It can also write a stac-geoparquet file of
all items and bulk-load them into pgstac (:mod:`stac_coh.publish.exports`), for runs too
big to browse as a static tree. It is safe to run while publishers still write (it
compare-and-swaps) and to run again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass
from typing import Any

import requests

from stac_coh.errors import ConflictError
from stac_coh.io.storage import Store
from stac_coh.publish.cas import cas_update_json
from stac_coh.publish.collection import (
    CATALOG_KEY,
    DEFAULT_COLLECTION_ID,
    collection_key,
)
from stac_coh.publish.exports import GEOPARQUET_MEDIA_TYPE, GeoparquetExport, PgstacExport
from stac_coh.publish.layout import GEOJSON, JSON
from stac_coh.publish.orphans import OrphanReport, sweep_orphans
from stac_coh.publish.rebuild import iter_item_keys, iter_items, rebuild_listings
from stac_coh.publish.root_catalog import RootLink, update_root_catalog
from stac_coh.publish.stac_api import PushResult, push_collection

__all__ = ["FinalizeResult", "finalize"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinalizeResult:
    """What finalize found and wrote."""

    collection_id: str
    """The collection rebuilt."""
    collection_key: str
    """Its JSON's key in the store."""
    collection_href: str
    """Where its JSON is."""
    items: int
    """Items it lists (= item JSONs in the store)."""
    bbox: list[float] | None
    """Overall spatial extent, ``None`` when the collection is empty."""
    interval: list[str | None]
    """Overall temporal extent."""
    pushed: PushResult | None = None
    """What the STAC API push did, if asked for."""
    geoparquet_href: str | None = None
    """The stac-geoparquet file of all items, if written."""
    pgstac_items: int | None = None
    """Items bulk-loaded into pgstac, if asked for."""
    orphans: OrphanReport | None = None
    """Item folders with assets but no item (a publisher killed mid-publish)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for ``--json`` output and the run report)."""
        return asdict(self)


def finalize(
    store: Store,
    *,
    collection_id: str = DEFAULT_COLLECTION_ID,
    stac_api: str | None = None,
    session: requests.Session | None = None,
    geoparquet: bool = False,
    pgstac: str | None = None,
    remove_orphans: bool = False,
    orphans_of: Container[str] | None = None,
) -> FinalizeResult:
    """Rebuild the listings from the items in ``store``; optionally export and push.

    Args:
        store: The catalog's store.
        collection_id: Collection to rebuild.
        stac_api: STAC API root to upsert the collection and items into.
        session: HTTP session for the push (default: :func:`stac_coh.io.http.make_session`).
        geoparquet: Also write every item into ``<collection>/items.parquet``.
        pgstac: PostgreSQL DSN of a pgstac database to bulk-load the collection and items
            into (upsert).
        remove_orphans: Delete assets without an item (:mod:`stac_coh.publish.orphans`);
            they are always reported.
        orphans_of: Only remove the orphans of these pair ids (``None``: all of them).
    """
    ckey = collection_key(collection_id)
    exports: list[Callable[[str, dict[str, Any]], None]] = []
    parquet = GeoparquetExport(store, f"{collection_id}/items.parquet") if geoparquet else None
    loader = PgstacExport(store, pgstac) if pgstac else None
    exports += [e for e in (parquet, loader) if e is not None]
    rebuilt = rebuild_listings(store, collection_id, exports)
    collection = rebuilt.collection
    parquet_href = parquet.finish() if parquet else None
    if parquet_href:
        collection = _add_mirror_asset(store, ckey)
    _update_catalog(store, [("child", f"./{ckey}", JSON, collection_id), *_model_links(store)])
    extent = collection["extent"]
    result = FinalizeResult(
        collection_id=collection_id,
        collection_key=ckey,
        collection_href=store.href_for(ckey),
        items=rebuilt.items,
        bbox=extent["spatial"]["bbox"][0] if rebuilt.items else None,
        interval=extent["temporal"]["interval"][0],
        geoparquet_href=parquet_href,
        pgstac_items=loader.finish(collection) if loader else None,
        orphans=sweep_orphans(store, collection_id, remove=remove_orphans, only=orphans_of),
    )
    log.info("finalized %s: %d items", result.collection_href, rebuilt.items)
    if stac_api:
        result = _push(store, stac_api, collection, result, session)
    return result


def _add_mirror_asset(store: Store, ckey: str) -> dict[str, Any]:
    """List the stac-geoparquet file as a collection asset; the collection as written."""
    asset = {
        "href": "./items.parquet",
        "type": GEOPARQUET_MEDIA_TYPE,
        "title": "Every item of the collection (stac-geoparquet)",
        "roles": ["collection-mirror"],
    }

    def fold(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if current is None or current.get("assets", {}).get("geoparquet") == asset:
            return None
        current.setdefault("assets", {})["geoparquet"] = asset
        return current

    cas_update_json(store, ckey, fold)
    return dict(json.loads(store.get(ckey).data))


def _update_catalog(store: Store, links: list[RootLink]) -> None:
    """Make the root catalog hold ``links`` and a ``self`` link to where it is now."""
    if not update_root_catalog(store, links, point_self=True):
        raise ConflictError(
            f"{store.url_for(CATALOG_KEY)} kept changing while finalize updated it; run "
            "finalize again when the publishers are done."
        )


def _model_links(store: Store) -> list[tuple[str, str, str, str | None]]:
    """Catalog links to every published model item."""
    keys = [k for k in store.list("models/") if _is_model_key(k)]
    return [("item", f"./{key}", GEOJSON, None) for key in keys]


def _is_model_key(key: str) -> bool:
    """``models/<id>/<id>.json``."""
    parts = key.split("/")
    return len(parts) == 3 and parts[2] == f"{parts[1]}.json"


def _push(
    store: Store,
    api_url: str,
    collection: dict[str, Any],
    result: FinalizeResult,
    session: requests.Session | None,
) -> FinalizeResult:
    """Upsert the collection and items into the STAC API (items streamed from the store)."""
    from stac_coh.io.http import make_session

    session = session or make_session()
    keys = iter_item_keys(store, result.collection_id)
    pushed = push_collection(
        api_url,
        collection,
        ((item, store.href_for(key)) for key, item in iter_items(store, keys)),
        collection_href=result.collection_href,
        session=session,
    )
    return FinalizeResult(**{**result.__dict__, "pushed": pushed})
