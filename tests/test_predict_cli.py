"""`stac-coh predict`: end to end on tiny rasters, errors, help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from stac_coh.cli import app
from stac_coh.model.card import ModelCard
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weights import save_weights
from tests.user_cli import write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")

UTM = "EPSG:32633"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    """Random weights of a small ResUNet saved as our own format (not the bundled file)."""
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("weights") / "random.safetensors"
    return str(save_weights(ResUNet(base=4).eval(), ModelCard(name="random-test"), path))


def _write(path: Path, data: np.ndarray, **grid: Any) -> str:
    return str(write_raster(path, data, **grid))


def _pair(tmp_path, shape=(96, 80)):
    rng = np.random.default_rng(0)
    t1 = 0.1 * rng.exponential(1.0, shape)
    t2 = 0.1 * rng.exponential(1.0, shape)
    t1[:6] = -9999.0  # a nodata border
    return _write(tmp_path / "t1.tif", t1, nodata=-9999.0), _write(tmp_path / "t2.tif", t2)


def _run(*args):
    return CliRunner().invoke(app, ["predict", *args], catch_exceptions=False)


def test_predict_writes_cogs_and_reports(tmp_path, weights):
    t1, t2 = _pair(tmp_path)
    out, unc = tmp_path / "out" / "coh.tif", tmp_path / "out" / "sigma.tif"
    result = _run(
        t1,
        t2,
        "-o",
        str(out),
        "--uncertainty",
        str(unc),
        "--weights",
        weights,
        "--tile",
        "64",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert f"Wrote {out} and {unc}" in last
    assert "7,200 of 7,680 pixels valid" in last and "weights: random-test" in last
    for path in (out, unc):
        assert cog_validate(str(path), quiet=True)[0]
        with rasterio.open(path) as ds:
            assert (ds.scales, ds.offsets, ds.nodata, ds.dtypes[0]) == (
                (0.004,),
                (0.0,),
                255,
                "uint8",
            )
            data = ds.read(1, masked=True)
            assert data.mask[:6].all() and not data.mask[6:].any()
    with rasterio.open(out) as ds:
        coherence = ds.read(1, masked=True) * 0.004
    assert f"mean coherence {coherence.mean():.3f}" in last


def test_predict_refuses_to_clobber_unless_told(tmp_path, weights):
    t1, t2 = _pair(tmp_path, (40, 40))
    out = tmp_path / "coh.tif"
    out.write_bytes(b"keep me")
    result = CliRunner().invoke(app, ["predict", t1, t2, "-o", str(out), "--weights", weights])
    assert result.exit_code != 0 and "--overwrite" in str(result.exception)
    assert out.read_bytes() == b"keep me"
    # --overwrite replaces only what stac-coh wrote: not this file...
    result = CliRunner().invoke(app, ["predict", t1, t2, "-o", str(out), "--overwrite"])
    assert result.exit_code != 0 and "only rasters stac-coh wrote" in str(result.exception)
    assert out.read_bytes() == b"keep me"
    # ...but an earlier coherence COG, yes.
    out.unlink()
    assert _run(t1, t2, "-o", str(out), "--weights", weights).exit_code == 0
    result = _run(t1, t2, "-o", str(out), "--weights", weights, "--overwrite", "--dtype", "float32")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata)


def test_predict_reference_mode_and_grids_that_differ(tmp_path, weights):
    rng = np.random.default_rng(1)
    t1 = _write(tmp_path / "t1.tif", 0.1 * rng.exponential(1.0, (60, 70)))
    # T2: 10 m pixels, shifted, covering only part of T1.
    t2 = _write(
        tmp_path / "t2.tif",
        0.1 * rng.exponential(1.0, (100, 90)),
        origin=(500105.0, 4599795.0),
        res=10.0,
    )
    out = tmp_path / "ref.tif"
    result = _run(t1, t2, "-o", str(out), "--weights", weights, "--mode", "reference")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as ds:
        assert ds.crs.to_string() == UTM and ds.res == (20.0, 20.0)
        assert ds.transform.c == 500100.0 and ds.transform.f == 4599800.0  # snapped overlap
        assert (ds.height, ds.width) == (50, 46)


def test_predict_with_the_siegert_estimator(tmp_path):
    t1, t2 = _pair(tmp_path, (40, 40))
    result = _run(t1, t2, "-o", str(tmp_path / "s.tif"), "--estimator", "siegert")
    assert result.exit_code == 0, result.output
    assert "weights: siegert" in result.output.strip().splitlines()[-1]


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "stac_coh", "predict", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize("which", ["missing", "corrupt"])
def test_an_unreadable_input_is_a_one_line_error_and_leaves_no_output(tmp_path, weights, which):
    t1, _t2 = _pair(tmp_path, (40, 40))
    bad = tmp_path / "bad.tif"
    if which == "corrupt":
        bad.write_bytes(b"II*\x00" + b"\x00" * 100)
    out = tmp_path / "out" / "coh.tif"
    done = _cli(t1, str(bad), "-o", str(out), "--weights", weights, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert f"Error: Cannot open T2 raster {bad}" in done.stderr
    assert not out.exists() and not out.parent.exists()


def test_bad_choices_are_one_line_errors(tmp_path):
    t1, t2 = _pair(tmp_path, (20, 20))
    done = _cli(t1, t2, "-o", str(tmp_path / "x.tif"), "--mode", "turbo", cwd=tmp_path)
    assert done.returncode == 2 and "--mode must be one of fast, reference" in done.stderr


def test_help_teaches_with_examples():
    result = CliRunner().invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("Examples:", "stac-coh predict", "--db", "--mode", "--uncertainty", "reference"):
        assert text in result.output
