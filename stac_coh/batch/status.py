"""Status of a run: its children by state, the failed ones with their reasons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stac_coh.batch.plan import JOB_STATES
from stac_coh.batch.record import RunRecord, SubmittedJob, open_s3_out, read_run_record
from stac_coh.batch.submit import batch_errors
from stac_coh.pipeline.records import FailedPair, read_failed_pairs, recorded_count

__all__ = ["FailedChild", "RunStatus", "run_status"]

UNKNOWN = "UNKNOWN"
"""State of jobs AWS Batch no longer describes (it forgets finished jobs after some days)."""

_TERMINAL = frozenset({"SUCCEEDED", "FAILED", UNKNOWN})
_DESCRIBE_BATCH = 100  # DescribeJobs takes at most 100 ids


@dataclass(frozen=True)
class FailedChild:
    """One child that failed after its retries."""

    child: int
    """Global child index."""
    job_id: str
    """AWS Batch job id of the child (``parent:index`` for array children)."""
    pairs: tuple[int, int]
    """Manifest pair indices ``[start, stop)`` the child had to process."""
    status_reason: str
    """AWS Batch's ``statusReason``, e.g. ``Host EC2 (instance i-...) terminated.``."""
    exit_code: int | None
    """Container exit code of the last attempt, if the container ran (2: bad input)."""
    reason: str
    """Container-level reason, e.g. ``OutOfMemoryError: Container killed ...``."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "child": self.child,
            "job_id": self.job_id,
            "pairs": list(self.pairs),
            "status_reason": self.status_reason,
            "exit_code": self.exit_code,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RunStatus:
    """A run's children by state, the finalize job's state, and failed children."""

    record: RunRecord
    """What was submitted."""
    counts: Mapping[str, int]
    """Children per state (every AWS Batch state, plus ``UNKNOWN`` when non-zero)."""
    finalize_status: str
    """State of the finalize job."""
    finalize_reason: str
    """``statusReason`` of the finalize job (empty while it waits)."""
    failed: tuple[FailedChild, ...]
    """Failed children, by child index; at most the number asked for."""
    failed_pairs: tuple[FailedPair, ...] = ()
    """Pairs whose last recorded attempt failed, by pair id; at most the number asked for."""
    failed_pairs_total: int = 0
    """All pairs whose last recorded attempt failed."""
    recorded_pairs: int = 0
    """Pairs with a record: started by an attempt, or published, skipped, failed, interrupted."""

    @property
    def failed_total(self) -> int:
        """All failed children, listed or not."""
        return int(self.counts.get("FAILED", 0))

    @property
    def finished(self) -> bool:
        """Whether nothing of the run will change any more."""
        return self.finalize_status in _TERMINAL

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (what ``stac-coh status --json`` prints)."""
        return {
            "run_id": self.record.run_id,
            "out": self.record.out,
            "children": self.record.children,
            "counts": dict(self.counts),
            "finalize": {
                "job_id": self.record.finalize_job_id,
                "status": self.finalize_status,
                "status_reason": self.finalize_reason,
            },
            "failed_total": self.failed_total,
            "failed": [child.to_dict() for child in self.failed],
            "recorded_pairs": self.recorded_pairs,
            "failed_pairs_total": self.failed_pairs_total,
            "failed_pairs": [pair.to_dict() for pair in self.failed_pairs],
        }


def run_status(run_id: str, *, out: str, batch: Any, s3: Any, max_failed: int = 50) -> RunStatus:
    """Describe a run's jobs: children counted by state, failed children listed.

    Args:
        run_id: Run id printed by ``submit``.
        out: ``s3://bucket/prefix`` the run was submitted with.
        batch: boto3 Batch client.
        s3: boto3 S3 client.
        max_failed: List at most this many failed children (all are counted).
    """
    record = read_run_record(run_id, out=out, s3=s3)
    described = _describe(batch, record.job_ids)
    counts = dict.fromkeys(JOB_STATES, 0)
    failed: list[FailedChild] = []
    for job in record.jobs:
        desc = described.get(job.job_id)
        if desc is None:
            counts[UNKNOWN] = counts.get(UNKNOWN, 0) + job.size
            continue
        _count(job, desc, counts)
        if len(failed) < max_failed:
            failed.extend(_failed_children(batch, record, job, desc, max_failed - len(failed)))
    final = described.get(record.finalize_job_id, {})
    # Workers record pair outcomes in the store; failed pairs leave markers (one LIST).
    store = open_s3_out(out, s3)
    failed_pairs, failed_pairs_total = read_failed_pairs(store, run_id, max_failed)
    return RunStatus(
        record=record,
        counts=counts,
        finalize_status=str(final.get("status", UNKNOWN)),
        finalize_reason=str(final.get("statusReason", "")),
        failed=tuple(sorted(failed, key=lambda child: child.child)),
        failed_pairs=tuple(failed_pairs),
        failed_pairs_total=failed_pairs_total,
        recorded_pairs=recorded_count(store, run_id),
    )


def _describe(batch: Any, job_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """DescribeJobs in batches of 100; job id -> description."""
    ids = list(job_ids)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _DESCRIBE_BATCH):
        chunk = ids[start : start + _DESCRIBE_BATCH]
        with batch_errors(f"describing jobs {', '.join(chunk[:3])}..."):
            for desc in batch.describe_jobs(jobs=chunk)["jobs"]:
                found[desc["jobId"]] = desc
    return found


def _count(job: SubmittedJob, desc: Mapping[str, Any], counts: dict[str, int]) -> None:
    """Add a worker job's children to ``counts``."""
    status = str(desc.get("status", UNKNOWN))
    summary = (desc.get("arrayProperties", {}).get("statusSummary") or {}) if job.size > 1 else {}
    seen = 0
    for state, n in summary.items():
        counts[state] = counts.get(state, 0) + int(n)
        seen += int(n)
    # Before AWS creates the children (or for a plain job) the parent's state is theirs.
    if job.size > seen:
        counts[status] = counts.get(status, 0) + job.size - seen


def _failed_children(
    batch: Any, record: RunRecord, job: SubmittedJob, desc: Mapping[str, Any], limit: int
) -> list[FailedChild]:
    """Failed children of one worker job, at most ``limit``."""
    if job.size == 1:
        return [_failed_child(record, job, desc)] if desc.get("status") == "FAILED" else []
    summary = desc.get("arrayProperties", {}).get("statusSummary") or {}
    if not summary.get("FAILED"):
        return []
    children: list[FailedChild] = []
    with batch_errors(f"listing the failed children of {job.job_id}"):
        pages = batch.get_paginator("list_jobs").paginate(
            arrayJobId=job.job_id, jobStatus="FAILED", PaginationConfig={"MaxItems": limit}
        )
        for page in pages:
            children.extend(_failed_child(record, job, s) for s in page["jobSummaryList"])
    return children[:limit]


def _failed_child(record: RunRecord, job: SubmittedJob, summary: Mapping[str, Any]) -> FailedChild:
    """A failed child from a DescribeJobs or ListJobs entry."""
    job_id = str(summary["jobId"])
    index = summary.get("arrayProperties", {}).get("index")
    if index is None and job.size > 1:
        index = int(job_id.rpartition(":")[2])
    child = job.index_offset + int(index or 0)
    start = child * record.pairs_per_job
    container = summary.get("container") or {}
    return FailedChild(
        child=child,
        job_id=job_id,
        pairs=(start, min(start + record.pairs_per_job, record.n_pairs)),
        status_reason=str(summary.get("statusReason", "")),
        exit_code=container.get("exitCode"),
        reason=str(container.get("reason", "")),
    )
