"""Held-out settings: what leave-one-setting-out training leaves out and tests on.

Each :class:`HeldOutSetting` names a speckle model, looks range or landscape generator.
``stac-coh train --exclude NAME`` drops the training scenes whose recorded domain (the
``domain`` record :func:`stac_coh.science.randomize.describe_spec` wrote into the index)
falls in the setting, ``--only NAME`` keeps nothing else (a network that knows only that
setting, to compare a held-out run with); :func:`held_out_randomization` draws test scenes
that all fall in it.
``terrain`` is the calibration setting: no model trains on it, the uncertainty is
recalibrated on it, and no held-out test uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from stac_coh.errors import InputError
from stac_coh.science.datasets import DatasetEntry
from stac_coh.science.randomize import Randomization

__all__ = [
    "CALIBRATION",
    "SETTINGS",
    "HeldOutSetting",
    "calibration_randomization",
    "exclude_settings",
    "held_out_randomization",
    "only_settings",
    "select_settings",
]

Record = dict[str, Any]


@dataclass(frozen=True)
class HeldOutSetting:
    """One setting of the leave-one-setting-out study."""

    name: str
    """Short name used by ``--exclude``."""
    description: str
    """One line for tables."""
    contains: Callable[[Record], bool]
    """True when a scene's domain record falls in the setting."""
    ranges: dict[str, Any]
    """Overrides of :class:`Randomization` that make test scenes of this setting."""


def _speckle(record: Record) -> Record:
    return record["speckle"]


SETTINGS: dict[str, HeldOutSetting] = {
    s.name: s
    for s in (
        HeldOutSetting(
            "looks-1.5-2.5",
            "few looks: ENL 1.5-2.5 (any impulse response)",
            lambda r: _speckle(r)["enl"] < 2.5,
            {"enl": (1.5, 2.5), "legacy_share": 0.0},
        ),
        HeldOutSetting(
            "looks-6-8",
            "many looks: ENL 6-8",
            lambda r: _speckle(r)["enl"] > 6.0,
            {"enl": (6.0, 8.0), "legacy_share": 0.0},
        ),
        HeldOutSetting(
            "psf-sinc",
            "sinc impulse response (rectangular or Hamming-weighted spectrum)",
            lambda r: _speckle(r)["psf"] == "sinc",
            {"psfs": ("sinc",), "legacy_share": 0.0},
        ),
        HeldOutSetting(
            "correlated-pixels",
            "strongly correlated neighbour pixels (intensity correlation > 0.6)",
            lambda r: _speckle(r)["pixel_correlation"] > 0.6,
            {"legacy_share": 0.0},
        ),
        HeldOutSetting(
            "generator-fields",
            "rectangular-field landscape generator",
            lambda r: r["generator"] == "fields",
            {"generators": ("fields",)},
        ),
    )
}
"""The held-out settings, by name."""

CALIBRATION = "terrain"
"""Landscape generator no model trains on; uncertainty is recalibrated on it."""

TEST_CALIBRATION: dict[str, Any] = {
    "gain_db": 6.0,
    "relative_gain_db": 1.5,
    "ramp_db": 3.0,
    "stratify_decoupled": True,
}
"""Calibration effects every test and calibration scene carries (and 30 % decoupled)."""


def setting(name: str) -> HeldOutSetting:
    """The named setting."""
    try:
        return SETTINGS[name]
    except KeyError:
        raise InputError(
            f"Unknown held-out setting {name!r}; use one of {', '.join(SETTINGS)}."
        ) from None


def held_out_randomization(name: str, base: Randomization | None = None) -> Randomization:
    """Ranges whose every scene falls in setting ``name`` (gains and ramps included)."""
    s = setting(name)
    r = replace(base or Randomization(), **s.ranges, **TEST_CALIBRATION)
    return replace(r, keep=s.contains)


def calibration_randomization(base: Randomization | None = None) -> Randomization:
    """Ranges of the calibration set: every speckle model, the ``terrain`` generator."""
    return replace(base or Randomization(), generators=(CALIBRATION,), **TEST_CALIBRATION)


def exclude_settings(entries: list[DatasetEntry], names: list[str]) -> list[DatasetEntry]:
    """Entries without the named settings; entries without a domain record are kept."""
    held = [setting(n) for n in names]
    kept = [e for e in entries if not _falls_in(e, held)]
    if not kept:
        raise InputError(f"Excluding {', '.join(names)} leaves no training scene.")
    return kept


def only_settings(entries: list[DatasetEntry], names: list[str]) -> list[DatasetEntry]:
    """Entries whose recorded domain falls in one of the named settings."""
    held = [setting(n) for n in names]
    kept = [e for e in entries if _falls_in(e, held)]
    if kept:
        return kept
    if any("domain" in e.extra for e in entries):
        hint = "simulate more scenes (`stac-coh simulate --randomize --scenes N`)"
        hint += " or pick another setting"
    else:
        hint = "--only needs scenes from `stac-coh simulate --randomize` (their index records"
        hint += " each scene's domain)"
    raise InputError(f"No training scene falls in {', '.join(names)}; {hint}.")


def _falls_in(entry: DatasetEntry, held: list[HeldOutSetting]) -> bool:
    """Whether the scene's recorded domain falls in one of ``held`` (False without a record)."""
    record = entry.extra.get("domain")
    return record is not None and any(s.contains(record) for s in held)


def select_settings(
    entries: list[DatasetEntry], exclude: list[str], only: list[str]
) -> list[DatasetEntry]:
    """Entries a run trains on: without ``exclude``, then of ``only`` (when given)."""
    if exclude:
        entries = exclude_settings(entries, exclude)
    return only_settings(entries, only) if only else entries
