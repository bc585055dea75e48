"""The run report: every pair of a run with its outcome, plus what the catalog holds after it.

``reports/<run_id>.json`` in the catalog's store, format :data:`RUN_REPORT_FORMAT`:
``{"format", "run_id", "started", "finished", "counts": {status: n}, "catalog": {...},
"pairs": [...]}`` with the pairs sorted by pair id, one per line. Hrefs in it are relative
to the report itself, so the catalog can move (and no machine path leaks into a published
tree).

A continental run has a million work units, so the report is never held in memory:
outcomes go into an :class:`OutcomeTable` (an SQLite file) as they stream in, and
:func:`write_report` writes the head and then the pairs row by row into a local file
that is uploaded in one piece.
"""

from __future__ import annotations

import json
import posixpath
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from stac_coh.io.storage import Store
from stac_coh.pipeline.records import REPORTS_PREFIX, validate_run_id
from stac_coh.publish.finalize import FinalizeResult

__all__ = [
    "RUN_REPORT_FORMAT",
    "OutcomeTable",
    "report_head",
    "report_key",
    "write_report",
]

RUN_REPORT_FORMAT = "stac-coh/run-report/1"
"""Layout version of a run report."""

STATUSES = ("published", "skipped", "failed")
"""Statuses every report counts, even at zero."""


def report_key(run_id: str) -> str:
    """``reports/<run_id>.json``."""
    return f"{REPORTS_PREFIX}/{validate_run_id(run_id)}.json"


def report_head(run_id: str, *, started: datetime | None = None) -> dict[str, Any]:
    """The fields of a run report before its counts, catalog and pairs."""
    return {
        "format": RUN_REPORT_FORMAT,
        "run_id": run_id,
        "started": _iso(started) if started else None,
        "finished": _iso(datetime.now(UTC)),
    }


class OutcomeTable:
    """The outcomes of one run on disk: added in any order, read back sorted by pair id."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="stac-coh-report-")
        self._db = sqlite3.connect(Path(self._folder.name) / "outcomes.sqlite")
        self._db.execute("CREATE TABLE outcome (pair_id TEXT, status TEXT, body TEXT)")
        self._db.execute("CREATE INDEX by_pair ON outcome (pair_id)")

    def add(self, entry: Mapping[str, Any]) -> None:
        """Keep one pair's report entry."""
        row = (str(entry.get("pair_id")), str(entry.get("status")), json.dumps(dict(entry)))
        self._db.execute("INSERT INTO outcome VALUES (?, ?, ?)", row)

    def __contains__(self, pair_id: object) -> bool:
        """Whether an outcome of ``pair_id`` is kept."""
        found = self._db.execute("SELECT 1 FROM outcome WHERE pair_id = ? LIMIT 1", (pair_id,))
        return found.fetchone() is not None

    def counts(self) -> dict[str, int]:
        """Pairs per status (every status of :data:`STATUSES`, even at zero)."""
        counts = dict.fromkeys(STATUSES, 0)
        rows = self._db.execute("SELECT status, COUNT(*) FROM outcome GROUP BY status")
        counts.update({status: n for status, n in rows})
        return counts

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The entries sorted by pair id (code point order, as Python sorts strings)."""
        for (body,) in self._db.execute("SELECT body FROM outcome ORDER BY pair_id, rowid"):
            yield json.loads(body)

    def close(self) -> None:
        """Drop the table and its file."""
        self._db.close()
        self._folder.cleanup()

    def __enter__(self) -> OutcomeTable:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def write_report(
    store: Store,
    head: Mapping[str, Any],
    catalog: FinalizeResult,
    pairs: Iterable[Mapping[str, Any]],
) -> str:
    """Store the report (``head``, the catalog summary, then ``pairs``); return its href."""
    key = report_key(str(head["run_id"]))
    summary = catalog.to_dict()
    summary["collection_href"] = _relative(catalog.collection_key, key)
    summary.pop("collection_key", None)
    top = json.dumps({**head, "catalog": summary}, indent=2)
    with tempfile.TemporaryDirectory(prefix="stac-coh-report-") as folder:
        path = Path(folder) / "report.json"
        with path.open("w", encoding="utf-8") as out:
            out.write(top.removesuffix("}").rstrip() + ',\n  "pairs": [')
            for n, entry in enumerate(pairs):
                out.write(("\n" if n == 0 else ",\n") + "    " + json.dumps(dict(entry)))
            out.write("\n  ]\n}\n")
        store.put_file(key, path, content_type="application/json")
    return store.href_for(key)


def _relative(target_key: str, from_key: str) -> str:
    """``target_key`` as an href relative to the object at ``from_key`` (same store)."""
    return posixpath.relpath(target_key, posixpath.dirname(from_key))


def _iso(value: datetime) -> str:
    """RFC 3339 UTC, to the second."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
