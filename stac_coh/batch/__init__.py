"""AWS Batch: plan a run's array jobs, submit them with a finalize job, report their state.

A run is one manifest in S3 processed by array-job children plus one finalize job that
depends on every worker job. The worker finds its pairs with :func:`share_from_env`;
``submit`` and ``status`` use :func:`submit_run` and :func:`run_status`. boto3 clients are
passed in; nothing here reads the environment.

- :mod:`stac_coh.batch.plan`: pure planning and AWS's limits (no I/O).
- :mod:`stac_coh.batch.record`: the run record in ``runs/<run_id>/run.json``.
- :mod:`stac_coh.batch.submit`: writing the manifest, submitting the jobs.
- :mod:`stac_coh.batch.status`: children by state, failed children and pairs.
- :mod:`stac_coh.batch.worker`: the container's ``process`` and ``finalize`` stages
  (imports PyTorch: not re-exported here).
- :mod:`stac_coh.batch.logs`: JSON log lines without secrets.
"""

from stac_coh.batch.plan import (
    ARRAY_INDEX_ENV,
    ENV_INDEX_OFFSET,
    ENV_MANIFEST,
    ENV_OUT,
    ENV_PAIRS_PER_JOB,
    ENV_RUN_ID,
    FINALIZE_COMMAND,
    JOB_STATES,
    MAX_ARRAY_SIZE,
    MAX_DEPENDENCIES,
    MIN_ARRAY_SIZE,
    WORKER_COMMAND,
    JobPlan,
    RunPlan,
    child_index,
    child_pairs,
    new_run_id,
    plan_run,
    share_from_env,
    validate_job_name,
    validate_run_id,
)
from stac_coh.batch.record import (
    BatchTargets,
    RunRecord,
    SubmittedJob,
    open_s3_out,
    read_run_record,
    run_key,
)
from stac_coh.batch.status import FailedChild, RunStatus, run_status
from stac_coh.batch.submit import job_tags, submit_run
from stac_coh.pipeline.records import FailedPair

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
    "BatchTargets",
    "FailedChild",
    "FailedPair",
    "JobPlan",
    "RunPlan",
    "RunRecord",
    "RunStatus",
    "SubmittedJob",
    "child_index",
    "child_pairs",
    "job_tags",
    "new_run_id",
    "open_s3_out",
    "plan_run",
    "read_run_record",
    "run_key",
    "run_status",
    "share_from_env",
    "submit_run",
    "validate_job_name",
    "validate_run_id",
]
