"""Composites on AWS Batch: ``composite --submit`` (one child per tile) and the child."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import typer

from stac_coh.errors import InputError, StacCohError

if TYPE_CHECKING:
    from stac_coh.composite import CompositePlan, CompositeRequest, PairSource

__all__ = ["submit_composites", "worker_composite_command"]

log = logging.getLogger("stac_coh.worker")

EXIT_RETRY = 75
"""Transient failure: the job definition retries the child."""

WORKER_COMPOSITE_HELP = (
    "Composite one tile: this AWS Batch child's share (STAC_COH_TILE_SHARES, "
    "AWS_BATCH_JOB_ARRAY_INDEX, STAC_COH_INDEX_OFFSET, all set by `stac-coh composite "
    "--submit`). Exit 0 when every item of the tile is published or up to date, 75 on a "
    "transient failure (retried; published items are skipped), 2 when an item failed for "
    "good (the others are still made)."
)


def submit_composites(
    plan: CompositePlan,
    request: CompositeRequest,
    source: PairSource,
    *,
    out: str,
    job_queue: str | None,
    job_definition: str | None,
    run_id: str | None,
) -> None:
    """Write one share per tile to ``out`` and submit one array child per tile."""
    import boto3

    from stac_coh.batch.tile_array import submit_tile_array
    from stac_coh.composite.shares import tile_shares

    if not out.startswith("s3://"):
        raise InputError("--submit writes to S3: give --out (or --catalog) as s3://bucket/prefix.")
    if not job_queue or not job_definition:
        raise InputError(
            "--submit needs --job-queue and --job-definition (a CPU queue and job definition; "
            "the stack's finalize ones fit: STAC_COH_FINALIZE_JOB_QUEUE and "
            "STAC_COH_FINALIZE_JOB_DEFINITION)."
        )
    shares = tile_shares(
        plan, request, catalog=source.url, pair_collection=source.collection_id, out=out
    )
    record = submit_tile_array(
        shares,
        out=out,
        job_queue=job_queue,
        job_definition=job_definition,
        batch=boto3.client("batch"),
        s3=boto3.client("s3"),
        run_id=run_id,
    )
    typer.echo(
        f"Submitted run {record.run_id}: {record.tiles} tile children "
        f"(jobs {', '.join(record.job_ids)}); shares in {record.shares_uri}/"
    )


def worker_composite_command(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="Debug logs."),
) -> None:
    """Composite this child's tile (AWS Batch)."""
    logging.basicConfig(level=logging.INFO - 10 * min(verbose, 1), format="%(message)s")
    try:
        code = _composite_share()
    except KeyboardInterrupt:
        log.warning("stop requested: the tile is retried")
        code = EXIT_RETRY
    except StacCohError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        code = exc.exit_code
    raise typer.Exit(code)


def _composite_share() -> int:
    """Run every unit of the share; 75 as soon as one fails transiently, 2 if one failed."""
    from stac_coh.batch.tile_array import tile_share_from_env
    from stac_coh.composite import open_pair_source, run_unit
    from stac_coh.composite.shares import read_share
    from stac_coh.io.storage import open_store

    data, uri = tile_share_from_env(os.environ, open_store)
    share = read_share(data, uri)
    source = open_pair_source(share.catalog, share.pair_collection)
    store = open_store(share.out)
    failed = 0
    for unit in share.units:
        try:
            result = run_unit(unit, share.request, store, source)
        except StacCohError as exc:
            if exc.exit_code == EXIT_RETRY:
                raise
            log.error("%s failed: %s", unit.item_id, exc)
            failed += 1
            continue
        log.info("%s %s: %s", result.status, result.item_id, result.item_href)
    return 2 if failed else 0
