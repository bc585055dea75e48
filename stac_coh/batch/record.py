"""The run record: what ``submit`` did, stored as ``runs/<run_id>/run.json`` for ``status``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from stac_coh import __version__
from stac_coh.batch.plan import validate_run_id
from stac_coh.errors import InputError, ObjectNotFoundError
from stac_coh.io.storage import S3Store, open_store

__all__ = [
    "RUN_RECORD_SCHEMA",
    "BatchTargets",
    "RunRecord",
    "SubmittedJob",
    "open_s3_out",
    "read_run_record",
    "run_key",
    "validate_public_url",
]

RUN_RECORD_SCHEMA = "stac-coh/run/1"
"""Version of ``run.json``."""


@dataclass(frozen=True)
class BatchTargets:
    """Where a run's jobs go: job queues and job definitions (names or ARNs)."""

    job_queue: str
    """Queue of the worker jobs (the GPU queue)."""
    job_definition: str
    """Worker job definition."""
    finalize_job_definition: str
    """Finalize job definition (CPU)."""
    finalize_job_queue: str | None = None
    """Queue of the finalize job; ``None`` = :attr:`job_queue`."""

    @property
    def finalize_queue(self) -> str:
        """The queue the finalize job goes to."""
        return self.finalize_job_queue or self.job_queue

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "job_queue": self.job_queue,
            "job_definition": self.job_definition,
            "finalize_job_queue": self.finalize_queue,
            "finalize_job_definition": self.finalize_job_definition,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchTargets:
        """Parse the JSON form."""
        return cls(
            job_queue=data["job_queue"],
            job_definition=data["job_definition"],
            finalize_job_definition=data["finalize_job_definition"],
            finalize_job_queue=data.get("finalize_job_queue"),
        )


@dataclass(frozen=True)
class SubmittedJob:
    """A worker job as AWS Batch accepted it."""

    job_id: str
    """AWS Batch job id (an array job's parent id)."""
    name: str
    """Job name."""
    index_offset: int
    """Global child index of its array index 0."""
    size: int
    """Children (1 = plain job)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "job_id": self.job_id,
            "name": self.name,
            "index_offset": self.index_offset,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubmittedJob:
        """Parse the JSON form."""
        return cls(data["job_id"], data["name"], int(data["index_offset"]), int(data["size"]))


@dataclass(frozen=True)
class RunRecord:
    """What ``submit`` did; stored as ``runs/<run_id>/run.json`` for ``status``."""

    run_id: str
    """Run id."""
    out: str
    """``s3://bucket/prefix`` of the catalog."""
    manifest_uri: str
    """``s3://`` URI of the manifest the children read."""
    n_pairs: int
    """Pairs in the manifest."""
    pairs_per_job: int
    """Pairs per child."""
    targets: BatchTargets
    """Queues and job definitions used."""
    jobs: tuple[SubmittedJob, ...]
    """Worker jobs, children in order."""
    finalize_job_id: str
    """The finalize job, which depends on every worker job."""
    submitted: str = ""
    """RFC 3339 submission time."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags put on every job."""
    software: str = f"stac-coh {__version__}"
    """Submitting software."""
    public_url: str | None = None
    """HTTP(S) URL readers use for :attr:`out` (the self links of items), if given."""

    @property
    def children(self) -> int:
        """Children over all worker jobs."""
        return sum(job.size for job in self.jobs)

    @property
    def job_ids(self) -> tuple[str, ...]:
        """Every job id: worker jobs, then the finalize job."""
        return (*(job.job_id for job in self.jobs), self.finalize_job_id)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "schema_version": RUN_RECORD_SCHEMA,
            "run_id": self.run_id,
            "out": self.out,
            "manifest": self.manifest_uri,
            "submitted": self.submitted,
            "software": self.software,
            "n_pairs": self.n_pairs,
            "pairs_per_job": self.pairs_per_job,
            "children": self.children,
            "targets": self.targets.to_dict(),
            "jobs": [job.to_dict() for job in self.jobs],
            "finalize_job_id": self.finalize_job_id,
            "tags": dict(self.tags),
            "public_url": self.public_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Parse the JSON form, checking its version."""
        if data.get("schema_version") != RUN_RECORD_SCHEMA:
            raise InputError(
                f"Run record version {data.get('schema_version')!r} is not "
                f"{RUN_RECORD_SCHEMA!r}; use the stac-coh version that submitted the run."
            )
        return cls(
            run_id=data["run_id"],
            out=data["out"],
            manifest_uri=data["manifest"],
            n_pairs=int(data["n_pairs"]),
            pairs_per_job=int(data["pairs_per_job"]),
            targets=BatchTargets.from_dict(data["targets"]),
            jobs=tuple(SubmittedJob.from_dict(j) for j in data["jobs"]),
            finalize_job_id=data["finalize_job_id"],
            submitted=data.get("submitted", ""),
            tags=dict(data.get("tags", {})),
            software=data.get("software", ""),
            public_url=data.get("public_url"),
        )


def validate_public_url(url: str | None) -> str | None:
    """``--public-url``: an http(s) URL without query or fragment (trailing ``/`` dropped).

    Items are create-only, so a wrong self link cannot be fixed by a later finalize:
    check the URL before anything is published with it.
    """
    if url is None or not url.strip():
        return None
    url = url.strip().rstrip("/")
    parsed = urlsplit(url)
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.netloc
        or parsed.query
        or parsed.fragment
    ):
        raise InputError(
            f"--public-url {url!r} must be an http(s) URL without query, e.g. "
            "https://my-bucket.s3.eu-west-1.amazonaws.com/coherence or a CloudFront URL."
        )
    return url


def run_key(run_id: str, name: str) -> str:
    """Store key of a run's file, e.g. ``runs/<run_id>/manifest.json``."""
    return f"runs/{validate_run_id(run_id)}/{name}"


def open_s3_out(out: str, s3: Any) -> S3Store:
    """Open ``s3://bucket/prefix`` as the run's store; AWS Batch cannot write elsewhere."""
    store = open_store(out, s3_client=s3) if out.startswith("s3://") else None
    if not isinstance(store, S3Store):
        raise InputError(
            f"--out {out!r} must be s3://BUCKET[/PREFIX]: Batch containers cannot write "
            "to this machine's disk."
        )
    return store


def read_run_record(run_id: str, *, out: str, s3: Any) -> RunRecord:
    """Load ``runs/<run_id>/run.json`` from the output store."""
    store = open_s3_out(out, s3)
    try:
        stored = store.get(run_key(run_id, "run.json"))
    except ObjectNotFoundError:
        raise InputError(
            f"No run {run_id!r} under {store.url}: {store.url_for(run_key(run_id, 'run.json'))} "
            "does not exist. Check the run id and --out."
        ) from None
    return RunRecord.from_dict(json.loads(stored.data))
