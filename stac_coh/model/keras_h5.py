"""Fill the PyTorch :class:`ResUNet` from a Keras weight file of the published model.

The file is read by :mod:`stac_coh.model.keras_h5_file` (either HDF5 layout). Layers are
matched to the PyTorch modules by their published Keras names when the file
records them. Otherwise (old Keras 3 files, or names auto-numbered differently because the
Keras model was built twice in one process) they are matched by order: Keras lists layers in
a topological order, and every pair of same-shaped layers in this network lies on one path
(one runs before the other), so the k-th file layer of a given shape is the k-th such layer
of the network. The only exception are the two heads, which Keras lists in the order of the
output concatenation (``mean`` first).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from stac_coh.errors import WeightsError
from stac_coh.model.keras_h5_file import (
    BN_ROLES,
    CONV_ROLES,
    HINT,
    KerasFile,
    KerasLayer,
    Kind,
    Layout,
    Shape,
    file_sha256,
    read_keras_h5,
)
from stac_coh.model.resunet import UPSAMPLING_NAMES, ResUNet

__all__ = [
    "ExpectedLayer",
    "KerasFile",
    "KerasImport",
    "KerasLayer",
    "empty_resunet",
    "expected_layers",
    "file_sha256",
    "load_keras_h5",
    "read_keras_h5",
]

_ROLES_BY_KIND: dict[Kind, tuple[str, ...]] = {"conv": CONV_ROLES, "bn": BN_ROLES}


@dataclass(frozen=True)
class ExpectedLayer:
    """A Keras layer of the published model and the PyTorch module it fills."""

    keras_name: str
    """Published Keras name, e.g. ``conv2d_4`` or ``upsampling_64-32``."""
    module: str
    """PyTorch module path, e.g. ``encoders.1.conv1``."""
    kind: Kind
    """``conv`` or ``bn``."""
    shapes: dict[str, Shape]
    """Keras shapes by role (kernels HWIO)."""

    def label(self) -> str:
        """Both names, for messages."""
        return f"{self.keras_name!r} (PyTorch {self.module})"


@dataclass(frozen=True)
class KerasImport:
    """What :func:`load_keras_h5` found, for the model card."""

    layout: Layout
    """Layout of the file."""
    matched_by: Literal["name", "order"]
    """How file layers were matched to the network."""
    file_sha256: str
    """Checksum of the file's bytes."""


def expected_layers(model: ResUNet) -> list[ExpectedLayer]:
    """The model's Keras layers in a topological order (encoders, bottleneck, decoders, heads)."""
    blocks = [*(f"encoders.{i}" for i in range(4)), "bottleneck"]
    out = [layer for b, prefix in enumerate(blocks) for layer in _block_layers(model, b, prefix)]
    for level, up_name in enumerate(UPSAMPLING_NAMES):
        out.append(_conv(model, up_name, f"up_convs.{level}.conv"))
        out.extend(_block_layers(model, 5 + level, f"decoders.{level}"))
    out.append(_conv(model, "mean", "mean_head"))
    out.append(_conv(model, "log_variance", "log_variance_head"))
    return out


def _keras_name(base: str, index: int) -> str:
    """Keras auto-naming: index 0 has no suffix."""
    return base if index == 0 else f"{base}_{index}"


def _block_layers(model: ResUNet, b: int, prefix: str) -> list[ExpectedLayer]:
    """Residual block ``b``: shortcut ``conv2d_{3b}``, convs ``{3b+1}``, ``{3b+2}``, BNs."""
    return [
        _conv(model, _keras_name("conv2d", 3 * b + 1), f"{prefix}.conv1"),
        _bn(model, _keras_name("batch_normalization", 2 * b), f"{prefix}.bn1"),
        _conv(model, _keras_name("conv2d", 3 * b + 2), f"{prefix}.conv2"),
        _bn(model, _keras_name("batch_normalization", 2 * b + 1), f"{prefix}.bn2"),
        _conv(model, _keras_name("conv2d", 3 * b), f"{prefix}.shortcut"),
    ]


def _conv(model: ResUNet, keras_name: str, module: str) -> ExpectedLayer:
    """Expected Keras shapes of a Conv2D (HWIO kernel)."""
    conv = model.get_submodule(module)
    assert isinstance(conv, nn.Conv2d), module
    out_c, in_c, kh, kw = conv.weight.shape
    shapes = {"kernel": (kh, kw, in_c, out_c), "bias": (out_c,)}
    return ExpectedLayer(keras_name, module, "conv", shapes)


def _bn(model: ResUNet, keras_name: str, module: str) -> ExpectedLayer:
    """Expected Keras shapes of a BatchNormalization."""
    norm = model.get_submodule(module)
    assert isinstance(norm, nn.BatchNorm2d), module
    features = norm.num_features
    return ExpectedLayer(keras_name, module, "bn", dict.fromkeys(BN_ROLES, (features,)))


def empty_resunet(base: int = 32, in_channels: int = 2) -> ResUNet:
    """A ResUNet with uninitialised weights, for loaders that overwrite every tensor.

    He-normal initialisation of the base-32 model takes seconds on a CPU; a loader that
    replaces all weights anyway skips it by building the model on the meta device.
    """
    with torch.device("meta"):
        model = ResUNet(base=base, in_channels=in_channels)
    model = model.to_empty(device="cpu")
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()  # also zeroes num_batches_tracked, never loaded
    return model


def load_keras_h5(path: str | PathLike[str]) -> tuple[ResUNet, KerasImport]:
    """Build a ResUNet (width read from the file) holding a Keras file's weights, in eval mode."""
    keras_file = read_keras_h5(path)
    base, in_channels = _infer_width(keras_file)
    model = empty_resunet(base=base, in_channels=in_channels)
    expected = expected_layers(model)
    names = {layer.name for layer in keras_file.layers if layer.name}
    # Half the names suffice to trust them; the rest is then reported missing by name.
    by_name = len(names & {e.keras_name for e in expected}) * 2 >= len(expected)
    pairs = _match_by_name if by_name else _match_by_order
    with torch.no_grad():
        for want, got in pairs(keras_file, expected):
            _check_shapes(keras_file.path, want, got)
            _copy(model.get_submodule(want.module), want.kind, got)
    info = KerasImport(keras_file.layout, "name" if by_name else "order", file_sha256(path))
    return model.eval(), info


def _infer_width(keras_file: KerasFile) -> tuple[int, int]:
    """Base width and input channels from the first block's first 3x3 kernel (HWIO)."""
    named = [la for la in keras_file.layers if la.name == "conv2d_1" and la.kind == "conv"]
    # In any topological order the first 3x3 convolution is the first block's conv1.
    first = named or [
        la
        for la in keras_file.layers
        if la.kind == "conv" and la.arrays["kernel"].shape[:2] == (3, 3)
    ]
    if not first:
        raise WeightsError(f"{keras_file.path} holds no 3x3 convolution kernels. {HINT}")
    _kh, _kw, in_channels, base = first[0].arrays["kernel"].shape
    return int(base), int(in_channels)


def _match_by_name(
    keras_file: KerasFile, expected: list[ExpectedLayer]
) -> Iterator[tuple[ExpectedLayer, KerasLayer]]:
    """Pair each expected layer with the file layer of the same Keras name."""
    by_name = {layer.name: layer for layer in keras_file.layers if layer.name}
    for want in expected:
        got = by_name.get(want.keras_name)
        if got is None:
            raise WeightsError(
                f"{keras_file.path} ({keras_file.layout}) has no weights for layer "
                f"{want.label()}. {HINT}"
            )
        yield want, got


def _match_by_order(
    keras_file: KerasFile, expected: list[ExpectedLayer]
) -> Iterator[tuple[ExpectedLayer, KerasLayer]]:
    """Give each file layer the first unmatched expected layer of the same kind and shapes."""
    free = list(expected)
    unmatched: list[KerasLayer] = []
    pairs = []
    for got in keras_file.layers:
        want = next((w for w in free if w.kind == got.kind and w.shapes == got.shapes()), None)
        if want is None:
            unmatched.append(got)
        else:
            free.remove(want)
            pairs.append((want, got))
    if free and unmatched:
        # Both sides left over: most likely one layer whose shape is wrong; report the first.
        same_kind = [w for w in free if w.kind == unmatched[0].kind] or free
        _check_shapes(keras_file.path, same_kind[0], unmatched[0])
    if free:
        raise WeightsError(
            f"{keras_file.path} ({keras_file.layout}, layers matched by order because the "
            f"file does not name them) has no weights for layer {free[0].label()}. {HINT}"
        )
    if unmatched:
        raise WeightsError(
            f"{keras_file.path} holds layer {unmatched[0].where} with shapes "
            f"{unmatched[0].shapes()} that the ResUNet does not have. {HINT}"
        )
    yield from pairs


def _check_shapes(path: Path, want: ExpectedLayer, got: KerasLayer) -> None:
    """Refuse a layer whose arrays differ from the expected roles or shapes."""
    shapes = got.shapes()
    if set(shapes) != set(want.shapes):
        raise WeightsError(
            f"{path}: layer {want.label()} at {got.where} holds {sorted(shapes)}, expected "
            f"{list(want.shapes)}. {HINT}"
        )
    for role, expected_shape in want.shapes.items():
        if shapes[role] != expected_shape:
            raise WeightsError(
                f"{path}: layer {want.label()} {role} has shape {shapes[role]}, expected "
                f"{expected_shape} (at {got.where}). {HINT}"
            )


def _copy(module: nn.Module, kind: Kind, got: KerasLayer) -> None:
    """Copy Keras arrays into a Conv2d (HWIO -> OIHW) or a BatchNorm2d."""
    arrays = {role: torch.from_numpy(np.ascontiguousarray(a)) for role, a in got.arrays.items()}
    if kind == "conv":
        assert isinstance(module, nn.Conv2d)
        module.weight.copy_(arrays["kernel"].permute(3, 2, 0, 1))
        assert module.bias is not None  # every conv of the ResUNet has a bias
        module.bias.copy_(arrays["bias"])
        return
    assert isinstance(module, nn.BatchNorm2d)
    module.weight.copy_(arrays["gamma"])
    module.bias.copy_(arrays["beta"])
    assert module.running_mean is not None and module.running_var is not None  # tracked
    module.running_mean.copy_(arrays["moving_mean"])
    module.running_var.copy_(arrays["moving_variance"])
