"""Inputs the net cannot misread, the input-domain guard, test-time views and recalibration."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from stac_coh.errors import InputDomainWarning, InputError
from stac_coh.infer.engine import NetworkPredictor, predict_array, predict_to_cogs
from stac_coh.load.file_pair import ArrayPairReader
from stac_coh.model.card import ModelCard, TrainingDomain, UncertaintyHead
from stac_coh.model.domain import (
    assess_reader,
    check_domain,
    digamma,
    estimate_domain,
    looks_from_log_gap,
)
from stac_coh.model.preprocess import FLOAT32_EPS, Preprocessing, preset, to_model_input
from stac_coh.model.resunet import ResUNet
from stac_coh.model.uncertainty import ViewEnsemble, combine, view_components
from stac_coh.model.weights import load_weights, save_weights
from stac_coh.science.calibrate import Components, coverage, fit_uncertainty, spearman
from stac_coh.science.speckle import SpeckleModel, detect_pair
from tests.stac_validation import validation_errors

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDE = preset("wide-masked")


def gamma_speckle(looks: int, shape=(192, 192), level=0.05, seed=0):
    """Independent L-look gamma speckle around ``level`` (linear power)."""
    rng = np.random.default_rng(seed)
    return (level * rng.gamma(looks, 1.0 / looks, shape)).astype(np.float32)


def test_published_preprocessing_is_unchanged():
    t1 = np.array([[0.0, 1e-3, 0.1, 1.0, 5.0, np.nan]], np.float32)
    x = to_model_input(t1, t1)
    db = 10 * np.log10(np.nan_to_num(t1, nan=0.0) + np.float32(FLOAT32_EPS))
    assert np.allclose(x[0], np.clip(db, -20, 0) / 20 + 1, atol=1e-6)
    assert x.shape == (2, 1, 6)
    card = ModelCard(name="x").to_dict()["preprocessing"]
    assert card == {
        "db_min": -20.0,
        "db_max": 0.0,
        "channel_order": ["t1", "t2"],
        "input_scale": "linear",
        "model_scale": "db_clipped_unit",
    }


def test_wide_masked_input_keeps_levels_and_marks_nodata():
    t1 = np.array([[1e-4, 1e-3, 1.0, 10.0, 0.01]], np.float32)
    t2 = np.array([[1e-4, 1e-3, 1.0, 10.0, np.nan]], np.float32)
    x = to_model_input(t1, t2, WIDE)
    assert x.shape == (3, 1, 5)
    assert x[0, 0, :4] == pytest.approx(
        [-1.0, -0.5, 1.0, 1.5], abs=1e-3
    )  # (dB + 20) / 20; eps at -40 dB
    assert x[2, 0].tolist() == [1, 1, 1, 1, 0]
    assert x[0, 0, 4] == 0 and x[1, 0, 4] == 0  # nodata reads 0 in both images, flagged
    gained = to_model_input(t1 * 2, t2 * 2, WIDE)  # +3 dB: a pure shift, nothing clipped
    assert np.allclose((gained - x)[:2, 0, :4], 10 * np.log10(2) / 20, atol=1e-3)
    with pytest.raises(InputError, match="model_scale"):
        to_model_input(t1, t2, Preprocessing(model_scale="sqrt"))
    with pytest.raises(InputError, match="channel_order"):
        to_model_input(t1, t2, Preprocessing(channel_order=("t1", "vh")))
    assert "valid" in WIDE.describe() and "[-45.0, 15.0]" in WIDE.describe()


def test_cards_round_trip_the_new_fields():
    domain = TrainingDomain(looks=(1.2, 9.0), level_db=(-25.0, 0.0), relative_gain_db=(-2, 2))
    unc = UncertaintyHead(calibrated=True, views=2, head_scale=1.3, spread_scale=2.0, floor=0.01)
    card = ModelCard(name="c", preprocessing=WIDE, uncertainty=unc, training_domain=domain)
    again = ModelCard.from_json(card.to_json())
    assert again == card
    old = ModelCard.from_dict({"name": "round-1 card"})  # cards without the fields
    assert old.training_domain == TrainingDomain() and old.uncertainty.views == 1


def test_digamma_and_the_log_gap_inverse():
    assert digamma(1.0) == pytest.approx(-0.5772156649, abs=1e-9)
    assert digamma(0.5) == pytest.approx(-1.9635100260, abs=1e-9)
    for looks in (1.0, 2.5, 4.4, 8.0):
        gap = math.log(looks) - digamma(looks)
        assert looks_from_log_gap(gap) == pytest.approx(looks, rel=1e-6)


@pytest.mark.parametrize("looks", [2, 5])
def test_guard_measures_looks_level_and_relative_gain(looks):
    t1 = gamma_speckle(looks, seed=1)
    t2 = gamma_speckle(looks, seed=2) * np.float32(10**0.1)  # +1 dB
    t2[:20] = np.nan
    estimate = estimate_domain(t1, t2)
    assert estimate.looks == pytest.approx(looks, rel=0.25)
    assert estimate.level_db == pytest.approx(-13.0 - 10 * np.log10(looks) * 0, abs=1.5)
    assert estimate.relative_gain_db == pytest.approx(1.0, abs=0.2)
    assert estimate.pixels == 172 * 192


def test_guard_tells_correlated_few_look_speckle_from_grd_like():
    ones = np.ones((192, 192))
    few = SpeckleModel(2, "sinc", (2.0, 2.0), 1.0, (2.0, 2.0))  # ~1.9 looks, correlated
    grd = SpeckleModel(3, "gaussian", (1.5, 1.5), 1.0, (4.0, 4.0))  # ~5 looks
    measured = []
    for model in (few, grd):
        t1, t2, _ = detect_pair(ones, ones, np.full(ones.shape, 0.4), model, (0, 0), rng(3))
        measured.append(estimate_domain(t1, t2).looks / model.looks())
    assert all(0.7 < m < 1.35 for m in measured)


def rng(seed):
    return np.random.default_rng(seed)


def test_check_names_what_is_outside():
    domain = TrainingDomain(looks=(3, 6.5), level_db=(-18, -5), relative_gain_db=(-1.5, 1.5))
    inside = check_domain(estimate_domain(gamma_speckle(4), gamma_speckle(4, seed=5)), domain)
    assert inside.ok and inside.properties()["coh:input_in_training_domain"] is True
    few = check_domain(estimate_domain(gamma_speckle(1), gamma_speckle(1, seed=5) * 3), domain)
    assert not few.ok
    assert any("looks" in s for s in few.outside) and any("relative" in s for s in few.outside)
    props = few.properties()
    assert props["coh:input_in_training_domain"] is False
    assert props["coh:input_relative_gain_db"] == pytest.approx(4.8, abs=0.3)
    json.dumps(props)


def test_reader_guard_warns_and_the_summary_and_item_carry_it(tmp_path):
    torch.manual_seed(0)
    card = ModelCard(name="tiny", training_domain=TrainingDomain(looks=(3, 6)))
    predictor = NetworkPredictor(ResUNet(base=4).eval(), card)
    t1, t2 = gamma_speckle(1, (160, 150)), gamma_speckle(1, (160, 150), seed=9)
    reader = ArrayPairReader(t1, t2)
    with pytest.warns(InputDomainWarning, match="looks"):
        check = assess_reader(reader, card)
    assert check.estimate.looks < 2
    with pytest.warns(InputDomainWarning):
        summary = predict_to_cogs(reader, predictor, tmp_path / "c.tif")
    assert summary.domain is not None and not summary.domain.ok
    item = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": "x",
        "geometry": None,
        "properties": {"datetime": "2024-01-01T00:00:00Z", **summary.domain.properties()},
        "links": [],
        "assets": {},
    }
    assert validation_errors(item) == []  # plain coh: properties, JSON-ready
    calm = ArrayPairReader(gamma_speckle(4, (160, 150)), gamma_speckle(4, (160, 150), seed=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputDomainWarning)
        assert assess_reader(calm, card).ok


def test_one_plain_view_is_the_network_itself():
    torch.manual_seed(1)
    net = ResUNet(base=4, in_channels=3).eval()
    x = torch.rand(1, 3, 32, 48)
    plain = UncertaintyHead(calibrated=True)
    with torch.no_grad():
        assert torch.allclose(ViewEnsemble(net, plain)(x), net(x), atol=1e-6)


def test_the_ensemble_exposes_the_heads_inference_watches():
    from stac_coh.model.fused import InferenceResUNet

    net = InferenceResUNet(ResUNet(base=4).eval())
    assert ViewEnsemble(net, UncertaintyHead(calibrated=True, views=2)).heads is net.heads
    plain = ResUNet(base=4).eval()
    assert ViewEnsemble(plain, UncertaintyHead(calibrated=True)).heads is plain.mean_head


def test_views_average_means_and_their_spread_raises_sigma():
    torch.manual_seed(2)
    net = ResUNet(base=4).eval()
    x = torch.rand(2, 2, 32, 32)
    two = UncertaintyHead(calibrated=True, views=2, spread_scale=3.0)
    with torch.no_grad():
        means, variances = view_components(net, x, two, 2)
        swapped = net(torch.flip(x[:, [1, 0]], [2, 3])).flip([2, 3])
        assert torch.allclose(means[1], swapped[:, :1], atol=1e-6)
        mean, total = combine(means, variances, two)
        assert torch.allclose(mean, means.mean(0))
        assert torch.all(total >= variances.mean(0) - 1e-9)
        out = ViewEnsemble(net, two)(x)
    span = two.log_variance_max - two.log_variance_min
    expected = (torch.log(total) - two.log_variance_min) / span
    assert torch.allclose(out[:, 1:], expected.clamp(0, 1), atol=1e-5)


def test_predictor_runs_the_card_views(tmp_path):
    torch.manual_seed(3)
    model = ResUNet(base=4, in_channels=3).eval()
    card = ModelCard(
        name="views",
        preprocessing=WIDE,
        uncertainty=UncertaintyHead(calibrated=True, views=2, spread_scale=2.0),
    )
    path = save_weights(model, card, tmp_path / "w.safetensors")
    loaded, loaded_card = load_weights(path)
    assert loaded_card.uncertainty.views == 2 and loaded.in_channels == 3
    t1, t2 = gamma_speckle(4, (64, 64)), gamma_speckle(4, (64, 64), seed=1)
    t2[:5] = np.nan
    two = predict_array(t1, t2, NetworkPredictor(loaded, loaded_card))
    one_card = replace(loaded_card, uncertainty=UncertaintyHead(calibrated=True))
    one = predict_array(t1, t2, NetworkPredictor(loaded, one_card))
    assert np.isnan(two[:, :5]).all() and np.isfinite(two[:, 5:]).all()
    assert not np.allclose(two[0], one[0])  # the second view changes the mean
    no_spread = replace(loaded_card.uncertainty, spread_scale=0.0)
    head_only = predict_array(
        t1, t2, NetworkPredictor(loaded, replace(loaded_card, uncertainty=no_spread))
    )
    assert np.allclose(head_only[0], two[0], atol=1e-6, equal_nan=True)
    assert (two[1, 5:] >= head_only[1, 5:] * 0.999).all()  # the views' spread adds variance
    assert (two[1, 5:] > head_only[1, 5:] * 1.01).mean() > 0.5


def test_recalibration_reaches_68_percent_and_ranks():
    r = rng(4)
    n = 40_000
    head = r.uniform(0.02, 0.1, n) ** 2  # the head's variance, too small by 2x
    spread = r.uniform(0.0, 0.05, n) ** 2
    true_sigma = np.sqrt(4 * head + 2 * spread)
    truth = r.uniform(0, 1, n)
    comp = Components(truth, truth + r.normal(0, true_sigma), head, spread)
    fitted = fit_uncertainty(comp, UncertaintyHead(calibrated=True), views=2)
    assert fitted.head_scale == pytest.approx(2.0, rel=0.1)
    assert fitted.spread_scale == pytest.approx(np.sqrt(2), rel=0.2)
    sigma = comp.sigma(fitted)
    assert coverage(sigma, comp.mean - comp.truth) == pytest.approx(0.683, abs=0.01)
    assert spearman(sigma, np.abs(comp.mean - comp.truth)) > 0.2
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)


def test_published_weights_keep_their_preprocessing_and_get_a_guard(tmp_path):
    from stac_coh.model.preprocess import PRESETS
    from tests.keras_files import randomise_, write_legacy

    keras = write_legacy(randomise_(ResUNet(base=4)), tmp_path / "model.weights.h5")
    model, card = load_weights(keras)
    assert card.preprocessing == PRESETS["published"] and model.in_channels == 2
    assert not card.uncertainty.calibrated and card.uncertainty.views == 1
    assert card.training_domain == TrainingDomain()  # the published model's assumed domain
    predictor = NetworkPredictor(model, card)
    assert isinstance(predictor.model, torch.nn.Module) and not isinstance(
        predictor.model, ViewEnsemble
    )
    t1, t2 = gamma_speckle(1, (128, 128)), gamma_speckle(1, (128, 128), seed=4)
    with pytest.warns(InputDomainWarning, match=card.name):
        summary = predict_to_cogs(ArrayPairReader(t1, t2), predictor, tmp_path / "c.tif")
    assert summary.domain is not None and not summary.domain.ok
