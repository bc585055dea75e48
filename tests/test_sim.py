"""The simulator: determinism, speckle statistics, labels, land cover and the files it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from stac_coh.cli import app
from stac_coh.science.datasets import read_dataset
from stac_coh.science.sim import (
    LandCover,
    SceneSpec,
    _speckle,
    random_shift,
    simulate_scene,
)
from stac_coh.science.sim_files import simulate_dataset


@pytest.fixture(scope="module")
def scene():
    return simulate_scene(7, SceneSpec(size=128, nodata_border=False))


def homogeneous(gamma: float, spec: SceneSpec, seed: int = 0):
    shape = (96, 96)
    ones = np.ones(shape)
    return _speckle(ones, ones, np.full(shape, gamma), spec, np.random.default_rng(seed))


def test_same_seed_same_scene_other_seed_other_scene(scene):
    again = simulate_scene(7, SceneSpec(size=128, nodata_border=False))
    other = simulate_scene(8, SceneSpec(size=128, nodata_border=False))
    for name in ("t1", "t2", "coherence", "boxcar", "landcover"):
        assert np.array_equal(getattr(scene, name), getattr(again, name), equal_nan=True)
    assert not np.array_equal(scene.t1, other.t1)


def test_detected_images_look_like_grd_speckle():
    t1, _, _ = homogeneous(0.5, SceneSpec())
    enl = t1.mean() ** 2 / t1.var()
    assert 3.5 < enl < 6.0  # GRD/RTC-like equivalent number of looks
    assert t1.mean() == pytest.approx(1.0, abs=0.05)  # power is preserved


@pytest.mark.parametrize("gamma", [0.3, 0.8])
def test_intensity_correlation_follows_siegert(gamma):
    t1, t2, boxcar = homogeneous(gamma, SceneSpec(), seed=1)
    rho = np.corrcoef(t1.ravel(), t2.ravel())[0, 1]
    assert rho == pytest.approx(gamma**2, abs=0.05)
    assert boxcar.mean() == pytest.approx(gamma, abs=0.05)  # high-looks label, small bias


def test_misregistration_decorrelates_speckle_but_not_the_label():
    aligned = homogeneous(0.8, SceneSpec(), seed=2)
    shifted = homogeneous(0.8, SceneSpec(misregistration=(0.3, 0.3)), seed=2)
    rho = [np.corrcoef(t1.ravel(), t2.ravel())[0, 1] for t1, t2, _ in (aligned, shifted)]
    assert rho[1] < rho[0] - 0.1
    assert np.array_equal(aligned[2], shifted[2])  # labels come from coregistered SLCs
    assert np.array_equal(aligned[0], shifted[0])  # t1 is untouched


def test_land_cover_classes_have_typical_brightness_and_coherence():
    pixels: dict[LandCover, list[tuple[np.ndarray, np.ndarray]]] = {}
    for seed in range(10):  # small scenes hold one or two zones each; pool several
        sc = simulate_scene(seed, SceneSpec(size=96, nodata_border=False))
        for cls in LandCover:
            m = sc.landcover == cls
            if m.any():
                pixels.setdefault(cls, []).append((10 * np.log10(sc.t1[m]), sc.coherence[m]))
        assert np.all((sc.coherence >= 0) & (sc.coherence < 1))
    stats = {
        cls: (
            np.median(np.concatenate([d for d, _ in v])),
            np.mean(np.concatenate([c for _, c in v])),
        )
        for cls, v in pixels.items()
    }
    assert set(stats) == set(LandCover) - {LandCover.NODATA}
    assert stats[LandCover.WATER][0] < -15 and stats[LandCover.WATER][1] < 0.15
    assert stats[LandCover.URBAN][0] > stats[LandCover.FOREST][0] > stats[LandCover.WATER][0]
    assert stats[LandCover.URBAN][1] > stats[LandCover.FOREST][1]
    assert stats[LandCover.BARE][1] > stats[LandCover.FOREST][1]


def test_nodata_borders_are_consistent_across_rasters():
    for seed in range(6):
        sc = simulate_scene(seed, SceneSpec(size=64))
        either = np.isnan(sc.t1) | np.isnan(sc.t2)
        assert np.array_equal(np.isnan(sc.coherence), either)
        assert np.array_equal(sc.landcover == LandCover.NODATA, either)
    assert any(np.isnan(simulate_scene(s, SceneSpec(size=64)).t1).any() for s in range(6))


def test_random_shift_stays_within_the_limit():
    rng = np.random.default_rng(0)
    lengths = [np.hypot(*random_shift(rng, 0.4)) for _ in range(50)]
    assert max(lengths) <= 0.4 and min(lengths) >= 0
    assert random_shift(rng, 0.0) == (0.0, 0.0)


def test_simulate_dataset_writes_georeferenced_rasters_and_an_index(tmp_path):
    index = simulate_dataset(tmp_path, scenes=2, size=32, seed=5, misregistration=0.2)
    entries = read_dataset(tmp_path)
    assert [e.id for e in entries] == ["scene_00005", "scene_00006"]
    assert set(entries[0].labels) == {"coherence", "boxcar"}
    body = json.loads(index.read_text())
    assert np.hypot(*body["scenes"][0]["misregistration"]) <= 0.2
    with rasterio.open(entries[0].t1) as ds:
        assert ds.crs.to_epsg() == 32610
        assert ds.res == (10.0, 10.0)
        assert ds.dtypes[0] == "float32"
        t1 = ds.read(1)
    expected = simulate_scene(
        5, SceneSpec(size=32, misregistration=tuple(body["scenes"][0]["misregistration"]))
    )
    assert np.array_equal(t1, expected.t1, equal_nan=True)
    with rasterio.open(entries[1].t1) as a, rasterio.open(entries[0].t1) as b:
        assert a.bounds != b.bounds  # scenes never overlap


def test_simulate_cli(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0 and "--misregistration" in result.output
    result = runner.invoke(app, ["simulate", str(tmp_path), "--scenes", "1", "--size", "32"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "coherence" / "scene_00000.tif").exists()
