"""Where weights come from: ``auto``, ``bundled``, ``hf://``, ``s3://``, a file or a folder.

- ``auto`` (the command line's default): the published weights
  (``hf://FPSica/beyond-backscatter-grd-gee``, fetched once and converted with their
  ``config.yaml``) for real data; the bundled weights for simulated data (``demo``).
- ``bundled`` (or None in library calls): the weights shipped with the package, trained by
  stac-coh on simulated data, for the demo and tests.
- ``hf://owner/repo[/file][@revision]``: a Hub repository through ``huggingface_hub``'s cache
  (see :mod:`stac_coh.model.hub`), converted with its config (see
  :mod:`stac_coh.model.converted`).
- ``s3://bucket/key``: a copy of our weight file (what ``stac-coh submit`` uploads for its
  workers), downloaded into the cache.
- a file (ours or a Keras ``.h5``) or a folder holding one (with a ``config.yaml``, converted).

Every cached file lives under the stac-coh cache directory (``cache_dir``; default
``$XDG_CACHE_HOME/stac-coh``): ``huggingface/`` for snapshots, ``converted/`` for
conversions, ``s3/`` for copies.
"""

from __future__ import annotations

import hashlib
import os
from os import PathLike
from pathlib import Path
from typing import Literal

from stac_coh.errors import InputError, ObjectNotFoundError, WeightsError
from stac_coh.model.converted import FolderOrigin, weights_from_folder, weights_in_dir
from stac_coh.model.hub import (
    PUBLISHED_REPO,
    PUBLISHED_URI,
    HfRef,
    fetch_snapshot,
    parse_hf_uri,
)

__all__ = [
    "AUTO",
    "BUNDLED",
    "BUNDLED_WEIGHTS_DIR",
    "PUBLISHED_REPO",
    "PUBLISHED_URI",
    "SOURCE_KINDS",
    "HfRef",
    "SourceKind",
    "WeightsLike",
    "hub_weights",
    "parse_hf_uri",
    "resolve_weights",
]

WeightsLike = str | PathLike[str] | None
"""``auto``, ``bundled``, a file, a folder, ``hf://...``, ``s3://...``, or None (bundled)."""

SourceKind = Literal["real", "simulated"]
"""What the weights will be applied to: ``auto`` picks the published or the bundled ones."""
SOURCE_KINDS: tuple[str, ...] = ("real", "simulated")

AUTO = "auto"
"""The published weights for real data, the bundled ones for simulated data."""
BUNDLED = "bundled"
"""The weights shipped with the package."""

BUNDLED_WEIGHTS_DIR = Path(__file__).parents[1] / "data" / "weights"
"""Holds the one safetensors file shipped with the package (stac-coh's demo weights)."""


def resolve_weights(
    path_or_uri: WeightsLike,
    *,
    cache_dir: str | PathLike[str] | None = None,
    source_kind: SourceKind = "real",
) -> Path:
    """Return the local weight file (ours, or a Keras ``.h5``) that ``path_or_uri`` names.

    Args:
        path_or_uri: what the user named (see the module's docstring).
        cache_dir: stac-coh's cache directory; None is the per-user default.
        source_kind: ``real`` or ``simulated`` data, for ``auto``.
    """
    if source_kind not in SOURCE_KINDS:
        raise InputError(
            f"source_kind must be one of {', '.join(SOURCE_KINDS)}, not {source_kind!r}."
        )
    text = None if path_or_uri is None else os.fspath(path_or_uri)
    if text is None or text == BUNDLED or (text == AUTO and source_kind == "simulated"):
        return bundled_weights()
    root = _cache_root(cache_dir)
    if text == AUTO:
        return hub_weights(HfRef(PUBLISHED_REPO), root, cached_first=True)
    if text.startswith("hf://"):
        return hub_weights(parse_hf_uri(text), root)
    if text.startswith("s3://"):
        return _s3_copy(text, root)
    path = Path(text)
    if path.is_dir():
        return weights_from_folder(path, root, origin=FolderOrigin(source=text))
    if not path.is_file():
        raise WeightsError(f"Weight file {path} does not exist; check the path.")
    return path


def hub_weights(ref: HfRef, cache_root: Path, *, cached_first: bool = False) -> Path:
    """The weight file of a Hub repository: fetched into the cache and converted once.

    Args:
        ref: repository, optional file and revision.
        cache_root: stac-coh's cache directory.
        cached_first: use the cached snapshot without asking the Hub (``auto``).
    """
    snapshot = fetch_snapshot(ref, cache_root / "huggingface", cached_first=cached_first)
    published = ref.repo_id == PUBLISHED_REPO and ref.filename is None
    origin = FolderOrigin(
        source=ref.uri if ref.filename else f"hf://{ref.repo_id}",
        repo_id=snapshot.repo_id,
        revision=snapshot.revision,
    )
    return weights_from_folder(
        snapshot.folder,
        cache_root,
        origin=origin,
        filename=ref.filename,
        require_config=published,
    )


def bundled_weights() -> Path:
    """The safetensors file shipped with the package."""
    if not any(BUNDLED_WEIGHTS_DIR.glob("*.safetensors")):
        raise WeightsError(
            f"The bundled weights are missing (no .safetensors file in {BUNDLED_WEIGHTS_DIR}). "
            "Pass --weights FILE (e.g. one written by `stac-coh weights import-keras "
            f"model.weights.h5 published.safetensors`) or --weights {PUBLISHED_URI}."
        )
    return weights_in_dir(BUNDLED_WEIGHTS_DIR)


def _cache_root(cache_dir: str | PathLike[str] | None) -> Path:
    """The stac-coh cache directory (the per-user default unless given)."""
    if cache_dir is not None:
        return Path(cache_dir)
    from stac_coh.settings import default_cache_dir

    return default_cache_dir()


def _s3_copy(uri: str, cache_root: Path) -> Path:
    """Download ``s3://...`` (our weight file) into the cache; return the local copy."""
    from stac_coh.io.storage import open_store

    parent, _, name = uri.rpartition("/")
    if not name or parent == "s3:/":
        raise WeightsError(
            f"{uri!r} names no weight file; write s3://bucket/path/file.safetensors."
        )
    try:
        data = open_store(parent).get(name).data
    except ObjectNotFoundError:
        raise WeightsError(
            f"Weight file {uri} does not exist; was the run's prefix deleted? Submit again."
        ) from None
    folder = cache_root / "s3" / hashlib.sha256(uri.encode()).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    partial = folder / f".{name}.{os.getpid()}.partial"
    partial.write_bytes(data)
    partial.replace(target)
    return target
