"""The run report: every pair of a run with its outcome, plus what the catalog holds after it.

``reports/<run_id>.json`` in the catalog's store, format :data:`RUN_REPORT_FORMAT`:
``{"format", "run_id", "started", "finished", "counts": {status: n}, "pairs": [...],
"catalog": {...}}``. Hrefs in it are relative to the report itself, so the catalog can
move (and no machine path leaks into a published tree).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from stac_coh.io.storage import Store
from stac_coh.pipeline.records import REPORTS_PREFIX, validate_run_id
from stac_coh.publish.finalize import FinalizeResult

__all__ = ["RUN_REPORT_FORMAT", "report_key", "run_report", "write_report"]

RUN_REPORT_FORMAT = "stac-coh/run-report/1"
"""Layout version of a run report."""

STATUSES = ("published", "skipped", "failed")
"""Statuses every report counts, even at zero."""


def report_key(run_id: str) -> str:
    """``reports/<run_id>.json``."""
    return f"{REPORTS_PREFIX}/{validate_run_id(run_id)}.json"


def run_report(
    run_id: str, entries: Iterable[Mapping[str, Any]], *, started: datetime | None = None
) -> dict[str, Any]:
    """A run report of ``entries`` (one per pair), without the catalog part yet."""
    pairs = sorted((dict(e) for e in entries), key=lambda e: str(e.get("pair_id")))
    counts = dict.fromkeys(STATUSES, 0)
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


def write_report(store: Store, report: Mapping[str, Any], catalog: FinalizeResult) -> str:
    """Add the catalog summary to ``report``, store it, and return its href."""
    key = report_key(str(report["run_id"]))
    summary = catalog.to_dict()
    summary["collection_href"] = _relative(catalog.collection_key, key)
    summary.pop("collection_key", None)
    body = {**report, "catalog": summary}
    store.put(key, json.dumps(body, indent=2).encode(), content_type="application/json")
    return store.href_for(key)


def _relative(target_key: str, from_key: str) -> str:
    """``target_key`` as an href relative to the object at ``from_key`` (same store)."""
    return posixpath.relpath(target_key, posixpath.dirname(from_key))


def _iso(value: datetime) -> str:
    """RFC 3339 UTC, to the second."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
