"""Exports of all items for runs too big to browse as a static tree.

- a stac-geoparquet file of every item (``<collection>/items.parquet``), written by
  rustac's streaming writer a batch at a time, listed as a collection asset;
- a bulk load of the collection and every item into pgstac (pypgstac's loader, upsert),
  from a temporary ndjson file, so a STAC API serves them.

Both see items with absolute hrefs (assets and self at the store's public location):
outside the tree, relative hrefs mean nothing. Memory holds one batch.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stac_coh.errors import InputError, StacCohError
from stac_coh.io.storage import Store

__all__ = ["GEOPARQUET_MEDIA_TYPE", "GeoparquetExport", "PgstacExport", "absolute_item"]

log = logging.getLogger(__name__)

GEOPARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
"""Media type of a stac-geoparquet file."""

BATCH = 1000
"""Items per geoparquet write."""

_STRUCTURAL = {"self", "root", "parent", "collection"}


def absolute_item(store: Store, key: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the item at ``key`` whose asset and self hrefs are absolute."""
    folder = key.rpartition("/")[0]
    out = dict(item)
    out["assets"] = {
        name: {**asset, "href": _absolute(store, folder, str(asset.get("href", "")))}
        for name, asset in (item.get("assets") or {}).items()
    }
    links = [link for link in item.get("links", []) if link.get("rel") not in _STRUCTURAL]
    out["links"] = [{"rel": "self", "href": store.href_for(key), "type": "application/geo+json"}]
    out["links"] += links
    return out


def _absolute(store: Store, folder: str, href: str) -> str:
    """``./x.tif`` next to the item -> the store's href for it; absolute hrefs unchanged."""
    if "://" in href or href.startswith("/"):
        return href
    return store.href_for(f"{folder}/{href.removeprefix('./')}")


class GeoparquetExport:
    """Streams items into one stac-geoparquet file, then stores it."""

    def __init__(self, store: Store, key: str) -> None:
        try:
            import rustac
        except ImportError:
            raise InputError(
                "The geoparquet export needs the geoparquet extra: pip install "
                "'stac-coh[geoparquet]' (or finalize with --no-geoparquet)."
            ) from None
        self._rustac = rustac
        self.store = store
        self.key = key
        self._tmp = tempfile.TemporaryDirectory(prefix="stac-coh-geoparquet-")
        self.path = Path(self._tmp.name) / "items.parquet"
        self._loop = asyncio.new_event_loop()
        self._writer: Any = None
        self._batch: list[dict[str, Any]] = []
        self.count = 0

    def __call__(self, key: str, item: dict[str, Any]) -> None:
        """Add one item (a visitor of the rebuild)."""
        self._batch.append(_numeric_nodata(absolute_item(self.store, key, item)))
        if len(self._batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        """Write the batch."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        if self._writer is None:
            writer = self._rustac.GeoparquetWriter

            async def open_writer() -> Any:
                return await writer.open(batch, str(self.path))

            self._writer = self._loop.run_until_complete(open_writer())
        else:
            self._loop.run_until_complete(self._write(batch))
        self.count += len(batch)

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        """Append a batch (rustac's writer works inside an event loop)."""
        await self._writer.write(batch)

    async def _finish(self) -> None:
        """Close the file."""
        await self._writer.finish()

    def finish(self) -> str | None:
        """Close the file and store it; its href, or ``None`` without items."""
        try:
            self._flush()
            if self._writer is None:
                return None
            self._loop.run_until_complete(self._finish())
            self.store.put_file(self.key, self.path, content_type=GEOPARQUET_MEDIA_TYPE)
            return self.store.href_for(self.key)
        finally:
            self._loop.close()
            self._tmp.cleanup()


def _numeric_nodata(item: dict[str, Any]) -> dict[str, Any]:
    """STAC writes a NaN nodata as the string ``"nan"``; rustac's parquet writer wants a
    number there, so the mirror gets the float (on a copy: other exports see the item)."""
    item = {**item, "assets": copy.deepcopy(item.get("assets", {}))}
    for asset in item["assets"].values():
        for key in ("bands", "raster:bands"):
            for band in asset.get(key) or []:
                value = band.get("nodata")
                if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf"):
                    band["nodata"] = float(value)
    return item


class PgstacExport:
    """Collects items into an ndjson file, then bulk-loads them into pgstac."""

    def __init__(self, store: Store, dsn: str) -> None:
        self.store = store
        self.dsn = dsn
        self._tmp = tempfile.TemporaryDirectory(prefix="stac-coh-pgstac-")
        self.path = Path(self._tmp.name) / "items.ndjson"
        self._out = self.path.open("w")
        self.count = 0

    def __call__(self, key: str, item: dict[str, Any]) -> None:
        """Add one item (a visitor of the rebuild)."""
        self._out.write(json.dumps(absolute_item(self.store, key, item)) + "\n")
        self.count += 1

    def finish(self, collection: Mapping[str, Any]) -> int:
        """Upsert the collection, then every item; the number of items loaded."""
        from pypgstac.db import PgstacDB
        from pypgstac.load import Loader, Methods

        self._out.close()
        try:
            record = {k: v for k, v in collection.items() if k != "links"}
            record["links"] = [
                link for link in collection.get("links", []) if link.get("rel") == "license"
            ]
            with PgstacDB(dsn=self.dsn) as db:
                loader = Loader(db=db)
                loader.load_collections(iter([record]), insert_mode=Methods.upsert)
                if self.count:
                    loader.load_items(str(self.path), insert_mode=Methods.upsert)
            return self.count
        except StacCohError:
            raise
        except Exception as exc:  # psycopg/pypgstac raise their own error types
            raise InputError(
                f"Loading {self.count} items into pgstac failed: {type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}. Check --pgstac (a PostgreSQL DSN of a "
                "database migrated with `pypgstac migrate`)."
            ) from None
        finally:
            self._tmp.cleanup()
