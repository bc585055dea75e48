"""Where items are listed: sub-catalogs per tile group, tile and year, so no JSON grows big.

A million items listed in one collection would make a 250 MB ``collection.json``. Items
stay where they are (``<collection>/<id>/<id>.json``) but are listed by the small
catalogs of the fixed tile grid::

    <collection>/collection.json                         children: tile groups
    <collection>/tiles/<group>/catalog.json              children: tiles (33U -> 33UXP)
    <collection>/tiles/<group>/<tile>/catalog.json       children: years
    <collection>/tiles/<group>/<tile>/<year>/catalog.json   items of that tile and year

A group is an MGRS grid zone (``33U``: a UTM zone and latitude band, at most ~50 tiles);
items without a tile (planned without the tile grid) go to ``untiled``. Every link is
relative, so the tree stays relocatable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pystac

__all__ = [
    "TILES_DIR",
    "UNTILED",
    "Place",
    "build_subcatalog",
    "group_key",
    "item_href_from_year",
    "item_parent_href",
    "item_place",
    "tile_key",
    "year_key",
]

TILES_DIR = "tiles"
"""Folder of the sub-catalogs inside a collection's folder."""

UNTILED = "untiled"
"""Group and tile name of items without ``grid:code``."""

JSON = "application/json"
GEOJSON = "application/geo+json"

Place = tuple[str, str, str]
"""(group, tile, year) of an item."""


def item_place(item: Mapping[str, Any]) -> Place:
    """Group, tile and year an item is listed under (from ``grid:code`` and its start)."""
    props = item.get("properties") or {}
    code = props.get("grid:code")
    start = str(props.get("start_datetime") or props.get("datetime") or "0000")
    year = start[:4] if start[:4].isdigit() else "0000"
    if not code or "-" not in str(code):
        return (UNTILED, UNTILED, year)
    designation, name = str(code).split("-", 1)
    if designation == "MGRS":
        return (name[:-2] or name, name, year)  # 33UXP -> 33U; ZAH -> Z
    return (designation, name, year)


def group_key(collection_id: str, group: str) -> str:
    """Key of a tile group's catalog."""
    return f"{collection_id}/{TILES_DIR}/{group}/catalog.json"


def tile_key(collection_id: str, group: str, tile: str) -> str:
    """Key of a tile's catalog."""
    return f"{collection_id}/{TILES_DIR}/{group}/{tile}/catalog.json"


def year_key(collection_id: str, place: Place) -> str:
    """Key of the catalog listing the items of one tile and year."""
    group, tile, year = place
    return f"{collection_id}/{TILES_DIR}/{group}/{tile}/{year}/catalog.json"


def item_parent_href(item: Mapping[str, Any]) -> str:
    """Href of an item's parent (its year catalog), relative to the item JSON."""
    group, tile, year = item_place(item)
    return f"../{TILES_DIR}/{group}/{tile}/{year}/catalog.json"


def item_href_from_year(item_id: str) -> str:
    """Href of an item relative to its year catalog."""
    return f"../../../../{item_id}/{item_id}.json"


def build_subcatalog(
    collection_id: str, level: str, place: Place, self_href: str | None = None
) -> dict[str, Any]:
    """An empty sub-catalog of ``level`` (``group``, ``tile`` or ``year``) for ``place``."""
    group, tile, year = place
    depth = {"group": 3, "tile": 4, "year": 5}[level]
    up = "../" * depth
    ids = {
        "group": (f"{collection_id}-{group}", f"Tiles of grid zone {group}"),
        "tile": (f"{collection_id}-{tile}", f"Tile {tile}"),
        "year": (f"{collection_id}-{tile}-{year}", f"Tile {tile}, {year}"),
    }
    cid, title = ids[level]
    catalog = pystac.Catalog(
        id=cid,
        title=title,
        description=f"Coherence items of {title.lower()} (fixed MGRS 100 km tile grid).",
    )
    data = catalog.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = [
        {"rel": "root", "href": f"{up}catalog.json", "type": JSON},
        {
            "rel": "parent",
            "href": "../catalog.json" if level != "group" else "../../collection.json",
            "type": JSON,
        },
        {"rel": "collection", "href": f"{'../' * (depth - 1)}collection.json", "type": JSON},
    ]
    if self_href:
        data["links"].append({"rel": "self", "href": self_href, "type": JSON})
    return data
