"""`stac-coh search-and-run` and `stac-coh run` end to end on a local catalog (real CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import uvicorn

from stac_coh.publish.serve import make_app
from tests.run_scene import RunScene, build_scene, stac_coh
from tests.services import free_port

COLLECTION = "sentinel-1-coherence"


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> RunScene:
    return build_scene(tmp_path_factory.mktemp("scene"))


def items_in(out: Path) -> dict[str, dict]:
    folder = out / COLLECTION
    return {
        p.stem: json.loads(p.read_text())
        for p in folder.glob("*/*.json")
        if p.parent.name == p.stem
    }


def latest_report(out: Path) -> dict:
    reports = sorted((out / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text())


def test_search_and_run_publishes_every_pair_then_skips_them(scene: RunScene, tmp_path: Path):
    out = tmp_path / "out"
    args = [
        "search-and-run",
        *scene.search_args(),
        "--out",
        str(out),
        "--weights",
        str(scene.weights),
    ]
    first = stac_coh(*args)
    assert first.returncode == 0, first.stderr + first.stdout
    published = items_in(out)
    assert len(published) == 2
    assert "Run summary" in first.stdout and "Catalog:" in first.stdout

    catalog = pystac.Catalog.from_file(str(out / "catalog.json"))
    walked = {i.id for i in catalog.get_items(recursive=True)}
    assert walked == set(published)
    for item_id, item in published.items():
        href = out / COLLECTION / item_id / item["assets"]["coherence"]["href"]
        with rasterio.open(href) as src:
            stored = src.read(1)
            assert src.scales[0] == pytest.approx(0.004) and src.nodata == 255
        valid = stored[stored != 255] * 0.004
        assert valid.size > 0 and valid.min() >= 0 and valid.max() <= 1
        sources = {link["href"] for link in item["links"] if link["rel"] == "derived_from"}
        assert len(sources) == 4  # two slices per acquisition
        assert all("sig=" not in s and "?" not in s for s in sources)

    report = latest_report(out)
    assert report["counts"]["published"] == 2

    again = stac_coh(*args)
    assert again.returncode == 0, again.stderr
    assert latest_report(out)["counts"].get("skipped") == 2
    assert items_in(out) == published  # nothing rewritten


def test_one_failing_pair_is_recorded_and_others_finish(scene: RunScene, tmp_path: Path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    broken = None
    for item_id, item in scene.items.items():
        item = json.loads(json.dumps(item))
        if item_id.endswith("_d24") and broken is None:  # one slice of the last date
            broken = tmp_path / "corrupt.tif"
            broken.write_bytes(b"II*\x00 this is not a GeoTIFF")
            item["assets"]["vv"]["href"] = str(broken)
        (catalog / f"{item_id}.json").write_text(json.dumps(item))
    out = tmp_path / "out"
    args = [a if a != str(scene.catalog) else str(catalog) for a in scene.search_args()]
    done = stac_coh("search-and-run", *args, "--out", str(out), "--weights", str(scene.weights))
    assert done.returncode == 1, done.stdout
    report = latest_report(out)
    statuses = {p["pair_id"]: p["status"] for p in report["pairs"]}
    assert sorted(statuses.values()) == ["failed", "published"]
    failed = next(p for p in report["pairs"] if p["status"] == "failed")
    assert "corrupt.tif" in failed["error"] or "not" in failed["error"].lower()
    assert len(items_in(out)) == 1


def test_dry_run_plans_and_writes_nothing(scene: RunScene, tmp_path: Path):
    out = tmp_path / "out"
    done = stac_coh(
        "search-and-run",
        *scene.search_args(),
        "--out",
        str(out),
        "--weights",
        str(scene.weights),
        "--dry-run",
    )
    assert done.returncode == 0, done.stderr
    assert "Plan: 2 pairs" in done.stdout and "MP/s measured" in done.stdout
    assert not out.exists() or not any(out.rglob("*.json"))


def test_run_manifest_by_index(scene: RunScene, tmp_path: Path):
    manifest = tmp_path / "pairs.json"
    found = stac_coh("search", *scene.search_args(), "--json", str(manifest))
    assert found.returncode == 0, found.stderr
    out = tmp_path / "out"
    done = stac_coh(
        "run",
        "--manifest",
        str(manifest),
        "--index",
        "1",
        "--out",
        str(out),
        "--weights",
        str(scene.weights),
        "--no-uncertainty",
    )
    assert done.returncode == 0, done.stderr
    pairs = json.loads(manifest.read_text())["pairs"]
    (published,) = items_in(out).values()
    assert published["id"] == pairs[1]["id"]
    assert "uncertainty" not in published["assets"]
    bad = stac_coh("run", "--manifest", str(manifest), "--index", "7", "--out", str(out))
    assert bad.returncode == 2 and "out of range" in bad.stderr


class _Slow:
    """ASGI middleware delaying every request: a slow remote store."""

    def __init__(self, app, delay: float) -> None:
        self.app, self.delay = app, delay

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


@contextlib.contextmanager
def slow_server(root: Path, delay: float = 0.3) -> Iterator[str]:
    """Serve ``root`` over HTTP with Range support (stac-coh's own server), slowly."""
    config = uvicorn.Config(
        _Slow(make_app(root), delay),
        host="127.0.0.1",
        port=free_port(),
        log_level="error",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    try:
        while not server.started:
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_ctrl_c_after_first_pair_then_rerun_continues(scene: RunScene, tmp_path: Path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    remote = tmp_path / "remote"
    remote.mkdir()
    with slow_server(remote) as url:
        for item_id, item in scene.items.items():
            item = json.loads(json.dumps(item))
            if item_id.endswith("_d24"):  # only the second pair reads these: make it slow
                src = Path(item["assets"]["vv"]["href"])
                (remote / src.name).write_bytes(src.read_bytes())
                item["assets"]["vv"]["href"] = f"{url}/{src.name}"
            (catalog / f"{item_id}.json").write_text(json.dumps(item))
        out = tmp_path / "out"
        args = [a if a != str(scene.catalog) else str(catalog) for a in scene.search_args()]
        cmd = [
            sys.executable,
            "-m",
            "stac_coh",
            "search-and-run",
            *args,
            "--out",
            str(out),
            "--weights",
            str(scene.weights),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not items_in(out) if out.exists() else True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "first pair never published"
            time.sleep(0.05)
        time.sleep(1.0)  # let the first pair finish and the slow second one start
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stdout + stderr
        assert "Interrupted" in stdout
        first = items_in(out)
        assert len(first) == 1
        report = latest_report(out)
        assert report.get("interrupted") is True
        assert [p["status"] for p in report["pairs"]] == ["published", "interrupted"]
        leftovers = [p for p in (out / COLLECTION).rglob("*") if p.suffix in {".tmp", ".lock"}]
        assert not [p for p in leftovers if p.is_file() and p.stat().st_size and ".json" in p.name]

        again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        statuses = [p["status"] for p in latest_report(out)["pairs"]]
        assert statuses == ["skipped", "published"]
        assert len(items_in(out)) == 2
        np.testing.assert_equal(
            items_in(out)[next(iter(first))]["properties"], next(iter(first.values()))["properties"]
        )


def test_local_catalog_is_relocatable(scene: RunScene, tmp_path: Path):
    """No absolute self links in a local catalog: a copy elsewhere still resolves."""
    import shutil

    out = tmp_path / "out"
    args = ["search-and-run", *scene.search_args(), "--out", str(out)]
    done = stac_coh(*args, "--weights", str(scene.weights), "--no-uncertainty")
    assert done.returncode == 0, done.stderr
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    for doc in moved.rglob("*.json"):
        links = json.loads(doc.read_text()).get("links", [])
        assert not [link for link in links if link["rel"] == "self"], doc
    catalog = pystac.Catalog.from_file(str(moved / "catalog.json"))
    items = list(catalog.get_items(recursive=True))
    assert len(items) == 2
    for item in items:
        for asset in item.assets.values():
            assert Path(asset.get_absolute_href()).is_file()
