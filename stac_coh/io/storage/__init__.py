"""The output store: a local directory or an ``s3://bucket/prefix``, with conditional writes.

Every publisher of a run writes into one store at the same time, so the store offers the
three primitives the publication protocol needs:

- ``put_new``: create-only (S3 ``If-None-Match: *``; locally a hard link, which fails if the
  name exists), so exactly one of many racing writers wins;
- ``put_if_match``: compare-and-swap on the ETag (S3 ``If-Match``; locally under a lock);
- atomic appearance: readers see the old object or the whole new one, never a part
  (locally a temp name then rename/link; on S3 a PUT or a completed multipart upload).

S3 clients are built lazily (never at import) from boto3's standard environment
(``AWS_ENDPOINT_URL``, credentials, region), or passed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stac_coh.errors import InputError
from stac_coh.io.storage.base import Store, StoredObject, map_keys, read_json_objects
from stac_coh.io.storage.local import LocalStore
from stac_coh.io.storage.s3 import S3Store

__all__ = [
    "LocalStore",
    "S3Store",
    "Store",
    "StoredObject",
    "map_keys",
    "open_store",
    "read_json_objects",
]


def open_store(
    url: str | Path,
    *,
    s3_client: Any | None = None,
    public_base_url: str | None = None,
) -> Store:
    """Open ``DIR``, ``file:///DIR`` or ``s3://bucket/prefix`` as a store.

    Args:
        url: Where the catalog lives.
        s3_client: A boto3 S3 client to use (default: built lazily from the environment).
        public_base_url: HTTP(S) URL readers use for the same root, for ``self`` hrefs.
    """
    text = str(url)
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://") :].partition("/")
        if not bucket:
            raise InputError(f"{text!r} names no bucket; write s3://BUCKET/PREFIX.")
        return S3Store(bucket, prefix, client=s3_client, public_base_url=public_base_url)
    if "://" in text and not text.startswith("file://"):
        raise InputError(
            f"Cannot publish to {text!r}: use a local directory or s3://bucket/prefix."
        )
    return LocalStore(Path(text.removeprefix("file://")), public_base_url=public_base_url)
