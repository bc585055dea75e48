"""The store contract: a flat key space with create-only and compare-and-swap writes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from stac_coh.errors import InputError, ObjectNotFoundError

__all__ = ["Store", "StoredObject", "check_key"]


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
    def list(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix``, sorted (temp and lock files excluded)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` if it exists."""

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


def check_key(key: str) -> str:
    """Refuse keys that would escape the root or name a directory."""
    parts = key.split("/")
    if not key or key.startswith("/") or key.endswith("/") or ".." in parts or "" in parts:
        raise InputError(f"Invalid store key {key!r}: use a relative 'a/b/c.ext' path.")
    return key
