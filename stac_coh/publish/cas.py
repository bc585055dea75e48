"""Compare-and-swap updates of JSON documents in a store, safe for concurrent publishers.

Listings (catalogs, the collection) are shared by every publisher of a run; each update
reads the document with its ETag, folds the change in and writes it only if nobody wrote
it in between, retrying with jittered backoff when somebody did.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from stac_coh.errors import ConflictError
from stac_coh.io.storage import Store
from stac_coh.publish.layout import JSON

__all__ = ["CAS_ATTEMPTS", "cas_update_json"]

CAS_ATTEMPTS = 40
"""Compare-and-swap attempts on a listing before leaving it to ``finalize``."""


def cas_update_json(
    store: Store,
    key: str,
    fold: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    attempts: int = CAS_ATTEMPTS,
) -> bool:
    """Read-modify-write the JSON at ``key`` until it sticks; False if every attempt lost.

    ``fold`` gets the current document (``None`` if absent) and returns the new one, or
    ``None`` when nothing needs to change.
    """
    for attempt in range(attempts):
        current = store.get_or_none(key)
        updated = fold(json.loads(current.data) if current else None)
        if updated is None:
            return True
        body = json.dumps(updated, indent=2).encode()
        try:
            if current is None:
                store.put_new(key, body, content_type=JSON)
            else:
                store.put_if_match(key, body, current.etag, content_type=JSON)
            return True
        except ConflictError:
            time.sleep(min(2.0, 0.02 * 1.5**attempt) * random.uniform(0.5, 1.5))
    return False
