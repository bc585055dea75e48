"""One clear line and the right exit code (issue #12, findings 7, 9 and 11).

Each test is a mistake a new user made, run through the real command line.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import requests

from stac_coh.cli import ENVIRONMENT
from stac_coh.errors import EXIT_CODES
from tests.run_scene import AREA, SEARCH, build_scene, tiny_weights
from tests.services import free_port, stop, wait_http
from tests.stac_data import ES_GRD
from tests.user_cli import clean_env, cli, error_line, linear_pair, write_raster

README = Path(__file__).parent.parent / "README.md"
UNRESOLVABLE = "stac.nonexistent.invalid"  # .invalid never resolves (RFC 2606)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return str(tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return build_scene(tmp_path_factory.mktemp("scene"))


# --------------------------------------------------------------------------------------
# Finding 7: finalize with a collection the catalog does not have


def test_finalize_refuses_an_unknown_collection(tmp_path):
    out = tmp_path / "coherence"
    (out / "sentinel-1-coherence").mkdir(parents=True)
    catalog = {
        "type": "Catalog",
        "id": "stac-coh",
        "stac_version": "1.1.0",
        "description": "x",
        "links": [{"rel": "child", "href": "./sentinel-1-coherence/collection.json"}],
    }
    (out / "catalog.json").write_text(json.dumps(catalog))
    (out / "sentinel-1-coherence" / "collection.json").write_text("{}")
    before = (out / "catalog.json").read_bytes()
    line = error_line(cli("finalize", str(out), "--collection", "nope"), 2)
    assert "'nope'" in line and "sentinel-1-coherence" in line
    assert (out / "catalog.json").read_bytes() == before
    assert not (out / "nope").exists()


# --------------------------------------------------------------------------------------
# Finding 9: a host name that does not resolve fails at once, quietly


def test_search_of_an_unresolvable_api_fails_at_once_without_retry_warnings():
    done = cli("search", "--source", f"https://{UNRESOLVABLE}/v1", "--collection", "s1",
               "--bbox", "1", "2", "3", "4", *SEARCH)  # fmt: skip
    line = error_line(done, 75)
    assert "resolve" in line and UNRESOLVABLE in line
    assert "Retrying" not in done.stderr and "WARNING" not in done.stderr


def test_predict_of_an_unresolvable_url_fails_before_gdal_retries(tmp_path, weights):
    url = f"https://{UNRESOLVABLE}/t1.tif?st=1&se=2&sig=secret"
    done = cli("predict", url, url, "-o", str(tmp_path / "c.tif"), "--weights", weights)
    line = error_line(done, 75)
    assert "resolve" in line and "sig=" not in done.stderr
    assert "Retrying" not in done.stderr  # GDAL retried this for ~50 s


def test_a_run_over_unresolvable_assets_records_why_each_pair_failed(scene, tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for item_id, item in scene.items.items():
        item = json.loads(json.dumps(item))
        item["assets"]["vv"]["href"] = f"https://{UNRESOLVABLE}/{item_id}.tif"
        (catalog / f"{item_id}.json").write_text(json.dumps(item))
    out = tmp_path / "out"
    done = cli("search-and-run", "--source", str(catalog), "--bbox", *map(str, AREA), *SEARCH,
               "--out", str(out), "--weights", str(scene.weights))  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Retrying" not in done.stderr
    report = json.loads(next(out.glob("reports/*.json")).read_text())
    assert {p["status"] for p in report["pairs"]} == {"failed"}
    assert all("resolve" in p["error"] and p["transient"] for p in report["pairs"])


# --------------------------------------------------------------------------------------
# Finding 11: the smaller ones


def test_serve_finds_the_demo_catalog_from_the_demo_folder(tmp_path):
    demo = tmp_path / "stac-coh-demo"
    (demo / "catalog").mkdir(parents=True)
    (demo / "catalog" / "catalog.json").write_text('{"type": "Catalog", "id": "demo"}')
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stac_coh", "serve", str(demo), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/catalog.json", 60, proc)
        answer = requests.get(f"http://127.0.0.1:{port}/catalog.json", timeout=10)
        assert answer.status_code == 200 and answer.json()["id"] == "demo"
    finally:
        stop(proc)


def test_serve_on_a_busy_port_suggests_another(tmp_path):
    (tmp_path / "catalog.json").write_text("{}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = error_line(cli("serve", str(tmp_path), "--port", str(port)), 2)
    assert f"Port {port}" in line and "--port" in line


def test_a_bbox_of_three_numbers_says_so():
    done = cli("search", "--bbox", "1", "2", "3", *SEARCH)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "four numbers" in done.stderr and "unable to parse" not in done.stderr


def test_a_missing_source_path_is_named_as_missing(tmp_path):
    line = error_line(cli("search", "--source", "./no-such-catalog", "--bbox", "1", "2", "3",
                          "4", *SEARCH, cwd=tmp_path), 2)  # fmt: skip
    assert "no such file or folder" in line and "Unknown --source" not in line


def test_a_truncated_geotiff_says_what_is_wrong(tmp_path, weights):
    rng = np.random.default_rng(1)
    full = write_raster(tmp_path / "full.tif", 0.1 * rng.exponential(1.0, (512, 512)),
                        tiled=True, blockxsize=256, blockysize=256)  # fmt: skip
    data = full.read_bytes()
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(data[: len(data) // 2])
    done = cli("predict", str(full), str(truncated), "-o", str(tmp_path / "c.tif"),
               "--weights", weights)  # fmt: skip
    line = error_line(done, 3)
    assert "truncated.tif" in line and "truncated or corrupt" in line
    assert "See previous exception" not in line


def test_a_manifest_that_is_not_one_says_so(tmp_path):
    manifest = tmp_path / "m.json"
    manifest.write_text("[1, 2]")
    line = error_line(cli("run", "--manifest", str(manifest), "--out", str(tmp_path / "o")), 2)
    assert "not a stac-coh manifest" in line and "AttributeError" not in line


def test_items_without_the_polarisation_suggest_pol():
    done = cli("search", "--source", str(ES_GRD), "--bbox", "-180", "-90", "180", "90",
               "--start", "2014-01-01", "--end", "2027-12-31")  # fmt: skip
    line = error_line(done, 4)
    assert "--pol HH" in line and "--baselines" not in line


def test_a_junk_parquet_file_is_one_line(tmp_path):
    junk = tmp_path / "items.parquet"
    junk.write_bytes(b"not parquet at all")
    done = cli("search", "--source", str(junk), "--bbox", "1", "2", "3", "4", *SEARCH)
    line = error_line(done, 2)
    assert "items.parquet" in line
    assert len(done.stderr.strip().splitlines()) == 1 and "LINE 1" not in done.stderr


def test_shell_completion_is_available():
    done = cli("--show-completion", "bash", env=clean_env(SHELL="/bin/bash"))
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout and "COMPLETE" in done.stdout


def test_verbose_works_after_the_command_too(scene):
    args = ["search", "--source", str(scene.catalog), "--bbox", *map(str, AREA), *SEARCH]
    quiet, verbose = cli(*args), cli(*args, "-v")
    assert quiet.returncode == verbose.returncode == 0, verbose.stderr
    assert "INFO" not in quiet.stderr and "INFO stac_coh" in verbose.stderr


def test_help_shows_no_type_placeholder_for_verbose():
    done = cli("--help")
    line = next(line for line in done.stdout.splitlines() if "--verbose" in line)
    assert "<int>" not in line and "INTEGER" not in line


def test_the_simulated_weights_warning_is_one_plain_line(tmp_path):
    t1, t2 = linear_pair(tmp_path)
    done = cli("predict", str(t1), str(t2), "-o", str(tmp_path / "c.tif"), "--weights", "bundled")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "SIMULATED" in line]
    assert len(warnings) == 1 and warnings[0].startswith("Warning: ")
    assert "warnings.warn" not in done.stderr and ".py:" not in done.stderr


@pytest.mark.parametrize(
    ("name", "value"), [("STAC_COH_HTTP_RETRIES", "abc"), ("STAC_COH_DEVICE", "gpu")]
)
def test_a_bad_setting_names_the_variable(tmp_path, name, value):
    t1, t2 = linear_pair(tmp_path)
    done = cli("predict", str(t1), str(t2), "-o", str(tmp_path / "c.tif"),
               env=clean_env(**{name: value}))  # fmt: skip
    line = error_line(done, 2)
    assert f"{name}={value!r}" in line and "--device" not in line


def test_a_permission_error_is_permanent_not_transient(tmp_path, scene):
    # Exit 75 makes AWS Batch (and scripts) retry; a permission error never heals.
    target = Path("/sys/coherence") if Path("/sys").is_dir() else Path("/proc/coherence")
    done = cli("run", "--manifest", str(_manifest(scene, tmp_path)), "--out", str(target),
               "--weights", str(scene.weights))  # fmt: skip
    assert str(target) in error_line(done, 5)


def test_predict_output_keeps_t1_grid_as_the_help_says(tmp_path, weights):
    t1, t2 = linear_pair(tmp_path, shape=(301, 259))  # odd sizes: overviews need padding
    out = tmp_path / "c.tif"
    assert cli("predict", str(t1), str(t2), "-o", str(out), "--weights", weights).returncode == 0
    with rasterio.open(t1) as src, rasterio.open(out) as coh:
        assert coh.crs == src.crs and coh.transform == src.transform
        padded = (coh.height - src.height, coh.width - src.width)
    help_text = " ".join(cli("predict", "--help").stdout.split())
    assert "T1's pixel grid" in help_text
    if padded != (0, 0):  # the help must say why the COG can be larger
        assert "padded" in help_text


def test_the_demo_duration_is_stated_one_way():
    statements = [cli("--help").stdout, cli("demo", "--help").stdout]
    for text in statements:
        text = " ".join(text.split())
        assert "under a minute on a 2-core CPU" in text
        assert "~3 minutes" not in text and "about a minute" not in text


def test_exit_codes_and_environment_are_in_the_readme_and_the_help():
    readme = README.read_text()
    help_text = cli("--help").stdout
    for code, _ in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", readme, re.M), code
        assert re.search(rf"^\s*{code}\s", help_text, re.M), code
    for names, _ in ENVIRONMENT:
        for name in re.findall(r"[A-Za-z_]{4,}", names):
            assert name in readme and name in help_text, name


def _manifest(scene, tmp_path: Path) -> Path:
    path = tmp_path / "m.json"
    done = cli("search", "--source", str(scene.catalog), "--bbox", *map(str, AREA), *SEARCH,
               "--json", str(path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return path
