"""Weights: load whatever the user named, describe it, import Keras files.

What ``--weights`` accepts and where each kind comes from is in
:mod:`stac_coh.model.weight_sources` (``auto``, ``bundled``, ``hf://``, ``s3://``, files,
folders); the safetensors format and its checksum in :mod:`stac_coh.model.weight_format`;
the Keras import and how a repository's ``config.yaml`` reaches the model card in
:mod:`stac_coh.model.keras_import` and :mod:`stac_coh.model.converted`. This module ties them
together and keeps the names callers import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import torch

from stac_coh.constants import CARD_SUFFIX, PUBLISHED_NAME
from stac_coh.model.card import ModelCard
from stac_coh.model.converted import convert_keras_file
from stac_coh.model.keras_import import PAPER_CITATION, import_keras
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weight_format import (
    CARD_METADATA_KEY,
    Format,
    card_path,
    detect_format,
    load_safetensors,
    model_tensors,
    save_weights,
    tensor_checksum,
)
from stac_coh.model.weight_sources import (
    AUTO,
    BUNDLED,
    BUNDLED_WEIGHTS_DIR,
    PUBLISHED_REPO,
    PUBLISHED_URI,
    HfRef,
    SourceKind,
    WeightsLike,
    parse_hf_uri,
    resolve_weights,
)

__all__ = [
    "AUTO",
    "BUNDLED",
    "BUNDLED_WEIGHTS_DIR",
    "CARD_METADATA_KEY",
    "CARD_SUFFIX",
    "PAPER_CITATION",
    "PUBLISHED_NAME",
    "PUBLISHED_REPO",
    "PUBLISHED_URI",
    "HfRef",
    "SourceKind",
    "WeightsInfo",
    "WeightsLike",
    "card_path",
    "describe_weights",
    "detect_format",
    "import_keras",
    "load_model",
    "load_weights",
    "model_tensors",
    "parse_hf_uri",
    "resolve_weights",
    "save_weights",
    "tensor_checksum",
    "weights_file",
]


@dataclass(frozen=True)
class WeightsInfo:
    """What ``stac-coh weights info`` prints."""

    path: Path
    """Local file (after resolving ``auto``, ``hf://``, ``s3://`` and folders)."""
    format: Format
    """safetensors (ours) or hdf5 (a Keras file)."""
    dtype: str
    """Stored floating-point type (``float32``, ``float16``...)."""
    file_size: int
    """Bytes on disk."""
    parameters: int
    """Trainable parameters of the model."""
    sha256: str
    """Tensor checksum (see :func:`tensor_checksum`)."""
    card: ModelCard
    """The model card."""


def load_weights(
    path_or_uri: WeightsLike,
    *,
    cache_dir: str | PathLike[str] | None = None,
    source_kind: SourceKind = "real",
) -> tuple[ResUNet, ModelCard]:
    """Load weights into a float32 ResUNet in eval mode, with ``model.model_card`` set.

    Args:
        path_or_uri: ``auto``, ``bundled`` (or None), our safetensors file, a Keras ``.h5``
            file (either layout), a folder holding one, ``hf://owner/repo[/file][@revision]``
            or ``s3://bucket/key`` (see :mod:`stac_coh.model.weight_sources`).
        cache_dir: stac-coh's cache directory (Hub snapshots, conversions, S3 copies);
            None is the per-user default.
        source_kind: ``real`` or ``simulated`` data: what ``auto`` picks for.
    """
    model, card, _fmt, _dtype, _path = _load(path_or_uri, cache_dir, source_kind)
    return model, card


def describe_weights(
    path_or_uri: WeightsLike,
    *,
    cache_dir: str | PathLike[str] | None = None,
    source_kind: SourceKind = "real",
) -> WeightsInfo:
    """Load weights and gather what ``stac-coh weights info`` shows."""
    model, card, fmt, dtype, path = _load(path_or_uri, cache_dir, source_kind)
    return WeightsInfo(
        path=path,
        format=fmt,
        dtype=dtype,
        file_size=path.stat().st_size,
        parameters=sum(p.numel() for p in model.parameters()),
        sha256=card.sha256,
        card=card,
    )


def _load(
    path_or_uri: WeightsLike, cache_dir: str | PathLike[str] | None, source_kind: SourceKind
) -> tuple[ResUNet, ModelCard, Format, str, Path]:
    """Resolve, then read a Keras file or ours; also return format, dtype and file."""
    path = resolve_weights(path_or_uri, cache_dir=cache_dir, source_kind=source_kind)
    if detect_format(path) == "hdf5":
        source = os.fspath(path_or_uri) if path_or_uri is not None else str(path)
        model, card = import_keras(path, source=source)
        return model, card, "hdf5", "float32", path
    model, card, dtype = load_safetensors(path)
    return model, card, "safetensors", dtype, path


def weights_file(
    path_or_uri: WeightsLike,
    *,
    cache_dir: str | PathLike[str] | None = None,
    source_kind: SourceKind = "real",
) -> Path:
    """Our safetensors file for what the user named (a Keras file is converted once).

    What ``stac-coh submit`` uploads for its workers: one self-describing file whose card
    says where the weights came from.
    """
    path = resolve_weights(path_or_uri, cache_dir=cache_dir, source_kind=source_kind)
    if detect_format(path) == "safetensors":
        return path
    source = os.fspath(path_or_uri) if path_or_uri is not None else str(path)
    root = Path(cache_dir) if cache_dir is not None else _default_root()
    return convert_keras_file(path, root, source=source)


def _default_root() -> Path:
    """The per-user stac-coh cache directory."""
    from stac_coh.settings import default_cache_dir

    return default_cache_dir()


def load_model(
    path: WeightsLike = None,
    *,
    device: str | torch.device = "cpu",
) -> ResUNet:
    """Load weights (see :func:`load_weights`) in eval mode on ``device``.

    ``None`` loads the weights bundled with the package (trained on simulated data; see
    their model card).
    """
    model, _card = load_weights(path)
    return model.to(device).eval()
