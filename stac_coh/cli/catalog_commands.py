"""`stac-coh finalize`: rebuild a coherence collection from its published items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stac_coh.constants import DEFAULT_COLLECTION_ID
from stac_coh.errors import InputError

if TYPE_CHECKING:
    from stac_coh.io.storage import Store

__all__ = ["register"]

_FINALIZE_HELP = "\n\n".join(
    (
        "Rebuild the collection's item links, extent and summaries from its published items.",
        "OUT is the catalog a run published into: a local directory or s3://bucket/prefix "
        "(S3 endpoint and credentials come from the usual AWS environment, e.g. "
        "AWS_PROFILE or AWS_ENDPOINT_URL). Every item JSON in OUT/COLLECTION/ is listed; "
        "the collection then lists each exactly once, and the root catalog links the "
        "collection and the model description. Safe to run while workers still publish, "
        "and to run again.",
        "--report adds a run report (JSON written by the runner, format "
        "stac-coh/run-report/1) completed with the catalog totals, stored as "
        "OUT/reports/RUN_ID.json; --run-id instead gathers the per-pair outcomes workers "
        "recorded under OUT/reports/RUN_ID/pairs/. --stac-api upserts the collection and "
        "every item into a STAC API with the Transactions extension (POST, then PUT on 409).",
        "Items are listed by small sub-catalogs of the MGRS tile grid (tile group, tile, "
        "year), so no JSON grows with the run; memory stays bounded however many items. "
        "For runs too big to browse as a static tree: --geoparquet writes every item to "
        "OUT/COLLECTION/items.parquet (stac-geoparquet, listed as a collection asset), and "
        "--pgstac DSN bulk-loads the collection and every item into a pgstac database "
        "(upsert) that stac-fastapi-pgstac serves.",
        "Examples:",
        "  stac-coh finalize ./coherence",
        "  stac-coh finalize s3://my-bucket/coherence --report run.json",
        "  stac-coh finalize s3://my-bucket/coherence --run-id 2026-05-01-alps",
        "  stac-coh finalize ./coherence --stac-api http://localhost:8082",
        "  stac-coh finalize s3://my-bucket/coherence --geoparquet",
        "  stac-coh finalize s3://my-bucket/coherence --pgstac postgresql://user@db:5432/pgstac",
    )
)


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    app.command("finalize", help=_FINALIZE_HELP)(finalize_command)


def finalize_command(
    out: str = typer.Argument(..., help="Catalog root: a directory or s3://bucket/prefix."),
    collection: str = typer.Option(
        DEFAULT_COLLECTION_ID, "--collection", "-c", help="Collection id to rebuild."
    ),
    stac_api: str | None = typer.Option(
        None, "--stac-api", help="STAC API root (Transactions on) to upsert into."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Run report JSON to complete and store under OUT/reports/."
    ),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Build the report from outcomes workers recorded for this run."
    ),
    public_url: str | None = typer.Option(
        None, "--public-url", help="HTTP(S) URL readers use for OUT (for self links)."
    ),
    remove_orphans: bool = typer.Option(
        False,
        "--remove-orphans",
        help="Delete assets without an item (left by killed publishers); only while none runs.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    geoparquet: bool = typer.Option(
        False, "--geoparquet", help="Also write every item to COLLECTION/items.parquet."
    ),
    pgstac: str | None = typer.Option(
        None,
        "--pgstac",
        envvar="STAC_COH_PGSTAC_DSN",
        metavar="DSN",
        help="Bulk-load the collection and items into this pgstac database (upsert).",
    ),
) -> None:
    """Run :func:`stac_coh.pipeline.run.finish_run` with settings from the environment."""
    from stac_coh.io.http import make_session
    from stac_coh.io.output import open_output_store
    from stac_coh.pipeline.run import finish_run
    from stac_coh.publish.root_catalog import inspect_root_catalog
    from stac_coh.settings import get_settings

    if "://" not in out and not Path(out).is_dir():
        raise InputError(f"{out} is not a directory; pass the folder a run published into.")
    settings = get_settings()
    store = open_output_store(out, option="OUT", public_base_url=public_url)
    _check_collection(store, out, collection)
    inspect_root_catalog(store)  # a catalog.json that is not STAC fails before the rebuild
    session = (
        make_session(timeout_s=settings.http_timeout_s, retries=settings.http_retries)
        if stac_api
        else None
    )
    end = finish_run(
        store,
        collection_id=collection,
        report=_read_report(report) if report else None,
        run_id=run_id,
        stac_api=stac_api,
        session=session,
        geoparquet=geoparquet,
        pgstac=pgstac,
        remove_orphans=remove_orphans,
    )
    result = end.catalog
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "report_href": end.report_href}, indent=2))
        return
    typer.echo(f"{result.collection_href}: {result.items} items, bbox {result.bbox}")
    if result.pushed:
        typer.echo(
            f"pushed to {stac_api}: collection {result.pushed.collection}, "
            f"{result.pushed.created} items created, {result.pushed.updated} updated"
        )
    if result.orphans and result.orphans.found:
        typer.echo(
            f"{result.orphans.found} item folders with assets but no item "
            f"({result.orphans.files} files), {result.orphans.removed} removed"
        )
    if end.report_href:
        typer.echo(f"report: {end.report_href}")
    if result.geoparquet_href:
        typer.echo(f"geoparquet: {result.geoparquet_href}")
    if result.pgstac_items is not None:
        typer.echo(f"pgstac: {result.pgstac_items} items loaded")


def _any_key(store: Store, prefix: str) -> bool:
    """Whether any key starts with ``prefix`` (one LIST page, not the whole listing)."""
    return next(iter(store.iter_keys(prefix)), None) is not None


def _check_collection(store: Store, out: str, collection: str) -> None:
    """Refuse a collection the catalog does not have (finalize would create it empty)."""
    from stac_coh.publish.collection import CATALOG_KEY, collection_key

    if store.exists(collection_key(collection)) or _any_key(store, f"{collection}/"):
        return  # the collection, or items of it (workers publish before finalize makes it)
    catalog = store.get_or_none(CATALOG_KEY)
    known: list[str] = []
    if catalog is not None:
        try:
            links = json.loads(catalog.data).get("links", [])
            known = sorted(
                str(link["href"]).removeprefix("./").split("/")[0]
                for link in links
                if link.get("rel") == "child"
            )
        except (ValueError, AttributeError, KeyError, TypeError):
            known = []
    raise InputError(
        f"{out} has no collection {collection!r} (it has: {', '.join(known) or 'none'}); fix "
        "--collection, or pass the folder a run published into."
    )


def _read_report(path: Path) -> dict[str, object]:
    """Parse a run report file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"Cannot read the run report {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"The run report {path} must hold a JSON object.")
    return data
