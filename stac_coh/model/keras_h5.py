"""Read a Keras weight file of the published ResUNet into the PyTorch :class:`ResUNet`.

Two HDF5 layouts exist, and the file name says nothing about which one a file uses:

* **legacy Keras 2** (the released ``model.weights.h5``): the root (or a ``model_weights``
  group, in full-model files) has the attribute ``layer_names``; each layer group lists its
  datasets in the attribute ``weight_names`` (``conv2d_1/kernel:0``...). Attributes may be
  stored as bytes or as str.
* **Keras 3** ``save_weights``: ``layers/<class>[_<k>]/vars/0..n``, groups numbered per class
  in the model's layer order. Newer files name the layer in a ``name`` attribute.

Layers are matched to the PyTorch modules by their published Keras names when the file
records them. Otherwise (old Keras 3 files, or names auto-numbered differently because the
Keras model was built twice in one process) they are matched by order: Keras lists layers in
a topological order, and every pair of same-shaped layers in this network lies on one path
(one runs before the other), so the k-th file layer of a given shape is the k-th such layer
of the network. The only exception are the two heads, which Keras lists in the order of the
output concatenation (``mean`` first).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from stac_coh.errors import WeightsError
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

Layout = Literal["keras2-legacy", "keras3"]
Kind = Literal["conv", "bn"]
Shape = tuple[int, ...]

CONV_ROLES = ("kernel", "bias")
BN_ROLES = ("gamma", "beta", "moving_mean", "moving_variance")
_ROLES_BY_KIND: dict[Kind, tuple[str, ...]] = {"conv": CONV_ROLES, "bn": BN_ROLES}
_HINT = "Is it the weight file of the Beyond Backscatter ResUNet?"


@dataclass(frozen=True)
class KerasLayer:
    """One layer's arrays as a Keras weight file stores them."""

    name: str | None
    """Keras layer name, when the file records it."""
    where: str
    """HDF5 path of the layer's group (for messages)."""
    arrays: dict[str, npt.NDArray[np.float32]] = field(repr=False)
    """Arrays by role: ``kernel``/``bias`` or ``gamma``/``beta``/``moving_*``."""

    @property
    def kind(self) -> Kind | None:
        """``conv``, ``bn``, or None for anything else."""
        roles = set(self.arrays)
        if roles == set(CONV_ROLES) and self.arrays["kernel"].ndim == 4:
            return "conv"
        if roles == set(BN_ROLES):
            return "bn"
        return None

    def shapes(self) -> dict[str, Shape]:
        """Shapes by role."""
        return {role: tuple(a.shape) for role, a in self.arrays.items()}


@dataclass(frozen=True)
class KerasFile:
    """The weight-carrying layers of a Keras H5 file, in file order."""

    path: Path
    """The file read."""
    layout: Layout
    """Which of the two layouts it uses."""
    layers: tuple[KerasLayer, ...]
    """Layers with weights, in the order Keras wrote them."""


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


def read_keras_h5(path: str | PathLike[str]) -> KerasFile:
    """Read the weight-carrying layers of a Keras H5 file in either layout."""
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"{path} is not an HDF5 file ({exc}); {_HINT}") from None
    with handle:
        root = _legacy_root(handle)
        if root is not None:
            return KerasFile(path, "keras2-legacy", tuple(_read_legacy(root)))
        for container in ("layers", "_layer_checkpoint_dependencies"):
            if isinstance(handle.get(container), h5py.Group):
                return KerasFile(path, "keras3", tuple(_read_keras3(handle[container])))
    raise WeightsError(
        f"{path} is an HDF5 file but neither a legacy Keras 2 weight file (no 'layer_names' "
        f"attribute) nor a Keras 3 save_weights file (no 'layers' group). {_HINT}"
    )


def _legacy_root(handle: h5py.File) -> h5py.Group | None:
    """Return the group holding ``layer_names`` (the root, or ``model_weights``), if any."""
    if "layer_names" in handle.attrs:
        return handle
    group = handle.get("model_weights")
    if isinstance(group, h5py.Group) and "layer_names" in group.attrs:
        return group
    return None


def _strings(value: Any) -> list[str]:
    """Decode an attribute that h5py returns as bytes, str, or an array of either."""
    items = [value] if isinstance(value, bytes | str) else list(np.asarray(value).ravel())
    return [i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in items]


def _read_legacy(root: h5py.Group) -> Iterator[KerasLayer]:
    """Yield layers listed in ``layer_names``; datasets sit at ``group[weight_name]``."""
    for name in _strings(root.attrs["layer_names"]):
        group = root.get(name)
        if not isinstance(group, h5py.Group):
            raise WeightsError(
                f"{root.file.filename} lists layer {name!r} in 'layer_names' but has no group "
                "for it; the file is truncated or corrupt."
            )
        weight_names = _strings(group.attrs.get("weight_names", []))
        arrays = {}
        for index, weight_name in enumerate(weight_names):
            dataset = group.get(weight_name)
            if not isinstance(dataset, h5py.Dataset):
                raise WeightsError(
                    f"{root.file.filename}: layer {name!r} lists weight {weight_name!r} but "
                    "the file holds no such dataset; the file is truncated or corrupt."
                )
            role = _legacy_role(weight_name, index, len(weight_names))
            arrays[role] = np.asarray(dataset, dtype=np.float32)
        if arrays:
            yield KerasLayer(name, group.name, arrays)


def _legacy_role(weight_name: str, index: int, count: int) -> str:
    """``conv2d_1/kernel:0`` -> ``kernel``; unknown names fall back to Keras' weight order."""
    role = weight_name.rsplit("/", 1)[-1].split(":", 1)[0]
    if role in CONV_ROLES or role in BN_ROLES:
        return role
    by_count = {len(CONV_ROLES): CONV_ROLES, len(BN_ROLES): BN_ROLES}.get(count)
    return by_count[index] if by_count else role


def _class_and_index(key: str) -> tuple[str, int]:
    """``conv2d_12`` -> (``conv2d``, 12); ``conv2d`` -> (``conv2d``, 0)."""
    match = re.fullmatch(r"(.+?)_(\d+)", key)
    return (match[1], int(match[2])) if match else (key, 0)


def _read_keras3(container: h5py.Group) -> Iterator[KerasLayer]:
    """Yield layers of ``layers/<class>[_<k>]/vars/<i>``, per class in creation order."""
    for key in sorted(container, key=_class_and_index):
        group = container[key]
        if not isinstance(group, h5py.Group):
            continue
        if isinstance(group.get("layers"), h5py.Group):  # a nested model
            yield from _read_keras3(group["layers"])
            continue
        variables = group.get("vars")
        if not isinstance(variables, h5py.Group) or len(variables) == 0:
            continue
        values = [np.asarray(variables[str(i)], dtype=np.float32) for i in range(len(variables))]
        roles = {len(CONV_ROLES): CONV_ROLES, len(BN_ROLES): BN_ROLES}.get(len(values))
        roles = roles or tuple(f"var{i}" for i in range(len(values)))
        raw_name = variables.attrs.get("name", group.attrs.get("name"))
        name = _strings(raw_name)[0] if raw_name is not None else None
        yield KerasLayer(name, group.name, dict(zip(roles, values, strict=True)))


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
        raise WeightsError(f"{keras_file.path} holds no 3x3 convolution kernels. {_HINT}")
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
                f"{want.label()}. {_HINT}"
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
            f"file does not name them) has no weights for layer {free[0].label()}. {_HINT}"
        )
    if unmatched:
        raise WeightsError(
            f"{keras_file.path} holds layer {unmatched[0].where} with shapes "
            f"{unmatched[0].shapes()} that the ResUNet does not have. {_HINT}"
        )
    yield from pairs


def _check_shapes(path: Path, want: ExpectedLayer, got: KerasLayer) -> None:
    """Refuse a layer whose arrays differ from the expected roles or shapes."""
    shapes = got.shapes()
    if set(shapes) != set(want.shapes):
        raise WeightsError(
            f"{path}: layer {want.label()} at {got.where} holds {sorted(shapes)}, expected "
            f"{list(want.shapes)}. {_HINT}"
        )
    for role, expected_shape in want.shapes.items():
        if shapes[role] != expected_shape:
            raise WeightsError(
                f"{path}: layer {want.label()} {role} has shape {shapes[role]}, expected "
                f"{expected_shape} (at {got.where}). {_HINT}"
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


def file_sha256(path: str | PathLike[str]) -> str:
    """Checksum of a file's bytes (weight files and what came with them)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
