"""Where a published item may point: canonical input hrefs, never a path of this machine.

An input item's canonical href is its ``canonical`` link, else its ``self`` link, with
signing parameters removed. It is published as is when it is a URL; as a path relative to
the item when it lies inside the published tree (a static catalog stays copyable); and
not at all when it is a local path outside the tree (a path of the machine that ran the
job would be a 404 for every reader, and a leak).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "HrefResolver",
    "canonical_href",
    "is_url",
    "public_href",
    "relative_key",
    "unsigned_href",
]

HrefResolver = Callable[[str], str | None]
"""Maps an input's canonical href to the href to publish, or ``None`` to leave it out."""

_URL_SCHEMES = {"http", "https", "s3", "gs", "az", "abfs", "abfss"}

_SIGNING_PARAMS = {"sig", "se", "st", "sp", "sv", "sr", "skoid", "sktid", "skt", "ske", "sks"}


def canonical_href(item: Mapping[str, Any]) -> str | None:
    """The item's canonical (else self) href with signing parameters removed."""
    links = item.get("links") or []
    for rel in ("canonical", "self"):
        for link in links:
            if link.get("rel") == rel and isinstance(link.get("href"), str):
                return unsigned_href(link["href"])
    return None


def unsigned_href(href: str) -> str:
    """``href`` without SAS / presigned-URL query parameters (tokens never get published)."""
    parts = urlsplit(href)
    if not parts.query:
        return href
    kept = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _SIGNING_PARAMS
        and not k.lower().startswith(("x-amz-", "x-goog-"))
        and k.lower() not in {"token", "access_token", "signature"}
    ]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def is_url(href: str) -> bool:
    """Whether ``href`` is a URL any reader can resolve (not a local or ``file://`` path)."""
    return urlsplit(href).scheme.lower() in _URL_SCHEMES


def public_href(href: str) -> str | None:
    """``href`` if it is a URL, else ``None`` (the resolver when the tree is unknown)."""
    return href if is_url(href) else None


def relative_key(target_key: str, from_key: str) -> str:
    """Path of ``target_key`` relative to the document at ``from_key`` (both store keys)."""
    relative = posixpath.relpath(target_key, posixpath.dirname(from_key) or ".")
    return relative if relative.startswith("../") else f"./{relative}"
