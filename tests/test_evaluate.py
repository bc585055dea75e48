"""Metrics on known arrays, raster/folder evaluation with decoding, plots, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from stac_coh.cli import app
from stac_coh.errors import InputError
from stac_coh.io.cog import UINT8_UNIT, encode
from stac_coh.science.datasets import write_geotiff
from stac_coh.science.evaluate import compute_metrics, evaluate_arrays, evaluate_paths, write_png

TRANSFORM = (10.0, 0.0, 500000.0, 0.0, -10.0, 4200000.0)


def test_metrics_of_a_constant_offset():
    truth = np.array([0.1, 0.3, 0.5, 0.7])
    m = compute_metrics(truth + 0.1, truth)
    assert (m.n, m.rmse, m.mae, m.bias) == (
        4,
        pytest.approx(0.1),
        pytest.approx(0.1),
        pytest.approx(0.1),
    )
    sst = ((truth - truth.mean()) ** 2).sum()  # 0.2
    assert m.r2 == pytest.approx(1 - 4 * 0.01 / sst)


def test_metrics_by_hand_with_nan_ignored():
    pred = np.array([0.2, 0.4, np.nan, 0.9])
    truth = np.array([0.0, 0.6, 0.5, np.nan])
    m = compute_metrics(pred, truth)
    assert m.n == 2
    assert m.rmse == pytest.approx(0.2)
    assert m.bias == pytest.approx(0.0)
    assert m.r2 == pytest.approx(1 - 0.08 / 0.18)
    assert math.isnan(compute_metrics([np.nan], [0.3]).rmse)
    with pytest.raises(InputError):
        compute_metrics([0.1, 0.2], [0.1])


def test_bins_split_on_true_coherence_and_classes_by_name():
    truth = np.array([0.05, 0.15, 0.55, 0.95])
    pred = np.array([0.25, 0.15, 0.55, 0.75])
    classes = np.array([1, 1, 2, 2])
    report = evaluate_arrays({"m": pred}, truth, classes=classes, bins=2)
    low, high = report.by_bin["m"]
    assert (low.n, high.n) == (2, 2)
    assert low.bias == pytest.approx(0.1) and high.bias == pytest.approx(-0.1)
    assert set(report.by_class["m"]) == {"water", "urban"}
    assert report.by_class["m"]["urban"].rmse == pytest.approx(math.sqrt(0.02))
    assert sum(map(sum, report.histograms["m"])) == 4


def write(path, values, *, uint8=False):
    if uint8:
        write_geotiff(path, encode(values, UINT8_UNIT), "EPSG:32610", TRANSFORM, 255)
        with rasterio.open(path, "r+") as ds:
            ds.scales = (UINT8_UNIT.scale,)
            ds.offsets = (UINT8_UNIT.offset,)
    else:
        write_geotiff(path, values.astype(np.float32), "EPSG:32610", TRANSFORM, np.nan)
    return path


@pytest.fixture
def rasters(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, (2, 20, 24)).astype(np.float32)
    truth[0, :2] = np.nan
    for name, data in (("truth", truth), ("good", truth + 0.04), ("bad", 1 - truth)):
        (tmp_path / name).mkdir()
        for k in range(2):
            write(tmp_path / name / f"scene_{k}.tif", np.clip(data[k], 0, 1), uint8=name == "good")
    return tmp_path, truth


def test_folders_are_pooled_and_scaled_rasters_decoded(rasters, tmp_path):
    root, truth = rasters
    report = evaluate_paths(root / "good", root / "truth", baselines=[root / "bad"])
    good = report.overall["good"]
    assert good.n == np.isfinite(truth).sum()
    assert good.bias == pytest.approx(0.04, abs=0.004)  # uint8 quantisation step is 0.004
    assert report.overall["bad"].rmse > 0.3
    single = evaluate_paths(root / "good" / "scene_1.tif", root / "truth" / "scene_1.tif")
    assert single.overall["scene_1"].n == truth[1].size
    (tmp_path / "other").mkdir()
    write(tmp_path / "other" / "x.tif", truth[0])
    with pytest.raises(InputError, match="matched by file name"):
        evaluate_paths(tmp_path / "other", root / "truth")


def test_png_has_one_panel_per_prediction_plus_errors(rasters, tmp_path):
    root, _ = rasters
    report = evaluate_paths(root / "good", root / "truth", baselines=[root / "bad"])
    path = write_png(report, tmp_path / "plots" / "eval.png")
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 2 * img.height


def test_evaluate_cli(rasters, tmp_path):
    root, _ = rasters
    runner = CliRunner()
    assert "--baseline" in runner.invoke(app, ["evaluate", "--help"]).output
    out_json = tmp_path / "m.json"
    args = ["evaluate", str(root / "good"), str(root / "truth"), "--baseline", str(root / "bad")]
    args += [
        "--png",
        str(tmp_path / "e.png"),
        "--json",
        str(out_json),
        "--classes",
        str(root / "truth"),
    ]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "RMSE" in result.output and "By true-coherence bin" in result.output
    body = json.loads(out_json.read_text())
    assert set(body["overall"]) == {"good", "bad"}
    assert (tmp_path / "e.png").stat().st_size > 1000
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope.tif"), str(root / "truth")])
    assert result.exit_code != 0
