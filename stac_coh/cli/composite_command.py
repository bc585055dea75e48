"""`stac-coh composite`: seasonal coherence composites and decay-model layers from a catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stac_coh.cli._text import prose
from stac_coh.constants import DEFAULT_COLLECTION_ID, DEFAULT_COMPOSITE_COLLECTION_ID
from stac_coh.errors import InputError, StacCohError

if TYPE_CHECKING:
    from rich.console import Console

    from stac_coh.composite import CompositePlan, CompositeRequest, PairSource, UnitResult
    from stac_coh.io.storage import Store

__all__ = ["register", "run_composites"]

_HELP = prose("""
Seasonal coherence composites and the decay model, from published pairs: per tile,
period and polarisation, the median (or mean) coherence of each temporal baseline, the
number of pairs behind each pixel, and gamma(t) = (1 - rho_inf) * exp(-t / tau) + rho_inf
fitted per pixel (rho_inf, tau in days, fit RMSE) wherever composites of at least three
baselines exist. The layers of the Global Seasonal Sentinel-1 Interferometric Coherence
data set (Kellndorfer et al. 2022), for any year and area, at the pairs' resolution.

--catalog is a catalog that `search-and-run` (or `submit`) published into: a folder or
s3://bucket/prefix, or a STAC API URL holding such pair items. The composites are
published as COGs + STAC items into a second collection (--composite-collection, default
sentinel-1-coherence-seasonal) of --out, which defaults to --catalog; `derived_from`
links name every pair (relative links inside one catalog).

Periods: --year Y means the four seasons of the seasonal year Y (DJF = Dec Y-1 to Feb Y,
MAM, JJA, SON), as in Kellndorfer et al.; --season picks some, --months 4-9 makes one
custom season; --start/--end (days, both included) make one period, or the seasons in
between with --season/--months. A pair belongs to the period of its first acquisition.
Pairs stack per tile: their fixed-grid tile (grid:code) or, for pairs without one, the
pixel lattice they share (CRS, pixel size, origin). Feed it multi-baseline runs:
`stac-coh search-and-run ... --baselines 6,12,18,24,36,48`.

Memory stays bounded whatever the number of pairs: the tile is processed in --chunk
pixel squares and pairs stream through the statistic (the median keeps a 251-level
histogram per pixel: ~128 MiB for a 512 px chunk). A re-run skips items that already link
exactly the same pairs (--overwrite remakes them). --plan lists the tiles and items
without computing; --tile CODE makes one tile. --submit runs the plan on AWS Batch, one
array child per tile (`stac-coh worker composite`, reading only its tile's share from
OUT/runs/RUN_ID/composite/tiles/), on a CPU queue and job definition: the stack's
finalize ones (STAC_COH_FINALIZE_JOB_QUEUE, STAC_COH_FINALIZE_JOB_DEFINITION).

Examples:

  stac-coh search-and-run --bbox 11.0 46.0 11.6 46.5 \\
      --start 2025-12-01 --end 2026-11-30 --baselines 6,12,18,24,36,48 \\
      --out coherence/
  stac-coh composite --catalog coherence/ --year 2026 --plan
  stac-coh composite --catalog coherence/ --year 2026
  stac-coh composite --catalog coherence/ --year 2026 --season JJA --stat mean
  stac-coh composite --catalog s3://my-coherence/alps --tile MGRS-32TPS \\
      --start 2026-04-01 --end 2026-09-30 --months 4-9
  stac-coh composite --catalog s3://my-coherence/alps --year 2026 --submit
  stac-coh composite --catalog https://stac.example.com --year 2026 \\
      --collection sentinel-1-coherence --out s3://my-coherence/composites
""")


def composite_command(
    catalog: str = typer.Option(
        ..., "--catalog", help="Pair catalog: a folder, s3://bucket/prefix or a STAC API URL."
    ),
    collection: str = typer.Option(
        DEFAULT_COLLECTION_ID, "--collection", "-c", help="Collection of the pair items."
    ),
    year: int | None = typer.Option(None, "--year", help="Seasonal year (Dec Y-1 .. Nov Y)."),
    start: str | None = typer.Option(None, "--start", help="First day (YYYY-MM-DD)."),
    end: str | None = typer.Option(None, "--end", help="Last day (YYYY-MM-DD), included."),
    season: str | None = typer.Option(
        None, "--season", help="Seasons, comma-separated: DJF,MAM,JJA,SON."
    ),
    months: str | None = typer.Option(
        None, "--months", help="One custom season of consecutive months: 4-9, 11-2, 6,7,8."
    ),
    baselines: str = typer.Option(
        "6,12,18,24,36,48", "--baselines", help="Temporal baselines to composite (days)."
    ),
    stat: str = typer.Option("median", "--stat", help="median or mean."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Catalog to publish into (default: --catalog)."
    ),
    composite_collection: str = typer.Option(
        DEFAULT_COMPOSITE_COLLECTION_ID,
        "--composite-collection",
        help="Collection id of the composites.",
    ),
    tile: list[str] = typer.Option([], "--tile", help="Only this tile code; repeatable."),
    plan_only: bool = typer.Option(False, "--plan", help="List tiles and items; compute nothing."),
    chunk: int = typer.Option(512, "--chunk", help="Chunk edge in pixels (memory ~ chunk^2)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Remake up-to-date items too."),
    public_url: str | None = typer.Option(
        None, "--public-url", help="HTTP(S) URL readers use for --out (for self links)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan or results as JSON."),
    submit: bool = typer.Option(
        False, "--submit", help="Run on AWS Batch: one array child per tile (--out s3://)."
    ),
    job_queue: str | None = typer.Option(
        None, "--job-queue", envvar="STAC_COH_FINALIZE_JOB_QUEUE", help="CPU job queue (--submit)."
    ),
    job_definition: str | None = typer.Option(
        None,
        "--job-definition",
        envvar="STAC_COH_FINALIZE_JOB_DEFINITION",
        help="CPU job definition (--submit).",
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Run id of --submit."),
) -> None:
    """Composite published pairs per tile and season; fit the decay model."""
    from stac_coh.composite import CompositeRequest, open_pair_source, plan_periods
    from stac_coh.composite.stack import as_stat
    from stac_coh.io.storage import open_store

    if not 64 <= chunk <= 4096:
        raise InputError(f"--chunk {chunk}: use 64..4096 pixels (512 is one COG block).")
    request = CompositeRequest(
        periods=plan_periods(year=year, start=start, end=end, seasons=season, months=months),
        baselines=_baselines(baselines),
        stat=as_stat(stat),
        collection_id=composite_collection,
        chunk=chunk,
        overwrite=overwrite,
    )
    source = open_pair_source(catalog, collection)
    target = out if out is not None else (None if source.store is None else source.url)
    if target is None:
        raise InputError("--catalog is a STAC API: give --out, a folder or s3:// prefix.")
    store = open_store(target, public_base_url=public_url)
    from rich.console import Console

    console = Console(stderr=as_json)
    with console.status(f"Reading pair items of {collection} in {catalog}..."):
        plan = plan_from_source(source, request)
    if tile:
        plan = plan.for_tiles(tile)
    if plan_only:
        _print_plan(plan, request, console, as_json)
        return
    if submit:
        from stac_coh.cli._composite_batch import submit_composites

        submit_composites(
            plan,
            request,
            source,
            out=store.url,
            job_queue=job_queue,
            job_definition=job_definition,
            run_id=run_id,
        )
        return
    from stac_coh.publish.root_catalog import inspect_root_catalog

    inspect_root_catalog(store)  # a catalog.json that is not STAC fails before the work
    results, failures = run_composites(plan, request, store, source, console=console)
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in results], indent=2, default=str))
    else:
        _print_results(results, failures, store, request, console)
    if failures:
        raise typer.Exit(code=1)


def plan_from_source(source: PairSource, request: CompositeRequest) -> CompositePlan:
    """Read the pairs of the request's time range and plan the units."""
    from stac_coh.composite import plan_composites

    plan = plan_composites(source.pairs(request.start, request.stop), request)
    if not plan.units:
        ignored = ", ".join(f"{n} outside the {why}s" for why, n in plan.ignored.items())
        raise InputError(
            f"No pair of {source.collection_id!r} in {source.url} falls in "
            f"{request.periods[0].label}..{request.periods[-1].label} with a baseline of "
            f"{'/'.join(map(str, request.baselines))} days"
            + (f" ({ignored})" if ignored else "")
            + ". Check --catalog, --collection and the dates."
        )
    return plan


def run_composites(
    plan: CompositePlan,
    request: CompositeRequest,
    store: Store,
    source: PairSource,
    *,
    console: Console,
) -> tuple[list[UnitResult], list[tuple[str, str]]]:
    """Make every unit of the plan with a progress bar; failures are collected, not raised."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from stac_coh.composite import run_unit

    results: list[UnitResult] = []
    failures: list[tuple[str, str]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        overall = progress.add_task("composites", total=len(plan.units))
        for unit in plan.units:
            task = progress.add_task(f"  {unit.item_id}", total=None)

            def on_chunk(done: int, total: int, task: Any = task) -> None:
                progress.update(task, completed=done, total=total)

            try:
                results.append(run_unit(unit, request, store, source, on_chunk=on_chunk))
            except StacCohError as exc:
                failures.append((unit.item_id, str(exc)))
            progress.remove_task(task)
            progress.advance(overall)
    return results, failures


def _baselines(text: str) -> tuple[int, ...]:
    """``6,12,18`` -> whole days, sorted, distinct."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise InputError(
            f"--baselines {text!r}: whole days, comma-separated, e.g. 6,12,24."
        ) from None
    if not values or any(v <= 0 for v in values):
        raise InputError(f"--baselines {text!r}: positive whole days, e.g. 6,12,24.")
    return tuple(values)


def _print_plan(
    plan: CompositePlan, request: CompositeRequest, console: Console, as_json: bool
) -> None:
    """The tiles and their items (what a run or a Batch child per tile would make)."""
    if as_json:
        typer.echo(json.dumps(plan.to_dict(), indent=2))
        return
    from rich.table import Table

    table = Table(title=f"Composite plan: {len(plan.tiles)} tiles, {len(plan.units)} items")
    for name in ("tile", "grid (px)", "period", "pol", "pairs per baseline", "decay fit"):
        table.add_column(name)
    for unit in plan.units:
        t = unit.tile
        counts = " ".join(f"{b}d:{len(p)}" for b, p in sorted(unit.pairs.items()))
        fit = "yes" if len(unit.pairs) >= 3 else f"no ({len(unit.pairs)} baselines < 3)"
        table.add_row(
            t.code, f"{t.width} x {t.height}", unit.period.label, unit.polarization, counts, fit
        )
    console.print(table)
    if plan.ignored:
        console.print(
            "Pairs left out: "
            + ", ".join(f"{n} ({why} not requested)" for why, n in plan.ignored.items()),
            highlight=False,
        )


def _print_results(
    results: list[UnitResult],
    failures: list[tuple[str, str]],
    store: Store,
    request: CompositeRequest,
    console: Console,
) -> None:
    """One line per item, then failures."""
    for r in results:
        decay = "decay layers" if r.fitted else "no decay layers (< 3 baselines)"
        baselines = "/".join(map(str, r.baselines))
        console.print(f"{r.status:11} {r.item_id}: {baselines} d, {decay}", highlight=False)
    for item_id, error in failures:
        console.print(f"[red]failed[/]      {item_id}: {error}", highlight=False)
    coll = store.href_for(f"{request.collection_id}/collection.json")
    console.print(f"Composites: {coll}", highlight=False, soft_wrap=True)


def demo_composite(catalog_dir: Path, console: Console, *, year: int, season: str) -> bool:
    """The demo's seasonal composite, published beside its pairs; False if it failed."""
    from stac_coh.composite import CompositeRequest, open_pair_source, plan_periods
    from stac_coh.io.storage import open_store

    request = CompositeRequest(periods=plan_periods(year=year, seasons=season))
    source = open_pair_source(str(catalog_dir), DEFAULT_COLLECTION_ID)
    plan = plan_from_source(source, request)
    results, failures = run_composites(
        plan, request, open_store(str(catalog_dir)), source, console=console
    )
    for r in results:
        decay = (
            "decay layers rho_inf, tau, rmse"
            if r.fitted
            else f"no decay layers: {len(r.baselines)} baselines, the fit needs 3"
        )
        console.print(
            f"Seasonal composite {r.item_id} ({r.status}): "
            f"{'/'.join(map(str, r.baselines))}-day median coherence and pair counts; {decay}.",
            highlight=False,
            soft_wrap=True,
        )
    for item_id, error in failures:
        console.print(f"[red]Composite {item_id} failed:[/] {error}", highlight=False)
    return not failures


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("composite", help=_HELP)(composite_command)
