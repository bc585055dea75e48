"""`stac-coh serve` answers Range requests with 206 and CORS headers, over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from stac_coh.publish.serve import stac_browser_url
from tests.services import free_port, stop, wait_http


@pytest.fixture
def served(tmp_path: Path):
    (tmp_path / "catalog.json").write_text('{"type": "Catalog", "id": "x"}')
    payload = bytes(range(256)) * 40
    (tmp_path / "data.tif").write_bytes(payload)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stac_coh.cli", "serve", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/catalog.json", 30, proc)
        yield base, payload
    finally:
        stop(proc)


def test_range_request_gets_206_with_cors(served):
    base, payload = served
    origin = "https://radiantearth.github.io"
    r = requests.get(
        f"{base}/data.tif", headers={"Range": "bytes=100-299", "Origin": origin}, timeout=10
    )
    assert r.status_code == 206
    assert r.content == payload[100:300]
    assert r.headers["Content-Range"] == f"bytes 100-299/{len(payload)}"
    assert r.headers["Access-Control-Allow-Origin"] in {"*", origin}
    exposed = r.headers["Access-Control-Expose-Headers"].lower()
    assert "content-range" in exposed


def test_cors_preflight_allows_range(served):
    base, _ = served
    r = requests.options(
        f"{base}/data.tif",
        headers={
            "Origin": "https://radiantearth.github.io",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
        timeout=10,
    )
    assert r.status_code == 200
    assert "range" in r.headers["Access-Control-Allow-Headers"].lower()


def test_whole_file_and_unsatisfiable_range(served):
    base, payload = served
    assert requests.get(f"{base}/data.tif", timeout=10).content == payload
    r = requests.get(f"{base}/data.tif", headers={"Range": f"bytes={10**7}-"}, timeout=10)
    assert r.status_code == 416


def test_stac_browser_url_for_http_localhost():
    url = stac_browser_url("http://127.0.0.1:8000/catalog.json")
    assert url.endswith("#/external/http:/127.0.0.1:8000/catalog.json")
    assert stac_browser_url("https://x.org/c.json").endswith("#/external/x.org/c.json")


def test_serve_refuses_missing_catalog(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "stac_coh.cli", "serve", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "does not exist" in out.stderr
