"""Terminal side of a run: progress bars, the summary table, the report, the exit code."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from stac_coh.io.storage import Store
    from stac_coh.pipeline.runner import PairOutcome, PairProcessor
    from stac_coh.search.manifest import Manifest, Pair

__all__ = ["RunSummary", "execute_run", "new_run_id"]

_STYLE = {"published": "green", "skipped": "cyan", "failed": "red", "interrupted": "yellow"}


def new_run_id() -> str:
    """``run-20261125T101500Z-1a2b3c``: sortable, unique enough for concurrent runs."""
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RunSummary:
    """What a finished (or interrupted) run leaves behind."""

    outcomes: list[PairOutcome]
    """One per pair attempted."""
    interrupted: bool
    """Ctrl-C stopped it."""
    report_href: str | None
    """The machine-readable run report."""
    catalog_href: str
    """The root catalog."""

    @property
    def exit_code(self) -> int:
        """0 all pairs done, 1 some failed, 130 interrupted (the shell's Ctrl-C code)."""
        if self.interrupted:
            return 130
        return 0 if all(o.ok for o in self.outcomes) else 1


def execute_run(
    processor: PairProcessor,
    pairs: Sequence[Pair],
    *,
    run_id: str,
    console: Console,
) -> RunSummary:
    """Run ``pairs`` with progress bars, then rebuild the catalog and write the report."""
    from stac_coh.pipeline.runner import InterruptedRun, RunHooks, run_pairs
    from stac_coh.publish.finalize import finalize, run_report

    started = datetime.now(UTC)
    store = processor.store
    _save_manifest(store, processor.manifest, pairs, run_id)
    interrupted = False
    with _progress(console) as progress:
        overall = progress.add_task("pairs", total=len(pairs), what="pairs")
        tiles = progress.add_task("tiles", total=None, what="tiles", visible=False)

        def on_start(pair: Pair, position: int, total: int) -> None:
            progress.reset(tiles, total=None, visible=True)
            progress.update(tiles, description=pair.id)

        def on_done(outcome: PairOutcome) -> None:
            progress.advance(overall)
            progress.update(tiles, visible=False)
            style = _STYLE[outcome.status]
            detail = f" - {outcome.error}" if outcome.error else ""
            console.print(
                f"[{style}]{outcome.status:>11}[/] {outcome.pair_id} "
                f"({outcome.seconds:.1f} s){detail}",
                highlight=False,
                soft_wrap=True,
            )

        hooks = RunHooks(
            on_pair_start=on_start,
            on_tile=lambda done, total: progress.update(tiles, completed=done, total=total),
            on_pair_done=on_done,
        )
        try:
            outcomes = run_pairs(processor, pairs, hooks)
        except InterruptedRun as stop:
            outcomes, interrupted = stop.outcomes, True
            console.print(
                "[yellow]Interrupted: the pairs done so far are kept; "
                "run the same command again to continue.[/]"
            )
    report = run_report(run_id, [o.to_entry() for o in outcomes], started=started)
    if interrupted:
        report["interrupted"] = True
    result = finalize(
        store, collection_id=processor.options.collection_id, report=report, run_id=run_id
    )
    return RunSummary(outcomes, interrupted, result.report_href, store.href_for("catalog.json"))


def _save_manifest(store: Store, manifest: Manifest, pairs: Sequence[Pair], run_id: str) -> None:
    """Keep the manifest of the run beside the catalog, for provenance and `stac-coh run`."""
    import json
    from dataclasses import replace

    subset = replace(manifest, pairs=tuple(pairs))
    body = json.dumps(subset.to_dict(), indent=1).encode()
    store.put(f"runs/{run_id}/manifest.json", body, content_type="application/json")


def _progress(console: Console) -> Progress:
    """Two bars: pairs of the run, tiles of the current pair."""
    return Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[what]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def print_summary(
    summary: RunSummary, console: Console, *, collection_id: str, store: Store
) -> None:
    """Final table (pair, status, valid pixels, mean coherence, seconds, href), where to look."""
    from stac_coh.publish.collection import asset_key

    table = Table(title="Run summary")
    for name, justify in (
        ("pair", "left"),
        ("status", "left"),
        ("valid pixels", "right"),
        ("mean coh.", "right"),
        ("seconds", "right"),
        ("item / error", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for o in summary.outcomes:
        table.add_row(
            o.pair_id,
            f"[{_STYLE[o.status]}]{o.status}[/]",
            f"{o.valid_pixels:,}" if o.valid_pixels is not None else "",
            _fmt(o.mean_coherence),
            f"{o.seconds:.1f}",
            o.error or o.item_href or "",
        )
    console.print(table)
    counts: dict[str, int] = {}
    for o in summary.outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    console.print(", ".join(f"{n} {status}" for status, n in counts.items()) or "No pairs run.")
    console.print(f"Catalog:    {summary.catalog_href}", highlight=False, soft_wrap=True)
    thumbs = [
        store.href_for(asset_key(collection_id, o.pair_id, "thumbnail"))
        for o in summary.outcomes
        if o.ok
    ]
    if thumbs:
        console.print(
            f"Thumbnails: {thumbs[0]}" + (f" (+{len(thumbs) - 1} more)" if len(thumbs) > 1 else ""),
            highlight=False,
            soft_wrap=True,
        )
    if summary.report_href:
        console.print(f"Run report: {summary.report_href}", highlight=False, soft_wrap=True)


def _fmt(value: float | None) -> str:
    """Mean coherence with 3 decimals, blank when unknown."""
    return "" if value is None or math.isnan(value) else f"{value:.3f}"


def save_manifest_copy(manifest: Manifest, path: str) -> str:
    """Write ``manifest`` where the user asked (``--json``)."""
    from pathlib import Path

    from stac_coh.search.manifest import write_manifest

    return str(write_manifest(manifest, path if "://" in path else Path(path)))
