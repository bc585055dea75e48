"""The shared HTTP session: retries on 429/5xx (POST too), Retry-After, timeouts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from stac_coh.io.http import make_session, stac_api_io


class Flaky:
    """Answers each path with a scripted list of statuses, then 200."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.seen: list[tuple[str, str, float]] = []
        self.delay = 0.0


@pytest.fixture
def flaky() -> Iterator[tuple[Flaky, str]]:
    state = Flaky()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            state.seen.append((self.command, self.path, time.monotonic()))
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            queue = state.script.get(self.path, [])
            status, headers = queue.pop(0) if queue else (200, {})
            if state.delay:
                time.sleep(state.delay)
            body = b'{"ok": true}'
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_post_is_retried_on_429_after_retry_after(flaky):
    state, url = flaky
    state.script["/search"] = [(429, {"Retry-After": "1"})]
    session = make_session(retries=3, backoff_s=0.0)
    response = session.post(f"{url}/search", json={"collections": ["x"]})
    assert response.status_code == 200
    times = [t for method, path, t in state.seen if (method, path) == ("POST", "/search")]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.9  # waited for Retry-After


def test_5xx_is_retried_then_the_last_answer_is_returned(flaky):
    state, url = flaky
    state.script["/a"] = [(503, {}), (502, {})]
    assert make_session(retries=3, backoff_s=0.0).get(f"{url}/a").status_code == 200
    state.script["/b"] = [(500, {})] * 5
    response = make_session(retries=2, backoff_s=0.0).get(f"{url}/b")
    assert response.status_code == 500  # reported, not swallowed into a RetryError
    assert sum(1 for _, path, _ in state.seen if path == "/b") == 3


def test_4xx_is_not_retried(flaky):
    state, url = flaky
    state.script["/missing"] = [(404, {})]
    assert make_session(backoff_s=0.0).get(f"{url}/missing").status_code == 404
    assert sum(1 for _, path, _ in state.seen if path == "/missing") == 1


def test_requests_time_out(flaky):
    state, url = flaky
    state.delay = 2.0
    session = make_session(timeout_s=0.3, retries=0)
    # Without the timeout the request would succeed after 2 s.
    with pytest.raises(requests.RequestException, match="timed out"):
        session.get(f"{url}/slow")


def test_pystac_client_uses_the_session():
    session = make_session(retries=2)
    io = stac_api_io(session)
    assert io.session is session
