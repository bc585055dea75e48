"""Domain randomisation: speckle models, landscapes, per-scene draws, held-out settings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stac_coh.errors import InputError
from stac_coh.science.datasets import read_dataset
from stac_coh.science.landscapes import GENERATORS, LandCover, make_landscape
from stac_coh.science.randomize import (
    Randomization,
    describe_spec,
    draw_spec,
    simulate_randomized,
)
from stac_coh.science.settings import (
    SETTINGS,
    calibration_randomization,
    exclude_settings,
    held_out_randomization,
    only_settings,
    select_settings,
)
from stac_coh.science.sim import SceneSpec, simulate_scene
from stac_coh.science.speckle import SpeckleModel, detect_pair, speckle_for_looks


def homogeneous(model: SpeckleModel, gamma: float = 0.5, seed: int = 0, size: int = 96):
    ones = np.ones((size, size))
    rng = np.random.default_rng(seed)
    return detect_pair(ones, ones, np.full((size, size), gamma), model, (0.0, 0.0), rng)


@pytest.mark.parametrize(
    "model",
    [
        SpeckleModel(2, "sinc", (1.5, 2.0), 0.75, (4.0, 3.5)),  # GRD-like: correlated pixels
        SpeckleModel(3, "gaussian", (2.5, 2.5), 1.0, (2.0, 2.0)),  # few looks
        SpeckleModel(4, "independent", (1.0, 1.0), 1.0, (4.0, 3.0)),
    ],
)
def test_speckle_statistics_follow_the_model(model):
    t1, t2, _ = homogeneous(model)
    assert t1.mean() == pytest.approx(1.0, abs=0.05)  # power is preserved
    assert t1.mean() ** 2 / t1.var() == pytest.approx(model.looks(), rel=0.15)
    neighbours = max(
        np.corrcoef(t1[:-1].ravel(), t1[1:].ravel())[0, 1],
        np.corrcoef(t1[:, :-1].ravel(), t1[:, 1:].ravel())[0, 1],
    )
    assert neighbours == pytest.approx(model.pixel_correlation(), abs=0.06)
    assert np.corrcoef(t1.ravel(), t2.ravel())[0, 1] == pytest.approx(0.25, abs=0.06)


@pytest.mark.parametrize("psf", ["gaussian", "sinc", "independent"])
def test_speckle_for_looks_reaches_the_target(psf):
    rng = np.random.default_rng(3)
    model = None
    while model is None:
        model = speckle_for_looks(rng, 3.0, psf=psf, oversample=3)
    assert model.looks() == pytest.approx(3.0, rel=0.05)
    assert min(model.samples_per_cell) >= 1.5 and max(model.samples_per_cell) <= 3.0


def test_shift_decorrelates_more_the_finer_the_speckle():
    fine = SpeckleModel(4, "independent", (1.0, 1.0), 1.0, (4.0, 4.0))
    coarse = SpeckleModel(2, "gaussian", (3.0, 3.0), 1.0, (4.0, 4.0))
    ones, gamma = np.ones((96, 96)), np.full((96, 96), 0.9)

    def corr(model):
        t1, t2, _ = detect_pair(ones, ones, gamma, model, (0.0, 0.4), np.random.default_rng(1))
        return np.corrcoef(t1.ravel(), t2.ravel())[0, 1]

    assert corr(fine) < corr(coarse) - 0.1


@pytest.mark.parametrize(
    ("model", "shift"),
    [
        (SpeckleModel(3, "independent", (2.0, 2.3), 1.0, (1.8, 1.4)), (0.3, -0.39)),
        (SpeckleModel(3, "gaussian", (2.0, 2.5), 1.0, (3.0, 2.5)), (0.0, 0.46)),
        (SpeckleModel(2, "sinc", (1.8, 2.4), 0.75, (2.5, 3.0)), (-0.25, 0.3)),
    ],
)
def test_shift_correlation_matches_the_simulated_pair(model, shift):
    size = 192
    ones = np.ones((size, size))
    rng = np.random.default_rng(5)
    t1, t2, _ = detect_pair(ones, ones, ones, model, shift, rng)  # coherence 1
    simulated = np.corrcoef(t1.ravel(), t2.ravel())[0, 1]
    assert model.shift_correlation(shift) == pytest.approx(simulated, abs=0.02)
    assert model.shift_correlation((0.0, 0.0)) == pytest.approx(1.0)
    assert model.shift_correlation((-shift[0], -shift[1])) == pytest.approx(
        model.shift_correlation(shift)
    )
    again = SpeckleModel.from_record(model.describe())  # what index.json keeps
    assert again.shift_correlation(shift) == pytest.approx(model.shift_correlation(shift), abs=1e-3)


@pytest.mark.parametrize(
    "model",
    [
        SpeckleModel(3, "gaussian", (2.0, 2.5), 1.0, (3.0, 2.5)),
        SpeckleModel(3, "independent", (2.0, 2.0), 1.0, (1.5, 1.5)),
    ],
)
def test_lag_correlation_says_where_a_shift_moves_the_correlation(model):
    size, shift = 192, (-0.3, 0.45)
    ones = np.ones((size, size))
    t1, t2, _ = detect_pair(ones, ones, ones, model, shift, np.random.default_rng(7))

    def simulated(dy, dx):
        a = t1[max(0, -dy) : size - max(0, dy), max(0, -dx) : size - max(0, dx)]
        b = t2[max(0, dy) : size - max(0, -dy), max(0, dx) : size - max(0, -dx)]
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    for lag in [(0, 0), (0, -1), (0, 1), (1, 0), (1, -1)]:
        assert model.lag_correlation(shift, lag) == pytest.approx(simulated(*lag), abs=0.02)
    assert model.lag_correlation(shift, (0, 0)) == model.shift_correlation(shift)
    # t2 samples the speckle at p + shift, so its correlation with t1 at p sits at p - 1
    # along a positive shift, at p + 1 along a negative one.
    assert model.lag_correlation(shift, (0, -1)) > model.lag_correlation(shift, (0, 1))
    assert model.lag_correlation(shift, (1, 0)) > model.lag_correlation(shift, (-1, 0))


def test_a_speckle_record_without_its_model_is_refused():
    with pytest.raises(InputError, match="speckle model record"):
        SpeckleModel.from_record({"psf": "sinc", "enl": 3.0})


@pytest.mark.parametrize("generator", GENERATORS)
def test_every_generator_makes_classes_and_compact_parcels(generator):
    land = make_landscape(generator, (128, 128), 60.0, 20.0, np.random.default_rng(4))
    codes = set(np.unique(land.landcover))
    assert codes <= {int(c) for c in LandCover if c != LandCover.NODATA} and len(codes) >= 2
    ids = np.unique(land.parcels)
    assert ids[0] == 0 and ids[-1] == ids.size - 1 and ids.size > 10
    for pid in ids[:20]:  # one class per parcel
        assert np.unique(land.landcover[land.parcels == pid]).size == 1


def test_gains_scale_the_images_and_leave_coherence_alone():
    base = SceneSpec(size=64, nodata_border=False)
    plain = simulate_scene(5, base)
    gained = simulate_scene(5, replace(base, gain_db=3.0, relative_gain_db=-1.0))
    ratio1, ratio2 = gained.t1 / plain.t1, gained.t2 / plain.t2
    assert np.allclose(ratio1, 10**0.3, rtol=1e-4) and np.allclose(ratio2, 10**0.2, rtol=1e-4)
    assert np.array_equal(gained.coherence, plain.coherence)
    ramped = simulate_scene(5, replace(base, ramp_db=4.0))
    db = 10 * np.log10(ramped.t1 / plain.t1)
    assert db.max() - db.min() == pytest.approx(4.0, abs=1e-3)


def test_longer_baselines_lose_coherence_and_decoupled_scenes_span_the_range():
    base = SceneSpec(size=96, nodata_border=False)
    short = simulate_scene(6, replace(base, baseline_days=6.0)).coherence
    long = simulate_scene(6, replace(base, baseline_days=48.0)).coherence
    assert np.nanmean(long) < np.nanmean(short) - 0.1
    decoupled = simulate_scene(6, replace(base, decoupled=True)).coherence
    assert np.nanmin(decoupled) < 0.15 and np.nanmax(decoupled) > 0.7


def test_nodata_edges_differ_between_dates_by_up_to_tens_of_pixels():
    spec = SceneSpec(size=128, nodata_shift_px=40.0, nodata_holes=True)
    differing = []
    for seed in range(12):
        scene = simulate_scene(seed, spec)
        differing.append(int((np.isnan(scene.t1) != np.isnan(scene.t2)).sum()))
        assert np.isnan(scene.coherence[np.isnan(scene.t1) | np.isnan(scene.t2)]).all()
    assert max(differing) > 128 * 10


def test_draws_are_reproducible_and_cover_the_ranges():
    records = [describe_spec(draw_spec(seed, 64)) for seed in range(120)]
    assert describe_spec(draw_spec(7, 64)) == records[7]
    enl = np.array([r["speckle"]["enl"] for r in records])
    assert enl.min() < 2.0 and enl.max() > 6.5 and (enl >= 1.4).all() and (enl <= 8.4).all()
    assert {r["speckle"]["psf"] for r in records} == {"gaussian", "sinc", "independent"}
    assert any(r["speckle"]["legacy"] for r in records)
    shifts = np.array([r["shift_px"] for r in records])
    assert (shifts == 0).mean() > 0.25 and shifts.max() <= 0.5
    assert {r["generator"] for r in records} == {"parcels", "fields"}
    assert {r["baseline_days"] for r in records} >= {6.0, 48.0}
    assert all(r["gain_db"] == 0 for r in records)  # training leaves gains to the sampler


@pytest.mark.parametrize("name", list(SETTINGS))
def test_test_sets_fall_in_their_setting(name):
    setting = SETTINGS[name]
    ranges = held_out_randomization(name)
    records = [describe_spec(draw_spec(seed, 64, ranges)) for seed in range(6)]
    assert all(setting.contains(r) for r in records)
    assert max(abs(r["gain_db"]) for r in records) > 1.0


def test_calibration_set_uses_the_terrain_generator_only():
    records = [describe_spec(draw_spec(s, 64, calibration_randomization())) for s in range(5)]
    assert {r["generator"] for r in records} == {"terrain"}
    assert not any(SETTINGS["generator-fields"].contains(r) for r in records)


def test_randomized_dataset_records_domains_and_settings_can_be_left_out(tmp_path):
    simulate_randomized(tmp_path, scenes=6, size=32, seed=11, randomization=Randomization())
    entries = read_dataset(tmp_path)
    assert all("enl" in e.extra["domain"]["speckle"] for e in entries)
    kept = exclude_settings(entries, ["looks-1.5-2.5"])
    assert all(e.extra["domain"]["speckle"]["enl"] >= 2.5 for e in kept)
    assert len(kept) < len(entries) or all(
        e.extra["domain"]["speckle"]["enl"] >= 2.5 for e in entries
    )
    with pytest.raises(InputError, match="Unknown held-out setting"):
        exclude_settings(entries, ["nope"])
    many = only_settings(entries, ["looks-6-8"])  # seeds 11-16 draw one such scene
    without = exclude_settings(entries, ["looks-6-8"])
    assert len(many) == 1 and many[0].extra["domain"]["speckle"]["enl"] > 6.0
    assert sorted(e.id for e in many + without) == sorted(e.id for e in entries)
    assert select_settings(entries, ["looks-6-8"], []) == without
    assert select_settings(entries, [], ["looks-6-8"]) == many
    with pytest.raises(InputError, match="No training scene falls in looks-6-8"):
        select_settings(entries, ["looks-6-8"], ["looks-6-8"])
    with pytest.raises(InputError, match="simulate more scenes"):
        only_settings(entries, ["looks-1.5-2.5"])  # none of seeds 11-16 has so few looks
