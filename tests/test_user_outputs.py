"""Nothing lost, and one clear line (issue #12, findings 1, 3, 6 and 10): where commands write.

Every case runs the real command line in a fresh process. The s3:// cases use a real
moto_server without credentials (the user who forgot them), then with dummy ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import numpy as np
import pytest
import rasterio

from tests.run_scene import AREA, SEARCH, build_scene, tiny_weights
from tests.services import MotoServer
from tests.user_cli import clean_env, cli, error_line, linear_pair, write_raster

EXIT_BAD_INPUT, EXIT_OUTPUT, EXIT_UNUSABLE = 2, 5, 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return str(tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors"))


@pytest.fixture
def pair(tmp_path) -> tuple[str, str]:
    t1, t2 = linear_pair(tmp_path)
    return str(t1), str(t2)


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write into (root ignores modes: use sysfs then)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


# --------------------------------------------------------------------------------------
# Finding 1: --fresh / --overwrite remove only what stac-coh wrote


def test_demo_fresh_refuses_a_folder_it_did_not_write(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("two years of work")
    line = error_line(cli("demo", "--out", str(thesis), "--fresh"), EXIT_BAD_INPUT)
    assert "--fresh" in line and "thesis.txt" in line
    assert (thesis / "thesis.txt").read_text() == "two years of work"


def test_demo_fresh_in_the_working_directory_deletes_nothing(tmp_path):
    (tmp_path / "notes.md").write_text("keep me")
    (tmp_path / "data").mkdir()
    line = error_line(cli("demo", "--out", ".", "--fresh", cwd=tmp_path), EXIT_BAD_INPUT)
    assert "--fresh" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.md"]


@pytest.mark.slow
def test_demo_fresh_removes_only_what_an_earlier_demo_wrote(tmp_path):
    demo = tmp_path / "demo"
    (demo / "catalog").mkdir(parents=True)
    (demo / "catalog" / "stale.json").write_text("{}")
    (demo / ".stac-coh").write_text(json.dumps({"kind": "demo"}))
    (demo / "my-notes.txt").write_text("mine")  # the user's, beside the demo's folders
    done = cli("demo", "--out", str(demo), "--fresh", timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (demo / "my-notes.txt").read_text() == "mine"
    assert not (demo / "catalog" / "stale.json").exists()
    assert (demo / "catalog" / "catalog.json").is_file()


def test_demo_does_not_write_into_someone_elses_catalog_folder(tmp_path):
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "catalog.json").write_text('{"id": "theirs"}')
    (tmp_path / "README.md").write_text("a project")
    line = error_line(cli("demo", "--out", str(tmp_path)), EXIT_BAD_INPUT)
    assert "catalog" in line
    assert (tmp_path / "catalog" / "catalog.json").read_text() == '{"id": "theirs"}'


def test_predict_overwrite_replaces_only_a_coherence_cog(tmp_path, pair, weights):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a raster")
    line = error_line(
        cli("predict", *pair, "-o", str(notes), "--overwrite", "--weights", weights),
        EXIT_BAD_INPUT,
    )
    assert "--overwrite" in line and notes.read_text() == "not a raster"
    cog = tmp_path / "coh.tif"
    assert cli("predict", *pair, "-o", str(cog), "--weights", weights).returncode == 0
    again = cli("predict", *pair, "-o", str(cog), "--overwrite", "--weights", weights)
    assert again.returncode == 0, again.stderr


# --------------------------------------------------------------------------------------
# Finding 10: bad weights are refused before anything is written


def test_demo_with_unusable_weights_writes_nothing(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94.")  # a pickle
    out = tmp_path / "demo"
    line = error_line(cli("demo", "--out", str(out), "--weights", str(bad)), EXIT_BAD_INPUT)
    assert "bad.pkl" in line
    assert not out.exists()


# --------------------------------------------------------------------------------------
# Finding 3: one line, not a traceback, for every output that cannot be written


@pytest.mark.parametrize("where", ["proc", "under-a-file", "unwritable", "a-folder"])
def test_predict_to_an_impossible_location_is_one_line(tmp_path, pair, weights, where):
    a_file = tmp_path / "a_file.tif"
    a_file.write_bytes(b"x")
    target = {
        "proc": Path("/proc/x.tif"),
        "under-a-file": a_file / "x.tif",
        "unwritable": unwritable_folder(tmp_path) / "x.tif",
        "a-folder": tmp_path,
    }[where]
    line = error_line(cli("predict", *pair, "-o", str(target), "--weights", weights), EXIT_OUTPUT)
    assert str(target) in line or str(target.parent) in line


def test_demo_into_an_unwritable_folder_is_one_line(tmp_path):
    target = unwritable_folder(tmp_path) / "demo"
    line = error_line(cli("demo", "--out", str(target)), EXIT_OUTPUT)
    assert str(target) in line


@pytest.mark.integration
def test_s3_outputs_without_credentials_are_one_line_and_write_nothing(
    moto_server: MotoServer, tmp_path, pair, weights
):
    s3 = boto3.client("s3", **_moto_kwargs(moto_server))
    s3.create_bucket(Bucket="nocreds")
    env = clean_env(AWS_ENDPOINT_URL=moto_server.endpoint)  # and no credentials at all
    predicted = cli(
        "predict", *pair, "-o", "s3://nocreds/coh.tif", "--weights", weights, cwd=tmp_path, env=env
    )
    assert "credentials" in error_line(predicted, EXIT_OUTPUT)
    assert not (tmp_path / "s3:").exists()  # never a local folder named after the URL
    scene = build_scene(tmp_path / "scene")
    searched = cli(
        "search", "--source", str(scene.catalog), "--bbox", *map(str, AREA), *SEARCH,
        "--json", "s3://nocreds/m.json", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert "credentials" in error_line(searched, EXIT_OUTPUT)
    assert s3.list_objects_v2(Bucket="nocreds").get("KeyCount", 0) == 0


@pytest.mark.integration
def test_s3_outputs_land_in_the_bucket(moto_server: MotoServer, tmp_path, pair, weights):
    s3 = boto3.client("s3", **_moto_kwargs(moto_server))
    s3.create_bucket(Bucket="outputs")
    env = clean_env(**moto_server.env())
    done = cli(
        "predict", *pair, "-o", "s3://outputs/maps/coh.tif", "--uncertainty",
        "s3://outputs/maps/sigma.tif", "--weights", weights, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "s3://outputs/maps/coh.tif" in done.stdout
    local = tmp_path / "coh.tif"
    s3.download_file("outputs", "maps/coh.tif", str(local))
    with rasterio.open(local) as ds:
        assert ds.descriptions[0] == "coherence"
    assert not (tmp_path / "s3:").exists()
    missing = cli(
        "predict", *pair, "-o", "s3://no-such-bucket/c.tif", "--weights", weights, env=env
    )
    assert "no-such-bucket" in error_line(missing, EXIT_OUTPUT)


def test_search_json_dash_writes_the_manifest_to_stdout(tmp_path):
    scene = build_scene(tmp_path / "scene")
    done = cli(
        "search", "--source", str(scene.catalog), "--bbox", *map(str, AREA), *SEARCH,
        "--json", "-", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)  # nothing else on stdout: the table went to stderr
    assert len(manifest["pairs"]) == 2 and "2 pairs" in done.stderr
    assert not (tmp_path / "-").exists()


def test_search_json_does_not_replace_a_file_that_is_not_a_manifest(tmp_path):
    scene = build_scene(tmp_path / "scene")
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}')
    args = ["search", "--source", str(scene.catalog), "--bbox", *map(str, AREA), *SEARCH]
    assert "not a stac-coh manifest" in error_line(cli(*args, "--json", str(notes)), 2)
    assert notes.read_text() == '{"mine": true}'
    manifest = tmp_path / "m.json"
    assert cli(*args, "--json", str(manifest)).returncode == 0
    assert cli(*args, "--json", str(manifest)).returncode == 0  # its own manifest: replaced


# --------------------------------------------------------------------------------------
# Finding 6: predict says when its output is unusable, and why


def test_predict_refuses_db_input_without_db(tmp_path, pair, weights):
    with rasterio.open(pair[0]) as src:
        db = write_raster(tmp_path / "db.tif", 10 * np.log10(src.read(1)))
    out = tmp_path / "coh.tif"
    line = error_line(cli("predict", str(db), str(db), "-o", str(out), "--weights", weights), 2)
    assert "--db" in line and not out.exists()
    done = cli("predict", str(db), str(db), "--db", "-o", str(out), "--weights", weights)
    assert done.returncode == 0, done.stderr


def test_predict_with_no_valid_pixel_exits_non_zero(tmp_path, weights):
    empty = write_raster(tmp_path / "empty.tif", np.full((64, 64), -9999.0), nodata=-9999.0)
    out = tmp_path / "coh.tif"
    done = cli("predict", str(empty), str(empty), "-o", str(out), "--weights", weights)
    assert "no valid pixel" in error_line(done, EXIT_UNUSABLE).lower()
    assert not out.exists()


def _moto_kwargs(server: MotoServer) -> dict[str, str]:
    return {
        "endpoint_url": server.endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "region_name": "us-east-1",
    }
