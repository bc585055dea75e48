"""Boxcar, Siegert and backscatter-lookup estimators on data with known coherence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stac_coh.errors import InputError
from stac_coh.infer.estimators import (
    BackscatterLookup,
    SiegertPredictor,
    box_mean,
    boxcar_coherence,
    expected_boxcar_coherence,
    region_coherence,
    siegert_coherence,
)


def correlated_slcs(gamma: float, shape: tuple[int, int], seed: int):
    """Single-look, spatially white circular Gaussian SLC pair with coherence ``gamma``."""
    rng = np.random.default_rng(seed)

    def draw():
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)

    a, b = draw(), draw()
    return a, gamma * a + math.sqrt(1 - gamma**2) * b


def test_box_mean_of_constant_is_constant_up_to_the_edges():
    x = np.full((7, 9), 3.0)
    assert np.allclose(box_mean(x, 5), 3.0)


def test_box_mean_matches_direct_window_average():
    x = np.arange(36, dtype=float).reshape(6, 6)
    assert box_mean(x, 3)[2, 3] == pytest.approx(x[1:4, 2:5].mean())
    assert box_mean(x, 3)[0, 0] == pytest.approx(x[0:2, 0:2].mean())


def test_windows_must_be_odd():
    with pytest.raises(InputError, match="odd"):
        box_mean(np.ones((4, 4)), 4)


def test_expected_bias_at_zero_coherence_is_the_closed_form():
    # E|g| at gamma = 0 is Gamma(N) Gamma(3/2) / Gamma(N + 1/2) ~ sqrt(pi / (4N)).
    for looks in (4, 9, 25):
        exact = math.exp(math.lgamma(looks) + math.lgamma(1.5) - math.lgamma(looks + 0.5))
        assert expected_boxcar_coherence(0.0, looks) == pytest.approx(exact)
        assert exact == pytest.approx(math.sqrt(math.pi / (4 * looks)), rel=0.05)


def test_expected_bias_vanishes_with_many_looks():
    assert expected_boxcar_coherence(0.6, 2000) == pytest.approx(0.6, abs=0.002)
    assert expected_boxcar_coherence(0.6, 9) > 0.6


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.7])
def test_boxcar_recovers_constant_coherence_within_its_known_bias(gamma):
    window = 5
    z1, z2 = correlated_slcs(gamma, (150, 150), seed=1)
    estimate = boxcar_coherence(z1, z2, window)[window:-window, window:-window]
    expected = expected_boxcar_coherence(gamma, window * window)
    # ~700 independent windows: the mean estimate sits within a few 0.001 of E|g|.
    assert estimate.mean() == pytest.approx(expected, abs=0.012)
    if gamma == 0.0:
        assert estimate.mean() > 0.15  # the bias is real, and the formula predicts it


def test_boxcar_is_one_for_identical_images():
    z1, _ = correlated_slcs(0.0, (20, 20), seed=2)
    assert np.allclose(boxcar_coherence(z1, 2 * z1, 3), 1.0, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.3, 0.6, 0.9])
def test_siegert_recovers_gamma_from_single_look_intensities(gamma):
    z1, z2 = correlated_slcs(gamma, (160, 160), seed=3)
    estimate, sigma = siegert_coherence(np.abs(z1) ** 2, np.abs(z2) ** 2, 41)
    centre = estimate[40:-40, 40:-40]
    assert np.median(centre) == pytest.approx(gamma, abs=0.06)
    assert np.all((sigma >= 0) & (sigma <= 1))


def textured_region(gamma: float, looks: int, texture_std: float, seed: int):
    """Intensities of one region: ``looks`` averaged looks, times a texture both dates share."""
    z1, z2 = correlated_slcs(gamma, (looks, 400_000), seed)
    s1, s2 = (np.mean(np.abs(z) ** 2, axis=0) for z in (z1, z2))
    rng = np.random.default_rng(seed + 1)
    texture = np.exp(texture_std * rng.standard_normal(s1.size) - texture_std**2 / 2)
    return texture * s1, 3.0 * texture * s2  # a different level on date 2 changes nothing


@pytest.mark.parametrize("gamma", [0.3, 0.6, 0.9])
def test_region_coherence_removes_the_texture_siegert_reads_as_coherence(gamma):
    t1, t2 = textured_region(gamma, looks=3, texture_std=0.5, seed=11)
    corrected, texture = region_coherence(t1, t2, looks=3)
    assert corrected == pytest.approx(gamma, abs=0.02)
    assert texture == pytest.approx(math.exp(0.5**2) - 1, rel=0.15)  # lognormal variance
    siegert, _ = region_coherence(t1, t2)
    assert siegert > gamma + 0.04  # the shared texture correlates the dates by itself
    plain, none = region_coherence(*textured_region(gamma, looks=3, texture_std=0.0, seed=5))
    assert siegert > plain and none == 0.0


def test_region_coherence_needs_nine_valid_pixels():
    t = np.full(20, np.nan)
    t[:8] = 1.0
    assert all(math.isnan(v) for v in region_coherence(t, t, looks=4))


def test_siegert_ignores_nodata_and_marks_it():
    z1, z2 = correlated_slcs(0.8, (60, 60), seed=4)
    t1, t2 = np.abs(z1) ** 2, np.abs(z2) ** 2
    t1[:10] = np.nan
    t2[:, :5] = 0.0
    estimate, _ = siegert_coherence(t1, t2, 21)
    assert np.isnan(estimate[:10]).all() and np.isnan(estimate[:, :5]).all()
    assert np.isfinite(estimate[10:, 5:]).all()
    assert np.median(estimate[20:, 20:]) == pytest.approx(0.8, abs=0.1)


def test_siegert_predictor_follows_the_tile_predictor_protocol():
    z1, z2 = correlated_slcs(0.5, (32, 40), seed=5)
    batch = np.stack([np.stack([np.abs(z1) ** 2, np.abs(z2) ** 2])] * 2).astype(np.float32)
    predictor = SiegertPredictor(window=7)
    out = predictor(batch)
    assert (predictor.halo, predictor.multiple) == (3, 1)
    assert out.shape == batch.shape and out.dtype == np.float32
    assert np.array_equal(out[0], out[1])
    with pytest.raises(InputError):
        SiegertPredictor(window=6)


def test_backscatter_lookup_learns_a_brightness_rule_and_round_trips(tmp_path):
    rng = np.random.default_rng(6)
    db1 = rng.uniform(-25, 0, (80, 80))
    t1 = 10 ** (db1 / 10)
    t2 = t1.copy()
    label = np.where(db1 > -10, 0.8, 0.2)
    lookup = BackscatterLookup.fit([(t1, t2, label)], smooth=1)
    predicted = lookup.predict(t1, t2)
    away = np.abs(db1 + 10) > 1.0  # pixels not in the bin that straddles the step
    assert np.abs(predicted[away] - label[away]).max() < 1e-6
    again = BackscatterLookup.load(lookup.save(tmp_path / "lut.json"))
    assert np.array_equal(again.predict(t1, t2), predicted)
    t1[0, 0] = np.nan
    assert np.isnan(lookup.predict(t1, t2)[0, 0])
