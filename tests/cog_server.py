"""A local HTTP file server with Range support that refuses stale SAS-like tokens (403).

It stands in for Azure blob storage: a request must carry ``sig=tokenN`` with
``N >= min_token``; older tokens get 403, as an expired SAS token does.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


class CogServer:
    """Serves files under ``root``; ``min_token`` decides which tokens are still valid."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.min_token = 1
        self.refused = 0
        self.served = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def authorised(self, query: str) -> bool:
        sig = parse_qs(query).get("sig", [""])[0]
        match = re.fullmatch(r"token(\d+)", sig)
        return bool(match) and int(match.group(1)) >= self.min_token

    @contextlib.contextmanager
    def running(self) -> Iterator[CogServer]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, head: bool) -> None:
                parsed = urlparse(self.path)
                if not owner.authorised(parsed.query):
                    owner.refused += 1
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = owner.root / parsed.path.lstrip("/")
                if not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = path.read_bytes()
                status, body = 200, data
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if match:
                    start = int(match.group(1))
                    end = int(match.group(2)) if match.group(2) else len(data) - 1
                    end = min(end, len(data) - 1)
                    status, body = 206, data[start : end + 1]
                owner.served += 1
                self.send_response(status)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "image/tiff")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._reply(head=False)

            def do_HEAD(self) -> None:
                self._reply(head=True)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
