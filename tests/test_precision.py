"""Numeric precision: what ``auto`` picks per device capability, and fp32 staying fp32.

The capability is faked where stac-coh reads it from torch (``torch.cpu.get_capabilities``,
``torch.cuda.get_device_capability``); everything below that boundary is real. bf16 and
fp16 autocast run on any CPU (emulated where the CPU lacks them), so the predictor tests
run everywhere.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch import nn
from typer.testing import CliRunner

from stac_coh.cli import app
from stac_coh.errors import InputError, PrecisionWarning
from stac_coh.infer.network import NetworkPredictor
from stac_coh.infer.precision import choose_precision, cpu_has_native_bf16
from stac_coh.model.card import ModelCard
from stac_coh.model.preprocess import to_model_input
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weights import save_weights
from tests.user_cli import write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
FLOAT_TOL = 3e-5
"""As in test_infer: fp32 evaluations that differ only in the order of sums."""


@pytest.fixture
def fake_cpu(monkeypatch):
    """``fake_cpu(avx512_bf16=True, ...)``: the CPU flags torch reports."""

    def set_flags(**flags: bool) -> None:
        caps = {"architecture": "x86_64", "avx2": True, "avx512_f": True, **flags}
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)

    return set_flags


@pytest.fixture
def fake_gpu(monkeypatch):
    """``fake_gpu(7, 5)``: the compute capability torch reports (bf16 'supported' as on a T4)."""

    def set_capability(major: int, minor: int) -> None:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    return set_capability


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx512_bf16": True}, "bf16"),
        ({"amx_bf16": True, "amx_tile": True}, "bf16"),
        ({"avx512_bf16": True, "amx_bf16": True}, "bf16"),
        ({}, "fp32"),
        ({"avx512_fp16": True, "avx512_vnni": True}, "fp32"),
    ],
)
def test_auto_on_a_cpu_is_bf16_only_with_native_bf16(fake_cpu, flags, expected):
    fake_cpu(**flags)
    assert cpu_has_native_bf16() is (expected == "bf16")
    assert choose_precision("auto", CPU).name == expected


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        ((9, 0), "bf16"),  # H100
        ((8, 9), "bf16"),  # L4
        ((8, 0), "bf16"),  # A100
        ((7, 5), "fp16"),  # T4: bf16 'supported' but emulated
        ((7, 0), "fp16"),  # V100
        ((6, 0), "fp16"),  # P100
        ((6, 1), "fp32"),  # P4/P40: fp16 at a fraction of fp32 speed
        ((5, 2), "fp32"),
    ],
)
def test_auto_on_cuda_follows_the_compute_capability(fake_gpu, capability, expected):
    fake_gpu(*capability)
    choice = choose_precision("auto", CUDA)
    assert choice.name == expected
    assert (
        choice.autocast_dtype
        == {
            "bf16": torch.bfloat16,
            "fp16": torch.float16,
            "fp32": None,
        }[expected]
    )


def test_a_t4_runs_fp16_although_torch_says_bf16_is_supported(fake_gpu):
    fake_gpu(7, 5)
    assert torch.cuda.is_bf16_supported()  # what the old choice trusted
    assert choose_precision("auto", CUDA).name == "fp16"


def test_other_devices_stay_fp32():
    assert choose_precision("auto", torch.device("mps")).name == "fp32"


@pytest.mark.parametrize(
    ("device", "setup", "precision", "match"),
    [
        ("cpu", {}, "bf16", "no bf16 instructions"),
        ("cpu", {"avx512_bf16": True}, "fp16", "slower than fp32"),
        ("cuda", (7, 5), "bf16", "sm_75 emulates bf16"),
    ],
)
def test_an_explicit_emulated_precision_runs_but_warns(
    fake_cpu, fake_gpu, device, setup, precision, match
):
    if device == "cpu":
        fake_cpu(**setup)
    else:
        fake_gpu(*setup)
    with pytest.warns(PrecisionWarning, match=match):
        assert choose_precision(precision, torch.device(device)).name == precision


def test_native_and_fp32_choices_do_not_warn(fake_cpu, fake_gpu):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fake_cpu()
        assert choose_precision("fp32", CPU).name == "fp32"
        fake_cpu(amx_bf16=True)
        assert choose_precision("bf16", CPU).name == "bf16"
        fake_gpu(8, 0)
        assert choose_precision("bf16", CUDA).name == "bf16"
        fake_gpu(7, 5)
        assert choose_precision("fp16", CUDA).name == "fp16"


def test_unknown_precision_is_an_input_error_and_old_spellings_still_work(fake_cpu):
    fake_cpu(avx512_bf16=True)
    with pytest.raises(InputError, match="--precision must be one of auto, fp32, bf16, fp16"):
        choose_precision("half", CPU)
    assert choose_precision("float32", CPU).name == "fp32"
    assert choose_precision("bfloat16", CPU).name == "bf16"


@pytest.fixture(scope="module")
def model() -> ResUNet:
    torch.manual_seed(99)
    return ResUNet(base=4).eval()


def _scene(shape=(96, 80), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 0.08 + 0.06 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    batch = np.stack([base * rng.exponential(1.0, shape), base * rng.exponential(1.0, shape)])
    return batch[None].astype(np.float32)


def _conv_dtypes(predictor: NetworkPredictor, batch: np.ndarray) -> dict[str, torch.dtype]:
    """Output dtype of every convolution during one prediction."""
    seen: dict[str, torch.dtype] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out.dtype)
        )
        for name, module in predictor.model.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    try:
        predictor(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def test_fp32_is_the_reference_network_and_never_reduced(fake_cpu, model):
    fake_cpu(avx512_bf16=True, amx_bf16=True)  # even where bf16 is native
    predictor = NetworkPredictor(model, ModelCard(name="t"), precision="fp32")
    batch = _scene()
    assert predictor.precision.name == "fp32" and predictor.autocast_dtype is None
    assert set(_conv_dtypes(predictor, batch).values()) == {torch.float32}
    expected = model(torch.from_numpy(to_model_input(batch[0, 0], batch[0, 1]))[None])
    got = predictor(batch)[0, 0]
    np.testing.assert_allclose(got, expected[0, 0].detach().numpy(), atol=FLOAT_TOL, rtol=0)


def test_auto_without_native_bf16_is_bit_for_bit_fp32(fake_cpu, model):
    fake_cpu()
    auto = NetworkPredictor(model, ModelCard(name="t"))
    fp32 = NetworkPredictor(model, ModelCard(name="t"), precision="fp32")
    batch = _scene()
    assert auto.precision.name == "fp32"
    np.testing.assert_array_equal(auto(batch), fp32(batch))


def test_bf16_runs_the_inside_reduced_and_the_input_layer_and_heads_in_fp32(fake_cpu, model):
    fake_cpu(avx512_bf16=True)
    bf16 = NetworkPredictor(model, ModelCard(name="t"))
    fp32 = NetworkPredictor(model, ModelCard(name="t"), precision="fp32")
    batch = _scene()
    dtypes = _conv_dtypes(bf16, batch)
    full = {"encoders.0.conv1", "encoders.0.shortcut", "heads"}
    assert {n for n, d in dtypes.items() if d == torch.float32} == full
    assert {d for n, d in dtypes.items() if n not in full} == {torch.bfloat16}
    diff = np.abs(bf16(batch)[0, 0] - fp32(batch)[0, 0])
    assert 0 < diff.mean() < 0.01


def test_fp16_overflow_is_recomputed_in_fp32(model):
    loud = copy.deepcopy(model)
    with torch.no_grad():  # activations far past fp16's 65504
        loud.encoders[1].conv1.weight.mul_(1e5)
    with pytest.warns(PrecisionWarning, match="slower than fp32"):
        fp16 = NetworkPredictor(loud, ModelCard(name="loud"), precision="fp16")
    fp32 = NetworkPredictor(loud, ModelCard(name="loud"), precision="fp32")
    batch = _scene()
    with pytest.warns(PrecisionWarning, match="overflowed"):
        got = fp16(batch)
    np.testing.assert_allclose(got, fp32(batch), atol=FLOAT_TOL, rtol=0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("weights") / "random.safetensors"
    return str(save_weights(ResUNet(base=4).eval(), ModelCard(name="random-test"), path))


def _write(path: Path, data: np.ndarray) -> str:
    return str(write_raster(path, data))


def _predict(tmp_path, weights, name, *options, env=None):
    batch = _scene()
    t1 = _write(tmp_path / "t1.tif", batch[0, 0])
    t2 = _write(tmp_path / "t2.tif", batch[0, 1])
    out = tmp_path / f"{name}.tif"
    result = CliRunner().invoke(
        app,
        ["predict", t1, t2, "-o", str(out), "--weights", weights, "--dtype", "float32", *options],
        env=env,
        catch_exceptions=False,
    )
    return result, out


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_predict_precision_fp32_equals_the_default_without_native_bf16(tmp_path, weights, fake_cpu):
    fake_cpu()
    default, default_out = _predict(tmp_path, weights, "default")
    fp32, fp32_out = _predict(tmp_path, weights, "fp32", "--precision", "fp32")
    assert default.exit_code == 0 and fp32.exit_code == 0, default.output + fp32.output
    assert "cpu, fp32)" in default.output
    np.testing.assert_array_equal(_read(default_out), _read(fp32_out))


def test_predict_auto_picks_bf16_on_a_bf16_cpu_and_the_setting_overrides(
    tmp_path, weights, fake_cpu
):
    fake_cpu(amx_bf16=True)
    auto, auto_out = _predict(tmp_path, weights, "auto")
    env, env_out = _predict(tmp_path, weights, "env", env={"STAC_COH_PRECISION": "fp32"})
    assert "cpu, bf16)" in auto.output and "cpu, fp32)" in env.output
    diff = np.abs(_read(auto_out) - _read(env_out))
    assert 0 < np.nanmean(diff) < 0.01


def test_predict_refuses_an_unknown_precision_in_one_line(tmp_path):
    batch = _scene((20, 20))
    t1 = _write(tmp_path / "t1.tif", batch[0, 0])
    t2 = _write(tmp_path / "t2.tif", batch[0, 1])
    out = tmp_path / "x.tif"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stac_coh",
            "predict",
            t1,
            t2,
            "-o",
            str(out),
            "--precision",
            "int8",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "--precision must be one of auto, fp32, bf16, fp16, not 'int8'" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
