"""The AWS Batch worker: process one array child's share of a manifest; finalize a run.

A child runs its share through the same orchestration as ``stac-coh run``
(:func:`stac_coh.pipeline.run.execute_run`: each outcome recorded in the store as soon as
it is known; items only, the finalize job builds the collection once with
:func:`stac_coh.pipeline.run.finish_run`). What is Batch's own here is the logging and
the exit code that tells AWS Batch's retry strategy what to do (:func:`share_exit_code`):

- ``0``: every pair is published, or failed for good and recorded. A permanent failure
  must not fail the child: AWS Batch never starts a job whose dependency failed, so one
  corrupt scene would otherwise cancel the finalize job of the whole run.
- ``75`` (EX_TEMPFAIL): a transient failure (throttling, 5xx, expired token, no route) or
  a stop request (SIGTERM: Spot reclaim, timeout); Batch retries the child, which skips
  the pairs already published. On the last attempt transient failures exit 0 instead,
  so the finalize job still runs and the report names the failed pairs.
- ``2``: unusable input (manifest unreadable or invalid, index out of range, bad
  settings); retrying cannot help.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stac_coh.batch.logs import log_event
from stac_coh.errors import InputError, ObjectNotFoundError, StacCohError
from stac_coh.io.storage import Store, open_store
from stac_coh.pipeline.run import RunEnd, RunProgress, execute_run, finish_run
from stac_coh.pipeline.runner import PairOutcome, PairProcessor, failure_is_transient
from stac_coh.pipeline.signals import StopSignals
from stac_coh.publish.collection import DEFAULT_COLLECTION_ID
from stac_coh.search.manifest import Manifest, Pair
from stac_coh.search.manifest_io import manifest_from_bytes, read_manifest

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUG",
    "EXIT_OK",
    "EXIT_RETRY",
    "ShareResult",
    "exit_code_for_error",
    "finalize_run",
    "gdal_overrides",
    "load_manifest",
    "process_share",
    "share_exit_code",
]

log = logging.getLogger(__name__)

EXIT_OK = 0
"""Every pair done or failed for good (and recorded)."""
EXIT_BAD_INPUT = 2
"""Unusable input: the job definition does not retry it."""
EXIT_RETRY = 75
"""Transient failure or stop request: the job definition retries it."""
EXIT_BUG = 1
"""An unexpected error (a bug): not retried; the traceback is in the log."""

_GDAL_PREFIXES = ("GDAL_", "CPL_", "VSI_")


@dataclass(frozen=True)
class ShareResult:
    """What a child did with its share."""

    outcomes: tuple[PairOutcome, ...]
    """One per pair attempted, in order."""
    pairs: int
    """Pairs in the share."""
    stopped: bool
    """A stop request ended the share early."""
    exit_code: int
    """The container's exit code (see :func:`share_exit_code`)."""

    @property
    def counts(self) -> dict[str, int]:
        """Pairs per status, plus ``not_started`` when a stop left some untouched."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if left := self.pairs - len(self.outcomes):
            counts["not_started"] = left
        return counts


def share_exit_code(
    outcomes: Sequence[PairOutcome], *, pairs: int, stopped: bool, last_attempt: bool = False
) -> int:
    """Exit code of a child: 75 to be retried, 0 when retrying cannot change anything."""
    unfinished = stopped and (
        len(outcomes) < pairs or any(o.status == "interrupted" for o in outcomes)
    )
    if unfinished:
        return EXIT_RETRY
    transient = any(o.status == "failed" and o.transient for o in outcomes)
    return EXIT_RETRY if transient and not last_attempt else EXIT_OK


def exit_code_for_error(error: BaseException) -> int:
    """Exit code of an error that stopped the worker before or between pairs."""
    if failure_is_transient(error):
        return EXIT_RETRY
    if isinstance(error, StacCohError):
        return EXIT_BAD_INPUT
    return EXIT_BUG


def process_share(
    processor: PairProcessor,
    pairs: Sequence[Pair],
    *,
    run_id: str,
    stop: StopSignals | None = None,
    last_attempt: bool = False,
) -> ShareResult:
    """Process a child's share through :func:`stac_coh.pipeline.run.execute_run`, logging it.

    Args:
        processor: Publishes items only; the finalize job builds the collection.
        pairs: This child's share of the manifest.
        run_id: Run id the outcomes are recorded under.
        stop: Stop signals installed by the caller (``None``: no stop requests).
        last_attempt: AWS Batch will not retry this child again.

    Raises:
        StorageError: an outcome could not be recorded (the child should be retried).
    """

    def on_start(pair: Pair, position: int, total: int) -> None:
        log_event(log, "pair.start", f"pair {position + 1}/{total}: {pair.id}", pair_id=pair.id)

    progress = RunProgress(on_pair_start=on_start, on_pair_done=_log_outcome)
    result = execute_run(processor, pairs, run_id=run_id, progress=progress, stop=stop)
    if result.stopped:
        name = result.stop.received.name if result.stop.received else "signal"
        log_event(
            log,
            "worker.stop",
            f"{name} received: stopped after {len(result.outcomes)} of {len(pairs)} pairs",
            level=logging.WARNING,
            signal=name,
        )
    code = share_exit_code(
        result.outcomes, pairs=len(pairs), stopped=result.stopped, last_attempt=last_attempt
    )
    return ShareResult(result.outcomes, len(pairs), result.stopped, code)


def _log_outcome(outcome: PairOutcome) -> None:
    """One ``pair.done`` line with the outcome's fields."""
    entry = outcome.to_entry()
    if outcome.status != "failed":
        entry.pop("transient", None)
    level = logging.WARNING if outcome.status in ("failed", "interrupted") else logging.INFO
    detail = f": {outcome.error}" if outcome.error else ""
    log_event(log, "pair.done", f"{outcome.pair_id} {outcome.status}{detail}", level=level, **entry)


def load_manifest(uri: str, *, s3_client: Any = None) -> Manifest:
    """Read the run's manifest; a missing or invalid one is :class:`InputError` (exit 2).

    Unlike :func:`stac_coh.search.manifest.read_manifest`, S3 outages stay
    :class:`~stac_coh.errors.StorageError` (exit 75): the child is retried for them.
    """
    if not uri.startswith("s3://"):
        return read_manifest(uri)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise InputError(f"Manifest {uri!r} is not an s3://BUCKET/KEY URI.")
    try:
        body = open_store(f"s3://{bucket}", s3_client=s3_client).get(key).data
    except ObjectNotFoundError:
        raise InputError(
            f"The manifest {uri} does not exist; was the run's prefix deleted? Submit again."
        ) from None
    try:
        # A sharded manifest's head: its units and items are read on demand, by range.
        return manifest_from_bytes(body, uri, s3_client=s3_client)
    except InputError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"The manifest {uri} is not a valid manifest: {exc}.") from None


def gdal_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """GDAL options set in the environment (``GDAL_*``, ``CPL_*``, ``VSI_*``).

    They win over the cloud defaults, so a job definition can tune GDAL (e.g.
    ``GDAL_HTTP_MAX_RETRY``) without the defaults silently replacing its values.
    """
    return {k: int(v) if v.isdigit() else v for k, v in env.items() if k.startswith(_GDAL_PREFIXES)}


def finalize_run(
    store: Store,
    *,
    run_id: str,
    collection_id: str = DEFAULT_COLLECTION_ID,
    manifest: Manifest | None = None,
    stac_api: str | None = None,
    session: Any = None,
    geoparquet: bool = False,
    pgstac: str | None = None,
) -> RunEnd:
    """The finalize job: :func:`stac_coh.pipeline.run.finish_run` for the run, logged."""
    end = finish_run(
        store,
        collection_id=collection_id,
        run_id=run_id,
        manifest=manifest,
        stac_api=stac_api,
        session=session,
        geoparquet=geoparquet,
        pgstac=pgstac,
    )
    counts = end.report["counts"] if end.report else {}
    log_event(
        log,
        "finalize.done",
        f"{end.catalog.items} items in {end.catalog.collection_href}",
        items=end.catalog.items,
        counts=counts,
        report=end.report_href,
    )
    return end
