"""`stac-coh worker process|finalize`: the AWS Batch container entrypoint."""

from __future__ import annotations

import os
from typing import Any

import typer

from stac_coh.cli._process_options import ProcessingChoices, process_options
from stac_coh.cli._text import prose
from stac_coh.cli._worker_attempt import (
    ENV_ATTEMPT,
    ENV_MAX_ATTEMPTS,
    guarded,
    is_last_attempt,
    parse_last_attempt,
    required,
    start_logging,
)
from stac_coh.cli._worker_options import public_url_option, remove_orphans_option
from stac_coh.constants import (
    ARRAY_INDEX_ENV,
    ENV_INDEX_OFFSET,
    ENV_MANIFEST,
    ENV_OUT,
    ENV_PAIRS_PER_JOB,
    ENV_RUN_ID,
)

__all__ = ["register"]

ENV_STAC_API = "STAC_COH_STAC_API"

_WORKER_HELP = prose("""
Container entrypoint on AWS Batch (the image runs `stac-coh worker process|finalize`).

`stac-coh submit` sets everything through the environment; the options override it for
a local test. Logs are one JSON object per line on stderr, without secrets or signed
URLs. Exit codes, matched by the job definitions' retry strategy: 0 done (failed pairs
are recorded; every last attempt), 75 transient failure or stop signal and 69 GPU fault
(retried; published pairs are skipped), 2 unusable input, 1 unexpected error.

Examples:

  export STAC_COH_MANIFEST=s3://b/coh/runs/r1/manifest.json
  export STAC_COH_OUT=s3://b/coh STAC_COH_RUN_ID=r1 STAC_COH_PAIRS_PER_JOB=4
  AWS_BATCH_JOB_ARRAY_INDEX=3 stac-coh worker process

  stac-coh worker process --manifest pairs.json --out ./coh --run-id test1 \\
      --pairs-per-job 2 --array-index 0 --weights tiny.safetensors

  stac-coh worker finalize --out s3://b/coh --run-id r1
""")

_PROCESS_HELP = prose("""
Process this array child's pairs of the manifest, recording each outcome.

Child c = STAC_COH_INDEX_OFFSET + AWS_BATCH_JOB_ARRAY_INDEX (absent: 0) takes pairs
[c * P, (c + 1) * P) with P = STAC_COH_PAIRS_PER_JOB. Pairs already published are
skipped; items are not folded into the collection (the finalize job does it once).
Outcomes go to OUT/reports/RUN_ID/pairs/. SIGTERM (Spot reclaim, timeout) interrupts
the running pair, records it and exits 75. Weights: --weights, else STAC_COH_WEIGHTS
(submit sets it to the run's S3 copy), else the published ones (auto); device: --device,
else STAC_COH_DEVICE. GDAL_*, CPL_* and VSI_*
environment variables override the GDAL cloud defaults.

Examples:

  stac-coh worker process         (in the container: all from the environment)

  stac-coh worker process --manifest s3://b/coh/runs/r1/manifest.json \\
      --out s3://b/coh --run-id r1 --pairs-per-job 4 --array-index 2
""")

_FINALIZE_HELP = prose("""
Finalize a run: rebuild the collection from its items, write the run report, push.

The report OUT/reports/RUN_ID.json gathers the outcomes the workers recorded; with the
manifest (STAC_COH_MANIFEST) it also names pairs nobody recorded. STAC_COH_STAC_API (or
--stac-api) upserts the collection and items into a STAC API with Transactions.

Examples:

  stac-coh worker finalize        (in the container: all from the environment)

  stac-coh worker finalize --out s3://b/coh --run-id r1 \\
      --stac-api http://localhost:8082
""")


def _manifest_opt() -> Any:
    return typer.Option(
        None, "--manifest", envvar=ENV_MANIFEST, help="Manifest URI (s3:// or a path)."
    )


def _out_opt() -> Any:
    return typer.Option(None, "--out", envvar=ENV_OUT, help="Catalog root (s3:// or a folder).")


def _run_id_opt() -> Any:
    return typer.Option(None, "--run-id", envvar=ENV_RUN_ID, help="Run id the outcomes use.")


def _verbose_opt() -> Any:
    return typer.Option(0, "--verbose", "-v", count=True, help="Debug logs of stac-coh.")


def process_command(
    manifest: str | None = _manifest_opt(),
    out: str | None = _out_opt(),
    run_id: str | None = _run_id_opt(),
    pairs_per_job: str | None = typer.Option(
        None, "--pairs-per-job", envvar=ENV_PAIRS_PER_JOB, help="Pairs per child (default 1)."
    ),
    index_offset: str | None = typer.Option(
        None, "--index-offset", envvar=ENV_INDEX_OFFSET, help="Child index of array index 0."
    ),
    array_index: str | None = typer.Option(
        None, "--array-index", envvar=ARRAY_INDEX_ENV, help="Array index (absent: 0)."
    ),
    attempt: str | None = typer.Option(None, "--attempt", envvar=ENV_ATTEMPT, hidden=True),
    max_attempts: str | None = typer.Option(
        None,
        "--max-attempts",
        envvar=ENV_MAX_ATTEMPTS,
        help="Attempts of the job definition; on the last one transient failures exit 0.",
    ),
    public_url: str | None = public_url_option(),
    verbose: int = _verbose_opt(),
    *,
    processing: ProcessingChoices,
) -> None:
    """Process this child's share of the manifest."""
    from stac_coh.batch.deadline import stop_before_time_limit
    from stac_coh.pipeline.signals import StopSignals

    logs = start_logging(verbose)
    with StopSignals() as stop, stop_before_time_limit(os.environ):
        code = guarded(
            lambda: _process(
                manifest,
                out,
                run_id,
                {
                    ARRAY_INDEX_ENV: array_index or "",
                    ENV_INDEX_OFFSET: index_offset or "",
                    ENV_PAIRS_PER_JOB: pairs_per_job or "",
                },
                parse_last_attempt(attempt, max_attempts),
                processing,
                stop,
                logs.context,
                public_url,
            ),
            stop,
            last_attempt=is_last_attempt(attempt, max_attempts),
        )
    raise typer.Exit(code)


def finalize_command(
    manifest: str | None = _manifest_opt(),
    out: str | None = _out_opt(),
    run_id: str | None = _run_id_opt(),
    collection_id: str = typer.Option(
        "sentinel-1-coherence", "--collection-id", help="Collection to rebuild."
    ),
    stac_api: str | None = typer.Option(
        None, "--stac-api", envvar=ENV_STAC_API, help="STAC API root to upsert into."
    ),
    geoparquet: bool = typer.Option(
        False,
        "--geoparquet",
        envvar="STAC_COH_GEOPARQUET",
        help="Also write every item to COLLECTION/items.parquet (stac-geoparquet).",
    ),
    pgstac: str | None = typer.Option(
        None,
        "--pgstac",
        envvar="STAC_COH_PGSTAC_DSN",
        metavar="DSN",
        help="Bulk-load the collection and items into this pgstac database.",
    ),
    public_url: str | None = public_url_option(),
    remove_orphans: bool = remove_orphans_option(),
    verbose: int = _verbose_opt(),
) -> None:
    """Rebuild the collection and write the run report."""
    from stac_coh.pipeline.signals import StopSignals

    logs = start_logging(verbose)
    with StopSignals() as stop:
        stop.pair_started()  # finalize has no pairs: a stop request interrupts it anywhere
        code = guarded(
            lambda: _finalize(
                manifest,
                out,
                run_id,
                collection_id,
                stac_api,
                logs.context,
                geoparquet,
                pgstac,
                public_url=public_url,
                remove_orphans=remove_orphans,
            ),
            stop,
        )
    raise typer.Exit(code)


def _process(
    manifest_uri: str | None,
    out: str | None,
    run_id: str | None,
    share_env: dict[str, str],
    last_attempt: bool,
    processing: ProcessingChoices,
    stop: Any,
    context: dict[str, Any],
    public_url: str | None = None,
) -> int:
    """Resolve the child's share, build the predictor once, process the share."""
    import logging

    from stac_coh.batch.device import load_on_device, record_device_fault
    from stac_coh.batch.logs import log_event
    from stac_coh.batch.plan import child_index, share_from_env, validate_run_id
    from stac_coh.batch.worker import gdal_overrides, load_manifest, process_share, public_base
    from stac_coh.errors import DeviceError
    from stac_coh.io.storage import open_store
    from stac_coh.pipeline.runner import PairProcessor
    from stac_coh.search.profiles import read_gdal_options
    from stac_coh.settings import get_settings

    log = logging.getLogger("stac_coh.worker")
    settings = get_settings()
    manifest_uri = required(manifest_uri, "--manifest", ENV_MANIFEST)
    out = required(out, "--out", ENV_OUT)
    run_id = validate_run_id(required(run_id, "--run-id", ENV_RUN_ID))
    context["run_id"] = run_id
    options = processing.options()
    manifest = load_manifest(manifest_uri)
    share = share_from_env(share_env, len(manifest.pairs))
    array_index = share_env[ARRAY_INDEX_ENV]
    offset = share_env[ENV_INDEX_OFFSET]
    context["child"] = child_index(int(array_index) if array_index else None, int(offset or 0))
    store = open_store(out, public_base_url=public_base(public_url))
    pairs = [manifest.pairs[i] for i in share]
    log_event(
        log,
        "worker.start",
        f"pairs {share.start}-{share.stop - 1} of {len(manifest.pairs)} from {manifest_uri}",
        pairs=[share.start, share.stop],
        manifest=manifest_uri,
        out=out,
        last_attempt=last_attempt,
    )
    try:
        device = processing.device or settings.device
        loaded = load_on_device(device, lambda: processing.load_predictor(settings))
    except DeviceError as exc:  # the host's GPU, not the input: retried, finalize still runs
        return record_device_fault(store, run_id, pairs, exc, options.collection_id, last_attempt)
    log_event(
        log,
        "worker.predictor",
        f"weights {loaded.card.name} on {loaded.device} ({loaded.precision})",
        weights=loaded.card.name,
        device=loaded.device,
        precision=loaded.precision,
    )
    gdal = read_gdal_options(manifest.source, extra=gdal_overrides(os.environ))
    processor = PairProcessor(manifest, store, loaded, options, gdal_options=gdal)
    result = process_share(processor, pairs, run_id=run_id, stop=stop, last_attempt=last_attempt)
    log_event(
        log,
        "worker.done",
        f"{len(result.outcomes)} of {len(pairs)} pairs: {result.counts}; exit {result.exit_code}",
        counts=result.counts,
        exit_code=result.exit_code,
    )
    return result.exit_code


def _finalize(
    manifest_uri: str | None,
    out: str | None,
    run_id: str | None,
    collection_id: str,
    stac_api: str | None,
    context: dict[str, Any],
    geoparquet: bool = False,
    pgstac: str | None = None,
    public_url: str | None = None,
    remove_orphans: bool = False,
) -> int:
    """Gather the outcomes, rebuild the collection, write the report, push."""
    from stac_coh.batch.plan import validate_run_id
    from stac_coh.batch.worker import EXIT_OK, finalize_run, load_manifest, public_base
    from stac_coh.io.http import make_session
    from stac_coh.io.storage import open_store
    from stac_coh.settings import get_settings

    out = required(out, "--out", ENV_OUT)
    run_id = validate_run_id(required(run_id, "--run-id", ENV_RUN_ID))
    context["run_id"] = run_id
    settings = get_settings()
    manifest = load_manifest(manifest_uri) if manifest_uri else None
    session = (
        make_session(timeout_s=settings.http_timeout_s, retries=settings.http_retries)
        if stac_api
        else None
    )
    finalize_run(
        open_store(out, public_base_url=public_base(public_url)),
        run_id=run_id,
        collection_id=collection_id,
        manifest=manifest,
        stac_api=stac_api,
        session=session,
        geoparquet=geoparquet,
        pgstac=pgstac,
        remove_orphans=remove_orphans,
    )
    return EXIT_OK


def register(app: typer.Typer) -> None:
    """Add ``worker process`` and ``worker finalize`` to the app."""
    worker = typer.Typer(
        help=_WORKER_HELP,
        no_args_is_help=True,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    worker.command("process", help=_PROCESS_HELP)(process_options(process_command))
    worker.command("finalize", help=_FINALIZE_HELP)(finalize_command)
    from stac_coh.cli._composite_batch import WORKER_COMPOSITE_HELP, worker_composite_command

    worker.command("composite", help=WORKER_COMPOSITE_HELP)(worker_composite_command)
    app.add_typer(worker, name="worker")
