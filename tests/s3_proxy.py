"""An HTTP proxy in front of moto_server's S3 that can be slow, or throttle every request.

Point GDAL at it with ``AWS_S3_ENDPOINT=<proxy.address>``: reads then take ``delay``
seconds per request (a worker is caught mid-pair), or get S3's ``503 SlowDown`` (a
transient failure). moto does not check signatures, so forwarding with another Host works.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

_SLOW_DOWN = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_RELAYED = ("Content-Type", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified")


class S3Proxy:
    """Forwards GET/HEAD to ``upstream`` after ``delay`` s, or answers 503 when ``throttle``."""

    def __init__(self, upstream: str, *, delay: float = 0.0, throttle: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.throttle = throttle
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` (what ``AWS_S3_ENDPOINT`` takes)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.address}"

    @contextlib.contextmanager
    def running(self) -> Iterator[S3Proxy]:
        """Serve in a thread until the block ends."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, head: bool) -> None:
                owner.requests += 1
                if owner.throttle:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_SLOW_DOWN)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(_SLOW_DOWN)
                    return
                time.sleep(owner.delay)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                answer = requests.request(
                    "HEAD" if head else "GET",
                    owner.upstream + self.path,
                    headers=headers,
                    timeout=30,
                )
                self.send_response(answer.status_code)
                for name in _RELAYED:
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                length = answer.headers.get("Content-Length", str(len(answer.content)))
                self.send_header("Content-Length", length)
                self.end_headers()
                if not head:
                    self.wfile.write(answer.content)

            def do_GET(self) -> None:
                self._reply(head=False)

            def do_HEAD(self) -> None:
                self._reply(head=True)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=10)
