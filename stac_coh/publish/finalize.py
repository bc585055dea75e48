"""Finalize a catalog: rebuild the collection from its items, link the catalog, push.

Publishers write items only; the collection is built once, here, at the end of a run (the
local run's last step, or the Batch finalize job). ``finalize`` lists the item JSONs
actually in the store (the source of truth: an item exists only once complete) and
rewrites links, extent and summaries from them alone, so after it every item is listed
exactly once. It is safe to run while publishers still write (it compare-and-swaps) and
to run again.
"""

from __future__ import annotations

import copy
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import requests

from stac_coh.errors import ConflictError
from stac_coh.io.storage import Store
from stac_coh.publish.collection import (
    CATALOG_KEY,
    DEFAULT_COLLECTION_ID,
    add_link,
    build_collection,
    build_root_catalog,
    collection_key,
    is_item_key,
    rebuild_collection,
    set_self_link,
)
from stac_coh.publish.pair import GEOJSON, JSON, cas_update_json
from stac_coh.publish.stac_api import PushResult, push_collection

__all__ = ["FinalizeResult", "finalize"]

log = logging.getLogger(__name__)

_ATTEMPTS = 20
_READERS = 16


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

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for ``--json`` output and the run report)."""
        return asdict(self)


def finalize(
    store: Store,
    *,
    collection_id: str = DEFAULT_COLLECTION_ID,
    stac_api: str | None = None,
    session: requests.Session | None = None,
) -> FinalizeResult:
    """Rebuild the collection from the items in ``store``; optionally push to a STAC API.

    Args:
        store: The catalog's store.
        collection_id: Collection to rebuild.
        stac_api: STAC API root to upsert the collection and items into.
        session: HTTP session for the push (default: :func:`stac_coh.io.http.make_session`).
    """
    ckey = collection_key(collection_id)
    items: dict[str, dict[str, Any]] = {}
    collection = _rebuild(store, collection_id, items)
    _update_catalog(store, [("child", f"./{ckey}", JSON, collection_id), *_model_links(store)])
    extent = collection["extent"]
    result = FinalizeResult(
        collection_id=collection_id,
        collection_key=ckey,
        collection_href=store.href_for(ckey),
        items=len(items),
        bbox=extent["spatial"]["bbox"][0] if items else None,
        interval=extent["temporal"]["interval"][0],
    )
    log.info("finalized %s: %d items", result.collection_href, len(items))
    if stac_api:
        result = _push(store, stac_api, collection, items, result, session)
    return result


def _rebuild(store: Store, collection_id: str, items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Compare-and-swap the rebuilt collection in; re-list when a publisher got in between."""
    ckey = collection_key(collection_id)
    rebuilt: dict[str, Any] = {}

    def fold(current: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal rebuilt
        _read_new_items(store, collection_id, items)
        base = (
            copy.deepcopy(current)
            if current
            else build_collection(collection_id, self_href=store.self_href(ckey))
        )
        rebuilt = rebuild_collection(base, items.values())
        set_self_link(rebuilt, store.self_href(ckey))
        return None if rebuilt == current else rebuilt

    if not cas_update_json(store, ckey, fold, attempts=_ATTEMPTS):
        raise ConflictError(
            f"{store.url_for(ckey)} kept changing while finalize rebuilt it; run finalize "
            "again when the publishers are done."
        )
    return rebuilt


def _read_new_items(store: Store, collection_id: str, items: dict[str, dict[str, Any]]) -> None:
    """Add every item JSON in the store not read yet (in parallel: S3 GETs are slow)."""
    keys = [k for k in store.list(f"{collection_id}/") if is_item_key(collection_id, k)]
    missing = [k for k in keys if k not in items]
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        for key, body in zip(missing, pool.map(lambda k: store.get(k).data, missing), strict=True):
            items[key] = json.loads(body)


def _update_catalog(store: Store, links: list[tuple[str, str, str, str | None]]) -> None:
    """Make the root catalog hold ``links`` and a ``self`` link to where it is now."""

    def fold(current: dict[str, Any] | None) -> dict[str, Any] | None:
        catalog = current or build_root_catalog()
        changed = [add_link(catalog, *link) for link in links]
        changed.append(set_self_link(catalog, store.self_href(CATALOG_KEY)))
        return catalog if any(changed) or current is None else None

    if not cas_update_json(store, CATALOG_KEY, fold):
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
    items: dict[str, dict[str, Any]],
    result: FinalizeResult,
    session: requests.Session | None,
) -> FinalizeResult:
    """Upsert the collection and items into the STAC API."""
    from stac_coh.io.http import make_session

    session = session or make_session()
    pushed = push_collection(
        api_url,
        collection,
        ((item, store.href_for(key)) for key, item in sorted(items.items())),
        collection_href=result.collection_href,
        session=session,
    )
    return FinalizeResult(**{**result.__dict__, "pushed": pushed})
