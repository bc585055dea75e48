"""Searching a STAC API (Planetary Computer, Earth Search, any URL) with pystac-client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from stac_coh.errors import InputError, SearchError, SourceUnreachableError
from stac_coh.io.http import make_session, stac_api_io
from stac_coh.io.signing import unsigned_item
from stac_coh.search.manifest import SourceSpec

if TYPE_CHECKING:
    from stac_coh.search.query import SearchQuery


_PAGE_SIZE = 250

__all__ = ["StacApiSource"]


class StacApiSource:
    """A STAC API searched with pystac-client over the shared retrying session."""

    def __init__(
        self,
        spec: SourceSpec,
        *,
        session: requests.Session | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._spec = spec
        self.session = session
        self.timeout_s = timeout_s
        self._checked = False

    @property
    def spec(self) -> SourceSpec:
        """The manifest's record of this source."""
        return self._spec

    def search(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Search the collection; raise clear errors for unreachable APIs and bad input."""
        from pystac_client import Client
        from pystac_client.exceptions import APIError

        session = self.session or make_session(timeout_s=self.timeout_s)
        self._check_collection(session)
        try:
            client = Client.open(self._spec.url, stac_io=stac_api_io(session))
            search = client.search(
                collections=[self._spec.collection],
                intersects=query.aoi if query.bbox is None else None,
                bbox=query.bbox,
                datetime=[query.start, query.end],
                max_items=query.max_items,
                limit=min(_PAGE_SIZE, query.max_items),
            )
            # An API may hand out signed hrefs; manifests and items keep canonical ones.
            return [unsigned_item(it) for it in search.items_as_dicts()]
        except APIError as exc:
            status = getattr(exc, "status_code", None)
            if status is None or status >= 500 or status == 429:
                raise self._unreachable(f"HTTP {status}") from None
            raise SearchError(
                f"The STAC API {self._spec.url} rejected the search (HTTP {status}): "
                f"{str(exc)[:300]}"
            ) from None
        except requests.RequestException as exc:
            raise self._unreachable(_why(exc)) from None

    def _check_collection(self, session: requests.Session) -> None:
        """Fail early, and clearly, on a collection the API does not have."""
        if self._checked:
            return
        url = f"{self._spec.url}/collections/{self._spec.collection}"
        try:
            response = session.get(url)
        except requests.RequestException as exc:
            raise self._unreachable(_why(exc)) from None
        if response.status_code == 404:
            raise InputError(
                f"The STAC API {self._spec.url} has no collection "
                f"{self._spec.collection!r}{self._known_collections(session)}; "
                "fix --collection."
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise self._unreachable(f"HTTP {response.status_code}")
        self._checked = True

    def _known_collections(self, session: requests.Session) -> str:
        """`` (it has: a, b, ...)`` or nothing when the list cannot be had."""
        try:
            data = session.get(f"{self._spec.url}/collections").json()
            ids = sorted(c["id"] for c in data.get("collections", []))
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return ""
        return f" (it has: {', '.join(ids[:20])})" if ids else ""

    def _unreachable(self, why: str) -> SourceUnreachableError:
        """The error for an API that does not answer usefully."""
        return SourceUnreachableError(
            f"The STAC API {self._spec.url} could not be reached ({why}). Check the network "
            "and retry, or search an offline catalog with --source PATH (a directory of "
            "item JSONs, an .ndjson or a stac-geoparquet file)."
        )


def _why(error: requests.RequestException) -> str:
    """Short reason of a failed request: a host name that does not resolve says so."""
    from urllib.parse import urlparse

    from stac_coh.io.net import is_name_resolution_error

    if is_name_resolution_error(error):
        host = urlparse(str(getattr(error.request, "url", "") or "")).hostname
        name = f" {host}" if host else ""
        return f"cannot resolve the host name{name}: offline, DNS down, or a typo"
    return type(error).__name__
