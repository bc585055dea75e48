"""What a published model repository says about its weights: config.yaml, statistics, license.

The published repository (see docs MODEL.md) holds, beside ``model.weights.h5``, a
``config.yaml`` with the keys ``framework``, ``weights_filename``, ``architecture``
(``name``, ``input_shape``, ``output_channels``), ``preprocessing`` (``db_min``,
``db_max``, ``channel_order``, ``input_scale``, ``model_scale``), ``tiling``
(``patch_size``, ``stride``, ``batch_size``, ``aggregation``) and ``output`` (``name``,
``range``, ``channel``), maybe a normalisation/statistics file, and a ``README.md`` model
card whose YAML front matter states the license.

Every key is either understood and applied, or refused: a key stac-coh does not know, a
value it cannot honour, or two values that contradict each other stop the conversion with
a :class:`~stac_coh.errors.WeightsError` naming the file and the key (the statistics
file and the license live in :mod:`stac_coh.model.hub_metadata`). Silently ignoring one
would make maps that look right and are not. The published loader's spellings are accepted
too (``model`` for ``architecture``, ``clip_min_db``/``clip_max_db``, tiling keys at the top
level, ``primary``/``secondary`` channel names).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from stac_coh.errors import WeightsError
from stac_coh.model.card import Tiling
from stac_coh.model.preprocess import Preprocessing

__all__ = ["CONFIG_NAMES", "PublishedConfig", "load_yaml", "mapping", "number", "parse_config"]

CONFIG_NAMES = ("config.yaml", "config.yml")
"""File names of a repository's configuration."""

_FRAMEWORKS = {"tensorflow", "keras", "tensorflow_keras"}
_ARCHITECTURES = {"resunet", "back2coh_resunet", "back2coh_grd_gee_resunet"}
_CHANNELS = {"t1": "t1", "t2": "t2", "primary": "t1", "secondary": "t2"}
_INPUT_SCALES = {"linear", "linear_power", "linear_sigma0", "linear_sigma0_from_gee"}
_MODEL_SCALES = {"db_clipped_unit", "db_clipped_normalized", "db_clipped_normalised"}
_AGGREGATIONS = {"kaiser": 5.0, "uniform": 0.0, "mean": 0.0}
"""Kaiser beta of each aggregation; beta 0 is the flat window the published code uses
for any aggregation other than kaiser."""

_SECTIONS: dict[str, set[str]] = {
    "": {"framework", "weights_filename", "architecture", "model", "preprocessing"}
    | {"tiling", "output", "patch_size", "stride", "batch_size"},
    "architecture": {"name", "input_shape", "output_channels"},
    "preprocessing": {"db_min", "db_max", "clip_min_db", "clip_max_db", "channel_order"}
    | {"input_scale", "model_scale"},
    "tiling": {"patch_size", "stride", "batch_size", "aggregation"},
    "output": {"name", "range", "channel"},
}


@dataclass(frozen=True)
class PublishedConfig:
    """A validated ``config.yaml``: what stac-coh applies when converting the weights."""

    weights_filename: str = "model.weights.h5"
    """The Keras weight file the configuration describes."""
    input_channels: int = 2
    """Channels of ``architecture.input_shape``."""
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    """dB clip range and channel order (stac-coh's vocabulary)."""
    tiling: Tiling = field(default_factory=Tiling)
    """Reference tiling: patch, stride, batch and the Kaiser beta of the aggregation."""
    output_channel: int = 0
    """Network output channel that holds the coherence (the other is the uncertainty)."""
    defaulted: tuple[str, ...] = ()
    """Keys the file left out, filled with the published defaults (for the card's notes)."""


def parse_config(text: str, *, where: str) -> PublishedConfig:
    """Validate a ``config.yaml`` and translate it; refuse unknown or contradicting keys.

    Args:
        text: the file's content.
        where: how to name the file in messages (e.g. ``hf://owner/repo/config.yaml``).
    """
    data = mapping(load_yaml(text, where), where, "")
    _refuse_unknown(data, "", where)
    architecture = _merged_alias(data, "architecture", "model", where)
    prep = _section(data, "preprocessing", where)
    tiling = dict(_section(data, "tiling", where))
    for key in ("patch_size", "stride", "batch_size"):  # the published loader's fallbacks
        if key in data:
            _agree(tiling, key, data[key], where, f"tiling.{key}", key)
            tiling.setdefault(key, data[key])
    output = _section(data, "output", where)
    reader = _Reader(where)
    config = PublishedConfig(
        weights_filename=_weights_filename(reader.get(data, "weights_filename"), where),
        input_channels=_architecture(reader, architecture, where),
        preprocessing=_preprocessing(reader, prep, where),
        tiling=_tiling(reader, tiling, where),
        output_channel=_output(reader, output, where),
        defaulted=(),
    )
    _framework(reader.get(data, "framework"), where)
    _check_input_shape(reader, architecture, config.tiling, where)
    return replace(config, defaulted=tuple(reader.defaulted))


class _Reader:
    """Reads keys of a section, remembering which ones fell back to the published default."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.defaulted: list[str] = []

    def get(self, section: Mapping[str, Any], key: str, prefix: str = "") -> Any:
        """The value, or None (recorded as defaulted) when absent."""
        if key not in section or section[key] is None:
            self.defaulted.append(prefix + key)
            return None
        return section[key]


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML; a syntax error is a :class:`WeightsError` naming the file."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WeightsError(f"{where} is not valid YAML: {exc}".replace("\n", " ")) from None


def mapping(value: Any, where: str, key: str) -> dict[str, Any]:
    """A mapping with string keys (None: empty), else a :class:`WeightsError`."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        what = f"key {key!r}" if key else "the file"
        raise WeightsError(f"{where}: {what} must be a mapping of names to values.")
    return value


def _refuse_unknown(data: Mapping[str, Any], section: str, where: str) -> None:
    unknown = sorted(set(data) - _SECTIONS[section])
    if unknown:
        name = f"{section}.{unknown[0]}" if section else unknown[0]
        known = ", ".join(sorted(_SECTIONS[section]))
        raise WeightsError(
            f"{where} has the key {name!r}, which stac-coh does not know (known here: {known}); "
            "refusing to convert rather than ignore a setting that may change the predictions."
        )


def _section(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    section = mapping(data.get(name), where, name)
    _refuse_unknown(section, name, where)
    return section


def _merged_alias(data: Mapping[str, Any], name: str, alias: str, where: str) -> dict[str, Any]:
    """``architecture`` (or the published loader's ``model``); both only if they agree."""
    main = _section(data, name, where) if name in data else {}
    other = mapping(data.get(alias), where, alias)
    _refuse_unknown(other, name, where)
    for key, value in other.items():
        _agree(main, key, value, where, f"{name}.{key}", f"{alias}.{key}")
    return {**other, **main}


def _agree(section: Mapping[str, Any], key: str, value: Any, where: str, a: str, b: str) -> None:
    if key in section and section[key] != value:
        raise WeightsError(
            f"{where} sets {a}={section[key]!r} and {b}={value!r}; the two contradict each other."
        )


def _framework(value: Any, where: str) -> None:
    if value is None:
        return
    key = str(value).strip().lower().replace("-", "_")
    if key not in _FRAMEWORKS:
        raise WeightsError(
            f"{where}: framework {value!r} is not TensorFlow/Keras; stac-coh converts only the "
            "published Keras weights of the ResUNet."
        )


def _weights_filename(value: Any, where: str) -> str:
    if value is None:
        return "model.weights.h5"
    name = str(value)
    if not name.lower().endswith(".h5") or name.startswith("/") or ".." in Path(name).parts:
        raise WeightsError(
            f"{where}: weights_filename {name!r} is not a Keras .h5 file inside the repository; "
            "stac-coh converts Keras H5 weight files."
        )
    return name


def _architecture(reader: _Reader, arch: Mapping[str, Any], where: str) -> int:
    name = reader.get(arch, "name", "architecture.")
    if name is not None and str(name).strip().lower() not in _ARCHITECTURES:
        raise WeightsError(
            f"{where}: architecture.name {name!r} is not the ResUNet stac-coh implements "
            f"(one of {', '.join(sorted(_ARCHITECTURES))})."
        )
    outputs = reader.get(arch, "output_channels", "architecture.")
    if outputs is not None and _integer(outputs, where, "architecture.output_channels") != 2:
        raise WeightsError(
            f"{where}: architecture.output_channels is {outputs}, but the ResUNet has two heads "
            "(coherence and uncertainty)."
        )
    shape = reader.get(arch, "input_shape", "architecture.")
    if shape is None:
        return 2
    if not isinstance(shape, list) or len(shape) != 3:
        raise WeightsError(f"{where}: architecture.input_shape must be [height, width, channels].")
    channels = _integer(shape[2], where, "architecture.input_shape[2]")
    if channels != 2:
        raise WeightsError(
            f"{where}: architecture.input_shape has {channels} channels; the model takes two "
            "images (t1, t2)."
        )
    return channels


def _check_input_shape(
    reader: _Reader, arch: Mapping[str, Any], tiling: Tiling, where: str
) -> None:
    shape = arch.get("input_shape")
    if not shape:
        return
    for axis, size in zip(("height", "width"), shape[:2], strict=True):
        if size is None:  # a fully convolutional model built for any size
            continue
        value = _integer(size, where, f"architecture.input_shape {axis}")
        if value != tiling.patch_size:
            raise WeightsError(
                f"{where}: architecture.input_shape {axis} {value} contradicts tiling.patch_size "
                f"{tiling.patch_size}; the published workflow feeds patches of the input shape."
            )


def _preprocessing(reader: _Reader, prep: Mapping[str, Any], where: str) -> Preprocessing:
    default = Preprocessing()
    limits = {}
    for key, alias, fallback in (
        ("db_min", "clip_min_db", default.db_min),
        ("db_max", "clip_max_db", default.db_max),
    ):
        if key in prep and alias in prep:
            a, b = number(prep[key], where, key), number(prep[alias], where, alias)
            if not math.isclose(a, b):
                raise WeightsError(
                    f"{where} sets preprocessing.{key}={a:g} and preprocessing.{alias}={b:g}; "
                    "the two contradict each other."
                )
        value = prep.get(key, prep.get(alias))
        if value is None:
            reader.defaulted.append(f"preprocessing.{key}")
        limits[key] = fallback if value is None else number(value, where, f"preprocessing.{key}")
    if not limits["db_min"] < limits["db_max"]:
        raise WeightsError(
            f"{where}: preprocessing.db_min {limits['db_min']:g} must be below db_max "
            f"{limits['db_max']:g}."
        )
    return Preprocessing(
        db_min=limits["db_min"],
        db_max=limits["db_max"],
        channel_order=_channel_order(reader.get(prep, "channel_order", "preprocessing."), where),
        input_scale=_scale(
            reader.get(prep, "input_scale", "preprocessing."),
            _INPUT_SCALES,
            "linear",
            where,
            "input_scale",
            "stac-coh hands the model linear backscatter power",
        ),
        model_scale=_scale(
            reader.get(prep, "model_scale", "preprocessing."),
            _MODEL_SCALES,
            "db_clipped_unit",
            where,
            "model_scale",
            "stac-coh feeds dB clipped to [db_min, db_max], scaled to [0, 1]",
        ),
    )


def _channel_order(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return Preprocessing().channel_order
    names = [str(v).strip().lower() for v in value] if isinstance(value, list) else []
    mapped = [_CHANNELS[n] for n in names if n in _CHANNELS]
    if len(mapped) != len(names) or sorted(mapped) != ["t1", "t2"]:
        raise WeightsError(
            f"{where}: preprocessing.channel_order {value!r} must name the two images once "
            "each: t1 (or primary, the earlier) and t2 (or secondary, the later)."
        )
    return tuple(mapped)


def _scale(value: Any, known: set[str], ours: str, where: str, key: str, meaning: str) -> str:
    if value is None or str(value).strip().lower() in known:
        return ours
    raise WeightsError(
        f"{where}: preprocessing.{key} {value!r} is not one stac-coh reproduces ({meaning}; "
        f"known: {', '.join(sorted(known))})."
    )


def _tiling(reader: _Reader, tiling: Mapping[str, Any], where: str) -> Tiling:
    default = Tiling()
    patch = reader.get(tiling, "patch_size", "tiling.")
    patch = default.patch_size if patch is None else _integer(patch, where, "tiling.patch_size")
    if patch < 16 or patch % 16:
        raise WeightsError(f"{where}: tiling.patch_size {patch} must be a multiple of 16.")
    stride = reader.get(tiling, "stride", "tiling.")
    stride = default.stride if stride is None else _integer(stride, where, "tiling.stride")
    if not 1 <= stride <= patch:
        raise WeightsError(f"{where}: tiling.stride {stride} must be between 1 and {patch}.")
    batch = reader.get(tiling, "batch_size", "tiling.")
    batch = default.batch_size if batch is None else _integer(batch, where, "tiling.batch_size")
    if batch < 1:
        raise WeightsError(f"{where}: tiling.batch_size {batch} must be at least 1.")
    aggregation = reader.get(tiling, "aggregation", "tiling.")
    key = default.aggregation if aggregation is None else str(aggregation).strip().lower()
    if key not in _AGGREGATIONS:
        raise WeightsError(
            f"{where}: tiling.aggregation {aggregation!r} is not one stac-coh implements "
            f"({', '.join(_AGGREGATIONS)})."
        )
    return Tiling(patch, stride, batch, key, _AGGREGATIONS[key])


def _output(reader: _Reader, output: Mapping[str, Any], where: str) -> int:
    name = reader.get(output, "name", "output.")
    if name is not None and str(name).strip().lower() != "coherence":
        raise WeightsError(f"{where}: output.name {name!r} is not coherence.")
    bounds = reader.get(output, "range", "output.")
    if bounds is not None and (
        not isinstance(bounds, list)
        or [number(b, where, "output.range") for b in bounds] != [0.0, 1.0]
    ):
        raise WeightsError(
            f"{where}: output.range {bounds!r} is not [0, 1]; the coherence head is a sigmoid."
        )
    channel = reader.get(output, "channel", "output.")
    channel = 0 if channel is None else _integer(channel, where, "output.channel")
    if channel not in (0, 1):
        raise WeightsError(
            f"{where}: output.channel {channel} does not exist; the network has channels 0 and 1."
        )
    return channel


def number(value: Any, where: str, key: str) -> float:
    """A finite number (not a bool), else a :class:`WeightsError` naming the key."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WeightsError(f"{where}: {key} must be a finite number, not {value!r}.")
    return float(value)


def _integer(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WeightsError(f"{where}: {key} must be an integer, not {value!r}.")
    return int(value)
