"""The root ``catalog.json`` of an output: stac-coh's own, or an existing STAC catalog it joins.

An output location may already hold a ``catalog.json``. stac-coh's own (from an earlier
run) is updated; someone else's static STAC catalog is joined: the new collection is
added as one more child link and nothing else of it changes (the STAC way of publishing
into a catalog). Any other file of that name (not JSON, or JSON that is not a STAC
catalog) is refused, before any work when the command checks its output up front
(:func:`inspect_root_catalog`), and in one line naming the file otherwise, since every
update goes through :func:`update_root_catalog`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stac_coh.errors import StorageError
from stac_coh.io.storage import Store
from stac_coh.publish.cas import CAS_ATTEMPTS, cas_update_json
from stac_coh.publish.collection import (
    CATALOG_KEY,
    ROOT_CATALOG_ID,
    add_link,
    build_root_catalog,
    set_self_link,
)

__all__ = ["RootCatalog", "RootLink", "inspect_root_catalog", "update_root_catalog"]

RootLink = tuple[str, str, str, str | None]
"""A link of the root catalog: rel, href, media type, title."""

_STAC_TYPES = ("Catalog", "Collection")


@dataclass(frozen=True)
class RootCatalog:
    """What an output's ``catalog.json`` is now."""

    exists: bool
    """Whether there is one yet."""
    catalog_id: str | None = None
    """Its id (``None`` when there is none yet)."""
    title: str | None = None
    """Its title, if it has one."""

    @property
    def foreign(self) -> bool:
        """An existing STAC catalog stac-coh did not make (the collection joins it)."""
        return self.exists and self.catalog_id != ROOT_CATALOG_ID


def inspect_root_catalog(store: Store) -> RootCatalog:
    """Read the output's root catalog now; refuse a ``catalog.json`` that is not STAC.

    Raises:
        StorageError: ``catalog.json`` exists and is not a STAC catalog or collection.
    """
    current = store.get_or_none(CATALOG_KEY)
    if current is None:
        return RootCatalog(exists=False)
    try:
        doc = json.loads(current.data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _not_stac(store, f"not JSON: {exc}") from None
    doc = _checked(store, doc)
    title = doc.get("title")
    return RootCatalog(True, str(doc.get("id")), title if isinstance(title, str) else None)


def update_root_catalog(
    store: Store,
    links: Sequence[RootLink],
    *,
    point_self: bool = False,
    attempts: int = CAS_ATTEMPTS,
) -> bool:
    """Make the root catalog exist and hold ``links``; False if every attempt lost its race.

    Args:
        store: the output.
        links: links the catalog must hold (added unless the same rel and href are there).
        point_self: also point its ``self`` link at where it is now (``finalize`` does).
        attempts: compare-and-swap attempts.

    Raises:
        StorageError: ``catalog.json`` exists and is not a STAC catalog or collection.
    """
    self_href = store.self_href(CATALOG_KEY)

    def fold(current: dict[str, Any] | None) -> dict[str, Any] | None:
        catalog = build_root_catalog(self_href) if current is None else _checked(store, current)
        changed = [add_link(catalog, *link) for link in links]
        if point_self:
            changed.append(set_self_link(catalog, self_href))
        return catalog if any(changed) or current is None else None

    try:
        return cas_update_json(store, CATALOG_KEY, fold, attempts)
    except (ValueError, UnicodeDecodeError) as exc:  # the read inside the swap
        raise _not_stac(store, f"not JSON: {exc}") from None


def _checked(store: Store, doc: Any) -> dict[str, Any]:
    """``doc`` if it is a STAC catalog or collection with a list of links."""
    if not isinstance(doc, dict):
        raise _not_stac(store, f"a JSON {type(doc).__name__}, not an object")
    kind = doc.get("type")
    if kind not in _STAC_TYPES:
        said = f"is {kind!r}" if "type" in doc else "is missing"
        raise _not_stac(store, f'its "type" {said}, not "Catalog" or "Collection"')
    links = doc.get("links")
    if not isinstance(links, list) or not all(isinstance(link, dict) for link in links):
        raise _not_stac(store, 'its "links" are not a list of links')
    return doc


def _not_stac(store: Store, reason: str) -> StorageError:
    """The one-line refusal of a ``catalog.json`` stac-coh cannot add its collection to."""
    return StorageError(
        f"{store.url_for(CATALOG_KEY)} exists and is not a STAC catalog ({reason}); stac-coh "
        "lists its collection in the catalog.json at the top of its output. Choose another "
        "output location, or move that file away."
    )
