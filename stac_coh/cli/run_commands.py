"""`stac-coh search-and-run` and `stac-coh run`: the main job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from stac_coh.cli._process_options import ProcessingChoices, process_options
from stac_coh.cli._run_ui import RunSummary, execute_run, print_summary
from stac_coh.cli._search_options import SEARCH_EXAMPLES, SearchOptions, search_options
from stac_coh.errors import InputError

if TYPE_CHECKING:
    from stac_coh.infer.predictors import LoadedPredictor
    from stac_coh.io.storage import Store
    from stac_coh.pipeline.runner import ProcessOptions
    from stac_coh.search.manifest import Manifest, Pair

__all__ = ["register", "run_manifest"]

_SEARCH_AND_RUN_HELP = "\n\n".join(
    [
        "Search, pair, predict and publish: a browsable coherence catalog for an area and dates.",
        "Finds every valid Sentinel-1 pair (same track, 6 or 12 days apart by default) in the "
        "chosen STAC source, loads each pair onto its UTM grid, runs the ResUNet and publishes "
        "COGs (coherence, uncertainty, visual, thumbnail) plus a STAC item per pair into --out "
        "(a folder or s3://bucket/prefix), with a collection and root catalog.",
        "Pairs already published are skipped, so a re-run after Ctrl-C or a failure continues "
        "where it stopped (--overwrite redoes them). A failing pair is recorded and the others "
        "go on; the exit code is 0 only if every pair succeeded. A machine-readable report "
        "lands in OUT/reports/.",
        "Examples:",
        "  stac-coh search-and-run --bbox 77.4 12.8 77.8 13.1 --start 2026-04-01 "
        "--end 2026-06-30 --out coherence/",
        "  stac-coh search-and-run --aoi area.geojson --start 2026-04-01 --end 2026-08-31 "
        "--out s3://my-bucket/coherence --weights published.safetensors --device cuda",
        "  stac-coh search-and-run --bbox 77.4 12.8 77.8 13.1 --start 2026-04-01 "
        "--end 2026-06-30 --out coherence/ --dry-run",
        "More search examples (same options as `stac-coh search`):",
        SEARCH_EXAMPLES,
    ]
)

_RUN_HELP = "\n\n".join(
    [
        "Process pairs of a manifest into a coherence catalog (the AWS Batch worker's path).",
        "The manifest comes from `stac-coh search --json` (a path or s3:// URI). Without "
        "--index every pair runs; --index picks pairs by position (repeatable). Published "
        "pairs are skipped unless --overwrite.",
        "Examples:",
        "  stac-coh search --bbox 77.4 12.8 77.8 13.1 --start 2026-04-01 --end 2026-06-30 "
        "--json pairs.json",
        "  stac-coh run --manifest pairs.json --out coherence/",
        "  stac-coh run --manifest s3://bucket/runs/x/manifest.json --index 3 --out s3://bucket/coh",
    ]
)


@search_options
@process_options
def search_and_run_command(
    search: SearchOptions,
    processing: ProcessingChoices,
    out: str = typer.Option(..., "--out", "-o", help="Catalog folder or s3://bucket/prefix."),
    max_pairs: int | None = typer.Option(
        None, "--max-pairs", min=1, help="Process at most this many pairs (the first ones)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the plan (pairs, pixels, estimated time) and stop."
    ),
    json_out: str | None = typer.Option(
        None, "--json", metavar="FILE", help="Also write the manifest here."
    ),
) -> None:
    """Search, pair, predict and publish a coherence catalog."""
    from stac_coh.cli.search_command import pairs_table

    console = Console(stderr=False)
    with console.status("Searching..."):
        result = search.run()
    manifest = result.manifest
    console.print(pairs_table(manifest))
    console.print(
        f"{result.n_items} items, {len(manifest.pairs)} pairs. {result.summary}",
        highlight=False,
        soft_wrap=True,
    )
    for line in result.tiling.lines():  # work units = pair x tile of the fixed grid
        console.print(line, highlight=False, soft_wrap=True)
    if json_out:
        from stac_coh.cli._run_ui import save_manifest_copy

        console.print(f"Manifest: {save_manifest_copy(manifest, json_out)}", highlight=False)
    pairs = list(manifest.pairs[:max_pairs] if max_pairs else manifest.pairs)
    summary = run_manifest(
        manifest, pairs, out=out, processing=processing, dry_run=dry_run, console=console
    )
    raise typer.Exit(code=summary.exit_code if summary else 0)


def run_command_(
    manifest_uri: str = typer.Option(
        ..., "--manifest", "-m", help="Manifest from `stac-coh search --json` (path or s3://)."
    ),
    out: str = typer.Option(..., "--out", "-o", help="Catalog folder or s3://bucket/prefix."),
    index: list[int] | None = typer.Option(
        None, "--index", "-i", min=0, help="Pair position in the manifest (repeatable)."
    ),
    all_pairs: bool = typer.Option(False, "--all", help="Every pair (the default)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and stop."),
    *,
    processing: ProcessingChoices,
) -> None:
    """Process pairs of a manifest."""
    from stac_coh.search.manifest_io import read_manifest

    if index and all_pairs:
        raise InputError("Give --index or --all, not both.")
    manifest = read_manifest(manifest_uri)
    pairs = select_pairs(manifest, index or ())
    summary = run_manifest(
        manifest, pairs, out=out, processing=processing, dry_run=dry_run, console=Console()
    )
    raise typer.Exit(code=summary.exit_code if summary else 0)


def select_pairs(manifest: Manifest, indices: Sequence[int]) -> list[Pair]:
    """Pairs at ``indices`` (all when empty); a clear error for positions out of range."""
    if not indices:
        return list(manifest.pairs)
    n = len(manifest.pairs)
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise InputError(
            f"--index {bad[0]} is out of range: the manifest has {n} pairs (0..{n - 1})."
        )
    return [manifest.pairs[i] for i in dict.fromkeys(indices)]


def run_manifest(
    manifest: Manifest,
    pairs: Sequence[Pair],
    *,
    out: str,
    processing: ProcessingChoices,
    dry_run: bool,
    console: Console,
) -> RunSummary | None:
    """Shared tail of `run`, `search-and-run` and `demo`: plan or process, then summarise.

    Returns the run's summary, or ``None`` when nothing ran (dry run, no pairs).
    """
    from stac_coh.io.output import open_output_store
    from stac_coh.pipeline.records import new_run_id
    from stac_coh.pipeline.runner import PairProcessor
    from stac_coh.search.profiles import read_gdal_options
    from stac_coh.settings import get_settings

    settings = get_settings()
    options = processing.options()
    store = open_output_store(out, check=not dry_run)  # an unwritable --out fails now
    if not dry_run:
        _check_root_catalog(store, console)
    if not pairs:
        console.print("No pairs to process.")
        return None
    loaded = processing.load_predictor(settings)
    console.print(
        f"Weights: {_weights_line(loaded)}; device: {loaded.device} ({loaded.precision})",
        highlight=False,
        soft_wrap=True,
    )
    if dry_run:
        _print_plan(pairs, loaded, options, console)
        return None
    processor = PairProcessor(
        manifest, store, loaded, options, gdal_options=read_gdal_options(manifest.source)
    )
    summary = execute_run(processor, pairs, run_id=new_run_id(), console=console)
    print_summary(summary, console, collection_id=options.collection_id, store=store)
    if store.href_for("catalog.json").startswith("/"):
        console.print(f"Browse:     stac-coh serve {out}", highlight=False)
    return summary


def _check_root_catalog(store: Store, console: Console) -> None:
    """Refuse a ``catalog.json`` that is not STAC now; say so when joining someone's catalog."""
    from stac_coh.publish.collection import CATALOG_KEY
    from stac_coh.publish.root_catalog import inspect_root_catalog

    root = inspect_root_catalog(store)
    if root.foreign:
        name = f"{root.catalog_id!r}" + (f" ({root.title})" if root.title else "")
        console.print(
            f"Catalog:    {store.href_for(CATALOG_KEY)} is the STAC catalog {name}; the "
            "collection is added to it as a child link (nothing else of it changes).",
            highlight=False,
            soft_wrap=True,
        )


def _weights_line(loaded: LoadedPredictor) -> str:
    """Which weights make this run's maps: name, where from, revision and license if known."""
    prov = loaded.card.provenance
    where = prov.repository or prov.trained_on or prov.source or "no provenance recorded"
    facts = [where]
    if prov.revision:
        facts.append(f"revision {prov.revision[:12]}")
    if prov.license:
        facts.append(f"license {prov.license}")
    return f"{loaded.card.name} ({', '.join(facts)})"


def _print_plan(
    pairs: Sequence[Pair], loaded: LoadedPredictor, options: ProcessOptions, console: Console
) -> None:
    """The --dry-run table."""
    from stac_coh.pipeline.plan import plan_run

    with console.status("Measuring this device's speed on a probe tile..."):
        plan = plan_run(pairs, loaded.predictor, options, device=loaded.device)
    table = Table(title=f"Plan: {len(plan.pairs)} pairs")
    for name in ("pair", "pixels", "pixels fed (halos)", "est. inference"):
        table.add_column(name, justify="left" if name == "pair" else "right")
    for p in plan.pairs:
        table.add_row(p.pair_id, f"{p.pixels:,}", f"{p.processed_pixels:,}", _duration(p.seconds))
    console.print(table)
    console.print(
        f"Total {plan.pixels / 1e6:.1f} MP, about {_duration(plan.seconds)} of inference on "
        f"{plan.device} ({plan.megapixels_per_second:.2f} MP/s measured on a probe tile; "
        "reading and publishing come on top). Nothing was written.",
        highlight=False,
        soft_wrap=True,
    )


def _duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    app.command("search-and-run", help=_SEARCH_AND_RUN_HELP)(search_and_run_command)
    app.command("run", help=_RUN_HELP)(process_options(run_command_))
