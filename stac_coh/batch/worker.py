"""The AWS Batch worker: process one array child's share of a manifest; finalize a run.

A child runs its share through the same orchestration as ``stac-coh run``
(:func:`stac_coh.pipeline.run.execute_run`: each outcome recorded in the store as soon as
it is known; items only, the finalize job builds the collection once with
:func:`stac_coh.pipeline.run.finish_run`). What is Batch's own here is the logging and
the exit code that tells AWS Batch's retry strategy what to do (:func:`share_exit_code`):

- ``0``: every pair is published, or failed for good and recorded. A permanent failure
  must not fail the child: AWS Batch never starts a job whose dependency failed, so one
  corrupt scene would otherwise cancel the finalize job of the whole run. Every last
  attempt exits 0 too, after recording what it could not do, for the same reason.
- ``75`` (EX_TEMPFAIL): a transient failure (throttling, 5xx, expired token, no route) or
  a stop request (SIGTERM: Spot reclaim, the time limit); Batch retries the child, which
  skips the pairs already published.
- ``69`` (EX_UNAVAILABLE): the GPU is missing or failed (:mod:`stac_coh.batch.device`);
  the child stops at once and Batch retries it in a new container.
- ``2``: unusable input (manifest unreadable or invalid, index out of range, bad
  settings); retrying cannot help.

What is transient is decided from the error's code (:mod:`stac_coh.io.faults`); pairs
are recorded as ``started`` before their first output (:mod:`stac_coh.batch.attempts`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stac_coh.batch.attempts import Attempts
from stac_coh.batch.device import device_failed
from stac_coh.batch.exits import EXIT_BAD_INPUT, EXIT_BUG, EXIT_DEVICE, EXIT_OK, EXIT_RETRY
from stac_coh.batch.logs import log_event
from stac_coh.batch.record import validate_public_url
from stac_coh.errors import InputError, ObjectNotFoundError
from stac_coh.io.faults import Kind, classify
from stac_coh.io.storage import Store, open_store
from stac_coh.pipeline.run import RunEnd, RunProgress, execute_run, finish_run, status_counts
from stac_coh.pipeline.runner import PairOutcome, PairProcessor
from stac_coh.pipeline.signals import StopSignals
from stac_coh.publish.collection import DEFAULT_COLLECTION_ID
from stac_coh.search.manifest import Manifest, Pair
from stac_coh.search.manifest_io import manifest_from_bytes, read_manifest

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUG",
    "EXIT_DEVICE",
    "EXIT_OK",
    "EXIT_RETRY",
    "ShareResult",
    "exit_code_for_error",
    "finalize_run",
    "gdal_overrides",
    "load_manifest",
    "process_share",
    "public_base",
    "share_exit_code",
]

log = logging.getLogger(__name__)

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
        return status_counts(self.outcomes, self.pairs)


def share_exit_code(
    outcomes: Sequence[PairOutcome], *, pairs: int, stopped: bool, last_attempt: bool = False
) -> int:
    """Exit code of a child: 69 or 75 to be retried, 0 when a retry cannot change anything.

    On the last attempt it is 0 whatever happened: the pairs are recorded, Batch would not
    retry anyway, and a failed child would keep the finalize job from running.
    """
    if last_attempt:
        return EXIT_OK
    if device_failed(outcomes):
        return EXIT_DEVICE
    unfinished = stopped and (
        len(outcomes) < pairs or any(o.status == "interrupted" for o in outcomes)
    )
    if unfinished:
        return EXIT_RETRY
    transient = any(o.status == "failed" and o.transient for o in outcomes)
    return EXIT_RETRY if transient else EXIT_OK


def exit_code_for_error(error: BaseException) -> int:
    """Exit code of an error that stopped the worker before or between pairs (by its code)."""
    kind = classify(error).kind
    if kind is Kind.TRANSIENT:
        return EXIT_RETRY
    if kind is Kind.DEVICE:
        return EXIT_DEVICE
    if kind is Kind.PERMANENT:
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

    attempts = Attempts(processor.store, run_id, processor.options.collection_id)
    given_up = attempts.set_aside(pairs)  # pairs during which two attempts died
    for outcome in given_up:
        _log_outcome(outcome)
    skip = {o.pair_id for o in given_up}

    def on_start(pair: Pair, position: int, total: int) -> None:
        log_event(log, "pair.start", f"pair {position + 1}/{total}: {pair.id}", pair_id=pair.id)
        attempts.started(pair)  # before any output: a kill from now on is accounted for

    def gpu_failed(outcome: PairOutcome) -> bool:
        """A CUDA error leaves the process's GPU context unusable: stop, unless no retry."""
        return device_failed([outcome]) and not last_attempt

    progress = RunProgress(on_pair_start=on_start, on_pair_done=_log_outcome, stop_after=gpu_failed)
    todo = [p for p in pairs if p.id not in skip]
    result = execute_run(processor, todo, run_id=run_id, progress=progress, stop=stop)
    outcomes = (*given_up, *result.outcomes)
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
        outcomes, pairs=len(pairs), stopped=result.stopped, last_attempt=last_attempt
    )
    return ShareResult(outcomes, len(pairs), result.stopped, code)


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


def public_base(url: str | None) -> str | None:
    """The checked ``--public-url`` (``STAC_COH_PUBLIC_URL``) for the store's self links."""
    return validate_public_url(url)


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
    remove_orphans: bool = False,
) -> RunEnd:
    """The finalize job: :func:`stac_coh.pipeline.run.finish_run` for the run, logged.

    Assets without an item are reported; ``remove_orphans`` deletes those of the
    manifest's pairs (every worker of the run has ended when the finalize job runs).
    """
    end = finish_run(
        store,
        collection_id=collection_id,
        run_id=run_id,
        manifest=manifest,
        stac_api=stac_api,
        session=session,
        geoparquet=geoparquet,
        pgstac=pgstac,
        remove_orphans=remove_orphans,
    )
    counts = end.report["counts"] if end.report else {}
    orphans = end.catalog.orphans
    log_event(
        log,
        "finalize.done",
        f"{end.catalog.items} items in {end.catalog.collection_href}",
        items=end.catalog.items,
        counts=counts,
        report=end.report_href,
        orphans=orphans.found if orphans else 0,
        orphans_removed=orphans.removed if orphans else 0,
    )
    return end
