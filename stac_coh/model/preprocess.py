"""Model input preprocessing: linear backscatter -> clipped, scaled dB, channels (t1, t2).

Every caller (prediction, training, evaluation, the reference tiler) goes through
:func:`to_model_input`, so the published preprocessing lives in exactly one place.

Two kinds exist, and the model card says which one a weights file expects:

* ``db_clipped_unit`` (the published model, MODEL.md, unchanged): dB clipped to
  ``[db_min, db_max]`` = [-20, 0] and scaled to [0, 1]; nodata reads as 0 (the clip floor,
  i.e. like dark land); channels ``t1, t2``.
* ``db_unit_wide`` (stac-coh's own weights since issue 16): the same scale, ``(dB - db_min) /
  (db_max - db_min)``, but clipped only at ``[clip_db_min, clip_db_max]`` (default -45 and
  +15 dB), so a calibration gain or a bright/dark scene is not flattened by the window;
  with a ``valid`` channel in ``channel_order`` nodata is marked (1 = both dates valid)
  and both images read 0 there, so nodata is never mistaken for dark land.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stac_coh.errors import InputError

__all__ = [
    "FLOAT32_EPS",
    "MODEL_SCALES",
    "PRESETS",
    "Preprocessing",
    "preset",
    "to_model_input",
    "valid_mask",
]

MODEL_SCALES = ("db_clipped_unit", "db_unit_wide")
"""Known ``model_scale`` values (see the module docstring)."""

FLOAT32_EPS = float(np.finfo(np.float32).eps)
"""Added before the logarithm so zero backscatter maps to the clip floor, not -inf."""


@dataclass(frozen=True)
class Preprocessing:
    """How linear backscatter becomes model input (the model card's ``preprocessing``)."""

    db_min: float = -20.0
    """dB mapped to 0."""
    db_max: float = 0.0
    """dB mapped to 1."""
    channel_order: tuple[str, ...] = ("t1", "t2")
    """Channel 0 is the earlier (reference) image, channel 1 the later (secondary)."""
    input_scale: str = "linear"
    """What the model's callers hand over: linear power (sigma0 / gamma0)."""
    model_scale: str = "db_clipped_unit"
    """What the network sees: dB clipped to [db_min, db_max] and scaled to [0, 1]."""
    clip_db_min: float | None = None
    """Lower clip of ``db_unit_wide`` in dB (None: db_min, i.e. the published clip)."""
    clip_db_max: float | None = None
    """Upper clip of ``db_unit_wide`` in dB (None: db_max)."""

    @property
    def channels(self) -> int:
        """Number of model input channels."""
        return len(self.channel_order)

    def clip_range(self) -> tuple[float, float]:
        """The dB range kept before scaling."""
        if self.model_scale == "db_clipped_unit":
            return self.db_min, self.db_max
        lo = self.db_min if self.clip_db_min is None else self.clip_db_min
        hi = self.db_max if self.clip_db_max is None else self.clip_db_max
        return lo, hi

    def describe(self) -> str:
        """One sentence: what the network sees (for weights info and model items)."""
        lo, hi = self.clip_range()
        text = (
            f"{self.input_scale} power -> dB clipped to [{lo}, {hi}] -> "
            f"(dB {'+' if self.db_min < 0 else '-'} {abs(self.db_min):g}) / "
            f"{self.db_max - self.db_min:g}; channels "
            f"{', '.join(self.channel_order)}"
        )
        if "valid" in self.channel_order:
            text += " (valid: 1 where both dates hold data; images read 0 where not)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used in model cards."""
        out = asdict(self)
        out["channel_order"] = list(self.channel_order)
        if self.model_scale == "db_clipped_unit":  # the published card, byte for byte
            out.pop("clip_db_min")
            out.pop("clip_db_max")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Build from a model card's ``preprocessing`` mapping (unknown keys are ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "channel_order" in known:
            known["channel_order"] = tuple(known["channel_order"])
        return cls(**known)


def to_model_input(
    t1: npt.ArrayLike,
    t2: npt.ArrayLike,
    preprocessing: Preprocessing | None = None,
) -> npt.NDArray[np.float32]:
    """Stack two linear backscatter images (H, W) into model input (C, H, W)."""
    prep = preprocessing or Preprocessing()
    if prep.model_scale not in MODEL_SCALES:
        raise InputError(
            f"Model card preprocessing model_scale {prep.model_scale!r} is unknown to this "
            f"stac-coh (it knows {', '.join(MODEL_SCALES)}); upgrade stac-coh."
        )
    a, b = np.asarray(t1, dtype=np.float32), np.asarray(t2, dtype=np.float32)
    mask = valid_mask(a, b) if "valid" in prep.channel_order else None
    channels: dict[str, npt.NDArray[np.float32]] = {}
    for name, image in (("t1", a), ("t2", b)):
        scaled = _scale(image, prep)
        if mask is not None:
            scaled[~mask] = 0.0
        channels[name] = scaled
    if mask is not None:
        channels["valid"] = mask.astype(np.float32)
    try:
        return np.stack([channels[name] for name in prep.channel_order])
    except KeyError as exc:
        raise InputError(
            f"Model card channel_order {prep.channel_order!r} names {exc.args[0]!r}; "
            "only 't1', 't2' and 'valid' are known."
        ) from None


def _scale(linear: npt.NDArray[np.float32], prep: Preprocessing) -> npt.NDArray[np.float32]:
    """Linear power -> dB -> clip -> scale, with NaN/inf treated as zero power."""
    power = np.nan_to_num(linear, nan=0.0, posinf=0.0, neginf=0.0)
    db = 10.0 * np.log10(np.maximum(power, 0.0) + np.float32(FLOAT32_EPS))
    db = np.clip(db, *prep.clip_range())
    return ((db - prep.db_min) / (prep.db_max - prep.db_min)).astype(np.float32)


def valid_mask(*images: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True where every image holds finite, positive backscatter (output is nodata elsewhere)."""
    mask: npt.NDArray[np.bool_] | None = None
    for image in images:
        arr = np.asarray(image)
        good = np.isfinite(arr) & (arr > 0)
        mask = good if mask is None else mask & good
    if mask is None:
        raise ValueError("valid_mask needs at least one image")
    return mask


PRESETS: dict[str, Preprocessing] = {
    "published": Preprocessing(),
    "wide-masked": Preprocessing(
        channel_order=("t1", "t2", "valid"),
        model_scale="db_unit_wide",
        clip_db_min=-45.0,
        clip_db_max=15.0,
    ),
}
"""Named preprocessings for training: ``published`` (MODEL.md) and ``wide-masked``."""


def preset(name: str) -> Preprocessing:
    """The named preprocessing of :data:`PRESETS`."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(
            f"Unknown input preprocessing {name!r}; use one of {', '.join(PRESETS)}."
        ) from None
