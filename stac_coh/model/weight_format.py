"""stac-coh's weight file format: safetensors tensors plus the model card, with a checksum.

**Our format** is a safetensors file holding the ResUNet ``state_dict`` tensors (floating
point only; BatchNorm's ``num_batches_tracked`` counters are left out), float32 or float16.
The model card travels twice: as JSON in the safetensors metadata under
:data:`CARD_METADATA_KEY` (the copy :func:`load_safetensors` reads) and in a sidecar file
``<weights file name>.card.json`` (for people and for hub pages; see :func:`card_path`).

**The checksum** (:func:`tensor_checksum`, stored as the card's ``sha256``) identifies the
numbers, not the file: sha256 over the tensors sorted by name, each contributing its name,
its shape and its values widened to little-endian float32. Re-saving the same weights gives
the same checksum; a float16 copy has its own checksum (its values are rounded), and that
float16 copy widened back to float32 keeps it. :func:`load_safetensors` verifies it.

Inputs are recognised by content, never by name (:func:`detect_format`): the HDF5 signature
means a Keras file (see :mod:`stac_coh.model.keras_h5`), a safetensors header means ours.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Literal

import h5py
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from stac_coh.constants import CARD_SUFFIX
from stac_coh.errors import InputError, WeightsError
from stac_coh.model.card import Architecture, ModelCard, Provenance
from stac_coh.model.keras_h5 import empty_resunet, file_sha256
from stac_coh.model.resunet import ResUNet

__all__ = [
    "CARD_METADATA_KEY",
    "Format",
    "card_path",
    "detect_format",
    "file_sha256",
    "load_safetensors",
    "model_tensors",
    "save_weights",
    "tensor_checksum",
]

CARD_METADATA_KEY = "stac_coh.model_card"
"""safetensors metadata key holding the model card JSON."""

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CHECKSUM_VERSION = b"stac-coh/tensors/1\n"
_SAVE_DTYPES = (torch.float32, torch.float16)
Format = Literal["safetensors", "hdf5"]


def card_path(weights_path: str | PathLike[str]) -> Path:
    """Return the sidecar card path of a weight file: ``<name>.card.json`` beside it."""
    path = Path(weights_path)
    return path.with_name(path.name + CARD_SUFFIX)


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Return the floating-point tensors of a model's state dict (what a weight file holds)."""
    return {k: v.detach() for k, v in model.state_dict().items() if v.is_floating_point()}


def tensor_checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """Return the sha256 of floating-point tensors: sorted names, shapes, float32 LE values."""
    digest = hashlib.sha256(_CHECKSUM_VERSION)
    for name in sorted(tensors):
        tensor = tensors[name]
        if not tensor.is_floating_point():
            continue
        values = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
        digest.update(f"{name}:{list(values.shape)}\n".encode())
        digest.update(values.astype("<f4", copy=False).tobytes())
    return digest.hexdigest()


def detect_format(path: str | PathLike[str]) -> Format:
    """Tell a Keras HDF5 file from a safetensors file by their first bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise WeightsError(f"Cannot read weight file {path}: {exc.strerror}.") from None
    if head.startswith(_HDF5_SIGNATURE) or h5py.is_hdf5(path):
        return "hdf5"
    # safetensors: an 8-byte little-endian header length, then a JSON object.
    if len(head) == 9 and head[8:9] == b"{" and 8 + struct.unpack("<Q", head[:8])[0] <= size:
        return "safetensors"
    raise WeightsError(
        f"{path} is neither a safetensors file nor a Keras HDF5 (.h5) weight file. Pass a file "
        "written by `stac-coh weights import-keras`, the published model.weights.h5, or "
        "hf://owner/repo."
    )


def save_weights(
    model: ResUNet,
    card: ModelCard,
    path: str | PathLike[str],
    *,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a model's tensors and card (checksum filled in) to safetensors plus a sidecar.

    Args:
        model: the network to save.
        card: its model card; ``sha256`` and ``architecture`` are set from the model.
        path: the safetensors file to write; ``<path>.card.json`` is written beside it.
        dtype: ``torch.float32`` or ``torch.float16`` (half the size, values rounded).

    Returns:
        The path written.
    """
    if dtype not in _SAVE_DTYPES:
        raise InputError(f"Weights can be saved as float32 or float16, not {dtype}.")
    path = Path(path)
    tensors = {k: v.to("cpu", dtype).contiguous() for k, v in model_tensors(model).items()}
    architecture = replace(card.architecture, base=model.base, input_channels=model.in_channels)
    card = replace(card, architecture=architecture, sha256=tensor_checksum(tensors))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    # Written aside and renamed, so an interrupted save never leaves a truncated file.
    save_file(tensors, partial, metadata={"format": "pt", CARD_METADATA_KEY: card.to_json()})
    partial.replace(path)
    card_path(path).write_text(card.to_json() + "\n", encoding="utf-8")
    return path


def load_safetensors(path: Path) -> tuple[ResUNet, ModelCard, str]:
    """Load our safetensors format; returns the model, its card and the stored dtype."""
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file: {exc}.") from None
    first = tensors.get("encoders.0.conv1.weight")
    if first is None or first.ndim != 4:
        raise WeightsError(
            f"{path} is a safetensors file but not ResUNet weights (no tensor "
            "'encoders.0.conv1.weight'); convert Keras files with `stac-coh weights import-keras`."
        )
    base, in_channels = int(first.shape[0]), int(first.shape[1])
    card = _card_of(path, metadata) or ModelCard(
        name=path.stem,
        architecture=Architecture(base=base, input_channels=in_channels),
        provenance=Provenance(
            source=str(path),
            notes="No model card came with these weights; preprocessing and tiling are defaults.",
        ),
    )
    if card.architecture.name != "resunet" or card.architecture.base != base:
        raise WeightsError(
            f"{path}: the model card says {card.architecture.name} base "
            f"{card.architecture.base}, the tensors hold resunet base {base}; the card and the "
            "tensors come from different models."
        )
    model = empty_resunet(base=base, in_channels=in_channels)
    _fill(model, tensors, path)
    checksum = tensor_checksum(tensors)
    if card.sha256 and card.sha256 != checksum:
        raise WeightsError(
            f"{path}: tensor checksum {checksum} differs from the card's {card.sha256}; the "
            "file is corrupt or was edited. Fetch or convert it again."
        )
    card = replace(card, sha256=checksum)
    model.model_card = card
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()})
    return model.eval(), card, "/".join(dtypes)


def _card_of(path: Path, metadata: Mapping[str, str]) -> ModelCard | None:
    """The card from the file's metadata, else from its sidecar, else None."""
    text = metadata.get(CARD_METADATA_KEY)
    sidecar = card_path(path)
    if text is None and sidecar.is_file():
        text = sidecar.read_text(encoding="utf-8")
    if text is None:
        return None
    try:
        return ModelCard.from_json(text)
    except (json.JSONDecodeError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: the model card is not valid JSON ({exc}).") from None


def _fill(model: ResUNet, tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Copy tensors into the model after checking names, shapes and dtypes."""
    expected = model_tensors(model)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        what = f"lacks tensor {missing[0]!r}" if missing else f"has unknown tensor {extra[0]!r}"
        raise WeightsError(
            f"{path} {what}; it does not fit the ResUNet (base {model.base}). Convert Keras "
            "files with `stac-coh weights import-keras`."
        )
    with torch.no_grad():
        for name, target in expected.items():
            tensor = tensors[name]
            if tuple(tensor.shape) != tuple(target.shape) or not tensor.is_floating_point():
                raise WeightsError(
                    f"{path}: tensor {name!r} has shape {tuple(tensor.shape)} ({tensor.dtype}), "
                    f"expected {tuple(target.shape)} (floating point)."
                )
            target.copy_(tensor.to(torch.float32))
