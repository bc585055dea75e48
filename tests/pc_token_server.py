"""A local stand-in for Planetary Computer's SAS token endpoint (and nothing else).

``planetary_computer.sas.get_token`` requests ``{PC_SDK_SAS_URL}/{account}/{container}``
and expects ``{"msft:expiry": ..., "token": ...}``; this server answers exactly that, so
the package's real code path runs offline.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class TokenServer:
    """Issues numbered tokens; ``fail_with`` makes it answer an error status instead."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.issued = 0
        self.lifetime = timedelta(minutes=45)
        self.fail_with: int | None = None
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/sas/v1/token"

    def current_token(self) -> str:
        return self._token(self.issued)

    @staticmethod
    def _token(n: int) -> str:
        return f"st=2026-01-01T00%3A00%3A00Z&se=2099-01-01&sp=rl&sv=2024-05-04&sr=c&sig=token{n}"

    def handle(self, path: str) -> tuple[int, dict[str, Any]]:
        self.requests.append(path)
        if self.fail_with is not None:
            return self.fail_with, {"detail": "unavailable"}
        self.issued += 1
        expiry = datetime.now(UTC) + self.lifetime
        return 200, {
            "msft:expiry": expiry.isoformat().replace("+00:00", "Z"),
            "token": self._token(self.issued),
        }

    @contextlib.contextmanager
    def running(self) -> Iterator[TokenServer]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = owner.handle(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


@contextlib.contextmanager
def pc_sdk_pointed_at(server: TokenServer, monkeypatch: Any) -> Iterator[TokenServer]:
    """Point the planetary-computer package at ``server``, with an empty token cache."""
    from planetary_computer import sas
    from planetary_computer.settings import Settings

    monkeypatch.setenv("PC_SDK_SAS_URL", server.url)
    monkeypatch.delenv("PC_SDK_SUBSCRIPTION_KEY", raising=False)
    Settings.get.cache_clear()
    sas.TOKEN_CACHE.clear()
    try:
        yield server
    finally:
        sas.TOKEN_CACHE.clear()
        Settings.get.cache_clear()
