"""Hugging Face Hub snapshots of model repositories, through ``huggingface_hub`` and its cache.

A snapshot is one commit of a repository, laid out by ``huggingface_hub`` under
``<cache>/huggingface`` (blobs, refs, snapshots). Only what stac-coh can use is fetched:
weight files, ``config.yaml``, the ``README.md`` model card and statistics files.

The published weights are fetched once: later runs resolve the cached snapshot without
asking the Hub (``cached_first``), so a run needs no network and never sees a newer
revision by surprise; ``stac-coh weights download`` asks the Hub for the current one.
With ``HF_HUB_OFFLINE=1`` or no network, a missing snapshot is a one-line error that says
how to get the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stac_coh.errors import WeightsError

__all__ = [
    "PUBLISHED_REPO",
    "PUBLISHED_URI",
    "HfRef",
    "Snapshot",
    "fetch_snapshot",
    "offline_message",
    "parse_hf_uri",
]

PUBLISHED_REPO = "FPSica/beyond-backscatter-grd-gee"
"""Hugging Face model repository of the published Keras weights."""
PUBLISHED_URI = f"hf://{PUBLISHED_REPO}"
"""The same as an ``hf://`` URI."""

_HF_URI = re.compile(r"hf://(?P<repo>[^/@]+/[^/@]+)(?:/(?P<file>[^@]+))?(?:@(?P<rev>.+))?")
_WEIGHT_PATTERNS = ["*.safetensors", "*.h5"]
_METADATA_PATTERNS = ["*.yaml", "*.yml", "*.json", "README.md"]
_STATISTICS_PATTERNS = ["*normalization*", "*normalisation*", "*statistics*", "*stats*"]


@dataclass(frozen=True)
class HfRef:
    """A parsed ``hf://owner/repo[/file][@revision]``."""

    repo_id: str
    """``owner/repo``."""
    filename: str | None = None
    """File inside the repository; None picks the weight file the repository describes."""
    revision: str | None = None
    """Branch, tag or commit; None is the default branch."""

    @property
    def uri(self) -> str:
        """The ``hf://`` URI, without the revision."""
        return f"hf://{self.repo_id}" + (f"/{self.filename}" if self.filename else "")


@dataclass(frozen=True)
class Snapshot:
    """One commit of a repository in the local cache."""

    repo_id: str
    """``owner/repo``."""
    revision: str
    """Commit hash (the snapshot folder's name)."""
    folder: Path
    """The snapshot folder (links into the cache's blobs)."""


def parse_hf_uri(uri: str) -> HfRef:
    """Parse ``hf://owner/repo[/file][@revision]``."""
    match = _HF_URI.fullmatch(uri)
    if not match:
        raise WeightsError(
            f"{uri!r} is not a Hugging Face weights URI; write hf://owner/repo, "
            "hf://owner/repo/file.safetensors or hf://owner/repo@revision."
        )
    return HfRef(match["repo"], match["file"], match["rev"])


def fetch_snapshot(ref: HfRef, hf_cache: Path, *, cached_first: bool = False) -> Snapshot:
    """The repository's files at ``ref.revision`` in ``hf_cache``, downloaded if needed.

    Args:
        ref: repository, optional file, optional revision.
        hf_cache: huggingface_hub's cache folder.
        cached_first: use a cached snapshot of the revision without asking the Hub; only
            a missing one is downloaded.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = [ref.filename] if ref.filename else list(_WEIGHT_PATTERNS)
    patterns += _METADATA_PATTERNS + _STATISTICS_PATTERNS
    folder: str | None = None
    if cached_first:
        try:
            folder = snapshot_download(
                ref.repo_id,
                revision=ref.revision,
                cache_dir=hf_cache,
                allow_patterns=patterns,
                local_files_only=True,
            )
        except LocalEntryNotFoundError:
            folder = None
    try:
        if folder is None:
            folder = snapshot_download(
                ref.repo_id, revision=ref.revision, cache_dir=hf_cache, allow_patterns=patterns
            )
    except LocalEntryNotFoundError:
        raise WeightsError(offline_message(ref, hf_cache)) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(
            f"Cannot fetch {ref.uri}: {reason}. Check the repository name and revision."
        ) from None
    path = Path(folder)
    return Snapshot(ref.repo_id, path.name, path)


def offline_message(ref: HfRef, hf_cache: Path) -> str:
    """One line: the snapshot is not cached, the Hub is out of reach, and how to get it."""
    published = ref.repo_id == PUBLISHED_REPO and not ref.filename and not ref.revision
    what = f"The published weights ({ref.uri}) are" if published else f"{ref.uri} is"
    argument = "" if published else f" {ref.uri}" + (f"@{ref.revision}" if ref.revision else "")
    return (
        f"{what} not in the local Hugging Face cache ({hf_cache}) and the Hub cannot be "
        f"reached (offline or HF_HUB_OFFLINE=1): run `stac-coh weights download{argument}` "
        "once with network access, or import the files by hand (download model.weights.h5 "
        f"and config.yaml from https://huggingface.co/{ref.repo_id}, run `stac-coh weights "
        "import-keras FOLDER weights.safetensors` and pass --weights weights.safetensors)."
    )
