"""Terminal side of a run: progress bars, the summary table, the report, the exit code."""

from __future__ import annotations

import math
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console, JustifyMethod
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from stac_coh.pipeline.signals import interrupted_exit_code

if TYPE_CHECKING:
    from stac_coh.io.storage import Store
    from stac_coh.pipeline.runner import PairOutcome, PairProcessor
    from stac_coh.search.manifest import Manifest, Pair

__all__ = ["RunSummary", "execute_run", "print_summary", "save_manifest_copy"]

_STYLE = {"published": "green", "skipped": "cyan", "failed": "red", "interrupted": "yellow"}


@dataclass(frozen=True)
class RunSummary:
    """What a finished (or interrupted) run leaves behind."""

    outcomes: tuple[PairOutcome, ...]
    """One per pair attempted."""
    received: signal.Signals | None
    """The stop signal that ended the run early (Ctrl-C, SIGTERM), if any."""
    report_href: str | None
    """The machine-readable run report."""
    catalog_href: str
    """The root catalog."""

    @property
    def interrupted(self) -> bool:
        """A stop signal ended the run."""
        return self.received is not None

    @property
    def exit_code(self) -> int:
        """0 all pairs done, 1 some failed, 130/143 interrupted by Ctrl-C/SIGTERM."""
        if self.interrupted:
            return interrupted_exit_code(self.received)
        return 0 if all(o.ok for o in self.outcomes) else 1


def execute_run(
    processor: PairProcessor,
    pairs: Sequence[Pair],
    *,
    run_id: str,
    console: Console,
) -> RunSummary:
    """Run ``pairs`` with progress bars (:mod:`stac_coh.pipeline.run`), then finish the run."""
    from stac_coh.pipeline.run import RunProgress, execute_run, finish_run, save_run_manifest
    from stac_coh.pipeline.signals import StopSignals

    started = datetime.now(UTC)
    store = processor.store
    save_run_manifest(store, processor.manifest, pairs, run_id)
    with _progress(console) as bars, StopSignals() as stop:
        overall = bars.add_task("pairs", total=len(pairs), what="pairs")
        tiles = bars.add_task("tiles", total=None, what="tiles", visible=False)

        def on_start(pair: Pair, position: int, total: int) -> None:
            bars.reset(tiles, total=None, visible=True)
            bars.update(tiles, description=pair.id)

        def on_done(outcome: PairOutcome) -> None:
            bars.advance(overall)
            bars.update(tiles, visible=False)
            style = _STYLE[outcome.status]
            detail = f" - {outcome.error}" if outcome.error else ""
            console.print(
                f"[{style}]{outcome.status:>11}[/] {outcome.pair_id} "
                f"({outcome.seconds:.1f} s){detail}",
                highlight=False,
                soft_wrap=True,
            )

        progress = RunProgress(
            on_pair_start=on_start,
            on_tile=lambda done, total: bars.update(tiles, completed=done, total=total),
            on_pair_done=on_done,
        )
        result = execute_run(processor, pairs, run_id=run_id, progress=progress, stop=stop)
        if result.stopped:
            console.print(
                "[yellow]Interrupted: the pairs done so far are kept; "
                "run the same command again to continue.[/]"
            )
        end = finish_run(
            store,
            collection_id=processor.options.collection_id,
            run_id=run_id,
            started=started,
            extra={"interrupted": True} if result.stopped else None,
        )
    return RunSummary(
        result.outcomes, stop.received, end.report_href, store.href_for("catalog.json")
    )


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
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("pair", "left"),
        ("status", "left"),
        ("valid pixels", "right"),
        ("mean coh.", "right"),
        ("seconds", "right"),
        ("item / error", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for o in summary.outcomes:
        table.add_row(
            o.pair_id,
            f"[{_STYLE[o.status]}]{o.status}[/]",
            f"{o.valid_pixels:,}" if o.valid_pixels is not None else "",
            _fmt(o.mean_coherence),
            f"{o.seconds:.1f}",
            o.error or (store.href_for(o.item) if o.item else ""),
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
    """Write ``manifest`` where the user asked (``--json``: a path or s3://)."""
    from stac_coh.errors import InputError
    from stac_coh.search.manifest_io import write_manifest

    if path.strip() == "-":
        raise InputError(
            "--json - (standard output) works with `stac-coh search`; search-and-run prints "
            "its progress there. Give a file or s3:// location."
        )
    return write_manifest(manifest, path)
