"""One work unit through the stages, then the next: load -> infer -> publish.

:class:`PairProcessor` turns one pair of a manifest into a published item; :func:`run_pairs`
runs pairs in order. :mod:`stac_coh.pipeline.run` builds every run on them (local runs,
the demo and the AWS Batch worker alike); only the store (a local folder or ``s3://``)
differs. A pair that fails is returned as an outcome and the next one runs; published
pairs are skipped on a re-run.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from stac_coh.errors import RasterReadError
from stac_coh.infer.engine import PredictionSummary, predict_to_cogs
from stac_coh.infer.predictors import LoadedPredictor
from stac_coh.io.faults import classify
from stac_coh.io.storage import Store
from stac_coh.load.stac_pair import LoaderName, open_pair_reader
from stac_coh.publish.collection import DEFAULT_COLLECTION_ID, item_key
from stac_coh.publish.pair import publish_pair
from stac_coh.publish.render import VisualSink
from stac_coh.search.manifest import Manifest, Pair

__all__ = [
    "InterruptedRun",
    "PairOutcome",
    "PairProcessor",
    "ProcessOptions",
    "RunHooks",
    "failure_is_transient",
    "run_pairs",
]

log = logging.getLogger(__name__)

Status = Literal["published", "skipped", "failed", "interrupted"]

TRANSIENT_EXIT_CODE = 75
"""Exit code (EX_TEMPFAIL) of errors worth retrying: throttling, 5xx, expired tokens."""


@dataclass(frozen=True)
class ProcessOptions:
    """How to process each pair (the predict options plus publishing choices)."""

    mode: str = "fast"
    """``fast`` (halo tiles) or ``reference`` (the published tiling)."""
    tile: int | None = None
    """Core tile edge; ``None`` = the engine's default."""
    batch_size: int | None = None
    """Tiles per forward pass; ``None`` = the engine's default for the device."""
    dtype: str = "uint8"
    """Stored coherence type: ``uint8`` (scale 0.004) or ``float32``."""
    uncertainty: bool = True
    """Also publish the uncertainty asset."""
    loader: LoaderName = "odc"
    """``odc`` (odc-stac) or ``stackstac``."""
    overwrite: bool = False
    """Re-process pairs that are already published."""
    collection_id: str = DEFAULT_COLLECTION_ID
    """Collection to publish into."""


@dataclass(frozen=True)
class PairOutcome:
    """What happened to one pair; one entry of the run report."""

    pair_id: str
    """The pair (and item) id."""
    status: Status
    """``published``, ``skipped`` (already done), ``failed`` or ``interrupted``."""
    seconds: float = 0.0
    """Wall time spent on the pair."""
    item: str | None = None
    """The item's key in the store (relative to the catalog root), when there is one."""
    valid_pixels: int | None = None
    """Pixels with a coherence value (published pairs)."""
    mean_coherence: float | None = None
    """Mean coherence over valid pixels (published pairs)."""
    error: str | None = None
    """One-line reason of a failure (no traceback, no secrets)."""
    transient: bool = False
    """The failure may not recur: a retry is worth it."""
    fault: str | None = None
    """Kind of failure (:class:`stac_coh.io.faults.Kind`): ``transient``, ``device`` (the
    GPU failed: stop and retry in a new process), ``permanent`` or ``bug``."""

    @property
    def ok(self) -> bool:
        """Published or already there."""
        return self.status in ("published", "skipped")

    def to_entry(self) -> dict[str, Any]:
        """Run-report entry (JSON), without empty fields."""
        entry = {k: v for k, v in asdict(self).items() if v is not None}
        entry["seconds"] = round(self.seconds, 3)
        if self.mean_coherence is not None:
            entry["mean_coherence"] = round(self.mean_coherence, 4)
        return entry


@dataclass
class RunHooks:
    """Callbacks a user interface (or a log) gets while pairs run; all optional."""

    on_pair_start: Callable[[Pair, int, int], None] | None = None
    """(pair, position, number of pairs) before a pair starts."""
    on_tile: Callable[[int, int], None] | None = None
    """(tiles done, tiles in the pair) while a pair is being predicted."""
    on_pair_done: Callable[[PairOutcome], None] | None = None
    """After each pair, whatever its outcome."""
    stop_requested: Callable[[], bool] = field(default=lambda: False)
    """Checked between pairs: True ends the run early (e.g. a Spot interruption)."""


def failure_is_transient(error: BaseException) -> bool:
    """Whether ``error`` may not recur on retry (from its code: :mod:`stac_coh.io.faults`)."""
    return classify(error).transient


def _one_line(error: BaseException) -> str:
    """``Type: message`` on one line, for reports and logs (signed URLs redacted)."""
    from stac_coh.io.redact import redact

    text = " ".join(redact(str(error)).split()) or repr(error)
    return f"{type(error).__name__}: {text}"


class PairProcessor:
    """Turns one pair of a manifest into a published STAC item.

    Args:
        manifest: the pairs, their items and where to read them.
        store: where the catalog lives.
        loaded: the predictor (built once per run) and its model card.
        options: processing choices.
        gdal_options: GDAL settings for every read (captured once, replayed per thread).
        workdir: scratch space for the COGs before publication (default: system temp).
    """

    def __init__(
        self,
        manifest: Manifest,
        store: Store,
        loaded: LoadedPredictor,
        options: ProcessOptions | None = None,
        *,
        gdal_options: Mapping[str, Any] | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.store = store
        self.loaded = loaded
        self.options = options or ProcessOptions()
        self.gdal_options = gdal_options
        self.workdir = workdir

    def is_published(self, pair: Pair) -> bool:
        """True when the pair's item already exists (its presence means 'done')."""
        return self.store.exists(item_key(self.options.collection_id, pair.id))

    def process(self, pair: Pair, on_tile: Callable[[int, int], None] | None = None) -> PairOutcome:
        """Process one pair; failures are returned as outcomes, interrupts propagate."""
        started = time.perf_counter()
        if not self.options.overwrite and self.is_published(pair):
            key = item_key(self.options.collection_id, pair.id)
            return PairOutcome(pair.id, "skipped", time.perf_counter() - started, key)
        try:
            return self._process(pair, on_tile, started)
        except Exception as exc:  # one pair's failure must not stop the others
            log.warning("pair %s failed: %s", pair.id, _one_line(exc))
            log.debug("pair %s failure details", pair.id, exc_info=True)
            fault = classify(exc)
            return PairOutcome(
                pair.id,
                "failed",
                time.perf_counter() - started,
                error=_one_line(exc),
                transient=fault.transient,
                fault=fault.kind.value,
            )

    def _process(
        self, pair: Pair, on_tile: Callable[[int, int], None] | None, started: float
    ) -> PairOutcome:
        """Load, infer and publish; raise on any failure."""
        opts = self.options
        with tempfile.TemporaryDirectory(
            prefix=f"stac-coh-{pair.id[:40]}-", dir=self.workdir
        ) as tmp:
            summary = self._predict(pair, Path(tmp), on_tile)
            result = publish_pair(
                pair,
                summary.path,
                summary.uncertainty_path,
                self.store,
                model_card=self.loaded.card,
                manifest_items=self.manifest.items,
                collection_id=opts.collection_id,
                overwrite=opts.overwrite,
                update_collection=False,  # built once per run, by finish_run
                prediction=summary,
                extra_properties=summary.domain.properties() if summary.domain else None,
            )
        return PairOutcome(
            pair.id,
            result.status,
            time.perf_counter() - started,
            item_key(opts.collection_id, pair.id),
            summary.valid_pixels,
            summary.mean,
        )

    def _predict(
        self, pair: Pair, tmp: Path, on_tile: Callable[[int, int], None] | None
    ) -> PredictionSummary:
        """Run the predictor over the pair's grid into local COGs."""
        opts = self.options
        reader = open_pair_reader(
            pair,
            self.manifest,
            self.manifest.source,
            loader=opts.loader,
            gdal_options=self.gdal_options,
        )
        try:
            summary = predict_to_cogs(
                reader,
                self.loaded.predictor,
                tmp / "coherence.tif",
                uncertainty_path=tmp / "uncertainty.tif" if opts.uncertainty else None,
                mode=opts.mode,
                tile=opts.tile,
                batch_size=opts.batch_size,
                dtype=opts.dtype,
                on_progress=on_tile,
                workdir=tmp,
                gdal_options=self.gdal_options,
                renders={"visual": VisualSink.factory(tmp / "visual.tif")},
            )
        finally:
            reader.close()
        if summary.valid_pixels == 0:
            raise RasterReadError(
                f"Pair {pair.id}: the two acquisitions have no valid pixel in common on the "
                "pair's grid (all nodata); nothing to publish."
            )
        return summary


def run_pairs(
    processor: PairProcessor, pairs: Sequence[Pair], hooks: RunHooks | None = None
) -> list[PairOutcome]:
    """Process ``pairs`` in order; on Ctrl-C the current pair is marked interrupted.

    Returns one outcome per pair that was attempted. ``KeyboardInterrupt`` is re-raised
    after recording, so callers can write their report and exit with 130.
    """
    hooks = hooks or RunHooks()
    outcomes: list[PairOutcome] = []
    for position, pair in enumerate(pairs):
        if hooks.stop_requested():
            log.warning(
                "stop requested: %d of %d pairs left unprocessed", len(pairs) - position, len(pairs)
            )
            break
        if hooks.on_pair_start:
            hooks.on_pair_start(pair, position, len(pairs))
        started = time.perf_counter()
        try:
            outcome = processor.process(pair, hooks.on_tile)
        except KeyboardInterrupt:
            # The item may have landed just before the interrupt: then the pair is done.
            done = not processor.options.overwrite and processor.is_published(pair)
            status: Status = "published" if done else "interrupted"
            outcome = PairOutcome(pair.id, status, time.perf_counter() - started)
            outcomes.append(outcome)
            if hooks.on_pair_done:
                hooks.on_pair_done(outcome)
            raise InterruptedRun(outcomes) from None
        outcomes.append(outcome)
        if hooks.on_pair_done:
            hooks.on_pair_done(outcome)
    return outcomes


class InterruptedRun(KeyboardInterrupt):
    """Ctrl-C during a run; carries the outcomes recorded so far."""

    def __init__(self, outcomes: Iterable[PairOutcome]) -> None:
        super().__init__("interrupted")
        self.outcomes = list(outcomes)
