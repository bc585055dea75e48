"""`stac-coh submit`, `status` and `worker`: AWS Batch."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from stac_coh.cli._search_options import SearchOptions, search_options
from stac_coh.cli._text import prose
from stac_coh.errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from stac_coh.batch import BatchTargets, RunPlan, RunRecord, RunStatus
    from stac_coh.search.manifest import Manifest

__all__ = ["register"]


_STACK = "the CloudFormation stack of infra/stac-coh.yaml (see batch/README.md)"

_SUBMIT_HELP = prose(f"""
Search pairs (or read a manifest) and run them on AWS Batch GPUs, then finalize the catalog.

Takes the same search options as `stac-coh search` (or --manifest FILE from
`stac-coh search --json FILE`). Writes the manifest to OUT/runs/RUN_ID/manifest.json,
submits the worker jobs (children of --pairs-per-job pairs each; an array job holds 2 to
10,000 children, more children make several array jobs, a single child is a plain job),
then a finalize job that starts when every worker job is done, and records the run in
OUT/runs/RUN_ID/run.json. Prints the run id and the job ids; follow the run with
`stac-coh status RUN_ID --out OUT`.

The weights (--weights, default auto: the published ones) are resolved here, once per
run, and uploaded to OUT/runs/RUN_ID/weights/; every worker reads that copy, so no child
downloads them from the Hugging Face Hub.

Queues and job definitions are outputs of {_STACK}; the STAC_COH_JOB_QUEUE,
STAC_COH_JOB_DEFINITION, STAC_COH_FINALIZE_JOB_QUEUE and STAC_COH_FINALIZE_JOB_DEFINITION
environment variables save typing them. AWS credentials and region come from the usual
AWS environment.

Examples:

  export STAC_COH_JOB_QUEUE=GPU_QUEUE_ARN STAC_COH_JOB_DEFINITION=stac-coh-worker
  export STAC_COH_FINALIZE_JOB_QUEUE=CPU_QUEUE_ARN
  export STAC_COH_FINALIZE_JOB_DEFINITION=stac-coh-finalize

  stac-coh submit --bbox 77.4 12.8 77.8 13.1 --start 2026-03-01 --end 2026-04-30 \\
      --out s3://my-coherence/bengaluru --pairs-per-job 4 --dry-run

  stac-coh search --bbox 77.4 12.8 77.8 13.1 --start 2026-03-01 --end 2026-04-30 \\
      --json pairs.json
  stac-coh submit --manifest pairs.json --out s3://my-coherence/bengaluru --pairs-per-job 4
""")

_STATUS_HELP = prose("""
Show a submitted run: children by state, the finalize job, failed children.

RUN_ID is what `stac-coh submit` printed; --out is the same s3:// URI. A failed child shows
AWS Batch's reason and the container's exit code (2: bad input, not retried; 75: transient,
retried; 69: GPU fault, retried; 137: killed, e.g. out of memory, retried; a "Host EC2 ...
terminated" reason: Spot reclaim, retried). Failed pairs (recorded by the workers; a child
that fails a pair for good still succeeds) follow, with their errors.

Examples:

  stac-coh status 20260417T101500Z-3f9c2a --out s3://my-coherence/bengaluru

  stac-coh status 20260417T101500Z-3f9c2a --out s3://my-coherence/bengaluru --json
""")


@search_options
def submit_command(
    search: SearchOptions,
    manifest: str | None = typer.Option(
        None,
        "--manifest",
        metavar="FILE",
        help="Submit this manifest (path or s3:// URI) instead of searching.",
    ),
    out: str = typer.Option(..., "--out", help="Catalog root: s3://BUCKET/PREFIX."),
    job_queue: str = typer.Option(
        ..., "--job-queue", envvar="STAC_COH_JOB_QUEUE", help="Worker (GPU) job queue."
    ),
    job_definition: str = typer.Option(
        ..., "--job-definition", envvar="STAC_COH_JOB_DEFINITION", help="Worker job definition."
    ),
    finalize_job_definition: str = typer.Option(
        ...,
        "--finalize-job-definition",
        envvar="STAC_COH_FINALIZE_JOB_DEFINITION",
        help="Finalize job definition.",
    ),
    finalize_job_queue: str | None = typer.Option(
        None,
        "--finalize-job-queue",
        envvar="STAC_COH_FINALIZE_JOB_QUEUE",
        help="Finalize (CPU) job queue; default: --job-queue.",
    ),
    pairs_per_job: int = typer.Option(
        4, "--pairs-per-job", help="Pairs per array child (more = fewer container starts)."
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Run id; default: UTC time and a random suffix."
    ),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE tag on every job; repeatable."),
    public_url: str | None = typer.Option(
        None,
        "--public-url",
        help="HTTP(S) URL readers use for --out (e.g. CloudFront): items get it in self links.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan; write and submit nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    weights: str | None = typer.Option(
        None,
        "--weights",
        help="Weights of every worker (see `stac-coh weights --help`); default "
        "STAC_COH_WEIGHTS, else auto (the published weights). Resolved here once and "
        "uploaded to OUT/runs/RUN_ID/weights/: the workers read that copy.",
    ),
) -> None:
    """Search (or read a manifest) and submit the pairs to AWS Batch."""
    from stac_coh.batch import (
        BatchTargets,
        job_tags,
        new_run_id,
        open_s3_out,
        plan_run,
        submit_run,
        validate_run_id,
    )
    from stac_coh.batch.record import validate_public_url

    public_url = validate_public_url(public_url)  # items are create-only: check it first
    pairs = _pairs_to_submit(search, manifest)
    targets = BatchTargets(job_queue, job_definition, finalize_job_definition, finalize_job_queue)
    tags = _parse_tags(tag)
    rid = validate_run_id(run_id) if run_id else new_run_id()
    plan = plan_run(len(pairs.pairs), pairs_per_job, rid)  # refuse bad input before fetching
    job_tags(rid, tags)
    open_s3_out(out, s3=None)  # checks the URI without a client
    if dry_run:
        _print_plan(plan, targets, out)
        typer.echo(f"  weights  {_weights_spec(weights)}, uploaded to the run's weights/")
        _print_tiling(pairs.pairs)
        return
    weights_path = _weights_for_workers(weights)
    batch, s3 = _clients()
    record = submit_run(
        pairs,
        out=out,
        targets=targets,
        pairs_per_job=pairs_per_job,
        batch=batch,
        s3=s3,
        run_id=run_id,
        tags=tags,
        weights=weights_path,
        public_url=public_url,
    )
    if as_json:
        typer.echo(json.dumps(record.to_dict(), indent=2))
    else:
        _print_record(record)
        typer.echo(f"  weights  {weights_path.name}, uploaded once to the run's weights/")


def status_command(
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="Run id printed by `submit`."),
    out: str = typer.Option(..., "--out", help="The s3:// catalog root the run writes to."),
    max_failed: int = typer.Option(20, "--max-failed", min=0, help="List this many failures."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
) -> None:
    """Show a run's jobs by state."""
    from stac_coh.batch import run_status

    batch, s3 = _clients()
    status = run_status(run_id, out=out, batch=batch, s3=s3, max_failed=max_failed)
    if as_json:
        typer.echo(json.dumps(status.to_dict(), indent=2))
    else:
        _print_status(status)


def _pairs_to_submit(search: SearchOptions, manifest: str | None) -> Manifest:
    """The manifest given with --manifest, or the result of the search options."""
    from stac_coh.search.manifest_io import read_manifest

    if manifest is None:
        result = search.run()
        typer.echo(f"search: {len(result.manifest.pairs)} pairs. {result.summary}", err=True)
        return result.manifest
    if any((search.bbox, search.aoi, search.start, search.end)):
        raise InputError("Give either --manifest or the search options (--bbox ...), not both.")
    return read_manifest(manifest)


def _weights_spec(weights: str | None) -> str:
    """What --weights, STAC_COH_WEIGHTS or the default name."""
    from stac_coh.settings import get_settings

    return weights or get_settings().weights or "auto"


def _weights_for_workers(weights: str | None) -> Path:
    """Resolve the weights once here (one Hub download per run), as our safetensors file."""
    from stac_coh.model.weights import weights_file
    from stac_coh.settings import get_settings

    return weights_file(_weights_spec(weights), cache_dir=get_settings().cache_dir)


def _parse_tags(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings to a dict."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--tag {item!r} must be KEY=VALUE.")
        tags[key] = value
    return tags


def _clients() -> tuple[Any, Any]:
    """boto3 Batch and S3 clients from the standard AWS environment, with retries."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    config = Config(retries={"mode": "standard", "max_attempts": 10})
    session = boto3.session.Session()
    try:
        return session.client("batch", config=config), session.client("s3", config=config)
    except NoRegionError:
        raise InputError(
            "No AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION)."
        ) from None


def _print_plan(plan: RunPlan, targets: BatchTargets, out: str) -> None:
    """What a submit would do."""
    from stac_coh.batch import run_key

    typer.echo(f"dry run: nothing written or submitted. Run {plan.run_id} would submit:")
    typer.echo(
        f"  {plan.n_pairs} pairs, {plan.children} children of {plan.pairs_per_job} pairs, "
        f"{len(plan.jobs)} worker job(s) to {targets.job_queue} with {targets.job_definition}"
    )
    for job in plan.jobs:
        kind = f"array of {job.size}" if job.is_array else "plain job"
        last = job.index_offset + job.size - 1
        typer.echo(f"  worker   {job.name}  {kind}, children {job.index_offset}-{last}")
    typer.echo(
        f"  finalize {plan.finalize_name}  to {targets.finalize_queue} with "
        f"{targets.finalize_job_definition}, after every worker job"
    )
    typer.echo(f"  manifest {out.rstrip('/')}/{run_key(plan.run_id, 'manifest.json')}")


def _print_tiling(units: Any) -> None:
    """How the work units (pair x tile) fall on the tile grid, and their sizes."""
    from stac_coh.search.tiling import summarize_units

    for line in summarize_units(units).lines():
        typer.echo(f"  {line}")
    typer.echo("  manifest sharded: each child reads only its units (by byte range)")


def _print_record(record: RunRecord) -> None:
    """What a submit did."""
    typer.echo(f"run {record.run_id}")
    typer.echo(
        f"  {record.n_pairs} pairs, {record.children} children of {record.pairs_per_job} pairs"
    )
    for job in record.jobs:
        kind = f"array of {job.size}" if job.size > 1 else "plain job"
        last = job.index_offset + job.size - 1
        typer.echo(
            f"  worker   {job.job_id}  {job.name} ({kind}, children {job.index_offset}-{last})"
        )
    typer.echo(f"  finalize {record.finalize_job_id}  after every worker job")
    typer.echo(f"  manifest {record.manifest_uri}")
    typer.echo(f"Follow it: stac-coh status {record.run_id} --out {record.out}")


def _print_status(status: RunStatus) -> None:
    """Counts by state, the finalize job, failed children."""
    record = status.record
    typer.echo(f"run {record.run_id}: {record.children} children, {record.n_pairs} pairs")
    for state, n in status.counts.items():
        if n:
            typer.echo(f"  {state:<10} {n}")
    reason = f" ({status.finalize_reason})" if status.finalize_reason else ""
    typer.echo(f"  finalize   {status.finalize_status}{reason}")
    for child in status.failed:
        code = "" if child.exit_code is None else f", exit code {child.exit_code}"
        why = "; ".join(filter(None, (child.status_reason, child.reason))) or "no reason given"
        typer.echo(
            f"  failed child {child.child} (pairs {child.pairs[0]}-{child.pairs[1] - 1}, "
            f"job {child.job_id}{code}): {why}"
        )
    if status.failed_total > len(status.failed):
        typer.echo(f"  ... and {status.failed_total - len(status.failed)} more failed children")
    typer.echo(f"  pairs with a recorded outcome: {status.recorded_pairs} of {record.n_pairs}")
    for pair in status.failed_pairs:
        kind = "transient, retried" if pair.transient else "permanent"
        typer.echo(f"  failed pair {pair.pair_id} ({kind}): {pair.error}")
    if status.failed_pairs_total > len(status.failed_pairs):
        more = status.failed_pairs_total - len(status.failed_pairs)
        typer.echo(f"  ... and {more} more failed pairs")


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    app.command("submit", help=_SUBMIT_HELP)(submit_command)
    app.command("status", help=_STATUS_HELP)(status_command)
    from stac_coh.cli import worker_command

    worker_command.register(app)
