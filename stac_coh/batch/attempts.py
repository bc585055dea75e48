"""Write-ahead ``started`` records of a Batch child, and the pairs that killed attempts.

Before a pair's first output the child records it as ``started``
(:data:`stac_coh.pipeline.records.STARTED`, with how many attempts started it), so a
kill at any point - out of memory, a lost host, SIGKILL - is accounted for: the finalize
job reads ``started`` with an item as published (the attempt died between publishing and
recording), without one as interrupted (:func:`stac_coh.pipeline.records.resolve_started`).

A pair during which two attempts died is most likely what kills them (a scene too large
for the job's memory): the next attempt records it as failed for good instead of trying
it a third time, so the child finishes its other pairs and the finalize job runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from stac_coh.io.storage import Store
from stac_coh.pipeline.records import STARTED, outcome_key, record_outcome
from stac_coh.pipeline.runner import PairOutcome
from stac_coh.publish.collection import item_key
from stac_coh.search.manifest import Pair

__all__ = ["KILLS_BEFORE_GIVING_UP", "Attempts"]

KILLS_BEFORE_GIVING_UP = 2
"""Attempts that may die while processing one pair before it is recorded as failed."""


class Attempts:
    """One child attempt's ``started`` records.

    Args:
        store: The run's output store.
        run_id: The run.
        collection_id: Where items are published (to tell done pairs from started ones).
    """

    def __init__(self, store: Store, run_id: str, collection_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.collection_id = collection_id
        self._starts: dict[str, int] = {}

    def set_aside(self, pairs: Sequence[Pair]) -> list[PairOutcome]:
        """Record as failed, and return, the pairs during which two attempts died."""
        given_up = []
        for pair in pairs:
            found = self.store.get_or_none(outcome_key(self.run_id, pair.id))
            entry = json.loads(found.data) if found else {}
            starts = int(entry.get("starts", 1)) if entry.get("status") == STARTED else 0
            self._starts[pair.id] = starts
            if starts < KILLS_BEFORE_GIVING_UP:
                continue
            outcome = PairOutcome(
                pair.id,
                "failed",
                error=(
                    f"{starts} attempts died while processing this pair (killed: out of "
                    "memory, exit 137?); not tried again in this run. Raise the job's "
                    "memory or lower --tile, then submit the pair again."
                ),
                fault="permanent",
            )
            record_outcome(self.store, self.run_id, outcome.to_entry())
            given_up.append(outcome)
        return given_up

    def started(self, pair: Pair) -> None:
        """Record that this attempt starts ``pair`` (unless it is published already)."""
        if self.store.exists(item_key(self.collection_id, pair.id)):
            return  # it will be skipped; a kill now loses nothing
        entry = {
            "pair_id": pair.id,
            "status": STARTED,
            "starts": self._starts.get(pair.id, 0) + 1,
            "started": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        record_outcome(self.store, self.run_id, entry)
