"""What a run leaves in the store while it goes: its id and one record per work unit.

Every run - local or an AWS Batch array - records each pair's outcome as soon as it is
known, under ``reports/<run_id>/pairs/<pair_id>.json``; finishing the run (locally at the
end, on Batch in the finalize job) gathers them into the run report. A failed pair also
leaves a marker under ``reports/<run_id>/failed/``, removed when a later attempt
succeeds, so ``stac-coh status`` lists failed pairs with one LIST instead of reading
every outcome of a large run.

An AWS Batch child also records ``started`` before a pair's first output
(:mod:`stac_coh.batch.attempts`), so a kill at any point leaves a truthful record:
``started`` with an item means the process died between publishing and recording (the
pair is published: :func:`resolve_started`), without one it died mid-pair.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stac_coh.errors import InputError
from stac_coh.io.storage import Store, read_json_objects
from stac_coh.publish.collection import item_key
from stac_coh.publish.layout import JSON

__all__ = [
    "REPORTS_PREFIX",
    "STARTED",
    "FailedPair",
    "failed_key",
    "iter_recorded_outcomes",
    "new_run_id",
    "outcome_key",
    "read_failed_pairs",
    "record_outcome",
    "recorded_count",
    "resolve_started",
    "validate_run_id",
]

REPORTS_PREFIX = "reports"
"""Where runs keep their records (``reports/<run_id>/``) and reports (``reports/<run_id>.json``)."""

STARTED = "started"
"""Status of a pair a Batch attempt is working on (no outcome yet)."""

_DIED_AFTER_PUBLISHING = "published by an attempt that died before recording it"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id: UTC time plus 6 random hex digits, e.g. ``20260417T101500Z-3f9c2a``."""
    now = now or datetime.now(UTC)
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it fits job names and S3 keys, else raise :class:`InputError`."""
    if not _RUN_ID.fullmatch(run_id):
        raise InputError(
            f"Run id {run_id!r} must be 1-64 letters, digits or hyphens, starting with a "
            "letter or digit."
        )
    return run_id


def _prefix(run_id: str, kind: str) -> str:
    """``reports/<run_id>/<kind>/``."""
    return f"{REPORTS_PREFIX}/{validate_run_id(run_id)}/{kind}/"


def outcome_key(run_id: str, pair_id: str) -> str:
    """Key of one pair's recorded outcome: ``reports/<run_id>/pairs/<pair_id>.json``."""
    return f"{_prefix(run_id, 'pairs')}{pair_id}.json"


def failed_key(run_id: str, pair_id: str) -> str:
    """Key of a failed pair's marker: ``reports/<run_id>/failed/<pair_id>.json``."""
    return f"{_prefix(run_id, 'failed')}{pair_id}.json"


def record_outcome(store: Store, run_id: str, entry: Mapping[str, Any]) -> None:
    """Record one pair's outcome (a run-report entry) for the run's end and ``status``.

    A retried attempt finds its earlier published pairs ``skipped``; the earlier
    ``published`` record is kept, so the run report counts what this run produced. A
    ``skipped`` pair whose record says ``started`` was published by an attempt that died
    before recording it: it is recorded as ``published``.
    """
    pair_id = str(entry["pair_id"])
    status = entry.get("status")
    if status == "skipped":
        recorded = _recorded_status(store, run_id, pair_id)
        if recorded == "published":
            return
        if recorded == STARTED:
            entry = {**entry, "status": "published", "note": _DIED_AFTER_PUBLISHING}
            status = "published"
    body = json.dumps(dict(entry)).encode()
    store.put(outcome_key(run_id, pair_id), body, content_type=JSON)
    marker = failed_key(run_id, pair_id)
    if status == "failed":
        store.put(marker, body, content_type=JSON)
    elif status in ("published", "skipped"):
        store.delete(marker)  # an earlier attempt may have failed; absent is fine too


def _recorded_status(store: Store, run_id: str, pair_id: str) -> str | None:
    """Status of the outcome already recorded for the pair in this run, if any."""
    found = store.get_or_none(outcome_key(run_id, pair_id))
    return None if found is None else str(json.loads(found.data).get("status"))


def iter_recorded_outcomes(store: Store, run_id: str) -> Iterator[dict[str, Any]]:
    """Every outcome recorded for ``run_id``, streamed in no promised order.

    Keys come page by page and records are read in parallel a chunk at a time, so memory
    stays flat however many work units the run had.
    """
    keys = (k for k in store.iter_keys(_prefix(run_id, "pairs")) if k.endswith(".json"))
    for _, entry in read_json_objects(store, keys):
        yield dict(entry)


def resolve_started(
    store: Store, entries: Iterable[Mapping[str, Any]], collection_id: str
) -> Iterator[dict[str, Any]]:
    """Outcomes with every ``started`` record resolved by whether the pair's item exists.

    An item means the attempt died after publishing (``published``); none means it died
    mid-pair and no retry finished it (``interrupted``).
    """
    for entry in entries:
        entry = dict(entry)
        if entry.get("status") == STARTED:
            entry.pop("starts", None)
            if store.exists(item_key(collection_id, str(entry["pair_id"]))):
                entry.update(status="published", note=_DIED_AFTER_PUBLISHING)
            else:
                error = "The worker died during this pair (killed) and no retry finished it."
                entry.update(status="interrupted", error=error)
        yield entry


def recorded_count(store: Store, run_id: str) -> int:
    """Pairs of a run with a recorded outcome (one LIST per 1,000 pairs)."""
    return sum(1 for key in store.iter_keys(_prefix(run_id, "pairs")) if key.endswith(".json"))


@dataclass(frozen=True)
class FailedPair:
    """A pair whose last recorded attempt failed."""

    pair_id: str
    """The pair (item) id."""
    error: str
    """One-line reason, as the worker recorded it."""
    transient: bool
    """The failure looked transient (a retry may succeed)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"pair_id": self.pair_id, "error": self.error, "transient": self.transient}


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
