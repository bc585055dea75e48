"""Rebuild a collection's listings from the item JSONs in the store, in bounded memory.

The items in the store are the truth (an item exists only once complete). The rebuild
streams them once: keys are listed page by page, items read in parallel in chunks, and
what the listings need of each (id, tile group, tile, year, title) goes to an SQLite
file, not to memory; extent and summaries are folded as items pass. Then the year, tile
and tile-group catalogs and the collection are written, each with a compare-and-swap
that keeps what a concurrent publisher added (links to items that exist). Items that
appeared meanwhile are picked up by a last listing. Memory depends on the chunk size,
not on the number of items.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stac_coh.errors import ConflictError
from stac_coh.io.storage import LocalStore, Store, read_json_objects
from stac_coh.publish.cas import cas_update_json
from stac_coh.publish.collection import (
    add_item_to_collection,
    add_link,
    build_collection,
    collection_key,
    is_item_key,
    rebuild_collection,
    set_self_link,
)
from stac_coh.publish.layout import (
    GEOJSON,
    JSON,
    TILES_DIR,
    Place,
    build_subcatalog,
    group_key,
    item_href_from_year,
    item_place,
    tile_key,
    year_key,
)

__all__ = ["Rebuilt", "iter_item_keys", "iter_items", "rebuild_listings"]

log = logging.getLogger(__name__)

_ATTEMPTS = 20
_ROUNDS = 5


@dataclass
class Rebuilt:
    """What the rebuild found and wrote."""

    collection: dict[str, Any]
    """The collection as written."""
    items: int = 0
    """Items listed."""
    catalogs: int = 0
    """Sub-catalogs written."""
    visitors: list[Callable[[str, dict[str, Any]], None]] = field(default_factory=list)
    """Called with (key, item) for every item read (exports)."""


def iter_item_keys(store: Store, collection_id: str) -> Iterator[str]:
    """Keys of the collection's item JSONs, streamed (never the whole listing at once)."""
    prefix = f"{collection_id}/"
    if isinstance(store, LocalStore):  # one level of folders, not every asset file
        top = store.root / collection_id
        if not top.is_dir():
            return
        with os.scandir(top) as entries:
            for entry in entries:
                if entry.is_dir() and not entry.name.startswith("."):
                    key = f"{prefix}{entry.name}/{entry.name}.json"
                    if (top / entry.name / f"{entry.name}.json").is_file():
                        yield key
        return
    yield from (k for k in store.iter_keys(prefix) if is_item_key(collection_id, k))


def iter_items(store: Store, keys: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, item JSON) for ``keys``, read in parallel a chunk at a time."""
    for key, item in read_json_objects(store, keys):
        yield key, dict(item)


def rebuild_listings(
    store: Store,
    collection_id: str,
    visitors: list[Callable[[str, dict[str, Any]], None]] | None = None,
) -> Rebuilt:
    """Rebuild every sub-catalog and the collection from the items in the store."""
    ckey = collection_key(collection_id)
    base = build_collection(collection_id, self_href=store.self_href(ckey))
    acc = rebuild_collection(base, [])
    acc["extent"] = {"spatial": {"bbox": []}, "temporal": {"interval": [[None, None]]}}
    acc["summaries"] = {}
    acc.pop("renders", None)
    result = Rebuilt(acc, visitors=list(visitors or []))
    with (
        tempfile.TemporaryDirectory(prefix="stac-coh-finalize-") as tmp,
        closing(sqlite3.connect(Path(tmp) / "items.sqlite")) as db,
    ):
        db.execute(
            "CREATE TABLE items (key TEXT PRIMARY KEY, id TEXT, grp TEXT, tile TEXT, "
            "year TEXT, title TEXT)"
        )
        db.execute("CREATE INDEX places ON items (grp, tile, year)")
        dirty = _ingest(store, collection_id, db, result)
        for _ in range(_ROUNDS):
            result.catalogs += _write_catalogs(store, collection_id, db, dirty)
            _write_collection(store, collection_id, db, result)
            dirty = _ingest(store, collection_id, db, result)  # what arrived meanwhile
            if not dirty:
                break
        result.items = int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    return result


def _ingest(
    store: Store, collection_id: str, db: sqlite3.Connection, result: Rebuilt
) -> set[Place]:
    """Read the items not seen yet; return the places (group, tile, year) they touch."""
    known = (k for k in iter_item_keys(store, collection_id) if not _seen(db, k))
    places: set[Place] = set()
    for key, item in iter_items(store, known):
        place = item_place(item)
        title = str(item.get("properties", {}).get("title") or "")
        db.execute(
            "INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?, ?, ?)",
            (key, item["id"], *place, title),
        )
        add_item_to_collection(result.collection, item)
        for visit in result.visitors:
            visit(key, item)
        places.add(place)
    db.commit()
    return places


def _seen(db: sqlite3.Connection, key: str) -> bool:
    """Whether the item at ``key`` was read already."""
    return db.execute("SELECT 1 FROM items WHERE key = ?", (key,)).fetchone() is not None


def _write_catalogs(
    store: Store, collection_id: str, db: sqlite3.Connection, places: set[Place] | None
) -> int:
    """Write the year catalogs of ``places`` (``None``: all) and the tile and group ones."""
    written = 0
    for place in sorted(places or ()):
        rows = db.execute(
            "SELECT id, title FROM items WHERE grp = ? AND tile = ? AND year = ? ORDER BY id",
            place,
        )
        links = [("item", item_href_from_year(i), GEOJSON, t or None) for i, t in rows]
        _cas(store, year_key(collection_id, place), collection_id, "year", place, links)
        written += 1
    tiles = sorted({(g, t) for g, t, _ in places or ()})
    for group, tile in tiles:
        years = db.execute(
            "SELECT DISTINCT year FROM items WHERE grp = ? AND tile = ? ORDER BY year",
            (group, tile),
        )
        links = [("child", f"./{y}/catalog.json", JSON, y) for (y,) in years]
        _cas(
            store,
            tile_key(collection_id, group, tile),
            collection_id,
            "tile",
            (group, tile, ""),
            links,
        )
        written += 1
    for group in sorted({g for g, _ in tiles}):
        names = db.execute("SELECT DISTINCT tile FROM items WHERE grp = ? ORDER BY tile", (group,))
        links = [("child", f"./{t}/catalog.json", JSON, t) for (t,) in names]
        _cas(store, group_key(collection_id, group), collection_id, "group", (group, "", ""), links)
        written += 1
    return written


def _cas(
    store: Store,
    key: str,
    collection_id: str,
    level: str,
    place: Place,
    links: list[tuple[str, str, str, str | None]],
) -> None:
    """Make the catalog at ``key`` list exactly ``links`` plus what a concurrent publisher
    added since (links whose target exists)."""
    ours = {href for _, href, _, _ in links}
    listing = {"item", "child"}
    folder = key.rpartition("/")[0]

    def fold(current: dict[str, Any] | None) -> dict[str, Any] | None:
        doc = build_subcatalog(collection_id, level, place, store.self_href(key))
        for link in links:
            add_link(doc, *link)
        for link in (current or {}).get("links", []):
            href = str(link.get("href", ""))
            if (
                link.get("rel") in listing
                and href not in ours
                and store.exists(_resolve(folder, href))
            ):
                doc["links"].append(link)
        return None if current == doc else doc

    if not cas_update_json(store, key, fold, attempts=_ATTEMPTS):
        raise ConflictError(
            f"{store.url_for(key)} kept changing while finalize rebuilt it; run finalize again."
        )


def _write_collection(
    store: Store, collection_id: str, db: sqlite3.Connection, result: Rebuilt
) -> None:
    """Write the collection: folded extent and summaries, one child link per tile group."""
    ckey = collection_key(collection_id)
    groups = [g for (g,) in db.execute("SELECT DISTINCT grp FROM items ORDER BY grp")]

    def fold(current: dict[str, Any] | None) -> dict[str, Any] | None:
        base = (
            copy.deepcopy(current)
            if current
            else build_collection(collection_id, self_href=store.self_href(ckey))
        )
        doc = rebuild_collection(base, [])
        if groups:
            doc["extent"] = copy.deepcopy(result.collection["extent"])
            doc["summaries"] = copy.deepcopy(result.collection["summaries"])
            doc["renders"] = copy.deepcopy(result.collection.get("renders", {}))
        for group in groups:
            href = "./" + group_key(collection_id, group).split("/", 1)[1]
            add_link(doc, "child", href, JSON, f"Tiles {group}")
        set_self_link(doc, store.self_href(ckey))
        return None if doc == current else doc

    if not cas_update_json(store, ckey, fold, attempts=_ATTEMPTS):
        raise ConflictError(
            f"{store.url_for(ckey)} kept changing while finalize rebuilt it; run finalize "
            "again when the publishers are done."
        )
    result.collection = json.loads(store.get(ckey).data)


def _resolve(folder: str, href: str) -> str:
    """Store key of a relative ``href`` from the catalog in ``folder``."""
    parts = folder.split("/") if folder else []
    for piece in href.split("/"):
        if piece == "..":
            parts = parts[:-1]
        elif piece not in (".", ""):
            parts.append(piece)
    return "/".join(parts)


def listing_keys(collection_id: str) -> str:
    """Prefix of the sub-catalogs (for tools that walk or clean them)."""
    return f"{collection_id}/{TILES_DIR}/"
