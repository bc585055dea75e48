"""Orphans: assets in an item's folder without the item JSON, left by a killed publisher.

A pair's assets are written before its item (:mod:`stac_coh.publish.pair`), so a worker
killed mid-publish leaves files no item points to. A retry that publishes the pair
overwrites them; a pair that then fails for good, or is never retried, keeps them. They
are invisible to STAC clients (nothing links to them) but cost storage, so
``finalize`` reports them and, when asked, removes them.

Removing is only safe where no publisher is at work on the same pairs: the finalize job
of a Batch run starts after every worker of the run ended, so it removes the orphans of
its own manifest's pairs (``only``); other runs writing into the same catalog keep theirs.

The listing is streamed folder by folder (S3 lists keys in order), so memory does not grow
with the catalog.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field

from stac_coh.io.storage import LocalStore, S3Store, Store
from stac_coh.publish.collection import item_key
from stac_coh.publish.layout import TILES_DIR

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
    """Item folders of ``collection_id`` holding files but no item JSON."""
    return [
        Orphan(item_id, files)
        for item_id, files in _item_folders(store, collection_id)
        if item_key(collection_id, item_id) not in files
    ]


def _item_folders(store: Store, collection_id: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(item id, keys of its folder), one folder at a time (sub-catalogs left out)."""
    if isinstance(store, LocalStore):
        top = store.root / collection_id
        if not top.is_dir():
            return
        with os.scandir(top) as entries:
            folders = sorted(e.name for e in entries if e.is_dir() and _is_item_folder(e.name))
        for name in folders:
            with os.scandir(top / name) as files:
                found = [f.name for f in files if f.is_file() and not f.name.startswith(".")]
            if found:
                yield name, tuple(sorted(f"{collection_id}/{name}/{f}" for f in found))
        return
    keys = (k for k in _keys(store, f"{collection_id}/") if k.count("/") == 2)
    for item_id, group in itertools.groupby(keys, key=lambda k: k.split("/")[1]):
        if _is_item_folder(item_id):
            yield item_id, tuple(group)


def _is_item_folder(name: str) -> bool:
    """Not hidden, not the sub-catalogs' folder."""
    return not name.startswith(".") and name != TILES_DIR


def _keys(store: Store, prefix: str) -> Iterator[str]:
    """Keys under ``prefix`` in order, page by page on S3 (which lists in key order)."""
    if isinstance(store, S3Store):
        yield from store.iter_keys(prefix)
    else:
        yield from store.list(prefix)


def sweep_orphans(
    store: Store, collection_id: str, *, remove: bool = False, only: Container[str] | None = None
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
