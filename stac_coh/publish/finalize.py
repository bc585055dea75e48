"""Finalize a run: rebuild the collection from its items, link the catalog, report, push.

Publishers fold their items into the collection as they go, but a publisher that dies or
gives up its compare-and-swap leaves the collection short. ``finalize`` lists the item
JSONs actually in the store (the source of truth: an item exists only once complete) and
rewrites links, extent and summaries from them alone, so after it every item is listed
exactly once. It is safe to run while publishers still write (it compare-and-swaps too)
and to run again.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from stac_coh.errors import ConflictError, InputError
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
from stac_coh.publish.pair import GEOJSON, JSON, PublishResult, cas_update_json
from stac_coh.publish.stac_api import PushResult, push_collection

__all__ = [
    "RUN_REPORT_FORMAT",
    "FinalizeResult",
    "failure_entry",
    "finalize",
    "outcome_key",
    "record_outcome",
    "recorded_outcomes",
    "report_entry",
    "run_report",
]

log = logging.getLogger(__name__)

RUN_REPORT_FORMAT = "stac-coh/run-report/1"
"""Layout version of a run report (see :func:`run_report`)."""

REPORTS_PREFIX = "reports"
"""Where run reports go in the store: ``reports/<run_id>.json``."""

_ATTEMPTS = 20
_READERS = 16


@dataclass(frozen=True)
class FinalizeResult:
    """What finalize found and wrote."""

    collection_id: str
    """The collection rebuilt."""
    collection_href: str
    """Where its JSON is."""
    items: int
    """Items it lists (= item JSONs in the store)."""
    bbox: list[float] | None
    """Overall spatial extent, ``None`` when the collection is empty."""
    interval: list[str | None]
    """Overall temporal extent."""
    report_href: str | None = None
    """Where the run report went, if one was given."""
    pushed: PushResult | None = None
    """What the STAC API push did, if asked for."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for ``--json`` output and the run report)."""
        return asdict(self)


def finalize(
    store: Store,
    *,
    collection_id: str = DEFAULT_COLLECTION_ID,
    report: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    stac_api: str | None = None,
    session: requests.Session | None = None,
) -> FinalizeResult:
    """Rebuild the collection from the items in ``store``; optionally report and push.

    Args:
        store: The catalog's store.
        collection_id: Collection to rebuild.
        report: A run report (:func:`run_report`) to complete and write.
        run_id: Without ``report``: build the report from the outcomes workers recorded
            with :func:`record_outcome` under this run id.
        stac_api: STAC API root to upsert the collection and items into.
        session: HTTP session for the push (default: :func:`stac_coh.io.http.make_session`).
    """
    if report is None and run_id is not None:
        report = run_report(run_id, _recorded_outcomes(store, run_id))
    ckey = collection_key(collection_id)
    items: dict[str, dict[str, Any]] = {}
    collection = _rebuild(store, collection_id, items)
    _update_catalog(store, [("child", f"./{ckey}", JSON, collection_id), *_model_links(store)])
    extent = collection["extent"]
    result = FinalizeResult(
        collection_id=collection_id,
        collection_href=store.href_for(ckey),
        items=len(items),
        bbox=extent["spatial"]["bbox"][0] if items else None,
        interval=extent["temporal"]["interval"][0],
    )
    log.info("finalized %s: %d items", result.collection_href, len(items))
    if stac_api:
        result = _push(store, stac_api, collection, items, result, session)
    if report is not None:
        result = _write_report(store, report, result)
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


def record_outcome(store: Store, run_id: str, entry: Mapping[str, Any]) -> str:
    """Store one pair's report entry for ``finalize(run_id=...)`` to gather; return its key.

    Workers on other machines call this after each pair; a retried pair overwrites its entry.
    """
    key = outcome_key(run_id, str(entry["pair_id"]))
    store.put(key, json.dumps(dict(entry)).encode(), content_type=JSON)
    return key


def outcome_key(run_id: str, pair_id: str) -> str:
    """Key of one pair's recorded outcome: ``reports/<run_id>/pairs/<pair_id>.json``."""
    _check_run_id(run_id)
    return f"{REPORTS_PREFIX}/{run_id}/pairs/{pair_id}.json"


def recorded_outcomes(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Every entry :func:`record_outcome` stored for ``run_id``, sorted by pair id."""
    return _recorded_outcomes(store, run_id)


def _recorded_outcomes(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Every entry :func:`record_outcome` stored for ``run_id``, sorted by pair id."""
    _check_run_id(run_id)
    keys = [k for k in store.list(f"{REPORTS_PREFIX}/{run_id}/pairs/") if k.endswith(".json")]
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        return [json.loads(body) for body in pool.map(lambda k: store.get(k).data, keys)]


def _check_run_id(run_id: str) -> None:
    """Refuse run ids that would escape ``reports/``."""
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise InputError(f"Run id {run_id!r} must be non-empty, without '/', not start with '.'.")


def report_entry(result: PublishResult, *, seconds: float | None = None) -> dict[str, Any]:
    """Run-report entry of a published or skipped pair."""
    entry: dict[str, Any] = {
        "pair_id": result.pair_id,
        "status": result.status,
        "item_href": result.item_href,
    }
    if seconds is not None:
        entry["seconds"] = round(seconds, 3)
    return entry


def failure_entry(pair_id: str, error: BaseException | str) -> dict[str, Any]:
    """Run-report entry of a pair that failed (the message only: no traceback, no secrets)."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return {"pair_id": pair_id, "status": "failed", "error": message}


def run_report(
    run_id: str, entries: Iterable[Mapping[str, Any]], *, started: datetime | None = None
) -> dict[str, Any]:
    """A machine-readable run report (format :data:`RUN_REPORT_FORMAT`).

    ``{"format", "run_id", "started", "finished", "counts": {status: n}, "pairs": [...]}``;
    :func:`finalize` adds ``"catalog"`` (its :class:`FinalizeResult`) and writes it to
    ``reports/<run_id>.json``.
    """
    pairs = [dict(e) for e in entries]
    counts = {status: 0 for status in ("published", "skipped", "failed")}
    for entry in pairs:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return {
        "format": RUN_REPORT_FORMAT,
        "run_id": run_id,
        "started": _iso(started) if started else None,
        "finished": _iso(datetime.now(UTC)),
        "counts": counts,
        "pairs": pairs,
    }


def _write_report(
    store: Store, report: Mapping[str, Any], result: FinalizeResult
) -> FinalizeResult:
    """Complete the report with the catalog summary and store it."""
    run_id = str(report.get("run_id") or f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    _check_run_id(run_id)
    key = f"{REPORTS_PREFIX}/{run_id}.json"
    result = FinalizeResult(**{**result.__dict__, "report_href": store.href_for(key)})
    body = {**report, "format": report.get("format", RUN_REPORT_FORMAT), "run_id": run_id}
    body["catalog"] = result.to_dict()
    store.put(key, json.dumps(body, indent=2).encode(), content_type=JSON)
    return result


def _iso(value: datetime) -> str:
    """RFC 3339 UTC."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
