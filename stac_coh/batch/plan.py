"""Pure planning of a run: which child takes which pairs, and how children become jobs.

Child ``c`` (its global index: ``STAC_COH_INDEX_OFFSET`` + ``AWS_BATCH_JOB_ARRAY_INDEX``)
takes the manifest pairs ``[c * ppj, (c + 1) * ppj)``, ``ppj`` being
``STAC_COH_PAIRS_PER_JOB``. AWS Batch's limits are checked here because moto (our test
double) accepts what AWS rejects: array size 2..10,000 (one child is a plain job without
``arrayProperties``), at most 20 ``dependsOn`` entries, job names of at most 128 characters
``[A-Za-z0-9_-]`` starting with a letter or digit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from stac_coh.constants import (
    ARRAY_INDEX_ENV,
    ENV_INDEX_OFFSET,
    ENV_MANIFEST,
    ENV_OUT,
    ENV_PAIRS_PER_JOB,
    ENV_RUN_ID,
)
from stac_coh.errors import InputError
from stac_coh.pipeline.records import new_run_id, validate_run_id

__all__ = [
    "ARRAY_INDEX_ENV",
    "ENV_INDEX_OFFSET",
    "ENV_MANIFEST",
    "ENV_OUT",
    "ENV_PAIRS_PER_JOB",
    "ENV_RUN_ID",
    "FINALIZE_COMMAND",
    "JOB_STATES",
    "MAX_ARRAY_SIZE",
    "MAX_DEPENDENCIES",
    "MIN_ARRAY_SIZE",
    "WORKER_COMMAND",
    "JobPlan",
    "RunPlan",
    "child_index",
    "child_pairs",
    "new_run_id",
    "plan_run",
    "share_from_env",
    "validate_job_name",
    "validate_run_id",
]

MIN_ARRAY_SIZE = 2
"""AWS Batch rejects smaller array jobs: one child is submitted as a plain job."""
MAX_ARRAY_SIZE = 10_000
"""Largest array job AWS Batch accepts."""
MAX_DEPENDENCIES = 20
"""Most ``dependsOn`` entries of one job: caps the worker jobs of one run."""

WORKER_COMMAND = ("process",)
"""Container command of a worker child (the image's ENTRYPOINT is ``stac-coh worker``)."""
FINALIZE_COMMAND = ("finalize",)
"""Container command of the finalize job."""

JOB_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
"""AWS Batch job states, in lifecycle order."""

_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def child_index(array_index: int | None, index_offset: int = 0) -> int:
    """Global child index: this job's offset plus the array index (``None``: plain job)."""
    if index_offset < 0 or (array_index is not None and array_index < 0):
        raise InputError(
            f"Array index {array_index} and index offset {index_offset} must not be negative."
        )
    return index_offset + (array_index or 0)


def child_pairs(child: int, pairs_per_job: int, n_pairs: int) -> range:
    """Indices of the manifest pairs that global child ``child`` processes."""
    _check_pairs_per_job(pairs_per_job)
    start = child * pairs_per_job
    if child < 0 or start >= n_pairs:
        raise InputError(
            f"Child {child} with {pairs_per_job} pairs per job has no pairs in a manifest "
            f"of {n_pairs}; was the manifest replaced after submission?"
        )
    return range(start, min(start + pairs_per_job, n_pairs))


def share_from_env(env: Mapping[str, str], n_pairs: int) -> range:
    """Pairs of this container, from the variables AWS Batch and ``submit`` set.

    Args:
        env: The process environment (the caller passes ``os.environ``).
        n_pairs: Pairs in the manifest.
    """
    array_index = _int_env(env, ARRAY_INDEX_ENV)
    offset = _int_env(env, ENV_INDEX_OFFSET)
    pairs_per_job = _int_env(env, ENV_PAIRS_PER_JOB)
    child = child_index(array_index, 0 if offset is None else offset)
    return child_pairs(child, 1 if pairs_per_job is None else pairs_per_job, n_pairs)


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    """An integer environment variable, or ``None`` when unset or empty."""
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name}={text!r} is not an integer.") from None


@dataclass(frozen=True)
class JobPlan:
    """One worker job of a run: an array job, or a plain job when it has one child."""

    name: str
    """Job name (validated against AWS's rules)."""
    index_offset: int
    """Global child index of this job's array index 0."""
    size: int
    """Children; 1 means a plain job (AWS rejects arrays of one)."""

    @property
    def is_array(self) -> bool:
        """Whether this job is submitted with ``arrayProperties``."""
        return self.size > 1


@dataclass(frozen=True)
class RunPlan:
    """Every job a run submits, computed before touching AWS (what ``--dry-run`` shows)."""

    run_id: str
    """Run id; names the jobs and ``runs/<run_id>/`` in the output store."""
    n_pairs: int
    """Pairs in the manifest."""
    pairs_per_job: int
    """Pairs per child."""
    jobs: tuple[JobPlan, ...]
    """Worker jobs, children in order."""
    finalize_name: str
    """Name of the finalize job."""

    @property
    def children(self) -> int:
        """Children over all worker jobs."""
        return sum(job.size for job in self.jobs)


def plan_run(
    n_pairs: int, pairs_per_job: int, run_id: str, *, max_array_size: int = MAX_ARRAY_SIZE
) -> RunPlan:
    """Split ``n_pairs`` into children of ``pairs_per_job`` and children into jobs.

    More than ``max_array_size`` children become several array jobs of nearly equal size
    (each at least 2, so none falls under AWS's minimum), offset by ``STAC_COH_INDEX_OFFSET``.
    """
    _check_pairs_per_job(pairs_per_job)
    validate_run_id(run_id)
    if not MIN_ARRAY_SIZE <= max_array_size <= MAX_ARRAY_SIZE:
        raise InputError(
            f"max_array_size={max_array_size} is outside AWS Batch's "
            f"{MIN_ARRAY_SIZE}..{MAX_ARRAY_SIZE}."
        )
    if n_pairs < 1:
        raise InputError("The manifest has no pairs: nothing to submit. Widen the search.")
    children = math.ceil(n_pairs / pairs_per_job)
    n_jobs = math.ceil(children / max_array_size)
    if n_jobs > MAX_DEPENDENCIES:
        least = math.ceil(n_pairs / (MAX_DEPENDENCIES * max_array_size))
        raise InputError(
            f"{n_pairs} pairs at {pairs_per_job} per job need {n_jobs} array jobs, but the "
            f"finalize job can depend on at most {MAX_DEPENDENCIES}; use --pairs-per-job "
            f"{least} or more, or split the area into several runs."
        )
    base, extra = divmod(children, n_jobs)
    jobs, offset = [], 0
    for k in range(n_jobs):
        size = base + (1 if k < extra else 0)
        name = f"stac-coh-{run_id}-worker" + (f"-{k}" if n_jobs > 1 else "")
        jobs.append(JobPlan(validate_job_name(name), offset, size))
        offset += size
    finalize = validate_job_name(f"stac-coh-{run_id}-finalize")
    return RunPlan(run_id, n_pairs, pairs_per_job, tuple(jobs), finalize)


def validate_job_name(name: str) -> str:
    """Return ``name`` if AWS Batch accepts it as a job name, else raise :class:`InputError`."""
    if not _JOB_NAME.fullmatch(name):
        raise InputError(
            f"Job name {name!r} breaks AWS Batch's rules: at most 128 letters, digits, "
            "hyphens or underscores, starting with a letter or digit."
        )
    return name


def _check_pairs_per_job(pairs_per_job: int) -> None:
    """Pairs per job must be a positive integer."""
    if isinstance(pairs_per_job, bool) or not isinstance(pairs_per_job, int) or pairs_per_job < 1:
        raise InputError(f"--pairs-per-job must be a positive integer, not {pairs_per_job!r}.")
