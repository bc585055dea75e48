"""The model card: what a weight file is, how to feed it, and where it came from.

A card travels with every weight file (inside the safetensors metadata and as a JSON file
beside it). Callers read preprocessing, tiling defaults and the meaning of the second head
from the card instead of hard-coding them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from stac_coh.model.preprocess import Preprocessing

__all__ = [
    "CARD_FORMAT",
    "Architecture",
    "ModelCard",
    "Provenance",
    "Tiling",
    "TrainingDomain",
    "UncertaintyHead",
]

CARD_FORMAT = "stac-coh/model-card/1"
"""Version of the card's JSON layout."""


@dataclass(frozen=True)
class Architecture:
    """Which network the weights fit."""

    name: str = "resunet"
    """Architecture family (only ``resunet`` exists)."""
    base: int = 32
    """Filters of the first level; 32 is the published model."""
    input_channels: int = 2
    """t1, t2."""
    output_channels: int = 2
    """Coherence mean, log-variance head."""


@dataclass(frozen=True)
class Tiling:
    """How the published workflow tiles a scene (``--mode reference`` reproduces it)."""

    patch_size: int = 128
    """Patch edge in pixels."""
    stride: int = 32
    """Step between patches."""
    batch_size: int = 8
    """Patches per forward pass."""
    aggregation: str = "kaiser"
    """Overlap weighting."""
    kaiser_beta: float = 5.0
    """Beta of the 1-D Kaiser window whose outer product weights a patch."""


@dataclass(frozen=True)
class UncertaintyHead:
    """How the second output channel (a sigmoid) maps to a predicted variance.

    ``log_variance = log_variance_min + head * (log_variance_max - log_variance_min)`` and
    the published uncertainty asset stores ``sigma = exp(log_variance / 2)`` in coherence
    units. Weights whose head meaning is unknown (``calibrated = False``) publish the raw
    head value instead.
    """

    log_variance_min: float = -10.0
    """Log-variance at head = 0 (sigma ~ 0.0067)."""
    log_variance_max: float = 0.0
    """Log-variance at head = 1 (sigma = 1)."""
    calibrated: bool = False
    """True when training defined this mapping (stac-coh's own weights)."""
    views: int = 1
    """Forward passes averaged per tile (test-time views: identity, then date swap + 180
    degree turn, ...); their spread adds to the uncertainty. 2 views cost 2x."""
    head_scale: float = 1.0
    """Recalibration: multiplies the head's sigma."""
    spread_scale: float = 0.0
    """Recalibration: multiplies the standard deviation of the views' means."""
    floor: float = 0.0
    """Recalibration: sigma added in quadrature."""


@dataclass(frozen=True)
class TrainingDomain:
    """What the weights were trained on, in the units of ``stac_coh.model.domain``'s estimates.

    The defaults describe the published weights (Sentinel-1 IW GRD from Earth Engine: about
    4.4 looks, sigma0 in the [-20, 0] dB window, calibrated within a fraction of a dB).
    """

    looks: tuple[float, float] = (2.8, 7.0)
    """Equivalent number of looks."""
    level_db: tuple[float, float] = (-19.0, -4.0)
    """Median backscatter of a pair (both dates), dB."""
    relative_gain_db: tuple[float, float] = (-1.5, 1.5)
    """Median dB(t2) - dB(t1)."""
    description: str = (
        "Sentinel-1 IW GRD-like pairs (about 4.4 looks) with sigma0 inside the [-20, 0] dB "
        "input window (published weights; ranges are stac-coh's assumption, not published)."
    )
    """One sentence for people."""


@dataclass(frozen=True)
class Provenance:
    """Where the weights came from; shown by ``stac-coh weights info`` and in STAC items."""

    source: str = ""
    """Origin, e.g. ``hf://FPSica/beyond-backscatter-grd-gee`` or ``stac-coh train``."""
    trained_on: str = ""
    """Training data, in one sentence."""
    license: str = ""
    """License of the weights."""
    citation: str = ""
    """Paper to cite."""
    notes: str = ""
    """Anything a user must know (e.g. 'for demonstration and tests only')."""
    command: str = ""
    """Command (with seed) that reproduces the weights, when stac-coh trained them."""
    repository: str = ""
    """Hugging Face model repository (``owner/name``) the weights were converted from."""
    revision: str = ""
    """Commit of that repository the files came from (40 hex digits)."""
    files: dict[str, str] = field(default_factory=dict)
    """sha256 of each source file (weights, config.yaml, README.md, statistics) by name."""


@dataclass(frozen=True)
class ModelCard:
    """Everything beside the tensors."""

    name: str
    """Short name, e.g. ``beyond-backscatter-grd-gee`` or ``stac-coh-sim-demo``."""
    architecture: Architecture = field(default_factory=Architecture)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    tiling: Tiling = field(default_factory=Tiling)
    uncertainty: UncertaintyHead = field(default_factory=UncertaintyHead)
    provenance: Provenance = field(default_factory=Provenance)
    training_domain: TrainingDomain = field(default_factory=TrainingDomain)
    """Inputs the weights were trained on (checked by ``stac_coh.model.domain``)."""
    sha256: str = ""
    """Checksum of the tensors (see ``stac_coh.model.weights``), filled when saved."""
    format: str = CARD_FORMAT
    """Card layout version."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        out = asdict(self)
        out["preprocessing"] = self.preprocessing.to_dict()
        return out

    def to_json(self) -> str:
        """Serialise to indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Parse the JSON form; unknown keys are ignored so newer cards still load."""

        def pick(kind: Any, key: str) -> Any:
            raw = data.get(key) or {}
            return kind(**{k: v for k, v in raw.items() if k in kind.__dataclass_fields__})

        return cls(
            name=data.get("name", "unnamed"),
            architecture=pick(Architecture, "architecture"),
            preprocessing=Preprocessing.from_dict(data.get("preprocessing") or {}),
            tiling=pick(Tiling, "tiling"),
            uncertainty=pick(UncertaintyHead, "uncertainty"),
            provenance=pick(Provenance, "provenance"),
            training_domain=_domain(data.get("training_domain") or {}),
            sha256=data.get("sha256", ""),
            format=data.get("format", CARD_FORMAT),
        )

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """Parse a card from JSON text."""
        return cls.from_dict(json.loads(text))


def _domain(raw: dict[str, Any]) -> TrainingDomain:
    """Parse a card's ``training_domain`` (ranges as 2-element lists)."""
    known = {k: v for k, v in raw.items() if k in TrainingDomain.__dataclass_fields__}
    for key, value in known.items():
        if isinstance(value, list):
            known[key] = tuple(float(v) for v in value)
    return TrainingDomain(**known)
