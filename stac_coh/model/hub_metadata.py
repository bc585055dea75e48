"""The rest of a published repository: its normalisation/statistics file and its license.

A statistics file (named with normalization, statistics or stats, as the published uploader
names them) may only restate the config's dB range; anything else asks for a normalisation
stac-coh does not do and is refused. The license is what the ``README.md`` model card's YAML
front matter states.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import yaml

from stac_coh.errors import WeightsError
from stac_coh.model.hub_config import PublishedConfig, load_yaml, mapping, number

__all__ = ["is_statistics_file", "read_license", "read_statistics"]

_STATISTICS_WORDS = ("normalization", "normalisation", "statistics", "stats")
_STATISTICS_KEYS = {"db_min", "db_max", "clip_min_db", "clip_max_db"}


def is_statistics_file(name: str) -> bool:
    """Whether a repository file is a normalisation/statistics file (by the uploader's words)."""
    lower = Path(name).name.lower()
    return any(word in lower for word in _STATISTICS_WORDS)


def read_statistics(path: Path, config: PublishedConfig, *, where: str) -> PublishedConfig:
    """Apply a statistics file: its dB range must agree with the config's; nothing else is known.

    stac-coh's preprocessing is a clipped dB range scaled to [0, 1]; a file holding, say,
    per-channel means and standard deviations asks for a normalisation stac-coh does not
    do, so it is refused rather than ignored.
    """
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise WeightsError(
            f"{where} is a normalisation/statistics file stac-coh cannot read (only YAML or "
            "JSON mappings of db_min/db_max are understood); refusing to convert weights whose "
            "preprocessing it may not reproduce."
        )
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text, where)
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{where} is not valid JSON ({exc}).") from None
    data = mapping(raw, where, "")
    unknown = sorted(set(data) - _STATISTICS_KEYS)
    if unknown:
        raise WeightsError(
            f"{where} holds {unknown[0]!r}, a statistic stac-coh's preprocessing does not use "
            "(it knows only db_min/db_max: a clipped dB range scaled to [0, 1]); refusing to "
            "convert weights that may expect another normalisation."
        )
    prep = config.preprocessing
    limits = {"db_min": prep.db_min, "db_max": prep.db_max}
    for key, alias in (("db_min", "clip_min_db"), ("db_max", "clip_max_db")):
        stated = {name: number(data[name], where, name) for name in (key, alias) if name in data}
        if not stated:
            continue
        values = sorted(set(stated.values()))
        if len(values) > 1:
            raise WeightsError(f"{where} states {key} twice, differently: {stated}.")
        value = values[0]
        from_config = f"preprocessing.{key}" not in config.defaulted
        if from_config and not math.isclose(value, limits[key]):
            raise WeightsError(
                f"{where} says {key}={value:g} but the config's preprocessing says "
                f"{key}={limits[key]:g}; the repository contradicts itself."
            )
        limits[key] = value
    if not limits["db_min"] < limits["db_max"]:
        raise WeightsError(f"{where}: db_min {limits['db_min']:g} must be below db_max.")
    defaulted = tuple(k for k in config.defaulted if k not in {f"preprocessing.{n}" for n in data})
    prep = replace(prep, db_min=limits["db_min"], db_max=limits["db_max"])
    return replace(config, preprocessing=prep, defaulted=defaulted)


def read_license(readme: Path | None) -> str:
    """The license the model card's YAML front matter states (``license_name`` for 'other')."""
    if readme is None or not readme.is_file():
        return ""
    from huggingface_hub.repocard import metadata_load

    try:
        meta = metadata_load(readme) or {}
    except (yaml.YAMLError, ValueError) as exc:
        raise WeightsError(
            f"{readme}: the model card's front matter is not YAML ({exc})".replace("\n", " ") + "."
        ) from None
    license_id = meta.get("license")
    if isinstance(license_id, list):
        license_id = ", ".join(str(v) for v in license_id)
    if not license_id:
        return ""
    name = meta.get("license_name")
    if str(license_id).lower() == "other" and name:
        link = meta.get("license_link")
        return f"other: {name}" + (f" ({link})" if link else "")
    return str(license_id)
