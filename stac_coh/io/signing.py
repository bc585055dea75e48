"""Signing asset hrefs just before a read, and again when a token expires or is refused.

Manifests keep canonical, UNSIGNED hrefs; a reader asks an :class:`HrefSigner` for a
readable URL right before it opens a file, and calls :meth:`HrefSigner.invalidate` after
an HTTP 403 so the next :meth:`HrefSigner.sign` fetches a fresh token.

Hrefs enter stac-coh in three places: search results, local catalogs (item JSONs,
ndjson, stac-geoparquet, possibly saved with tokens in them) and manifests read back. Each
passes its items through :func:`unsigned_item`, so nothing downstream ever holds a token.
Whether an href needs signing is decided by its host (as ``planetary_computer.sign``
does), not by the source it came from: a local copy of Planetary Computer items is signed
the same way as a search of the API.

Planetary Computer SAS tokens last about 45 minutes. :class:`PlanetaryComputerSigner`
goes through the ``planetary-computer`` package's own token cache and token request
(``planetary_computer.sas.get_token``), which reads ``PC_SDK_SAS_URL`` and
``PC_SDK_SUBSCRIPTION_KEY`` itself; it only adds an earlier refresh, a bounded retry
count (the package's default retries an unreachable token service for minutes) and
invalidation on 403.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlparse

from stac_coh.errors import InputError, SourceUnreachableError
from stac_coh.io.redact import strip_signing

__all__ = [
    "BLOB_DOMAIN",
    "HrefSigner",
    "PlanetaryComputerSigner",
    "needs_signing",
    "strip_query",
    "unsigned",
    "unsigned_item",
]

log = logging.getLogger(__name__)

BLOB_DOMAIN = ".blob.core.windows.net"
"""Hosts whose hrefs need a Planetary Computer SAS token."""


@runtime_checkable
class HrefSigner(Protocol):
    """Turns canonical hrefs into readable URLs at read time."""

    def sign(self, href: str) -> str:
        """Return a URL that can be read now (``href`` itself when no signing is needed)."""
        ...

    def invalidate(self, href: str) -> None:
        """Forget the credential used for ``href`` (after a 403) so the next sign renews it."""
        ...


class PlanetaryComputerSigner:
    """SAS-token signing for Planetary Computer blob hrefs, renewed before expiry or on 403."""

    def __init__(self, *, refresh_margin_s: float = 300.0, retries: int = 3) -> None:
        """Create a signer.

        Args:
            refresh_margin_s: renew a cached token when it has less than this left, so a
                read that starts now does not outlive its token.
            retries: retries of a token request on 429/5xx (bounded, unlike the package's
                default of 10 with exponential backoff).
        """
        self.refresh_margin_s = refresh_margin_s
        self.retries = retries
        self._lock = threading.Lock()

    def sign(self, href: str) -> str:
        """Append a valid SAS token to a blob href; other hrefs come back unchanged."""
        parts = self._blob_parts(href)
        if parts is None or _already_signed(href):
            return href
        from planetary_computer import sas

        account, container = parts
        key = self._cache_key(account, container)
        if key not in sas.TOKEN_CACHE:
            from stac_coh.io.net import check_resolves

            check_resolves(self._sas_url(), what="the Planetary Computer token service")
        with self._lock:
            cached = sas.TOKEN_CACHE.get(key)
            if cached is not None and cached.ttl() < self.refresh_margin_s:
                log.debug("SAS token for %s/%s expires soon; renewing", account, container)
                sas.TOKEN_CACHE.pop(key, None)
            try:
                token = sas.get_token(account, container, retry_total=self.retries)
            except Exception as exc:  # requests errors, pydantic validation, HTTP status
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if isinstance(status, int) and 400 <= status < 500 and status != 429:
                    # Refused for good (bad subscription key, or not a Planetary Computer
                    # container): retrying later cannot help.
                    raise InputError(
                        f"The Planetary Computer token service refused a SAS token for "
                        f"{account}/{container} (HTTP {status}): check PC_SDK_SUBSCRIPTION_KEY, "
                        "and that this blob href is a Planetary Computer asset."
                    ) from None
                raise SourceUnreachableError(
                    f"Could not get a Planetary Computer SAS token for {account}/{container} "
                    f"from {self._sas_url()}: {type(exc).__name__}. Check the network (or "
                    "PC_SDK_SAS_URL / PC_SDK_SUBSCRIPTION_KEY), then retry."
                ) from None
        return str(token.sign(href).href)

    def invalidate(self, href: str) -> None:
        """Drop the cached token of ``href``'s container (the storage refused it)."""
        parts = self._blob_parts(strip_query(href))
        if parts is None:
            return
        from planetary_computer import sas

        with self._lock:
            sas.TOKEN_CACHE.pop(self._cache_key(*parts), None)

    def _blob_parts(self, href: str) -> tuple[str, str] | None:
        """(account, container) of an Azure blob href, ``None`` for any other href."""
        parsed = urlparse(href)
        if not parsed.netloc.endswith(BLOB_DOMAIN):
            return None
        from planetary_computer.utils import parse_blob_url

        return parse_blob_url(parsed)

    def _cache_key(self, account: str, container: str) -> str:
        """The key ``planetary_computer.sas.get_token`` files a token under."""
        return f"{self._sas_url()}/{account}/{container}"

    @staticmethod
    def _sas_url() -> str:
        """The token endpoint the package uses (its settings read ``PC_SDK_SAS_URL``)."""
        from planetary_computer.settings import Settings

        return str(Settings.get().sas_url)


def needs_signing(href: str) -> bool:
    """Whether ``href`` lies on Azure blob storage, whose reads need a SAS token."""
    return urlparse(href).netloc.endswith(BLOB_DOMAIN)


def unsigned(href: str) -> str:
    """``href`` without signing parameters (SAS token, presigned S3/GCS); others are kept."""
    if "?" not in href:
        return href
    base, _, rest = href.partition("?")
    query, hash_, fragment = rest.partition("#")
    query = strip_signing(query)
    return base + (f"?{query}" if query else "") + hash_ + fragment


def unsigned_item(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with every asset and link href unsigned (in place; returned for chaining)."""
    for asset in (item.get("assets") or {}).values():
        if isinstance(asset, dict) and isinstance(asset.get("href"), str):
            asset["href"] = unsigned(asset["href"])
    for link in item.get("links") or []:
        if isinstance(link, dict) and isinstance(link.get("href"), str):
            link["href"] = unsigned(link["href"])
    return item


def strip_query(href: str) -> str:
    """``href`` without its query string (what may be logged or shown in an error)."""
    return href.split("?", 1)[0]


def _already_signed(href: str) -> bool:
    """A SAS token carries ``st``/``se``/``sp``; re-signing would append a second one."""
    return bool({"st", "se", "sp"} & set(parse_qs(urlparse(href).query)))
