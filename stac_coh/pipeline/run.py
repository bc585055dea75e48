"""The one run orchestration: process work units, record each outcome, finish the catalog.

``stac-coh run``, ``search-and-run`` and ``demo`` call :func:`execute_run` then
:func:`finish_run` in one process; an AWS Batch child calls :func:`execute_run` on its
share and the finalize job calls :func:`finish_run` once for the whole run. Both record
every outcome in the store as soon as it is known (:mod:`stac_coh.pipeline.records`), so
the run report is built the same way whoever ran the pairs, and the collection is built
once per run, by :func:`finish_run`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import requests

from stac_coh.io.storage import Store, map_keys
from stac_coh.pipeline.records import (
    iter_recorded_outcomes,
    new_run_id,
    record_outcome,
    resolve_started,
    validate_run_id,
)
from stac_coh.pipeline.report import (
    RUN_REPORT_FORMAT,
    OutcomeTable,
    report_head,
    write_report,
)
from stac_coh.pipeline.runner import InterruptedRun, PairOutcome, PairProcessor, RunHooks, run_pairs
from stac_coh.pipeline.signals import StopSignals
from stac_coh.publish.collection import DEFAULT_COLLECTION_ID, item_key
from stac_coh.publish.finalize import FinalizeResult, finalize
from stac_coh.search.manifest import Manifest, Pair

__all__ = [
    "RunEnd",
    "RunProgress",
    "RunResult",
    "execute_run",
    "finish_run",
    "run_manifest_key",
    "save_run_manifest",
    "status_counts",
]

log = logging.getLogger(__name__)


@dataclass
class RunProgress:
    """What a user interface (or a log) hears while units run; every callback optional."""

    on_pair_start: Callable[[Pair, int, int], None] | None = None
    """(pair, position, number of pairs) before a pair starts."""
    on_tile: Callable[[int, int], None] | None = None
    """(tiles done, tiles in the pair) while a pair is being predicted."""
    on_pair_done: Callable[[PairOutcome], None] | None = None
    """After each pair, once its outcome is recorded."""
    stop_after: Callable[[PairOutcome], bool] | None = None
    """After each recorded outcome: True starts no further pair (e.g. the GPU failed)."""


@dataclass(frozen=True)
class RunResult:
    """What :func:`execute_run` did with its pairs."""

    outcomes: tuple[PairOutcome, ...]
    """One per pair attempted, in order."""
    pairs: int
    """Pairs it was given."""
    stop: StopSignals = field(default_factory=lambda: StopSignals(signals=()))
    """The stop requests it honoured (``stop.received`` says which signal, if any)."""

    @property
    def stopped(self) -> bool:
        """A stop request ended the run before every pair was done."""
        return self.stop.requested

    @property
    def counts(self) -> dict[str, int]:
        """Pairs per status, plus ``not_started`` when a stop left some untouched."""
        return status_counts(self.outcomes, self.pairs)


def status_counts(outcomes: Sequence[PairOutcome], pairs: int) -> dict[str, int]:
    """Pairs per status, plus ``not_started`` for the ``pairs`` no outcome covers."""
    counts: dict[str, int] = dict(Counter(outcome.status for outcome in outcomes))
    if left := pairs - len(outcomes):
        counts["not_started"] = left
    return counts


def execute_run(
    processor: PairProcessor,
    pairs: Sequence[Pair],
    *,
    run_id: str,
    progress: RunProgress | None = None,
    stop: StopSignals | None = None,
) -> RunResult:
    """Process ``pairs`` in order, recording each outcome; never raises for a pair's failure.

    Args:
        processor: Turns one pair into a published item (it never touches the collection).
        pairs: The work units of this run (or of this Batch child).
        run_id: Run id the outcomes are recorded under.
        progress: Callbacks for a user interface or a log.
        stop: Stop signals installed by the caller; a request interrupts the running pair
            and no new pair starts (``None``: no stop requests; Ctrl-C propagates).

    Raises:
        StorageError: an outcome could not be recorded (the run should be retried).
    """
    validate_run_id(run_id)
    progress = progress or RunProgress()
    signals = stop or StopSignals(signals=())
    outcomes: list[PairOutcome] = []
    halted: list[PairOutcome] = []  # outcomes after which progress.stop_after said stop

    def on_start(pair: Pair, position: int, total: int) -> None:
        if progress.on_pair_start:
            progress.on_pair_start(pair, position, total)
        signals.pair_started()

    def on_done(outcome: PairOutcome) -> None:
        signals.pair_done()
        outcomes.append(outcome)
        record_outcome(processor.store, run_id, outcome.to_entry())
        if progress.on_pair_done:
            progress.on_pair_done(outcome)
        if progress.stop_after and progress.stop_after(outcome):
            halted.append(outcome)

    hooks = RunHooks(
        on_pair_start=on_start,
        on_tile=progress.on_tile,
        on_pair_done=on_done,
        stop_requested=lambda: signals.requested or bool(halted),
    )
    try:
        run_pairs(processor, pairs, hooks)
    except InterruptedRun:
        signals.pair_done()
        if not signals.requested:  # no handler of ours: a plain Ctrl-C for the caller
            raise
    if signals.requested:
        name = signals.received.name if signals.received else "signal"
        log.warning("%s received: stopped after %d of %d pairs", name, len(outcomes), len(pairs))
    return RunResult(tuple(outcomes), len(pairs), signals)


@dataclass(frozen=True)
class RunEnd:
    """What :func:`finish_run` left: the rebuilt collection and the run report."""

    catalog: FinalizeResult
    """The collection as rebuilt from every item in the store."""
    report: dict[str, Any] | None
    """The run report written, less its pairs (which stay on disk: a run may have a million);
    ``None`` when there was no run to report."""
    report_href: str | None
    """Where the report is."""


def finish_run(
    store: Store,
    *,
    collection_id: str = DEFAULT_COLLECTION_ID,
    run_id: str | None = None,
    report: Mapping[str, Any] | None = None,
    manifest: Manifest | None = None,
    started: datetime | None = None,
    stac_api: str | None = None,
    session: requests.Session | None = None,
    extra: Mapping[str, Any] | None = None,
    geoparquet: bool = False,
    pgstac: str | None = None,
    remove_orphans: bool = False,
) -> RunEnd:
    """Build the collection once from the store's items, then write the run report.

    Args:
        store: The catalog's store.
        collection_id: Collection to rebuild.
        run_id: Gather the outcomes recorded under this run id into the report.
        report: A ready report to complete instead (``stac-coh finalize --report``).
        manifest: The run's pairs: pairs without a recorded outcome are reported too
            (``skipped`` when their item exists - published before, or by a process that
            died between publishing and recording without a ``started`` record - else
            ``missing``). ``started`` records are resolved by whether the item exists.
        started: When the run started, for the report.
        stac_api: STAC API root to upsert the collection and items into.
        session: HTTP session for the push.
        extra: Fields added to the report (e.g. ``{"interrupted": True}``).
        geoparquet: Also write every item to ``<collection>/items.parquet``.
        pgstac: PostgreSQL DSN to bulk-load the collection and items into.
        remove_orphans: Delete assets without an item (always reported), those of the
            manifest's pairs when one is given (:mod:`stac_coh.publish.orphans`).
    """
    with OutcomeTable() as outcomes:
        head: dict[str, Any] | None = None
        pair_ids: Container[str] | None = None  # the manifest's, for the orphan sweep
        if report is not None:
            head = {k: v for k, v in report.items() if k != "pairs"}
            for entry in report.get("pairs") or ():
                outcomes.add(entry)
        elif run_id is not None:
            head = report_head(run_id, started=started)
            _gather_outcomes(store, run_id, outcomes, collection_id, manifest)
            if manifest is not None:
                head["manifest_pairs"] = len(manifest.pairs)
                pair_ids = outcomes  # they cover every pair of it, on disk
        if manifest is not None and pair_ids is None:
            pair_ids = {p.id for p in manifest.pairs}
        catalog = finalize(
            store,
            collection_id=collection_id,
            stac_api=stac_api,
            session=session,
            geoparquet=geoparquet,
            pgstac=pgstac,
            remove_orphans=remove_orphans,
            orphans_of=pair_ids,
        )
        if head is None:
            return RunEnd(catalog, None, None)
        head.update(extra or {})
        head["run_id"] = validate_run_id(str(head.get("run_id") or run_id or new_run_id()))
        head.setdefault("format", RUN_REPORT_FORMAT)
        if report is None or "pairs" in report:
            head["counts"] = outcomes.counts()
        href = write_report(store, head, catalog, outcomes)
    return RunEnd(catalog, head, href)


def _gather_outcomes(
    store: Store,
    run_id: str,
    outcomes: OutcomeTable,
    collection_id: str,
    manifest: Manifest | None,
) -> None:
    """Every recorded outcome of the run, then the manifest's pairs without one."""
    for entry in resolve_started(store, iter_recorded_outcomes(store, run_id), collection_id):
        outcomes.add(entry)
    if manifest is None:
        return
    unrecorded = 0
    ids = (p.id for p in manifest.pairs if p.id not in outcomes)

    def published(pair_id: str) -> bool:
        return store.exists(item_key(collection_id, pair_id))

    # A run whose children all died leaves every pair unrecorded: one HEAD each, in parallel.
    for pair_id, has_item in map_keys(ids, published):
        if pair_id in outcomes:  # listed twice in the manifest
            continue
        unrecorded += 1
        if has_item:
            outcomes.add({"pair_id": pair_id, "status": "skipped", "note": "no outcome recorded"})
        else:
            error = "No worker recorded this pair: its child failed or never ran."
            outcomes.add({"pair_id": pair_id, "status": "missing", "error": error})
    if unrecorded:
        log.warning("%d manifest pairs have no recorded outcome", unrecorded)


def run_manifest_key(run_id: str) -> str:
    """``runs/<run_id>/manifest.json``: the pairs a run was asked to process."""
    return f"runs/{validate_run_id(run_id)}/manifest.json"


def save_run_manifest(store: Store, manifest: Manifest, pairs: Sequence[Pair], run_id: str) -> str:
    """Keep the run's manifest beside the catalog (provenance, ``stac-coh run``); its key.

    Local paths in it are relative to it (no machine path in a published tree; ``stac-coh
    run --manifest`` resolves them back), as :func:`~stac_coh.search.manifest.write_manifest`
    writes every manifest.
    """
    from stac_coh.io.hrefs import portable_hrefs

    subset = replace(manifest, pairs=tuple(pairs))
    key = run_manifest_key(run_id)
    body = json.dumps(portable_hrefs(subset.to_dict(), store.url_for(key)), indent=1).encode()
    store.put(key, body, content_type="application/json")
    return key
