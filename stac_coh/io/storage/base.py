"""The store contract: a flat key space with create-only and compare-and-swap writes."""

from __future__ import annotations

import errno
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from stac_coh.errors import InputError, ObjectNotFoundError, StorageError, TransientStorageError

__all__ = [
    "JSON_CHUNK",
    "Store",
    "StoredObject",
    "check_key",
    "map_keys",
    "os_error",
    "read_json_objects",
]

T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    """The bytes of one key and the ETag to pass to :meth:`Store.put_if_match`."""

    key: str
    """Key relative to the store root, ``/``-separated."""
    data: bytes
    """Content."""
    etag: str
    """Opaque version token (S3 ETag; MD5 of the content locally)."""


class Store(ABC):
    """A flat key space under one root, written by many processes at once."""

    url: str
    """Root: an absolute directory path or ``s3://bucket/prefix``."""
    public_base_url: str | None
    """Where readers reach the root (e.g. ``https://bucket.s3.amazonaws.com/prefix``)."""

    @abstractmethod
    def url_for(self, key: str) -> str:
        """Location of ``key`` for this machine's tools (file path or ``s3://`` URI)."""

    @abstractmethod
    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        """Write ``key`` unconditionally (atomic appearance); return its ETag."""

    @abstractmethod
    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> str:
        """Upload a local file unconditionally (atomic appearance); return its ETag."""

    @abstractmethod
    def put_new(self, key: str, data: bytes | Path, *, content_type: str | None = None) -> str:
        """Create ``key`` only if it does not exist; raise :class:`ConflictError` if it does."""

    @abstractmethod
    def put_if_match(
        self, key: str, data: bytes, etag: str, *, content_type: str | None = None
    ) -> str:
        """Replace ``key`` only if its ETag is still ``etag``; else :class:`ConflictError`."""

    @abstractmethod
    def get(self, key: str) -> StoredObject:
        """Read ``key``; raise :class:`ObjectNotFoundError` if it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""

    @abstractmethod
    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix``, streamed page by page in no promised order (temp
        and lock files excluded): a listing of millions of keys never sits in memory."""

    def list(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix``, sorted (temp and lock files excluded)."""
        return sorted(self.iter_keys(prefix))

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` if it exists."""

    def check_writable(self) -> None:
        """Raise a one-line :class:`StorageError` now if writing here cannot work.

        Commands call it before hours of work, so a typo in ``--out`` costs seconds. The
        default writes and deletes a hidden probe key; backends may check more cheaply.
        """
        probe = f".stac-coh-probe-{uuid.uuid4().hex}"
        self.put(probe, b"")
        self.delete(probe)

    def get_or_none(self, key: str) -> StoredObject | None:
        """Read ``key`` or return ``None`` if it does not exist."""
        try:
            return self.get(key)
        except ObjectNotFoundError:
            return None

    def href_for(self, key: str) -> str:
        """Absolute href readers use for ``key``: the public URL if known, else :meth:`url_for`."""
        if self.public_base_url:
            return f"{self.public_base_url.rstrip('/')}/{key}"
        return self.url_for(key)

    def self_href(self, key: str) -> str | None:
        """``self`` href of a STAC document at ``key``, or ``None`` to leave it out.

        The public URL when one is known, else where the store publishes it (an ``s3://``
        URI). Local folders override this.
        """
        return self.href_for(key)

    def key_for(self, href: str) -> str | None:
        """Inverse of :meth:`url_for`/:meth:`href_for`: the key of an href under this root."""
        href = str(href).removeprefix("file://")
        for base in (self.url, self.public_base_url):
            if base:
                base = base.rstrip("/") + "/"
                if href.startswith(base):
                    return href[len(base) :]
        return None


JSON_CHUNK = 256
"""Keys :func:`map_keys` (and so :func:`read_json_objects`) works on at once."""


def map_keys(
    keys: Iterable[str], fn: Callable[[str], T], *, readers: int = 16, chunk: int = JSON_CHUNK
) -> Iterator[tuple[str, T]]:
    """(key, ``fn(key)``) for ``keys`` in their order, ``readers`` calls at a time, a chunk
    at a time: for requests to a store, whose latency rather than its bandwidth limits a
    large run; memory stays one chunk however many keys there are."""
    with ThreadPoolExecutor(max_workers=readers) as pool:
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) >= chunk:
                yield from zip(batch, pool.map(fn, batch), strict=True)
                batch = []
        if batch:
            yield from zip(batch, pool.map(fn, batch), strict=True)


def read_json_objects(
    store: Store, keys: Iterable[str], *, readers: int = 16, chunk: int = JSON_CHUNK
) -> Iterator[tuple[str, Any]]:
    """(key, parsed JSON) for ``keys`` in their order, read in parallel (:func:`map_keys`)."""

    def read(key: str) -> Any:
        return json.loads(store.get(key).data)

    return map_keys(keys, read, readers=readers, chunk=chunk)


def check_key(key: str) -> str:
    """Refuse keys that would escape the root or name a directory."""
    parts = key.split("/")
    if not key or key.startswith("/") or key.endswith("/") or ".." in parts or "" in parts:
        raise InputError(f"Invalid store key {key!r}: use a relative 'a/b/c.ext' path.")
    return key


_WHY = {
    errno.EACCES: (
        "permission denied",
        "choose a location you can write to, or fix its permissions",
    ),
    errno.EPERM: ("operation not permitted", "choose a location you can write to"),
    errno.EROFS: ("read-only file system", "choose a location on a writable disk"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "fix the path"),
    errno.EISDIR: ("it is a folder", "give a file name"),
    errno.EEXIST: ("a file is in the way of a folder", "fix the path or move that file"),
    errno.ENOENT: ("no such file or folder (or it cannot be created there)", "fix the path"),
    errno.ENOSPC: ("no space left on the device", "free some space or choose another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose another disk"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
}
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.EBUSY}


def os_error(path: str | Path, error: OSError, *, action: str = "write") -> StorageError:
    """A one-line error for ``error`` on ``path``: what went wrong, and what to do."""
    why, todo = _WHY.get(error.errno or 0, (error.strerror or type(error).__name__, ""))
    message = f"Cannot {action} {path}: {why}" + (f"; {todo}." if todo else ".")
    if error.errno in _TRANSIENT_ERRNOS:
        return TransientStorageError(message + " Try again.")
    return StorageError(message)
