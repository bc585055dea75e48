"""Push a published collection and its items into a STAC API (Transactions extension).

Upsert semantics: POST creates; a 409 (already there) turns into a PUT that replaces.
Static-catalog links (self, root, parent, child, item, collection) are dropped, since the
API makes its own, and relative hrefs are made absolute against where the JSON lives.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import requests

from stac_coh.errors import InputError, StorageError

__all__ = [
    "PushResult",
    "api_collection",
    "api_item",
    "push_collection",
    "push_items",
    "resolve_href",
]

log = logging.getLogger(__name__)

_STRUCTURAL = {"self", "root", "parent", "child", "item", "collection"}

Outcome = Literal["created", "updated"]


@dataclass(frozen=True)
class PushResult:
    """What a push did."""

    collection: Outcome
    """Whether the collection was created or replaced."""
    created: int
    """Items created."""
    updated: int
    """Items replaced."""


def push_collection(
    api_url: str,
    collection: Mapping[str, Any],
    items: Iterable[tuple[Mapping[str, Any], str]],
    *,
    collection_href: str,
    session: requests.Session,
) -> PushResult:
    """Upsert ``collection`` and then every (item JSON, item href) into the API at ``api_url``."""
    base = api_url.rstrip("/")
    body = api_collection(collection, collection_href)
    outcome = _upsert(
        session, f"{base}/collections", f"{base}/collections/{body['id']}", body, body["id"]
    )
    created, updated = push_items(api_url, body["id"], items, session=session)
    return PushResult(outcome, created, updated)


def push_items(
    api_url: str,
    collection_id: str,
    items: Iterable[tuple[Mapping[str, Any], str]],
    *,
    session: requests.Session,
) -> tuple[int, int]:
    """Upsert items into an existing API collection; return (created, updated)."""
    url = f"{api_url.rstrip('/')}/collections/{collection_id}/items"
    counts = {"created": 0, "updated": 0}
    for item, href in items:
        body = api_item(item, href)
        body["collection"] = collection_id
        counts[_upsert(session, url, f"{url}/{body['id']}", body, body["id"])] += 1
    log.info("pushed items to %s: %s", url, counts)
    return counts["created"], counts["updated"]


def api_item(item: Mapping[str, Any], item_href: str) -> dict[str, Any]:
    """The item as an API stores it: absolute asset and link hrefs, no static links."""
    body = dict(item)
    body["assets"] = {
        key: {**asset, "href": resolve_href(item_href, asset["href"])}
        for key, asset in item.get("assets", {}).items()
    }
    body["links"] = _absolute_links(item.get("links", []), item_href)
    props = dict(item.get("properties", {}))
    expression = props.get("processing:expression")
    if isinstance(expression, dict) and isinstance(expression.get("expression"), str):
        props["processing:expression"] = {
            **expression,
            "expression": resolve_href(item_href, expression["expression"]),
        }
    body["properties"] = props
    return body


def api_collection(collection: Mapping[str, Any], collection_href: str) -> dict[str, Any]:
    """The collection as an API stores it: absolute hrefs, no static links."""
    body = dict(collection)
    body["links"] = _absolute_links(collection.get("links", []), collection_href)
    if "assets" in collection:
        body["assets"] = {
            key: {**asset, "href": resolve_href(collection_href, asset["href"])}
            for key, asset in collection["assets"].items()
        }
    return body


def resolve_href(base: str, href: str) -> str:
    """``href`` made absolute against the document at ``base`` (file path, s3:// or http)."""
    if "://" in href or href.startswith("/"):
        return href
    scheme, sep, rest = base.partition("://")
    if not sep:
        scheme, rest = "", base
    root, _, path = rest.partition("/") if sep else ("", "", rest)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname("/" + path.lstrip("/")), href))
    if sep:
        return f"{scheme}://{root}{joined}"
    return joined if base.startswith("/") else joined.lstrip("/")


def _absolute_links(links: Iterable[Mapping[str, Any]], base: str) -> list[dict[str, Any]]:
    """Non-structural links with absolute hrefs."""
    return [
        {**link, "href": resolve_href(base, str(link["href"]))}
        for link in links
        if link.get("rel") not in _STRUCTURAL
    ]


def _upsert(
    session: requests.Session, post_url: str, put_url: str, body: Mapping[str, Any], what: str
) -> Outcome:
    """POST, and PUT when the API says the object exists (409)."""
    try:
        answer = session.post(post_url, json=body)
        if answer.status_code == 409:
            answer = session.put(put_url, json=body)
            _check(answer, put_url, what)
            return "updated"
        _check(answer, post_url, what)
        return "created"
    except requests.RequestException as exc:
        raise StorageError(
            f"Cannot reach the STAC API at {post_url} for {what} ({type(exc).__name__}); "
            "check the URL and that the API is up."
        ) from exc


def _check(answer: requests.Response, url: str, what: str) -> None:
    """Raise a clear error for a refused write."""
    if answer.ok:
        return
    detail = answer.text[:300].replace("\n", " ")
    if answer.status_code in {401, 403, 404, 405}:
        raise InputError(
            f"The STAC API refused to write {what} at {url} (HTTP {answer.status_code}); is the "
            f"Transactions extension enabled and the URL the API root? {detail}"
        )
    if answer.status_code < 500:
        raise InputError(
            f"The STAC API rejected {what} at {url} (HTTP {answer.status_code}): {detail}"
        )
    raise StorageError(
        f"The STAC API failed to store {what} at {url} (HTTP {answer.status_code}) after "
        f"retries: {detail}"
    )
