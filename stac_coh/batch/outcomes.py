"""Per-pair outcomes of a Batch run, as workers record them in the output store.

Each worker records every pair it attempts with :func:`stac_coh.publish.finalize.record_outcome`
(``reports/<run_id>/pairs/<pair_id>.json``; the finalize job gathers them into the run
report). A failed pair also leaves a marker under ``reports/<run_id>/failed/``, removed
when a later attempt succeeds, so ``stac-coh status`` lists failed pairs with one LIST
instead of reading every outcome of a large run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stac_coh.batch.plan import validate_run_id
from stac_coh.io.storage import Store
from stac_coh.publish.finalize import REPORTS_PREFIX, outcome_key, record_outcome

__all__ = ["FailedPair", "failed_key", "read_failed_pairs", "record_pair", "recorded_count"]

_JSON = "application/json"


@dataclass(frozen=True)
class FailedPair:
    """A pair whose last recorded attempt failed."""

    pair_id: str
    """The pair (item) id."""
    error: str
    """One-line reason, as the worker recorded it."""
    transient: bool
    """The failure looked transient (the child exited 75 and may be retried)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"pair_id": self.pair_id, "error": self.error, "transient": self.transient}


def failed_key(run_id: str, pair_id: str) -> str:
    """Key of a failed pair's marker: ``reports/<run_id>/failed/<pair_id>.json``."""
    return f"{_prefix(run_id, 'failed')}{pair_id}.json"


def _prefix(run_id: str, kind: str) -> str:
    """``reports/<run_id>/<kind>/``."""
    return f"{REPORTS_PREFIX}/{validate_run_id(run_id)}/{kind}/"


def record_pair(store: Store, run_id: str, entry: Mapping[str, Any]) -> None:
    """Record one pair's outcome for the finalize job and ``status``.

    A retried child finds its earlier published pairs ``skipped``; the earlier
    ``published`` entry is kept, so the run report counts what this run produced.
    """
    pair_id = str(entry["pair_id"])
    status = entry.get("status")
    if status == "skipped" and _recorded_status(store, run_id, pair_id) == "published":
        return
    record_outcome(store, run_id, entry)
    marker = failed_key(run_id, pair_id)
    if status == "failed":
        store.put(marker, json.dumps(dict(entry)).encode(), content_type=_JSON)
    elif status in ("published", "skipped"):
        store.delete(marker)  # an earlier attempt may have failed; absent is fine too


def _recorded_status(store: Store, run_id: str, pair_id: str) -> str | None:
    """Status of the outcome already recorded for the pair in this run, if any."""
    found = store.get_or_none(outcome_key(run_id, pair_id))
    return None if found is None else str(json.loads(found.data).get("status"))


def read_failed_pairs(store: Store, run_id: str, limit: int = 50) -> tuple[list[FailedPair], int]:
    """Failed pairs of a run (at most ``limit``, by pair id) and how many there are."""
    keys = [k for k in store.list(_prefix(run_id, "failed")) if k.endswith(".json")]
    failed = []
    for key in keys[:limit]:
        found = store.get_or_none(key)
        if found is None:  # a retry succeeded meanwhile
            continue
        entry = json.loads(found.data)
        failed.append(
            FailedPair(
                str(entry.get("pair_id")),
                str(entry.get("error", "")),
                bool(entry.get("transient", False)),
            )
        )
    return failed, len(keys)


def recorded_count(store: Store, run_id: str) -> int:
    """Pairs of a run with a recorded outcome (one LIST per 1,000 pairs)."""
    return sum(1 for key in store.list(_prefix(run_id, "pairs")) if key.endswith(".json"))
