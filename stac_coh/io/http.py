"""The one HTTP session factory: retries on 429/5xx (POST included), Retry-After, timeouts.

Every HTTP client in stac-coh (pystac-client's ``StacApiIO``, collection look-ups, ...)
gets its session here, so a flaky STAC API is retried the same way everywhere
(pystac-client#520, #791, #873: retries missing on POST, on 429, or without a timeout).
Only what can succeed later is retried: a host name that does not resolve fails at once
(urllib3 would retry it five times with backoff and log a WARNING line for each).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from stac_coh import __version__
from stac_coh.io.net import is_name_resolution_error

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT_S",
    "RETRY_STATUS",
    "make_retry",
    "make_session",
    "stac_api_io",
]

DEFAULT_TIMEOUT_S = 30.0
"""Seconds one request may take (connect and read each) unless the caller says otherwise."""

DEFAULT_RETRIES = 5
"""Retries of one request on connection errors, timeouts and :data:`RETRY_STATUS`."""

RETRY_STATUS = (429, 500, 502, 503, 504)
"""Statuses worth retrying: throttling and server-side failures."""

USER_AGENT = f"stac-coh/{__version__}"


class _TimeoutAdapter(HTTPAdapter):
    """An adapter that applies a default timeout to requests that do not set one."""

    def __init__(self, *, timeout: float, **kwargs: Any) -> None:
        self._timeout = timeout
        super().__init__(**kwargs)

    # requests' stubs spell out send's keyword arguments; passing them through is the point
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Send with the default timeout when none was given."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


class FailFastRetry(Retry):
    """urllib3's ``Retry``, except that a host name that does not resolve is not retried."""

    # urllib3 types the result as Self; a Retry is what its callers use
    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> Retry:
        """Give up at once on a name-resolution error; otherwise count the retry."""
        if error is not None and is_name_resolution_error(error):
            raise MaxRetryError(_pool, url or "", error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def make_retry(retries: int = DEFAULT_RETRIES, backoff_s: float = 0.5) -> Retry:
    """Retry policy: every method (STAC search is a POST), 429/5xx, honouring Retry-After."""
    return FailFastRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_s,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # None = every method, POST included
        respect_retry_after_header=True,
        # Hand the last response back so callers report the real status, not a RetryError.
        raise_on_status=False,
    )


def make_session(
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = 0.5,
    headers: dict[str, str] | None = None,
) -> requests.Session:
    """A ``requests.Session`` with the retry policy and a default timeout on every request."""
    session = requests.Session()
    adapter = _TimeoutAdapter(timeout=timeout_s, max_retries=make_retry(retries, backoff_s))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.headers.update(headers or {})
    return session


def stac_api_io(session: requests.Session, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """A pystac-client ``StacApiIO`` that sends everything through ``session``."""
    from pystac_client.stac_api_io import StacApiIO

    io = StacApiIO(timeout=timeout_s, max_retries=None)
    io.session = session
    return io
