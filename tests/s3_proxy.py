"""A fault-injecting HTTP proxy in front of moto_server's S3, for GDAL and boto3 alike.

Point GDAL at it with ``AWS_S3_ENDPOINT=<proxy.address>`` and boto3 with
``AWS_ENDPOINT_URL=<proxy.url>``. It forwards every request (GET, HEAD, PUT, POST, DELETE)
to moto unchanged, except those a rule matches:

- :class:`Fault`: answer with S3's error document instead (``503 SlowDown``,
  ``500 InternalError``, ``400 ExpiredToken``, ``403 AccessDenied`` ...), for the first
  ``times`` matching requests or all of them;
- :class:`Hold`: keep the request waiting until :meth:`S3Proxy.release`, so a test can kill
  a worker at a known point (mid-read, mid-upload, between two writes) without sleeping;
  a released request is dropped (its client was killed: it never reaches S3) unless the
  hold says ``forward``;
- ``delay``: wait that long before forwarding (a worker is surely caught mid-pair).

moto does not check signatures, so forwarding with another Host works.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "expect"}


@dataclass
class Fault:
    """Matching requests get an S3 error document instead of moto's answer."""

    status: int = 503
    code: str = "SlowDown"
    message: str = "Please reduce your request rate."
    methods: tuple[str, ...] = ("GET", "HEAD")
    path: str = ""
    """Regular expression searched in the request path (with its query)."""
    times: int | None = None
    """Fault this many matching requests, then forward them (``None``: every one)."""
    skip: int = 0
    """Forward this many matching requests before the first fault."""
    served: int = field(default=0, init=False)
    """Requests answered with this fault so far."""
    seen: int = field(default=0, init=False)

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault answers the request (and counts it)."""
        if method not in self.methods or not re.search(self.path, path):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.served >= self.times):
            return False
        self.served += 1
        return True

    def body(self) -> bytes:
        """S3's XML error document."""
        return (
            "<?xml version='1.0' encoding='UTF-8'?><Error>"
            f"<Code>{self.code}</Code><Message>{self.message}</Message>"
            "<RequestId>4442587FB7D0A2F9</RequestId></Error>"
        ).encode()


def slow_down(**kw: object) -> Fault:
    """S3 throttling: ``503 SlowDown``."""
    return Fault(503, "SlowDown", "Please reduce your request rate.", **kw)  # type: ignore[arg-type]


def internal_error(**kw: object) -> Fault:
    """An S3 server error: ``500 InternalError``."""
    return Fault(500, "InternalError", "We encountered an internal error.", **kw)  # type: ignore[arg-type]


def expired_token(**kw: object) -> Fault:
    """Credentials that expired mid-job: ``400 ExpiredToken``."""
    return Fault(400, "ExpiredToken", "The provided token has expired.", **kw)  # type: ignore[arg-type]


def access_denied(**kw: object) -> Fault:
    """A permission the job lacks: ``403 AccessDenied``."""
    return Fault(403, "AccessDenied", "Access Denied", **kw)  # type: ignore[arg-type]


@dataclass
class Hold:
    """The first ``times`` matching requests wait until :meth:`S3Proxy.release`."""

    methods: tuple[str, ...] = ("PUT",)
    path: str = ""
    """Regular expression searched in the request path."""
    times: int = 1
    skip: int = 0
    """Forward this many matching requests before holding."""
    forward: bool = False
    """Once released, forward the request (else drop it unanswered)."""
    held: threading.Event = field(default_factory=threading.Event, init=False)
    """Set once a request is being held."""
    seen: int = field(default=0, init=False)

    def matches(self, method: str, path: str) -> bool:
        """Whether to hold this request (and count it)."""
        if method not in self.methods or not re.search(self.path, path):
            return False
        self.seen += 1
        return self.skip < self.seen <= self.skip + self.times


class S3Proxy:
    """Forwards to ``upstream``; answers with ``faults``, holds on ``holds``, or delays."""

    def __init__(
        self,
        upstream: str,
        *,
        delay: float = 0.0,
        throttle: bool = False,
        faults: Sequence[Fault] = (),
        holds: Sequence[Hold] = (),
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        methods = ("GET", "HEAD", "PUT", "POST", "DELETE")
        self.faults = list(faults) + ([slow_down(methods=methods)] if throttle else [])
        self.holds = list(holds)
        self.requests = 0
        self.log: list[tuple[str, str, int]] = []
        """(method, path, status) of every request answered."""
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` (what ``AWS_S3_ENDPOINT`` takes)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (what ``AWS_ENDPOINT_URL`` takes)."""
        return f"http://{self.address}"

    def release(self) -> None:
        """Let every held request (and any later one) through."""
        self._released.set()

    def _rule(self, method: str, path: str) -> Fault | Hold | None:
        """The first fault or hold for this request, counted under the lock."""
        with self._lock:
            self.requests += 1
            for rule in [*self.holds, *self.faults]:
                if rule.matches(method, path):
                    return rule
        return None

    @contextlib.contextmanager
    def running(self) -> Iterator[S3Proxy]:
        """Serve in a thread until the block ends (held requests are released then)."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self._body()
                rule = owner._rule(self.command, self.path)
                if isinstance(rule, Hold):
                    rule.held.set()
                    owner._released.wait()
                    if not rule.forward:
                        self.close_connection = True
                        return
                if isinstance(rule, Fault):
                    self._answer(rule.status, {"Content-Type": "application/xml"}, rule.body())
                    return
                if owner.delay:
                    time.sleep(owner.delay)
                self._forward(body)

            def _body(self) -> bytes:
                """The request body, de-chunked when sent with chunked transfer encoding."""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self, body: bytes) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                answer = requests.request(
                    self.command,
                    owner.upstream + self.path,
                    headers=headers,
                    data=body,
                    timeout=60,
                    stream=True,
                    allow_redirects=False,
                )
                content = answer.raw.read(decode_content=False)
                relayed = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
                self._answer(answer.status_code, relayed, content, length=answer.headers)

            def _answer(
                self,
                status: int,
                headers: dict[str, str],
                content: bytes,
                length: object = None,
            ) -> None:
                with owner._lock:
                    owner.log.append((self.command, self.path, status))
                with contextlib.suppress(OSError):  # the client may be dead (killed worker)
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    size = len(content)
                    if self.command == "HEAD" and hasattr(length, "get"):
                        size = int(length.get("Content-Length") or 0)  # type: ignore[union-attr]
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(content)

            def do_GET(self) -> None:
                self._handle()

            def do_HEAD(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release()
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=10)
