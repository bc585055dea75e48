"""Training: the loss, patches, a few real steps, checkpoints, resume, fine-tuning, the CLI."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stac_coh.cli import app
from stac_coh.errors import InputError
from stac_coh.model.card import UncertaintyHead
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weights import load_weights
from stac_coh.science.datasets import read_dataset, split_entries
from stac_coh.science.sim_files import simulate_dataset
from stac_coh.science.train import (
    PatchSampler,
    TrainConfig,
    gaussian_nll,
    predict_image,
    train,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, scenes=3, size=48, seed=0)
    return out


def tiny_config(data: Path, out: Path, **changes) -> TrainConfig:
    config = TrainConfig(
        data=str(data),
        out=str(out),
        base=8,
        patch=32,
        batch=2,
        steps=6,
        warmup=2,
        val_patches=2,
        val_every=3,
        checkpoint_every=3,
        val_fraction=0.34,
    )
    return replace(config, **changes)


def test_gaussian_nll_matches_the_formula_and_ignores_nan():
    mapping = UncertaintyHead(log_variance_min=-4.0, log_variance_max=0.0, calibrated=True)
    out = torch.tensor([0.6, 0.2, 0.5, 0.25]).reshape(1, 2, 1, 2)  # mu=(.6,.2), head=(.5,.25)
    y = torch.tensor([0.5, math.nan]).reshape(1, 1, 1, 2)
    s = -4.0 + 0.5 * 4.0  # only the first pixel counts
    expected = 0.5 * (math.exp(-s) * 0.1**2 + s)
    assert float(gaussian_nll(out, y, mapping)) == pytest.approx(expected, rel=1e-5)
    weighted = float(gaussian_nll(out, y, mapping, beta=0.5))
    assert weighted == pytest.approx(expected * math.exp(0.5 * s), rel=1e-5)
    assert float(gaussian_nll(out, torch.full_like(y, math.nan), mapping)) == 0.0


def test_patches_are_augmented_views_of_the_data(tiny_data):
    sampler = PatchSampler(read_dataset(tiny_data), "coherence", 32)
    x, y = sampler.draw(np.random.default_rng(0), 4)
    assert x.shape == (4, 2, 32, 32) and y.shape == (4, 1, 32, 32)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert np.isfinite(y.numpy()).mean() >= 0.5
    with pytest.raises(InputError, match="multiple of 16"):
        PatchSampler(read_dataset(tiny_data), "coherence", 24)
    with pytest.raises(InputError, match="no label"):
        PatchSampler(read_dataset(tiny_data), "missing", 32)


def test_split_is_seeded_and_respects_given_splits(tiny_data):
    entries = read_dataset(tiny_data)
    train_a, val_a = split_entries(entries, 0.34, seed=1)
    _, val_b = split_entries(entries, 0.34, seed=1)
    assert [e.id for e in val_a] == [e.id for e in val_b] and len(val_a) == 1
    assert len(train_a) == 2
    fixed = [replace(e, split="val" if i == 0 else "train") for i, e in enumerate(entries)]
    _, val = split_entries(fixed, 0.5, seed=1)
    assert [e.id for e in val] == [entries[0].id]


def test_a_few_steps_reduce_the_loss(tiny_data, tmp_path):
    config = tiny_config(
        tiny_data, tmp_path / "run", steps=25, lr=3e-3, val_every=25, checkpoint_every=25
    )
    sampler = PatchSampler(read_dataset(tiny_data), "coherence", 32)
    x, y = sampler.draw(np.random.default_rng(42), 8, augment=False)
    mapping = UncertaintyHead(calibrated=True)

    def loss_of(model):
        model.train()  # batch statistics, as during training
        with torch.no_grad():
            return float(gaussian_nll(model(x), y, mapping))

    torch.manual_seed(config.seed)
    before = loss_of(ResUNet(base=8))
    result = train(config)
    _, card = load_weights(result.weights)
    assert card.uncertainty.calibrated and card.architecture.base == 8
    last = ResUNet(base=8)
    from stac_coh.science.checkpoint import load_checkpoint

    last.load_state_dict(load_checkpoint(tmp_path / "run" / "checkpoints" / "last").model_state)
    assert loss_of(last) < before
    assert result.step == 25 and math.isfinite(result.best_val_rmse)


def test_resume_continues_exactly_where_it_stopped(tiny_data, tmp_path):
    straight = train(tiny_config(tiny_data, tmp_path / "a"))

    class Interrupt(Exception):
        pass

    def stop_at_four(step: int, _loss: float) -> None:
        if step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(tiny_config(tiny_data, tmp_path / "b"), on_step=stop_at_four)
    steps_seen: list[int] = []
    resumed = train(
        tiny_config(tiny_data, tmp_path / "b"),
        resume=True,
        on_step=lambda step, _loss: steps_seen.append(step),
    )
    assert steps_seen == [4, 5, 6]  # continues after the step-3 checkpoint
    a, _ = load_weights(straight.weights)
    b, _ = load_weights(resumed.weights)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(ta, tb, atol=1e-5), name
    assert resumed.history == straight.history


def test_fine_tuning_starts_from_the_given_weights(tiny_data, tmp_path):
    first = train(tiny_config(tiny_data, tmp_path / "first", steps=3))
    # --init fixes the architecture: base 32 asked, base 8 weights given.
    tuned = train(
        tiny_config(tiny_data, tmp_path / "ft", steps=1, base=32, init=str(first.weights), lr=0.0)
    )
    a, _ = load_weights(first.weights)
    b, card = load_weights(tuned.weights)
    assert card.architecture.base == 8
    assert "fine-tuned from" in card.provenance.trained_on
    convs = [k for k in a.state_dict() if k.endswith("conv1.weight")]
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in convs)


def test_csv_datasets_train_on_a_named_label(tiny_data, tmp_path):
    entries = read_dataset(tiny_data)
    path = tmp_path / "pairs.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["t1", "t2", "hyp3_coherence", "split"])
        for i, e in enumerate(entries):
            writer.writerow([e.t1, e.t2, e.labels["boxcar"], "val" if i == 0 else "train"])
    config = tiny_config(path, tmp_path / "csv", steps=2, label="hyp3_coherence")
    assert train(config).step == 2
    with pytest.raises(InputError, match="no label"):
        train(replace(config, label="coherence"))


def test_predict_image_handles_any_size_and_nodata():
    model = ResUNet(base=8)
    t1 = np.full((20, 37), 0.1, dtype=np.float32)
    t1[0, 0] = np.nan
    out = predict_image(model, t1, t1)
    assert out.shape == (2, 20, 37)
    assert np.isnan(out[:, 0, 0]).all() and np.isfinite(out[:, 1:, 1:]).all()


def test_train_cli(tiny_data, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "--resume" in result.output and "CSV" in result.output
    args = ["train", str(tiny_data), "--out", str(tmp_path / "cli"), "--base", "8"]
    args += ["--patch", "32", "--batch", "2", "--steps", "2", "--val-every", "1", "--threads", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    _, card = load_weights(tmp_path / "cli" / "model.safetensors")
    assert "stac-coh train" in card.provenance.command and "--steps 2" in card.provenance.command
    assert "--exclude" not in card.provenance.command  # unset options are left out
    assert "--only" not in card.provenance.command


def test_rasters_off_the_grid_are_refused(tiny_data, tmp_path):
    import rasterio

    entry = read_dataset(tiny_data)[0]
    with rasterio.open(entry.labels["coherence"]) as ds:
        profile, data = ds.profile, ds.read(1)
    profile.update(width=data.shape[1] - 1)
    moved = tmp_path / "label.tif"
    with rasterio.open(moved, "w", **profile) as ds:
        ds.write(data[:, :-1], 1)
    bad = replace(entry, labels={"coherence": str(moved)})
    from stac_coh.science.datasets import load_pair

    with pytest.raises(InputError, match="not on the grid"):
        load_pair(bad, "coherence")
    with pytest.raises(InputError, match="does not exist"):
        read_dataset(tmp_path / "nowhere")


def test_widened_input_starts_where_the_weights_were():
    from stac_coh.science.train import widen_input

    torch.manual_seed(5)
    narrow = ResUNet(base=4).eval()
    wide = widen_input(narrow, 3).eval()
    x = torch.rand(1, 2, 32, 32)
    with torch.no_grad():
        same = wide(torch.cat([x, torch.ones(1, 1, 32, 32)], dim=1))
        assert torch.allclose(same, narrow(x), atol=1e-6)
    with pytest.raises(InputError, match="input channels"):
        widen_input(wide, 2)


def test_calibration_and_nodata_augmentation(tiny_data):
    from stac_coh.model.preprocess import preset
    from stac_coh.science.sampler import Augmentation

    entries = read_dataset(tiny_data)
    aug = Augmentation(gain_db=6.0, relative_db=1.5, ramp_db=2.0, nodata=1.0)
    sampler = PatchSampler(entries, "coherence", 32, preset("wide-masked"), aug)
    plain = PatchSampler(entries, "coherence", 32, preset("wide-masked"))
    x, y = sampler.draw(np.random.default_rng(0), 6)
    x0, _ = plain.draw(np.random.default_rng(0), 6, augment=False)
    assert x.shape == (6, 3, 32, 32)
    invalid = x[:, 2] == 0
    assert bool(invalid.any())  # every patch got a nodata edge in one date
    assert torch.isnan(y[:, 0][invalid]).all()  # and no label there
    assert torch.all(x[:, :2][invalid.unsqueeze(1).expand(-1, 2, -1, -1)] == 0)
    assert float(x[:, :2].min()) < float(x0[:, :2].min()) or float(x[:, :2].max()) > float(
        x0[:, :2].max()
    )


def test_held_out_settings_are_left_out_of_training(tmp_path):
    from stac_coh.science.randomize import simulate_randomized

    data = tmp_path / "rand"
    simulate_randomized(data, scenes=5, size=96, seed=40)
    entries = read_dataset(data)
    fields = [e for e in entries if e.extra["domain"]["generator"] == "fields"]
    config = tiny_config(
        data, tmp_path / "loso", steps=1, exclude="generator-fields", input_mode="wide-masked"
    )
    assert 0 < len(fields) < len(entries), "seed 40 draws both generators"
    result = train(config)
    _, card = load_weights(result.weights)
    assert "without held-out settings generator-fields" in card.provenance.trained_on
    assert card.preprocessing.channel_order == ("t1", "t2", "valid")
    only = train(replace(config, out=str(tmp_path / "only"), exclude="", only="generator-fields"))
    _, card = load_weights(only.weights)
    assert "only the scenes of settings generator-fields" in card.provenance.trained_on


def test_only_needs_scenes_with_a_domain_record(tiny_data, tmp_path):
    args = ["train", str(tiny_data), "--out", str(tmp_path / "o"), "--only", "looks-1.5-2.5"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, InputError)  # exit code 2 through stac_coh.cli.main
    assert "looks-1.5-2.5" in str(result.exception) and "--randomize" in str(result.exception)
    assert "training" not in result.output  # refused before the progress bar starts
    assert not (tmp_path / "o" / "model.safetensors").exists()
