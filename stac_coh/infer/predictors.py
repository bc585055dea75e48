"""Build the tile predictor a command asked for: the ResUNet with some weights, or Siegert.

``predict``, ``run``, ``search-and-run`` and the AWS Batch worker all build their predictor
here, so the same options mean the same thing everywhere.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from os import PathLike

from stac_coh.constants import ESTIMATORS, PRECISIONS
from stac_coh.errors import InputError, WeightsProvenanceWarning
from stac_coh.infer.engine import TilePredictor
from stac_coh.model.card import Architecture, ModelCard, Provenance

__all__ = ["ESTIMATORS", "LoadedPredictor", "build_predictor"]

SIEGERT_WINDOW = 9
"""Window of ``--estimator siegert`` (pixels)."""


@dataclass(frozen=True)
class LoadedPredictor:
    """A ready predictor and what produced it."""

    predictor: TilePredictor
    """Callable on (N, 2, h, w) linear power."""
    card: ModelCard
    """Model card of the weights (a descriptive card for non-network estimators)."""
    device: str
    """Device type it runs on (``cpu``, ``cuda``, ``mps``)."""
    precision: str = "fp32"
    """Numeric precision it runs at (``fp32``, ``bf16``, ``fp16``); what items record."""

    @property
    def is_bundled_demo(self) -> bool:
        """True for the weights trained on simulated data that ship with stac-coh."""
        return "simulated" in self.card.provenance.trained_on.lower()


def build_predictor(
    estimator: str = "resunet",
    *,
    weights: str | PathLike[str] | None = None,
    device: str = "auto",
    cache_dir: str | PathLike[str] | None = None,
    precision: str = "auto",
) -> LoadedPredictor:
    """Load the weights (``None`` = bundled, ``auto`` = published) or set up Siegert.

    ``cache_dir`` is stac-coh's cache directory (Hub snapshots and conversions).
    ``precision`` is ``auto|fp32|bf16|fp16`` (see :mod:`stac_coh.infer.precision`); the
    Siegert baseline always computes in float32.
    """
    if estimator == "siegert":
        from stac_coh.infer.estimators import SiegertPredictor

        if precision not in PRECISIONS:
            raise InputError(
                f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}."
            )

        card = ModelCard(
            name=f"siegert-w{SIEGERT_WINDOW}",
            architecture=Architecture(name="siegert", base=0, input_channels=2),
            provenance=Provenance(
                source="stac-coh",
                notes="Intensity-only baseline: sqrt of the local intensity correlation "
                f"(Siegert relation) in a {SIEGERT_WINDOW}x{SIEGERT_WINDOW} window; no weights.",
            ),
        )
        return LoadedPredictor(SiegertPredictor(SIEGERT_WINDOW), card, "cpu")
    if estimator != "resunet":
        raise InputError(f"--estimator must be one of {', '.join(ESTIMATORS)}, not {estimator!r}.")
    from stac_coh.infer.engine import NetworkPredictor
    from stac_coh.model.weights import load_weights

    model, card = load_weights(weights, cache_dir=cache_dir)
    predictor = NetworkPredictor(model, card, device=device, precision=precision)
    loaded = LoadedPredictor(predictor, card, predictor.device.type, predictor.precision.name)
    if loaded.is_bundled_demo:
        warnings.warn(
            f"Using weights '{card.name}', trained on SIMULATED data for demonstration and "
            "tests. For real coherence maps use the published weights (--weights auto, "
            "the default for real data; see `stac-coh weights --help`).",
            WeightsProvenanceWarning,
            stacklevel=2,
        )
    return loaded
