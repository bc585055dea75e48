"""`stac-coh search`: find Sentinel-1 pairs, show them, optionally write the manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console, JustifyMethod
from rich.table import Table

from stac_coh.cli._search_options import SEARCH_EXAMPLES, SearchOptions, search_options

if TYPE_CHECKING:
    from stac_coh.search.manifest import Acquisition, Manifest

__all__ = ["register"]

_HELP = "\n\n".join(
    [
        "Find pairs of Sentinel-1 acquisitions over an area and dates.",
        "Searches the catalog (default: Planetary Computer's sentinel-1-rtc), merges the "
        "slices of each pass into one acquisition, and keeps pairs of the same track "
        "(relative orbit, orbit state, instrument mode) whose temporal baseline is one of "
        "--baselines (within 0.1 day) and whose footprints overlap in the area (at least "
        "--min-coverage of the imaged area covered by both); S1A+S1C and S1A+S1D pairs count.",
        "Prints one row per pair and one line counting the rejected combinations by reason. "
        "--json writes the manifest (items by unsigned href, each pair's grid: the "
        "reference's UTM zone at its native pixel size unless --crs/--resolution say "
        "otherwise) for `stac-coh run` or `stac-coh submit`: a file (local paths in it are "
        "relative to it), s3://bucket/key, or - for standard output (the table then goes "
        "to standard error).",
        "Offline: --source PATH searches a directory of item JSONs, an .ndjson or a "
        "stac-geoparquet file.",
        "Examples:",
        SEARCH_EXAMPLES,
        "  stac-coh search --bbox 77.4 12.8 77.8 13.1 --start 2026-04-01 --end 2026-06-30 "
        "--json s3://my-bucket/manifests/bengaluru.json",
        "  stac-coh search --source ./catalog --bbox 15 33 16.8 34.5 --start 2024-04-01 "
        "--end 2024-05-31 --json - | jq '.pairs | length'",
    ]
)


@search_options
def search_command(
    search: SearchOptions,
    json_out: str | None = typer.Option(
        None,
        "--json",
        metavar="FILE",
        help="Write the manifest here: a path, s3://bucket/key, or - (standard output).",
    ),
) -> None:
    """Find Sentinel-1 pairs over an area and dates; --json writes the manifest."""
    target = None
    if json_out:
        from stac_coh.io.guard import check_replaceable_manifest
        from stac_coh.io.output import OutputFile

        target = OutputFile.parse(json_out, option="--json", stdout_ok=True)
        target.check()  # before the search: a bad location fails in seconds
        if target.kind == "local":
            check_replaceable_manifest(target.path)
    result = search.run()
    # With --json - the manifest owns standard output; everything else goes to stderr.
    console = Console(stderr=target is not None and target.kind == "stdout")
    console.print(pairs_table(result.manifest))
    tiles = len({p.tile for p in result.manifest.pairs})
    console.print(
        f"{result.n_items} items, {result.n_pairs} pairs -> {len(result.manifest.pairs)} work "
        f"units on {tiles} tiles. {result.summary}",
        highlight=False,
        soft_wrap=True,
    )
    if result.truncated:
        console.print(
            f"[yellow]Stopped at --limit {search.limit} items: raise it to see every pair.",
        )
    if target is not None:
        from stac_coh.search.manifest_io import write_manifest

        where = write_manifest(result.manifest, target.location)
        console.print(f"Manifest: {where}", highlight=False, soft_wrap=True)


def pairs_table(manifest: Manifest) -> Table:
    """One row per work unit (pair x tile) of ``manifest``."""
    table = Table(title=f"{len(manifest.pairs)} work units in {manifest.source.collection}")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("#", "right"),
        ("reference", "left"),
        ("secondary", "left"),
        ("rel. orbit", "right"),
        ("direction", "left"),
        ("baseline", "right"),
        ("coverage", "right"),
        ("tile", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for i, pair in enumerate(manifest.pairs):
        table.add_row(
            str(i),
            _acquisition(pair.reference),
            _acquisition(pair.secondary),
            str(pair.reference.relative_orbit),
            pair.reference.orbit_state[:4] + ".",
            f"{pair.baseline_days:.1f} d",
            f"{pair.coverage:.0%}",
            (pair.tile or "").removeprefix("MGRS-"),
        )
    return table


def _acquisition(acq: Acquisition) -> str:
    """``2026-04-17 00:40 S1A (2 slices)``."""
    code = (
        "S1" + acq.platform[-1].upper() if acq.platform.startswith("sentinel-1") else acq.platform
    )
    slices = len(acq.item_ids)
    suffix = f" ({slices} slices)" if slices > 1 else ""
    return f"{acq.datetime:%Y-%m-%d %H:%M} {code}{suffix}"


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("search", help=_HELP)(search_command)
