"""`stac-coh demo`: the whole main job, offline, on a bundled simulated catalog."""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from stac_coh.cli._process_options import ProcessingChoices
from stac_coh.cli._run_ui import RunSummary
from stac_coh.cli._search_options import SearchOptions
from stac_coh.cli.run_commands import run_manifest
from stac_coh.cli.search_command import pairs_table
from stac_coh.errors import WeightsProvenanceWarning

__all__ = ["register"]

DEMO_KIND = "demo"
"""What the demo's marker file says."""
DEMO_LAYOUT = ("catalog", "source")
"""Everything a demo writes in --out besides the marker (``source``: demos before the
simulated inputs moved into the catalog)."""

_HELP = "\n\n".join(
    [
        "Run the whole job offline: simulated Sentinel-1 acquisitions -> search -> pairs -> "
        "ResUNet -> a browsable STAC catalog of coherence COGs.",
        "The demo writes a small local STAC catalog of simulated Sentinel-1 RTC-like "
        "acquisitions (San Francisco Bay area, two tracks, Sentinel-1A and -1C; items shaped "
        "like Planetary Computer's), then runs `search-and-run` against it with the weights "
        "bundled with stac-coh. Those weights were trained on SIMULATED data: the demo shows "
        "the machinery and its accuracy on simulated scenes, not real-world quality.",
        "Nothing is downloaded. Takes well under a minute on a 2-core CPU. Run it again and "
        "the published pairs are skipped; --fresh starts over: it deletes what a previous "
        "demo wrote in --out (a .stac-coh marker says which folder is a demo's) and refuses "
        "to touch a folder the demo did not write.",
        "Examples:",
        "  stac-coh demo",
        "  stac-coh demo --out /tmp/demo --fresh",
        "  stac-coh serve stac-coh-demo/catalog   # then open the printed STAC Browser link",
    ]
)


def demo_command(
    out: str = typer.Option("stac-coh-demo", "--out", "-o", help="Demo folder (local)."),
    fresh: bool = typer.Option(
        False, "--fresh", help="Delete what an earlier demo wrote in --out and start over."
    ),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or mps."),
    weights: str | None = typer.Option(
        None, "--weights", help="Other weights than the bundled ones (file or hf://)."
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="auto (default), fp32, bf16 or fp16 (see stac-coh predict)."
    ),
) -> None:
    """Run the whole job offline on a bundled simulated catalog."""
    from stac_coh.science.demo import build_demo_catalog, source_dir

    console = Console()
    started = time.perf_counter()
    folder = _checked_folder(out, fresh)
    processing = _processing(weights, device, precision)  # bad choices fail before any write
    _prepare_folder(folder, fresh)
    with console.status("Simulating Sentinel-1 acquisitions and writing the source catalog..."):
        source = build_demo_catalog(source_dir(folder))
    console.print(f"Source catalog (simulated): {source.items_dir}", highlight=False)
    search = SearchOptions(
        bbox=source.bbox, start=source.start, end=source.end, source=str(source.items_dir)
    )
    result = search.run()
    console.print(pairs_table(result.manifest))
    console.print(
        f"{result.n_items} items, {len(result.manifest.pairs)} pairs. {result.summary}",
        highlight=False,
        soft_wrap=True,
    )
    catalog_dir = folder / "catalog"
    summary = run_manifest(
        result.manifest,
        list(result.manifest.pairs),
        out=str(catalog_dir),
        processing=processing,
        dry_run=False,
        console=console,
    )
    if summary is None:
        raise typer.Exit(code=1)
    _print_accuracy(summary, catalog_dir, source.truth, console)
    from stac_coh.cli.composite_command import demo_composite

    composite_ok = demo_composite(catalog_dir, console, year=2026, season="JJA")
    _print_next_steps(catalog_dir, console, time.perf_counter() - started)
    raise typer.Exit(code=summary.exit_code or (0 if composite_ok else 1))


def _checked_folder(out: str, fresh: bool) -> Path:
    """The demo folder: local, and not someone else's (nothing is written or deleted yet)."""
    from stac_coh.io.guard import check_no_clash, owned_entries
    from stac_coh.io.output import local_folder

    folder = local_folder(out, option="--out", command="demo")
    if fresh:
        owned_entries(folder, kind=DEMO_KIND, layout=DEMO_LAYOUT, option="--fresh")
    else:
        # A re-run reuses what an earlier demo wrote; it never writes into folders of others.
        check_no_clash(folder, kind=DEMO_KIND, layout=DEMO_LAYOUT, option="--out")
    return folder


def _prepare_folder(folder: Path, fresh: bool) -> None:
    """Empty what an earlier demo wrote (--fresh), create the folder and mark it as a demo's."""
    from stac_coh.io.guard import clear_owned, write_marker
    from stac_coh.io.output import open_output_store

    if fresh:
        clear_owned(folder, kind=DEMO_KIND, layout=DEMO_LAYOUT, option="--fresh")
    open_output_store(folder, option="--out")  # creates it, or one line on why it cannot
    write_marker(folder, DEMO_KIND)


def _processing(
    weights: str | None, device: str | None, precision: str | None = None
) -> ProcessingChoices:
    """The demo's processing choices, with the predictor loaded (and so checked) now."""
    from stac_coh.settings import get_settings

    processing = ProcessingChoices(
        weights=weights,
        estimator="resunet",
        mode="fast",
        device=device,
        tile=None,
        batch_size=None,
        dtype="uint8",
        uncertainty=True,
        loader="odc",
        overwrite=False,
        collection_id="sentinel-1-coherence",
        source_kind="simulated",  # auto = the bundled weights: the demo's data are simulated
        precision=precision,
    )
    processing.options()  # --device and friends, before any work
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsProvenanceWarning)  # said plainly at the end
        loaded = processing.load_predictor(get_settings())
    return replace(processing, preloaded=loaded)


def _print_accuracy(
    summary: RunSummary, catalog_dir: Path, truth: dict[int, Path], console: Console
) -> None:
    """RMSE of each published map against the simulator's true coherence."""
    from stac_coh.publish.collection import asset_key
    from stac_coh.science.demo import read_coherence, truth_on_grid
    from stac_coh.science.evaluate import compute_metrics

    table = Table(title="Accuracy against the simulated TRUE coherence (bundled weights)")
    for name in ("pair", "pixels", "RMSE", "MAE", "bias"):
        table.add_column(name, justify="left" if name == "pair" else "right")
    for outcome in summary.outcomes:
        if not outcome.ok:
            continue
        cog = catalog_dir / asset_key("sentinel-1-coherence", outcome.pair_id, "coherence")
        m = compute_metrics(read_coherence(cog), truth_on_grid(cog, list(truth.values())))
        table.add_row(
            outcome.pair_id, f"{m.n:,}", f"{m.rmse:.3f}", f"{m.mae:.3f}", f"{m.bias:+.3f}"
        )
    console.print(table)


def _print_next_steps(catalog_dir: Path, console: Console, seconds: float) -> None:
    """Where the catalog and thumbnails are and how to browse them."""
    console.print(
        f"\n[bold]Done in {seconds:.0f} s.[/] The coherence catalog is in {catalog_dir}/ "
        f"(root: {catalog_dir / 'catalog.json'}).\n"
        f"Thumbnails: {catalog_dir}/sentinel-1-coherence/*/*_thumbnail.png\n"
        f"Composites: {catalog_dir}/sentinel-1-coherence-seasonal/ (`stac-coh composite --help`)\n"
        f"Browse it:  stac-coh serve {catalog_dir}   (prints a STAC Browser link; the map "
        "draws the COGs)\n"
        "In Python:  pystac.Catalog.from_file(...) or odc.stac.load(items, bands=['coherence'])\n"
        "QGIS/GDAL:  open any *_coherence.tif (scale 0.004 and nodata 255 are in the file).\n"
        "[yellow]The bundled weights were trained on simulated data (see `stac-coh weights "
        "info`); on real data `search-and-run` uses the published weights (--weights auto).[/]",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("demo", help=_HELP)(demo_command)
