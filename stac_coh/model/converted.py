"""A folder of published files (a Hub snapshot or a hand download) becomes our weight file.

The folder's ``config.yaml`` names the Keras weight file and says how to feed it; with the
statistics file and the ``README.md`` license it goes into the model card of a safetensors
file written once into the cache (``<cache>/converted/``) and read by every later run:

- a Hub snapshot converts to ``converted/v1/hf/<owner>--<repo>/<commit>/`` (one per commit);
- a local folder to ``converted/v1/local/<sha256 of its files>/``.

A folder without ``config.yaml`` holds either our safetensors (used as it is) or a Keras
file that is converted with the published defaults, and the card says so.
Concurrent processes convert once: the conversion holds a file lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from stac_coh.constants import PUBLISHED_NAME
from stac_coh.errors import WeightsError
from stac_coh.model.card import Provenance
from stac_coh.model.hub import PUBLISHED_REPO
from stac_coh.model.hub_config import CONFIG_NAMES, PublishedConfig, parse_config
from stac_coh.model.hub_metadata import is_statistics_file, read_license, read_statistics
from stac_coh.model.keras_import import import_keras
from stac_coh.model.weight_format import detect_format, file_sha256, save_weights

__all__ = [
    "CONVERSION_VERSION",
    "FolderOrigin",
    "convert_keras_file",
    "weights_from_folder",
    "weights_in_dir",
]

CONVERSION_VERSION = "v1"
"""Part of the cache path: a new conversion rule writes new files instead of reusing old."""


@dataclass(frozen=True)
class FolderOrigin:
    """Where a folder of published files came from."""

    source: str
    """What the card records as the source (e.g. ``hf://owner/repo/model.weights.h5``)."""
    repo_id: str = ""
    """Hub repository, for snapshots."""
    revision: str = ""
    """Commit, for snapshots."""


def weights_from_folder(
    folder: Path,
    cache_root: Path,
    *,
    origin: FolderOrigin,
    filename: str | None = None,
    require_config: bool = False,
) -> Path:
    """Return the weight file stac-coh loads for ``folder``, converting it once if needed.

    Args:
        folder: a Hub snapshot or a local folder of published files.
        cache_root: stac-coh's cache directory (conversions go to ``converted/``).
        origin: source, repository and revision to record in the card.
        filename: the weight file asked for; None takes the config's or the only one.
        require_config: refuse a folder without ``config.yaml`` (the published repository
            has one; converting without it would guess the preprocessing).
    """
    config_path = next((folder / n for n in CONFIG_NAMES if (folder / n).is_file()), None)
    if config_path is None:
        if require_config:
            raise WeightsError(
                f"{origin.source} has no config.yaml; stac-coh will not guess the "
                "preprocessing of the published weights. Fetch the repository again "
                "(`stac-coh weights download`)."
            )
        path = _named(folder, filename, origin) if filename else weights_in_dir(folder)
        if detect_format(path) == "safetensors" or not origin.repo_id:
            return path
        return _convert(folder, path, None, [path], cache_root, origin, folder / "README.md")
    where = _where(origin, config_path.name)
    config = parse_config(config_path.read_text(encoding="utf-8"), where=where)
    if filename and filename != config.weights_filename:
        raise WeightsError(
            f"{where} describes {config.weights_filename}, not {filename}; stac-coh will not "
            f"guess how {filename} is fed. Pass the repository without a file name."
        )
    weights = folder / config.weights_filename
    if not weights.is_file():
        raise WeightsError(
            f"{where} names the weight file {config.weights_filename!r}, which the "
            f"repository does not hold ({origin.source})."
        )
    inputs = [weights, config_path]
    for stats in sorted(p for p in folder.iterdir() if is_statistics_file(p.name)):
        config = read_statistics(stats, config, where=_where(origin, stats.name))
        inputs.append(stats)
    return _convert(folder, weights, config, inputs, cache_root, origin, folder / "README.md")


def convert_keras_file(h5_path: Path, cache_root: Path, *, source: str) -> Path:
    """Convert a lone Keras file (published defaults, no config) once into the cache."""
    origin = FolderOrigin(source=source)
    return _convert(h5_path.parent, h5_path, None, [h5_path], cache_root, origin, None)


def weights_in_dir(directory: Path, named: str | None = None) -> Path:
    """Pick the single safetensors (else the single .h5) weight file of a directory."""
    named = named or str(directory)
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


def _named(folder: Path, filename: str, origin: FolderOrigin) -> Path:
    path = folder / filename
    if not path.is_file():
        raise WeightsError(f"{origin.source} holds no file {filename!r}.")
    return path


def _where(origin: FolderOrigin, name: str) -> str:
    """How messages name a file of the folder."""
    if origin.repo_id:
        return f"hf://{origin.repo_id}/{name}" + (f"@{origin.revision}" if origin.revision else "")
    return f"{origin.source.rstrip('/')}/{name}"


def _convert(
    folder: Path,
    weights: Path,
    config: PublishedConfig | None,
    inputs: list[Path],
    cache_root: Path,
    origin: FolderOrigin,
    readme: Path | None,
) -> Path:
    """Convert once into the cache (under a lock); return the safetensors file."""
    from filelock import FileLock

    readme = readme if readme is not None and readme.is_file() else None
    files = {p.name: file_sha256(p) for p in [*inputs, *([readme] if readme else [])]}
    if origin.repo_id and origin.revision:
        owner_repo = origin.repo_id.replace("/", "--")
        where = Path("hf") / owner_repo / origin.revision
    else:
        digest = hashlib.sha256("".join(f"{k}={v}\n" for k, v in sorted(files.items())).encode())
        where = Path("local") / digest.hexdigest()[:32]
    name = _card_name(origin, folder)
    out = cache_root / "converted" / CONVERSION_VERSION / where / f"{name}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.with_name(out.name + ".lock"))):
        if out.is_file():
            return out
        provenance = Provenance(
            repository=origin.repo_id,
            revision=origin.revision,
            license=read_license(readme),
            files=files,
        )
        # Name the very file converted, so readers can fetch it (see publish.model_item).
        source = origin.source
        if origin.repo_id:
            source = f"hf://{origin.repo_id}/{weights.relative_to(folder).as_posix()}"
        model, card = import_keras(
            weights, name=name, source=source, config=config, origin=provenance
        )
        save_weights(model, card, out)
    return out


def _card_name(origin: FolderOrigin, folder: Path) -> str:
    """The published weights keep their name; others are named after repository or folder."""
    if origin.repo_id == PUBLISHED_REPO:
        return PUBLISHED_NAME
    return origin.repo_id.rsplit("/", 1)[-1] if origin.repo_id else folder.name or "weights"
