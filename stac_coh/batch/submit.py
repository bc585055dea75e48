"""Submission: the manifest to S3, the worker jobs, the finalize job, the run record."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stac_coh.batch.plan import (
    ENV_INDEX_OFFSET,
    ENV_MANIFEST,
    ENV_OUT,
    ENV_PAIRS_PER_JOB,
    ENV_RUN_ID,
    FINALIZE_COMMAND,
    MAX_ARRAY_SIZE,
    WORKER_COMMAND,
    new_run_id,
    plan_run,
)
from stac_coh.batch.record import (
    BatchTargets,
    RunRecord,
    SubmittedJob,
    open_s3_out,
    run_key,
    validate_public_url,
)
from stac_coh.constants import CARD_SUFFIX, ENV_PUBLIC_URL, ENV_WEIGHTS
from stac_coh.errors import BatchError, InputError, StacCohError, StorageError
from stac_coh.search.manifest import Manifest
from stac_coh.search.shards import write_sharded_manifest

__all__ = ["MAX_TAGS", "batch_errors", "job_tags", "submit_run"]

MAX_TAGS = 50
"""Most tags on one job (ours included)."""

_TAG_TEXT = re.compile(r"[\w .:/=+@-]*")


def submit_run(
    manifest: Manifest,
    *,
    out: str,
    targets: BatchTargets,
    pairs_per_job: int,
    batch: Any,
    s3: Any,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    max_array_size: int = MAX_ARRAY_SIZE,
    now: datetime | None = None,
    weights: Path | None = None,
    public_url: str | None = None,
) -> RunRecord:
    """Write the (sharded) manifest to S3, submit the worker jobs and the finalize job, record
    the run.

    Args:
        manifest: Pairs to process.
        out: ``s3://bucket/prefix`` of the catalog; the manifest and run record go to
            ``runs/<run_id>/`` under it.
        targets: Job queues and job definitions.
        pairs_per_job: Pairs per array child.
        batch: boto3 Batch client.
        s3: boto3 S3 client.
        run_id: Run id (default: :func:`new_run_id`); must not exist under ``out``.
        tags: Extra tags for every job.
        max_array_size: Children per array job at most (AWS: 10,000).
        now: Submission time (default: now).
        weights: Our safetensors weight file; uploaded once to ``runs/<run_id>/weights/``
            and named to the workers in ``STAC_COH_WEIGHTS``, so no child fetches weights
            from anywhere else (None: the workers resolve their own default).
        public_url: HTTP(S) URL readers use for ``out``; the jobs put it in self links.

    Raises:
        InputError: a limit or name is invalid (nothing was submitted).
        ConflictError: the run id already exists under ``out``.
        BatchError: AWS Batch refused a job (the jobs submitted before it are terminated).
    """
    now = now or datetime.now(UTC)
    public_url = validate_public_url(public_url)
    run_id = run_id or new_run_id(now)
    plan = plan_run(len(manifest.pairs), pairs_per_job, run_id, max_array_size=max_array_size)
    all_tags = job_tags(run_id, tags)
    store = open_s3_out(out, s3)
    manifest_key = run_key(run_id, "manifest.json")
    # Sharded: each child reads only its units (by byte range), never the whole run.
    manifest_uri = write_sharded_manifest(
        store,
        manifest_key,
        source=manifest.source,
        query=manifest.query,
        units=manifest.pairs,
        items=manifest.items,
        created=manifest.created,
        software=manifest.software,
    ).uri

    env = {ENV_MANIFEST: manifest_uri, ENV_OUT: store.url, ENV_RUN_ID: run_id}
    if public_url:
        env[ENV_PUBLIC_URL] = public_url
    worker_env = dict(env)
    if weights is not None:
        worker_env[ENV_WEIGHTS] = _upload_weights(store, run_id, weights)
    submitted: list[SubmittedJob] = []
    with _cancel_on_failure(batch, submitted, run_id):
        for job in plan.jobs:
            job_env = {
                **worker_env,
                ENV_PAIRS_PER_JOB: str(pairs_per_job),
                ENV_INDEX_OFFSET: str(job.index_offset),
            }
            job_id = _submit(
                batch,
                name=job.name,
                queue=targets.job_queue,
                definition=targets.job_definition,
                command=WORKER_COMMAND,
                env=job_env,
                tags={**all_tags, "stac-coh:stage": "worker"},
                array_size=job.size if job.is_array else None,
            )
            submitted.append(SubmittedJob(job_id, job.name, job.index_offset, job.size))
        finalize_id = _submit(
            batch,
            name=plan.finalize_name,
            queue=targets.finalize_queue,
            definition=targets.finalize_job_definition,
            command=FINALIZE_COMMAND,
            env=env,
            tags={**all_tags, "stac-coh:stage": "finalize"},
            # A plain jobId dependency waits for whole array jobs; N_TO_N would pair children.
            depends_on=[job.job_id for job in submitted],
        )
    record = RunRecord(
        run_id=run_id,
        out=store.url,
        manifest_uri=manifest_uri,
        n_pairs=plan.n_pairs,
        pairs_per_job=pairs_per_job,
        targets=targets,
        jobs=tuple(submitted),
        finalize_job_id=finalize_id,
        submitted=now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        tags=all_tags,
        public_url=public_url,
    )
    try:
        store.put_new(
            run_key(run_id, "run.json"),
            json.dumps(record.to_dict(), indent=1).encode(),
            content_type="application/json",
        )
    except StacCohError as exc:
        # The jobs run anyway: name them, or nobody can follow or cancel them.
        raise StorageError(
            f"Run {run_id} was submitted (jobs {', '.join(record.job_ids)}) but its record "
            f"could not be written, so `stac-coh status` will not find it: {exc}"
        ) from exc
    return record


def _upload_weights(store: Any, run_id: str, weights: Path) -> str:
    """Put the weight file (and its card) once under the run's prefix; return its URI."""
    key = run_key(run_id, f"weights/{weights.name}")
    store.put_new(key, weights, content_type="application/octet-stream")
    card = weights.with_name(weights.name + CARD_SUFFIX)
    if card.is_file():
        store.put_new(key + CARD_SUFFIX, card.read_bytes(), content_type="application/json")
    return str(store.url_for(key))


def job_tags(run_id: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    """Tags for every job of a run: the user's plus ``stac-coh:run-id``, within AWS's limits."""
    tags = {**dict(extra or {}), "stac-coh:run-id": run_id}
    if len(tags) + 1 > MAX_TAGS:  # +1: the stage tag added per job
        raise InputError(f"{len(tags) - 1} tags given; AWS Batch allows {MAX_TAGS - 2} more.")
    for key, value in tags.items():
        if key.lower().startswith("aws:"):
            raise InputError(f"Tag key {key!r}: the 'aws:' prefix is reserved by AWS.")
        if not (0 < len(key) <= 128 and _TAG_TEXT.fullmatch(key)):
            raise InputError(
                f"Tag key {key!r} must be 1-128 letters, digits, spaces or _.:/=+-@ characters."
            )
        if not (len(value) <= 256 and _TAG_TEXT.fullmatch(value)):
            raise InputError(
                f"Tag value {value!r} must be at most 256 letters, digits, spaces or "
                "_.:/=+-@ characters."
            )
    return tags


def _submit(
    batch: Any,
    *,
    name: str,
    queue: str,
    definition: str,
    command: Iterable[str],
    env: Mapping[str, str],
    tags: Mapping[str, str],
    array_size: int | None = None,
    depends_on: Iterable[str] = (),
) -> str:
    """One SubmitJob call; return the job id."""
    request: dict[str, Any] = {
        "jobName": name,
        "jobQueue": queue,
        "jobDefinition": definition,
        "containerOverrides": {
            "command": list(command),
            "environment": [{"name": k, "value": v} for k, v in env.items()],
        },
        "tags": dict(tags),
        "propagateTags": True,
    }
    if array_size is not None:
        request["arrayProperties"] = {"size": array_size}
    if deps := [{"jobId": job_id} for job_id in depends_on]:
        request["dependsOn"] = deps
    with batch_errors(f"submitting {name} to {queue} with {definition}"):
        return str(batch.submit_job(**request)["jobId"])


@contextmanager
def _cancel_on_failure(batch: Any, submitted: list[SubmittedJob], run_id: str) -> Iterator[None]:
    """If a later submission fails, terminate the jobs already submitted (no half runs)."""
    try:
        yield
    except BatchError:
        for job in submitted:
            try:
                batch.terminate_job(
                    jobId=job.job_id, reason=f"stac-coh run {run_id}: submit failed"
                )
            except Exception:  # best effort: the original error matters more
                continue
        raise


@contextmanager
def batch_errors(doing: str) -> Iterator[None]:
    """Turn botocore errors into :class:`BatchError` naming what was being done."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise BatchError(
            f"AWS Batch refused {doing}: {error.get('Code', '')} {error.get('Message', '')}. "
            "Check the queue and job definition names (the stack outputs) and your permissions."
        ) from None
    except BotoCoreError as exc:
        raise BatchError(
            f"Cannot reach AWS Batch while {doing} ({type(exc).__name__}); check the network, "
            "region and credentials."
        ) from exc
