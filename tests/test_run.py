"""`stac-coh search-and-run` and `stac-coh run` end to end on a local catalog (real CLI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from tests.held_server import holding_server, scratch_left, wait_until
from tests.run_scene import RunScene, build_scene, stac_coh

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
        assert not sources  # inputs are files outside the published tree: no machine path
        props = item["properties"]
        assert len(props["coh:reference_item_ids"] + props["coh:secondary_item_ids"]) == 4
        assert str(scene.catalog) not in json.dumps(item)

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


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stop_signal_in_the_second_pair_then_rerun_continues(
    scene: RunScene, tmp_path: Path, stop: signal.Signals
):
    """Ctrl-C and SIGTERM alike: the pair is interrupted and cleaned up, a re-run continues."""
    catalog, remote, out, tmp = (tmp_path / d for d in ("catalog", "remote", "out", "tmp"))
    for folder in (catalog, remote, tmp):
        folder.mkdir()
    remote_names = set()
    for item_id, item in scene.items.items():
        item = json.loads(json.dumps(item))
        if item_id.endswith("_d24"):  # only the second pair reads these: serve them remotely
            src = Path(item["assets"]["vv"]["href"])
            (remote / src.name).write_bytes(src.read_bytes())
            remote_names.add(f"/{src.name}")
        (catalog / f"{item_id}.json").write_text(json.dumps(item))
    with holding_server(remote, lambda scope: scope["path"] in remote_names) as (url, hold):
        for path in catalog.glob("*_d24.json"):
            item = json.loads(path.read_text())
            name = Path(item["assets"]["vv"]["href"]).name
            item["assets"]["vv"]["href"] = f"{url}/{name}"
            path.write_text(json.dumps(item))
        args = [a if a != str(scene.catalog) else str(catalog) for a in scene.search_args()]
        cmd = [sys.executable, "-m", "stac_coh", "search-and-run", *args, "--out", str(out)]
        cmd += ["--weights", str(scene.weights)]
        env = {**os.environ, "TMPDIR": str(tmp)}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        # The first pair is published and the second one is reading its inputs when we stop.
        assert wait_until(lambda: hold.arrived.is_set() or proc.poll() is not None, 300)
        assert proc.poll() is None, proc.communicate()
        assert len(items_in(out)) == 1
        proc.send_signal(stop)
        hold.release.set()
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 128 + stop, stdout + stderr
        assert "Interrupted" in stdout
        first = items_in(out)
        assert len(first) == 1
        report = latest_report(out)
        assert report.get("interrupted") is True
        assert sorted(p["status"] for p in report["pairs"]) == ["interrupted", "published"]
        assert scratch_left(out, tmp) == []

        again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        statuses = sorted(p["status"] for p in latest_report(out)["pairs"])
        assert statuses == ["published", "skipped"]
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
