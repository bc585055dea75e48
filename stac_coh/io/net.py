"""Failing fast on host names that do not resolve.

A name that does not resolve now will not resolve in the next few seconds either (the
machine is offline, DNS is down, or the name has a typo), yet urllib3 and GDAL retry it
like a 503: GDAL's ``/vsicurl/`` spent ~50 s in backoff per file before giving up (GDAL
3.10, ``GDAL_HTTP_MAX_RETRY=5``). :func:`check_resolves` asks the resolver once before such
a read and raises :class:`~stac_coh.errors.HostUnresolvedError` at once; successes are
remembered for the process. Through a proxy the proxy resolves names, so nothing is checked.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import urllib.request
from urllib.parse import urlparse

from stac_coh.errors import HostUnresolvedError
from stac_coh.io.redact import redact

__all__ = ["check_resolves", "host_of", "is_name_resolution_error"]

_RESOLVED: set[str] = set()
_LOCK = threading.Lock()


def host_of(url: str) -> str | None:
    """Host name of an http(s) URL, also inside a GDAL ``/vsicurl/`` path; else ``None``."""
    text = str(url)
    if text.startswith("/vsicurl/"):
        text = text[len("/vsicurl/") :]
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https"):
        return None
    return parsed.hostname


def check_resolves(url: str, *, what: str | None = None) -> None:
    """Raise :class:`HostUnresolvedError` when ``url``'s host name does not resolve.

    Args:
        url: an http(s) URL (anything else passes unchecked: local paths, ``s3://``).
        what: how to call the target in the message (default: the URL without its query).
    """
    host = host_of(url)
    if not host or host in _RESOLVED or _is_ip(host) or _proxied(url):
        return
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        target = what or redact(str(url)).split("?", 1)[0]
        raise HostUnresolvedError(
            f"Cannot resolve the host name {host} of {target} ({exc.strerror or exc}): the "
            "machine is offline, DNS is down, or the name is wrong. Check the network and the "
            "URL, then run the command again."
        ) from None
    except (OSError, UnicodeError):  # not a resolver verdict: let the read report it
        return
    with _LOCK:
        _RESOLVED.add(host)


def is_name_resolution_error(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says a host name did not resolve."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror | HostUnresolvedError):
            return True
        if type(current).__name__ == "NameResolutionError":  # urllib3 >= 2
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        current = current.__cause__ or current.__context__
    return False


def _is_ip(host: str) -> bool:
    """An IP literal needs no resolver."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    return True


def _proxied(url: str) -> bool:
    """Whether a proxy from the environment would carry this request (it resolves names)."""
    scheme = urlparse(url.removeprefix("/vsicurl/")).scheme
    proxies = urllib.request.getproxies()
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    host = host_of(url) or ""
    return not urllib.request.proxy_bypass(host)
