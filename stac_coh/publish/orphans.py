"""Orphans: assets in an item's folder without the item JSON, left by a killed publisher.

A pair's assets are written before its item (:mod:`stac_coh.publish.pair`), so a worker
killed mid-publish leaves files no item points to. A retry that publishes the pair
overwrites them; a pair that then fails for good, or is never retried, keeps them. They
are invisible to STAC clients (nothing links to them) but cost storage, so
``finalize`` reports them and, when asked, removes them.

Removing is only safe where no publisher is at work on the same pairs: the finalize job
of a Batch run starts after every worker of the run ended, so it removes the orphans of
its own manifest's pairs (``only``); other runs writing into the same catalog keep theirs.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from stac_coh.io.storage import Store
from stac_coh.publish.collection import item_key

__all__ = ["Orphan", "OrphanReport", "find_orphans", "sweep_orphans"]

log = logging.getLogger(__name__)

_LISTED = 20


@dataclass(frozen=True)
class Orphan:
    """The files of one item folder that has no item JSON."""

    item_id: str
    """The folder's (pair's) id."""
    keys: tuple[str, ...]
    """Store keys of its files."""


@dataclass(frozen=True)
class OrphanReport:
    """What a sweep found and removed (the ``orphans`` section of a finalize result)."""

    found: int = 0
    """Item folders with files but no item."""
    files: int = 0
    """Files in them."""
    removed: int = 0
    """Folders whose files were removed."""
    items: list[str] = field(default_factory=list)
    """The first item ids found, for the report."""


def find_orphans(store: Store, collection_id: str) -> list[Orphan]:
    """Item folders of ``collection_id`` holding files but no item JSON (one LIST)."""
    keys = (k for k in store.list(f"{collection_id}/") if k.count("/") == 2)
    orphans = []
    for item_id, group in itertools.groupby(keys, key=lambda k: k.split("/")[1]):
        files = tuple(group)
        if item_key(collection_id, item_id) not in files:
            orphans.append(Orphan(item_id, files))
    return orphans


def sweep_orphans(
    store: Store, collection_id: str, *, remove: bool = False, only: Collection[str] | None = None
) -> OrphanReport:
    """Find the orphans; with ``remove``, delete those whose id is in ``only`` (None: all).

    Each folder is checked again just before its files go: an item that appeared since
    the listing (a publisher finishing) keeps them.
    """
    orphans = find_orphans(store, collection_id)
    removed = 0
    if remove:
        for orphan in orphans:
            if only is not None and orphan.item_id not in only:
                continue
            if store.exists(item_key(collection_id, orphan.item_id)):
                continue
            _delete(store, orphan.keys)
            removed += 1
    report = OrphanReport(
        found=len(orphans),
        files=sum(len(o.keys) for o in orphans),
        removed=removed,
        items=[o.item_id for o in orphans[:_LISTED]],
    )
    if orphans:
        log.warning(
            "%d item folders of %s hold files without an item (%d files)%s",
            report.found,
            collection_id,
            report.files,
            f"; removed {removed}" if remove else "; finalize --remove-orphans deletes them",
        )
    return report


def _delete(store: Store, keys: Iterable[str]) -> None:
    """Delete ``keys``."""
    for key in keys:
        store.delete(key)
