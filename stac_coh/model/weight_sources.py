"""Where weights come from: a file, a directory, ``hf://owner/repo``, or the bundled ones.

``hf://`` goes through ``huggingface_hub`` and its cache (``cache_dir``, or its default);
with ``HF_HUB_OFFLINE=1`` only what is already cached is used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from stac_coh.errors import WeightsError

__all__ = [
    "BUNDLED_WEIGHTS_DIR",
    "PUBLISHED_REPO",
    "HfRef",
    "WeightsLike",
    "parse_hf_uri",
    "resolve_weights",
]

WeightsLike = str | PathLike[str] | None
"""A weight file, a directory holding one, ``hf://owner/repo[/file][@revision]``, or None."""

BUNDLED_WEIGHTS_DIR = Path(__file__).parents[1] / "data" / "weights"
"""Holds the one safetensors file shipped with the package (stac-coh's demo weights)."""

PUBLISHED_REPO = "FPSica/beyond-backscatter-grd-gee"
"""Hugging Face model repository of the published Keras weights."""

_HF_URI = re.compile(r"hf://(?P<repo>[^/@]+/[^/@]+)(?:/(?P<file>[^@]+))?(?:@(?P<rev>.+))?")
_HUB_PATTERNS = ["*.safetensors", "*.h5", "*.json", "*.yaml", "*.md"]


@dataclass(frozen=True)
class HfRef:
    """A parsed ``hf://owner/repo[/file][@revision]``."""

    repo_id: str
    """``owner/repo``."""
    filename: str | None = None
    """File inside the repository; None picks the single weight file of the snapshot."""
    revision: str | None = None
    """Branch, tag or commit; None is the default branch."""


def parse_hf_uri(uri: str) -> HfRef:
    """Parse ``hf://owner/repo[/file][@revision]``."""
    match = _HF_URI.fullmatch(uri)
    if not match:
        raise WeightsError(
            f"{uri!r} is not a Hugging Face weights URI; write hf://owner/repo, "
            "hf://owner/repo/file.safetensors or hf://owner/repo@revision."
        )
    return HfRef(match["repo"], match["file"], match["rev"])


def resolve_weights(
    path_or_uri: WeightsLike, *, cache_dir: str | PathLike[str] | None = None
) -> Path:
    """Return the local weight file for a path, a directory, ``hf://...`` or None (bundled).

    Args:
        path_or_uri: what the user named.
        cache_dir: huggingface_hub cache for ``hf://``; None uses huggingface_hub's default.
    """
    if path_or_uri is None:
        if not any(BUNDLED_WEIGHTS_DIR.glob("*.safetensors")):
            raise WeightsError(
                f"The bundled weights are missing (no .safetensors file in "
                f"{BUNDLED_WEIGHTS_DIR}). Pass --weights FILE (e.g. one written by `stac-coh "
                "weights import-keras model.weights.h5 published.safetensors`) or --weights "
                f"hf://{PUBLISHED_REPO}."
            )
        return _weights_in_dir(BUNDLED_WEIGHTS_DIR, str(BUNDLED_WEIGHTS_DIR))
    text = os.fspath(path_or_uri)
    path = _download(parse_hf_uri(text), cache_dir) if text.startswith("hf://") else Path(text)
    if path.is_dir():
        return _weights_in_dir(path, text)
    if not path.is_file():
        raise WeightsError(f"Weight file {path} does not exist; check the path.")
    return path


def _download(ref: HfRef, cache_dir: str | PathLike[str] | None) -> Path:
    """Fetch a file, or a snapshot's weight files, through huggingface_hub's cache."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    uri = f"hf://{ref.repo_id}" + (f"/{ref.filename}" if ref.filename else "")
    try:
        if ref.filename:
            local = hf_hub_download(
                ref.repo_id, ref.filename, revision=ref.revision, cache_dir=cache_dir
            )
        else:
            local = snapshot_download(
                ref.repo_id,
                revision=ref.revision,
                cache_dir=cache_dir,
                allow_patterns=_HUB_PATTERNS,
            )
    except LocalEntryNotFoundError:
        raise WeightsError(
            f"{uri} is not in the local Hugging Face cache ({cache_dir or 'default'}) and the "
            "hub cannot be reached (or HF_HUB_OFFLINE is set). Run `stac-coh weights download "
            f"{uri}` once with network access."
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise WeightsError(f"Cannot fetch {uri}: {exc}. Check the repository name.") from None
    return Path(str(local))


def _weights_in_dir(directory: Path, named: str) -> Path:
    """Pick the single safetensors (else the single .h5) weight file of a directory."""
    for pattern in ("*.safetensors", "*.h5"):
        found = sorted(p for p in directory.glob(pattern) if p.is_file())
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise WeightsError(
                f"{named} holds several weight files ({names}); name one, e.g. "
                f"{named.rstrip('/')}/{found[0].name}."
            )
    raise WeightsError(f"{named} holds no .safetensors or .h5 weight file.")
