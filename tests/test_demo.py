"""`stac-coh demo` end to end (bundled weights, offline), and serving its catalog."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pystac
import pytest
import requests
from rio_cogeo.cogeo import cog_validate

from tests.run_scene import stac_coh
from tests.services import free_port, stop, wait_http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(demo_run) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The session's demo run (conftest), shared with the real-browser test."""
    return demo_run


def test_demo_publishes_a_browsable_catalog(demo):
    out, done = demo
    catalog = pystac.Catalog.from_file(str(out / "catalog" / "catalog.json"))
    (model,) = catalog.get_items()  # the demo publishes its model (MLM) item at the root
    assert model.properties["mlm:name"] == "stac-coh-sim-demo"
    # Items are listed by the tile sub-catalogs (tile group, tile, year) of the collection.
    items = list(catalog.get_child("sentinel-1-coherence").get_items(recursive=True))
    assert len(items) == 2
    platforms = {tuple(i.properties["coh:platforms"]) for i in items}
    assert ("sentinel-1a", "sentinel-1c") in platforms  # the cross-platform 6-day pair
    assert {i.properties["platform"] for i in items} == {"sentinel-1a"}  # one per field
    for item in items:
        assert {"coherence", "uncertainty", "visual", "thumbnail"} <= set(item.assets)
        coherence = item.assets["coherence"].get_absolute_href()
        assert cog_validate(coherence)[0]
        assert item.properties["coh:weights_name"] == "stac-coh-sim-demo"
        assert isinstance(item.properties["coh:input_in_training_domain"], bool)  # the guard
        assert item.properties["coh:input_looks"] > 0
    assert "Accuracy against the simulated TRUE coherence" in done.stdout
    assert "stac-coh serve" in done.stdout


def test_demo_publishes_a_seasonal_composite_beside_the_pairs(demo):
    import numpy as np
    import rasterio

    from tests.stac_validation import assert_valid

    out, done = demo
    root = out / "catalog"
    collection = pystac.Catalog.from_file(str(root / "catalog.json")).get_child(
        "sentinel-1-coherence-seasonal"
    )
    assert collection is not None
    (item,) = collection.get_items()
    assert_valid(item.to_dict(transform_hrefs=False))
    assert item.properties["coh:period"] == "2026-JJA"
    assert item.properties["coh:baselines"] == [6, 12]  # too few for the decay fit: said
    assert "tau" not in item.assets and "no decay model" in item.properties["description"]
    assert len([link for link in item.links if link.rel == "derived_from"]) == 2
    for key in ("coherence_6d", "coherence_12d", "count_6d", "count_12d", "visual"):
        path = item.assets[key].get_absolute_href()
        assert cog_validate(path)[0], key
        with rasterio.open(path) as ds:
            data = ds.read(1, masked=True)
            values = data.compressed() * (ds.scales[0] if key != "visual" else 1.0)
        assert values.size > 0, key
        if key.startswith("coherence"):
            assert values.min() >= 0.0 and values.max() <= 1.0
        elif key.startswith("count"):
            assert set(np.unique(values)) == {1}  # one pair of each baseline
    assert "Seasonal composite" in done.stdout


def test_demo_rerun_skips_published_pairs(demo):
    out, _ = demo
    again = stac_coh("demo", "--out", str(out), timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped") >= 2


def test_serve_answers_range_requests_on_a_demo_cog(demo):
    out, _ = demo
    root = out / "catalog"
    cog = next(root.rglob("*_coherence.tif"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stac_coh", "serve", str(root), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/catalog.json", 30, proc)
        url = f"http://127.0.0.1:{port}/{cog.relative_to(root).as_posix()}"
        headers = {"Range": "bytes=0-1023", "Origin": "https://radiantearth.github.io"}
        r = requests.get(url, headers=headers, timeout=10)
        assert r.status_code == 206
        assert r.content == cog.read_bytes()[:1024]
        assert r.headers["Content-Range"] == f"bytes 0-1023/{cog.stat().st_size}"
        assert "content-range" in r.headers["Access-Control-Expose-Headers"].lower()
        assert r.headers["Access-Control-Allow-Origin"] in {"*", headers["Origin"]}
        landing = requests.get(f"http://127.0.0.1:{port}/catalog.json", timeout=10).json()
        assert landing["type"] == "Catalog"
    finally:
        stop(proc)
        output = proc.stdout.read() if proc.stdout else ""
    assert "STAC Browser: https://radiantearth.github.io/stac-browser/#/external/http:/" in output


def test_demo_help_explains_simulated_weights():
    done = stac_coh("demo", "--help")
    assert done.returncode == 0
    assert "SIMULATED" in done.stdout


def test_every_demo_object_validates_offline_with_shared_schemas(demo):
    from tests.stac_browser import stac_objects
    from tests.stac_validation import assert_valid, unshared_schemas

    root = demo[0] / "catalog"
    objects = stac_objects(root)
    kinds = sorted(data["type"] for data in objects.values())
    # root and the tile group/tile/year sub-catalogs listing the pair items; pairs +
    # seasonal collections; model, two pair items, one composite item
    assert kinds == ["Catalog"] * 4 + ["Collection"] * 2 + ["Feature"] * 4
    for path, data in objects.items():
        assert_valid(data)
        assert not unshared_schemas(data), path
        for link in data["links"]:
            if link["rel"] == "derived_from":  # inside the published tree: a relative file
                assert not link["href"].startswith(("/", "file:")), link
                assert ((root / path).parent / link["href"]).is_file(), link
