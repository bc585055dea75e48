"""pystac I/O through a :class:`~stac_coh.io.storage.Store`, so pystac can walk an S3 catalog."""

from __future__ import annotations

from typing import Any

import pystac
from pystac.stac_io import DefaultStacIO

from stac_coh.io.storage import Store

__all__ = ["StoreStacIO"]


class StoreStacIO(DefaultStacIO):
    """Reads and writes hrefs under the store's root through the store; others as pystac does.

    Example:
        ``pystac.Catalog.from_file(store.url_for("catalog.json"), stac_io=StoreStacIO(store))``
    """

    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store

    def read_text(self, source: pystac.link.HREF, *args: Any, **kwargs: Any) -> str:
        """Read through the store when ``source`` lies under its root."""
        key = self.store.key_for(str(source))
        if key is not None:
            return self.store.get(key).data.decode("utf-8")
        return super().read_text(source, *args, **kwargs)

    def write_text(self, dest: pystac.link.HREF, txt: str, *args: Any, **kwargs: Any) -> None:
        """Write through the store when ``dest`` lies under its root."""
        key = self.store.key_for(str(dest))
        if key is not None:
            self.store.put(key, txt.encode("utf-8"), content_type="application/json")
            return
        super().write_text(dest, txt, *args, **kwargs)
