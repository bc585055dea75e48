"""Model input preprocessing: linear backscatter -> clipped, scaled dB, channels (t1, t2).

Every caller (prediction, training, evaluation, the reference tiler) goes through
:func:`to_model_input`, so the published preprocessing lives in exactly one place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FLOAT32_EPS", "Preprocessing", "to_model_input", "valid_mask"]

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

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used in model cards."""
        out = asdict(self)
        out["channel_order"] = list(self.channel_order)
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
    """Stack two linear backscatter images (H, W) into model input (2, H, W) in [0, 1]."""
    prep = preprocessing or Preprocessing()
    channels = {"t1": t1, "t2": t2}
    try:
        stacked = [
            _scale(np.asarray(channels[name], dtype=np.float32), prep)
            for name in prep.channel_order
        ]
    except KeyError as exc:
        raise ValueError(
            f"Model card channel_order {prep.channel_order!r} names {exc.args[0]!r}; "
            "only 't1' and 't2' are known."
        ) from None
    return np.stack(stacked)


def _scale(linear: npt.NDArray[np.float32], prep: Preprocessing) -> npt.NDArray[np.float32]:
    """Linear power -> dB -> clip -> [0, 1], with NaN/inf treated as zero power."""
    power = np.nan_to_num(linear, nan=0.0, posinf=0.0, neginf=0.0)
    db = 10.0 * np.log10(np.maximum(power, 0.0) + np.float32(FLOAT32_EPS))
    db = np.clip(db, prep.db_min, prep.db_max)
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
