"""A Keras weight file becomes a ResUNet and a model card, following the repository's config.

:func:`import_keras` reads the tensors (:mod:`stac_coh.model.keras_h5`) and writes what the
published ``config.yaml`` says into the card, where inference reads it: the dB clip range
and channel order (``card.preprocessing``), the reference tiling (``card.tiling``, its
aggregation as a Kaiser beta) and the output channel that holds the coherence. The network
always returns the coherence in channel 0, so a config naming channel 1 swaps the two heads
here, once. Without a config the published defaults of MODEL.md apply, and the card says so.
"""

from __future__ import annotations

import os
from dataclasses import replace
from os import PathLike

import torch

from stac_coh.constants import PUBLISHED_NAME
from stac_coh.errors import WeightsError
from stac_coh.model.card import Architecture, ModelCard, Provenance, UncertaintyHead
from stac_coh.model.hub_config import PublishedConfig
from stac_coh.model.keras_h5 import load_keras_h5
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weight_format import model_tensors, tensor_checksum

__all__ = ["PAPER_CITATION", "import_keras"]

PAPER_CITATION = (
    "Sica, F., Pulella, A., Schmitt, M.: Beyond Backscatter: InSAR coherence from detected "
    "SAR images. arXiv:2606.07374 (2026)."
)
"""The paper whose model and weights stac-coh implements and loads."""

_TRAINED_ON = (
    "Sentinel-1 GRD pairs (Google Earth Engine COPERNICUS/S1_GRD, VV) with InSAR coherence "
    "targets, 12-day baselines, per the paper."
)


def import_keras(
    h5_path: str | PathLike[str],
    *,
    name: str = PUBLISHED_NAME,
    source: str | None = None,
    config: PublishedConfig | None = None,
    origin: Provenance | None = None,
) -> tuple[ResUNet, ModelCard]:
    """Read a Keras H5 weight file (legacy Keras 2 or Keras 3 layout) into a ResUNet and card.

    Args:
        h5_path: the Keras file.
        name: card name.
        source: provenance to record (e.g. the ``hf://`` URI); defaults to ``h5_path``.
        config: the repository's validated ``config.yaml``; None applies the published
            defaults (and the card's notes say that no config was read).
        origin: repository, revision, license and file checksums to record.
    """
    model, found = load_keras_h5(h5_path)
    if config is not None and config.input_channels != model.in_channels:
        raise WeightsError(
            f"{h5_path} takes {model.in_channels} input channels but the repository's config "
            f"says {config.input_channels}; the config does not describe this file."
        )
    if config is not None and config.output_channel == 1:
        _swap_heads(model)
    layout = {"keras2-legacy": "legacy Keras 2", "keras3": "Keras 3 save_weights"}[found.layout]
    notes = [
        f"Imported from a {layout} H5 file (layers matched by {found.matched_by}; file sha256 "
        f"{found.file_sha256}).",
        _config_note(config),
        "The log-variance head's scale is not published, so the uncertainty output is the raw "
        "head value.",
    ]
    provenance = replace(
        origin or Provenance(),
        source=source or os.fspath(h5_path),
        trained_on=_TRAINED_ON,
        citation=PAPER_CITATION,
        notes=" ".join(n for n in notes if n),
    )
    used = config or PublishedConfig()
    card = ModelCard(
        name=name,
        architecture=Architecture(base=model.base, input_channels=model.in_channels),
        preprocessing=used.preprocessing,
        tiling=used.tiling,
        uncertainty=UncertaintyHead(calibrated=False),
        provenance=provenance,
        sha256=tensor_checksum(model_tensors(model)),
    )
    model.model_card = card
    return model, card


def _config_note(config: PublishedConfig | None) -> str:
    """What the card's notes say about the configuration applied."""
    if config is None:
        return "No config.yaml was read: the published defaults of the paper's release apply."
    note = "Preprocessing, tiling and output channel follow the repository's config.yaml"
    if config.defaulted:
        note += f" (published defaults for {', '.join(config.defaulted)})"
    note += "."
    if config.output_channel == 1:
        note += " The config puts the coherence in output channel 1: the heads were swapped."
    return note


def _swap_heads(model: ResUNet) -> None:
    """Exchange the two 1x1 heads, so channel 0 of the output is the coherence."""
    mean, log_variance = model.mean_head, model.log_variance_head
    with torch.no_grad():
        for a, b in ((mean.weight, log_variance.weight), (mean.bias, log_variance.bias)):
            assert a is not None and b is not None
            kept = a.clone()
            a.copy_(b)
            b.copy_(kept)
