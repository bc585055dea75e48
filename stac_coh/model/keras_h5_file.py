"""Read a Keras HDF5 weight file, in either layout, into its weight-carrying layers.

Two HDF5 layouts exist, and the file name says nothing about which one a file uses:

* **legacy Keras 2** (the released ``model.weights.h5``): the root (or a ``model_weights``
  group, in full-model files) has the attribute ``layer_names``; each layer group lists its
  datasets in the attribute ``weight_names`` (``conv2d_1/kernel:0``...). Attributes may be
  stored as bytes or as str.
* **Keras 3** ``save_weights``: ``layers/<class>[_<k>]/vars/0..n``, groups numbered per class
  in the model's layer order. Newer files name the layer in a ``name`` attribute.

What the layers mean for the ResUNet is :mod:`stac_coh.model.keras_h5`'s business.
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

from stac_coh.errors import WeightsError

__all__ = [
    "BN_ROLES",
    "CONV_ROLES",
    "HINT",
    "KerasFile",
    "KerasLayer",
    "Kind",
    "Layout",
    "Shape",
    "file_sha256",
    "read_keras_h5",
]

Layout = Literal["keras2-legacy", "keras3"]
Kind = Literal["conv", "bn"]
Shape = tuple[int, ...]

CONV_ROLES = ("kernel", "bias")
BN_ROLES = ("gamma", "beta", "moving_mean", "moving_variance")
HINT = "Is it the weight file of the Beyond Backscatter ResUNet?"
"""Appended to every message about a file that is not what it should be."""


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


def read_keras_h5(path: str | PathLike[str]) -> KerasFile:
    """Read the weight-carrying layers of a Keras H5 file in either layout."""
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"{path} is not an HDF5 file ({exc}); {HINT}") from None
    with handle:
        root = _legacy_root(handle)
        if root is not None:
            return KerasFile(path, "keras2-legacy", tuple(_read_legacy(root)))
        for container in ("layers", "_layer_checkpoint_dependencies"):
            if isinstance(handle.get(container), h5py.Group):
                return KerasFile(path, "keras3", tuple(_read_keras3(handle[container])))
    raise WeightsError(
        f"{path} is an HDF5 file but neither a legacy Keras 2 weight file (no 'layer_names' "
        f"attribute) nor a Keras 3 save_weights file (no 'layers' group). {HINT}"
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


def file_sha256(path: str | PathLike[str]) -> str:
    """Checksum of a file's bytes (weight files and what came with them)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
