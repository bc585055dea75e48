"""The converted PyTorch model reproduces a true Keras 3 model of the published graph.

One Keras model (torch backend, base 32, random biases and BatchNorm statistics) is built
per session and written in both layouts: the legacy Keras 2 H5 layout (with h5py, from the
Keras layers' weights) and Keras 3 ``save_weights``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from stac_coh.errors import WeightsError
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weights import import_keras, load_weights, model_tensors
from tests import keras_resunet

# Keras 3.15 on NumPy 2 warns about its own __array__; nothing stac-coh can act on.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")

SIZES = [(128, 128), (256, 192)]
TOLERANCE = 1e-4


@dataclass(frozen=True)
class KerasReference:
    legacy: Path
    keras3: Path
    inputs: dict[tuple[int, int], np.ndarray]
    """NHWC inputs by (H, W)."""
    outputs: dict[tuple[int, int], np.ndarray]
    """Keras outputs (NHWC) by (H, W)."""
    count_params: int


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> KerasReference:
    import keras

    keras.utils.set_random_seed(7)
    model = keras_resunet.build_keras_resunet(base=32)
    keras_resunet.randomise(model, seed=7)
    folder = tmp_path_factory.mktemp("keras")
    legacy = keras_resunet.write_legacy_h5(model, folder / "published-layout.h5")
    keras3 = folder / "model.weights.h5"
    model.save_weights(keras3)
    rng = np.random.default_rng(3)
    inputs = {hw: rng.uniform(0, 1, (2, *hw, 2)).astype(np.float32) for hw in SIZES}
    outputs = {hw: keras.ops.convert_to_numpy(model(x, training=False)) for hw, x in inputs.items()}
    return KerasReference(legacy, keras3, inputs, outputs, model.count_params())


def _torch_outputs(model: ResUNet, x_nhwc: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = model(torch.from_numpy(x_nhwc).permute(0, 3, 1, 2))
    return y.permute(0, 2, 3, 1).numpy()


def _copy(src: Path, dst: Path, edit: Callable[[h5py.File], None]) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as handle:
        edit(handle)
    return dst


def test_reference_is_not_degenerate(reference: KerasReference) -> None:
    for y in reference.outputs.values():
        # Saturated sigmoids would make any comparison trivially pass.
        assert ((y > 0.02) & (y < 0.98)).mean() > 0.5
        assert float(y[..., 0].std()) > 1e-3


def test_parameter_count_matches_keras(reference: KerasReference) -> None:
    with torch.device("meta"):
        model = ResUNet(base=32)
    trainable = sum(p.numel() for p in model.parameters())
    moving = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("_mean", "_var")))
    assert trainable + moving == reference.count_params


@pytest.mark.parametrize("layout", ["legacy", "keras3"])
def test_pytorch_reproduces_keras(reference: KerasReference, layout: str) -> None:
    path = reference.legacy if layout == "legacy" else reference.keras3
    model, card = load_weights(path)
    expected_layout = "legacy Keras 2" if layout == "legacy" else "Keras 3 save_weights"
    assert expected_layout in card.provenance.notes
    assert "matched by name" in card.provenance.notes
    for hw in SIZES:
        got = _torch_outputs(model, reference.inputs[hw])
        assert got.shape == reference.outputs[hw].shape == (2, *hw, 2)
        np.testing.assert_allclose(got, reference.outputs[hw], atol=TOLERANCE, rtol=0)


def test_batchnorm_statistics_matter(reference: KerasReference) -> None:
    """Dropping the moving statistics breaks parity, so the test above can fail."""
    model, _ = load_weights(reference.legacy)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
    hw = SIZES[0]
    diff = np.abs(_torch_outputs(model, reference.inputs[hw]) - reference.outputs[hw]).max()
    assert diff > 100 * TOLERANCE


def _strip_names(handle: h5py.File) -> None:
    def visit(_name: str, obj: object) -> None:
        if isinstance(obj, h5py.Group) and "name" in obj.attrs:
            del obj.attrs["name"]

    handle.visititems(visit)


def _renumber_names(handle: h5py.File) -> None:
    """Names as a second model built in the same process would get (conv2d_27, ...)."""
    offsets = {"conv2d": 27, "batch_normalization": 18}

    def visit(_name: str, obj: object) -> None:
        if isinstance(obj, h5py.Group) and "name" in obj.attrs:
            name = str(obj.attrs["name"])
            match = re.fullmatch(r"(conv2d|batch_normalization)(?:_(\d+))?", name)
            if match:
                obj.attrs["name"] = f"{match[1]}_{int(match[2] or 0) + offsets[match[1]]}"

    handle.visititems(visit)


@pytest.mark.parametrize("edit", [_strip_names, _renumber_names], ids=["no-names", "renumbered"])
def test_keras3_matched_by_order(
    reference: KerasReference, tmp_path: Path, edit: Callable[[h5py.File], None]
) -> None:
    named, _ = import_keras(reference.keras3)
    path = _copy(reference.keras3, tmp_path / "edited.weights.h5", edit)
    model, card = import_keras(path)
    assert "matched by order" in card.provenance.notes
    # Identical tensors to the by-name import, whose outputs match Keras (test above).
    ours, theirs = model_tensors(model), model_tensors(named)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def _group_named(handle: h5py.File, name: str) -> h5py.Group:
    for key, group in handle["layers"].items():
        if group.get("vars") is not None and group["vars"].attrs.get("name") == name:
            return handle["layers"][key]
    raise KeyError(name)


def test_keras3_wrong_shape_is_refused(reference: KerasReference, tmp_path: Path) -> None:
    def shrink(handle: h5py.File) -> None:
        variables = _group_named(handle, "conv2d_4")["vars"]
        kernel = variables["0"][...]
        del variables["0"]
        variables["0"] = kernel[:, :, :16, :]

    path = _copy(reference.keras3, tmp_path / "bad.weights.h5", shrink)
    message = (
        "'conv2d_4' (PyTorch encoders.1.conv1) kernel has shape (3, 3, 16, 64), "
        "expected (3, 3, 32, 64)"
    )
    with pytest.raises(WeightsError, match=re.escape(message)):
        import_keras(path)
    unnamed = _copy(path, tmp_path / "bad-unnamed.weights.h5", _strip_names)
    with pytest.raises(WeightsError, match=re.escape(message)):
        import_keras(unnamed)


def test_keras3_missing_layer_is_refused(reference: KerasReference, tmp_path: Path) -> None:
    def drop(handle: h5py.File) -> None:
        del _group_named(handle, "log_variance")["vars"]

    path = _copy(reference.keras3, tmp_path / "short.weights.h5", drop)
    with pytest.raises(WeightsError, match=re.escape("'log_variance' (PyTorch log_variance_head)")):
        import_keras(path)
    unnamed = _copy(path, tmp_path / "short-unnamed.weights.h5", _strip_names)
    with pytest.raises(WeightsError, match=r"matched by order.*'log_variance'"):
        import_keras(unnamed)
