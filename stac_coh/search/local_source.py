"""Searching a local catalog: a directory of item JSONs, an ndjson or a stac-geoparquet file."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stac_coh.errors import InputError
from stac_coh.io.signing import unsigned_item
from stac_coh.search.manifest import SourceSpec
from stac_coh.search.slices import item_datetime

if TYPE_CHECKING:
    from stac_coh.search.query import SearchQuery

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["LocalSource"]


class LocalSource:
    """A directory of item JSONs, an ndjson file or a stac-geoparquet file, searched here."""

    def __init__(self, spec: SourceSpec) -> None:
        self._spec = spec

    @property
    def spec(self) -> SourceSpec:
        """The manifest's record of this source."""
        return self._spec

    @property
    def path(self) -> Path:
        """The catalog's path."""
        return Path(self._spec.url)

    def search(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Items of the catalog intersecting the area within the dates."""
        if not self.path.exists():
            raise InputError(f"--source {self.path}: no such file or directory.")
        if self.path.suffix in (".parquet", ".geoparquet"):
            items = self._search_geoparquet(query)
        else:
            items = self._filter(self._read_json_items(), query)
        items.sort(key=lambda it: (_item_time(it) or _EPOCH, str(it.get("id", ""))))
        # Saved items may hold SAS tokens (signed when they were fetched): never keep them.
        return [unsigned_item(it) for it in items[: query.max_items]]

    def _read_json_items(self) -> list[dict[str, Any]]:
        """Every item of a directory tree, an ndjson file or a FeatureCollection file."""
        items = list(_iter_json_items(self.path))
        collections = sorted({str(it.get("collection") or "") for it in items})
        if not self._spec.collection and len(collections) > 1:
            raise InputError(
                f"The catalog {self.path} holds several collections ({', '.join(collections)}); "
                "choose one with --collection."
            )
        if not self._spec.collection and collections and collections[0]:
            # One collection: record it, so manifests and readers know what they hold.
            self._spec = replace(self._spec, collection=collections[0])
        if self._spec.collection and self._spec.collection not in collections:
            raise InputError(
                f"The catalog {self.path} has no collection {self._spec.collection!r} "
                f"(it has: {', '.join(c for c in collections if c) or 'none'}); fix --collection."
            )
        return items

    def _filter(self, items: list[dict[str, Any]], query: SearchQuery) -> list[dict[str, Any]]:
        """Spatial and collection filter with CQL2, dates with the quirk-tolerant parser."""
        import cql2

        args: list[Any] = [{"op": "s_intersects", "args": [{"property": "geometry"}, query.aoi]}]
        if self._spec.collection:
            args.append({"op": "=", "args": [{"property": "collection"}, self._spec.collection]})
        expr = cql2.Expr({"op": "and", "args": args} if len(args) > 1 else args[0])
        out = []
        for item in items:
            when = _item_time(item)
            if when is None or not query.start <= when <= query.end:
                continue
            if item.get("geometry") and expr.matches(item):
                out.append(item)
        return out

    def _search_geoparquet(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Search a stac-geoparquet file with rustac's DuckDB client (offline extensions)."""
        try:
            import rustac
            from rustac_duckdb_extensions import extension_directory
        except ImportError:
            raise InputError(
                "Searching a stac-geoparquet catalog needs the geoparquet extra: "
                "pip install 'stac-coh[geoparquet]'."
            ) from None
        client = rustac.DuckdbClient(
            extension_directory=extension_directory(), install_extensions=False
        )
        # rustac's ``datetime=`` ignores items without start/end_datetime; a CQL2 filter
        # on ``datetime`` treats every item alike.
        when = {
            "op": "t_intersects",
            "args": [
                {"property": "datetime"},
                {"interval": [_iso(query.start), _iso(query.end)]},
            ],
        }
        try:
            items = client.search(
                str(self.path),
                intersects=query.aoi,
                collections=[self._spec.collection] if self._spec.collection else None,
                filter=when,
            )
        except Exception as exc:  # rustac raises its own error types for unreadable files
            # DuckDB appends the failing SQL and a caret line: keep its first line only.
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
            raise InputError(
                f"--source {self.path} is not a readable stac-geoparquet file ({reason}). "
                "Write it again with a stac-geoparquet writer (e.g. rustac), or pass the items "
                "as an .ndjson file."
            ) from None
        return list(items)


def _iter_json_items(path: Path) -> Iterator[dict[str, Any]]:
    """Items from a directory (recursively), an ndjson file or a JSON file."""
    if path.is_dir():
        for child in sorted(path.rglob("*.json")):
            yield from _iter_json_items(child)
        return
    text = path.read_text()
    try:
        if path.suffix in (".ndjson", ".jsonl"):
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            docs = [json.loads(text)]
    except ValueError as exc:
        raise InputError(f"--source {path} holds invalid JSON: {exc}.") from None
    for doc in docs:
        if doc.get("type") == "Feature":
            yield _anchored(doc, path, own_file=path.suffix not in (".ndjson", ".jsonl"))
        elif doc.get("type") == "FeatureCollection":
            for f in doc.get("features", []):
                if f.get("type") == "Feature":
                    yield _anchored(f, path, own_file=False)


def _anchored(item: dict[str, Any], path: Path, *, own_file: bool) -> dict[str, Any]:
    """Resolve relative asset and link hrefs against the file that holds the item.

    Static catalogs use relative hrefs; readers (GDAL, odc-stac) need absolute ones. An
    item alone in its file gets that file as its ``self`` href when it has none, which is
    its canonical href in a local catalog.
    """
    base = path.resolve().parent

    def absolute(href: str) -> str:
        return href if "://" in href or Path(href).is_absolute() else str((base / href).resolve())

    for asset in item.get("assets", {}).values():
        if isinstance(asset.get("href"), str):
            asset["href"] = absolute(asset["href"])
    links = item.setdefault("links", [])
    for link in links:
        if isinstance(link.get("href"), str):
            link["href"] = absolute(link["href"])
    if own_file and not any(link.get("rel") == "self" for link in links):
        links.append({"rel": "self", "href": str(path.resolve()), "type": "application/geo+json"})
    return item


def _item_time(item: Mapping[str, Any]) -> datetime | None:
    """The item's datetime, tolerant of the quirks :mod:`stac_coh.search.slices` normalises."""
    try:
        return item_datetime(item)
    except InputError:
        return None


def _iso(value: datetime) -> str:
    """RFC 3339 with ``Z``."""
    return str(value.isoformat()).replace("+00:00", "Z")
