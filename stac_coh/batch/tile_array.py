"""An AWS Batch array of one child per tile: shares in S3, the jobs, the child's own share.

Used by ``stac-coh composite --submit``: the submitter writes one share per tile to
``runs/<run_id>/composite/tiles/<child>.json`` and submits array jobs of plain children
(``stac-coh worker composite``); child ``c`` (``STAC_COH_INDEX_OFFSET`` +
``AWS_BATCH_JOB_ARRAY_INDEX``) reads share ``c`` only. Array sizes, offsets and names
follow :func:`stac_coh.batch.plan.plan_run` (one "pair" per child = one tile).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stac_coh.batch.plan import (
    ARRAY_INDEX_ENV,
    ENV_INDEX_OFFSET,
    ENV_RUN_ID,
    child_index,
    new_run_id,
    plan_run,
    validate_job_name,
)
from stac_coh.batch.record import open_s3_out, run_key
from stac_coh.batch.submit import batch_errors, job_tags
from stac_coh.errors import InputError
from stac_coh.io.storage import Store

__all__ = [
    "ENV_TILE_SHARES",
    "TILE_ARRAY_COMMAND",
    "TileArrayRecord",
    "share_key",
    "submit_tile_array",
    "tile_share_from_env",
]

TILE_ARRAY_COMMAND = ("composite",)
"""Container command of a child (the image's ENTRYPOINT is ``stac-coh worker``)."""

ENV_TILE_SHARES = "STAC_COH_TILE_SHARES"
"""``s3://`` prefix of the run's tile shares (``<prefix>/<child>.json``)."""


@dataclass(frozen=True)
class TileArrayRecord:
    """What was submitted."""

    run_id: str
    """Run id."""
    shares_uri: str
    """``s3://`` prefix of the shares."""
    tiles: int
    """Children (one per tile)."""
    job_ids: tuple[str, ...]
    """AWS Batch job ids (array parents or a plain job)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


def share_key(run_id: str, child: int) -> str:
    """Store key of child ``child``'s share."""
    return run_key(run_id, f"composite/tiles/{child:06d}.json")


def submit_tile_array(
    shares: Sequence[bytes],
    *,
    out: str,
    job_queue: str,
    job_definition: str,
    batch: Any,
    s3: Any,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> TileArrayRecord:
    """Write the shares under ``out`` and submit one child per share."""
    run_id = run_id or new_run_id(datetime.now(UTC))
    plan = plan_run(len(shares), 1, run_id)
    all_tags = {**job_tags(run_id, tags), "stac-coh:stage": "composite"}
    store = open_s3_out(out, s3)
    for child, share in enumerate(shares):
        store.put_new(share_key(run_id, child), share, content_type="application/json")
    prefix = store.url_for(run_key(run_id, "composite/tiles"))
    job_ids = []
    for k, job in enumerate(plan.jobs):
        name = validate_job_name(
            f"stac-coh-{run_id}-composite" + (f"-{k}" if len(plan.jobs) > 1 else "")
        )
        request: dict[str, Any] = {
            "jobName": name,
            "jobQueue": job_queue,
            "jobDefinition": job_definition,
            "containerOverrides": {
                "command": list(TILE_ARRAY_COMMAND),
                "environment": [
                    {"name": ENV_TILE_SHARES, "value": prefix},
                    {"name": ENV_RUN_ID, "value": run_id},
                    {"name": ENV_INDEX_OFFSET, "value": str(job.index_offset)},
                ],
            },
            "tags": all_tags,
            "propagateTags": True,
        }
        if job.is_array:
            request["arrayProperties"] = {"size": job.size}
        with batch_errors(f"submitting {name} to {job_queue} with {job_definition}"):
            job_ids.append(str(batch.submit_job(**request)["jobId"]))
    record = TileArrayRecord(run_id, prefix, len(shares), tuple(job_ids))
    store.put(
        run_key(run_id, "composite/run.json"),
        json.dumps(record.to_dict(), indent=1).encode(),
        content_type="application/json",
    )
    return record


def tile_share_from_env(env: Mapping[str, str], store_for: Any) -> tuple[bytes, str]:
    """This child's share (bytes, its URI), from the variables ``submit_tile_array`` set.

    ``store_for`` opens a :class:`~stac_coh.io.storage.Store` for an ``s3://`` prefix.
    """
    prefix = env.get(ENV_TILE_SHARES, "").strip()
    if not prefix:
        raise InputError(f"{ENV_TILE_SHARES} is not set; `stac-coh composite --submit` sets it.")
    try:
        array_index = int(env[ARRAY_INDEX_ENV]) if env.get(ARRAY_INDEX_ENV, "").strip() else None
        offset = int(env.get(ENV_INDEX_OFFSET, "").strip() or 0)
    except ValueError:
        raise InputError(f"{ARRAY_INDEX_ENV} and {ENV_INDEX_OFFSET} must be integers.") from None
    child = child_index(array_index, offset)
    store: Store = store_for(prefix)
    key = f"{child:06d}.json"
    return store.get(key).data, store.url_for(key)
