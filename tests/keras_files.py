"""Legacy Keras 2 weight files written from a PyTorch ResUNet with h5py (no Keras needed).

The layer names are spelled out here from MODEL.md, independently of stac_coh.model.keras_h5, so
these files test the importer rather than mirror it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
from torch import nn

from stac_coh.model.resunet import ResUNet

Arrays = list[tuple[str, np.ndarray]]

UPSAMPLING_NAMES = (
    "upsampling_256-128",
    "upsampling_128-64",
    "upsampling_64-32",
    "upsampling_32-16",
)


def _suffix(base: str, index: int) -> str:
    return base if index == 0 else f"{base}_{index}"


def _conv(conv: nn.Conv2d) -> Arrays:
    kernel = conv.weight.detach().numpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
    return [("kernel", kernel), ("bias", conv.bias.detach().numpy())]


def _bn(bn: nn.BatchNorm2d) -> Arrays:
    return [
        ("gamma", bn.weight.detach().numpy()),
        ("beta", bn.bias.detach().numpy()),
        ("moving_mean", bn.running_mean.numpy()),
        ("moving_variance", bn.running_var.numpy()),
    ]


def keras_layers(model: ResUNet) -> dict[str, Arrays]:
    """Published Keras layer name -> (variable, array) list, for every layer with weights."""
    out: dict[str, Arrays] = {}
    for b, block in enumerate(model.residual_blocks()):
        out[_suffix("conv2d", 3 * b)] = _conv(block.shortcut)
        out[_suffix("conv2d", 3 * b + 1)] = _conv(block.conv1)
        out[_suffix("conv2d", 3 * b + 2)] = _conv(block.conv2)
        out[_suffix("batch_normalization", 2 * b)] = _bn(block.bn1)
        out[_suffix("batch_normalization", 2 * b + 1)] = _bn(block.bn2)
    for name, up in zip(UPSAMPLING_NAMES, model.up_convs, strict=True):
        out[name] = _conv(up.conv)
    out["mean"] = _conv(model.mean_head)
    out["log_variance"] = _conv(model.log_variance_head)
    return out


def randomise_(model: ResUNet, seed: int = 0) -> ResUNet:
    """Random biases and BatchNorm statistics, so every tensor matters."""
    generator = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.weight.data[:] = _t(generator.uniform(0.6, 1.4, n))
            module.bias.data[:] = _t(generator.normal(0, 0.2, n))
            module.running_mean[:] = _t(generator.normal(0, 0.3, n))
            module.running_var[:] = _t(generator.uniform(0.5, 2.0, n))
        elif isinstance(module, nn.Conv2d):
            module.bias.data[:] = _t(generator.normal(0, 0.05, module.out_channels))
    return model


def _t(values: np.ndarray) -> object:
    import torch

    return torch.from_numpy(values.astype(np.float32))


def write_legacy(
    model: ResUNet,
    path: Path,
    *,
    attrs: Literal["bytes", "str"] = "bytes",
    full_model: bool = False,
    drop: str | None = None,
    edit: Callable[[str, str, np.ndarray], np.ndarray] | None = None,
) -> Path:
    """Write ``model`` in the legacy Keras 2 layout; ``drop``/``edit`` break it on purpose."""

    def encode(values: list[str]) -> object:
        return np.array([v.encode() for v in values], dtype="S") if attrs == "bytes" else values

    layers = {k: v for k, v in keras_layers(model).items() if k != drop}
    names = ["input_layer", *layers, "concatenate_4"]  # weightless layers exist in real files
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if full_model else handle
        root.attrs["layer_names"] = encode(names)
        for name in names:
            group = root.create_group(name)
            variables = layers.get(name, [])
            weight_names = [f"{name}/{var}:0" for var, _ in variables]
            group.attrs["weight_names"] = encode(weight_names)
            for weight_name, (var, array) in zip(weight_names, variables, strict=True):
                data = edit(name, var, array) if edit else array
                group.create_dataset(weight_name, data=np.asarray(data, dtype=np.float32))
    return path
