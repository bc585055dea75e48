"""Where published pairs come from: a stac-coh catalog (folder or S3), or a STAC API.

Both yield :class:`~stac_coh.composite.pairs.PairRecord` s one at a time, filtered by
time as they are parsed, so planning holds records (about 1 KB each), never items.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stac_coh.composite.pairs import PairRecord, pair_record
from stac_coh.errors import InputError, SearchError, SourceUnreachableError
from stac_coh.io.storage import Store, open_store, read_json_objects
from stac_coh.publish.collection import CATALOG_KEY
from stac_coh.publish.rebuild import iter_item_keys

__all__ = ["PairSource", "open_pair_source"]

log = logging.getLogger(__name__)

_PAGE_SIZE = 250


@dataclass(frozen=True)
class PairSource:
    """Published pairs of one collection in a catalog store or a STAC API."""

    url: str
    """What the user gave: a folder, ``s3://bucket/prefix`` or a STAC API root."""
    collection_id: str
    """Collection of the pair items."""
    store: Store | None = None
    """The catalog's store (``None`` for a STAC API)."""

    @property
    def is_api(self) -> bool:
        """Whether the pairs come from a STAC API."""
        return self.store is None

    def pairs(self, start: datetime, stop: datetime) -> Iterator[PairRecord]:
        """Every pair whose reference acquisition lies in [start, stop)."""
        records = self._api_pairs(start, stop) if self.store is None else self._store_pairs()
        for record in records:
            if start <= record.start < stop:
                yield record

    def item_key(self, record: PairRecord) -> str | None:
        """Key of a pair's item in the store (``None`` for a STAC API)."""
        return None if self.store is None else self.store.key_for(record.item_href)

    def _store_pairs(self) -> Iterator[PairRecord]:
        """Stream the collection's item keys and read their JSONs in parallel, a chunk at a time."""
        store = self.store
        assert store is not None
        seen = 0
        for key, item in read_json_objects(store, iter_item_keys(store, self.collection_id)):
            seen += 1
            if (record := pair_record(item, store.url_for(key))) is not None:
                yield record
        if not seen and not store.exists(CATALOG_KEY):
            raise InputError(
                f"{store.url} holds no stac-coh catalog (no catalog.json, no items); pass the "
                "folder or s3:// prefix a run published into."
            )

    def _api_pairs(self, start: datetime, stop: datetime) -> Iterator[PairRecord]:
        """Search the STAC API collection for the time range; parse items page by page."""
        from pystac_client import Client
        from pystac_client.exceptions import APIError

        from stac_coh.io.http import make_session, stac_api_io

        try:
            client = Client.open(self.url, stac_io=stac_api_io(make_session()))
            search = client.search(
                collections=[self.collection_id],
                datetime=[start, stop],
                limit=_PAGE_SIZE,
            )
            for item in search.items_as_dicts():
                record = pair_record(item, _self_href(item, self.url, self.collection_id))
                if record is not None:
                    yield record
        except APIError as exc:
            raise SearchError(
                f"The STAC API {self.url} refused the search of {self.collection_id!r}: "
                f"{str(exc)[:300]}"
            ) from None
        except OSError as exc:
            raise SourceUnreachableError(
                f"The STAC API {self.url} could not be reached ({type(exc).__name__}); retry."
            ) from None


def open_pair_source(catalog: str, collection_id: str) -> PairSource:
    """``--catalog``: a folder or ``s3://`` prefix of a stac-coh catalog, or a STAC API URL."""
    text = str(catalog).rstrip("/")
    if text.endswith("/catalog.json") or text == "catalog.json":
        text = text[: -len("catalog.json")].rstrip("/") or "."
    if text.startswith(("http://", "https://")):
        return PairSource(text, collection_id)
    return PairSource(text, collection_id, open_store(text))


def _self_href(item: dict[str, Any], api: str, collection_id: str) -> str:
    """An API item's own URL (its ``self`` link, else the standard items path)."""
    for link in item.get("links") or []:
        if link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return f"{api}/collections/{collection_id}/items/{item.get('id')}"
