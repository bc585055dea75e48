"""The model description: a STAC item with the MLM extension for the weights in use.

Coherence items point at it (a ``processing-expression`` link and ``processing:expression``
with format ``stac-mlm``), so a reader can tell which weights made a map and fetch them.
MLM requires an ``mlm:model`` asset, so it is published when the weights have a location
readers can reach (an http(s), s3 or ``hf://`` source) or are the weights bundled with
stac-coh, which are then published beside the item.

Its geometry is the whole world: the model applies to Sentinel-1 pairs anywhere (MLM
suggests geometry and bbox describe where a model is meant to be used), and STAC Browser
draws an empty map for an item without one.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.file import FileExtension
from pystac.extensions.mlm import MLMExtension

from stac_coh.model.card import ModelCard
from stac_coh.model.weight_sources import BUNDLED_WEIGHTS_DIR
from stac_coh.publish.extensions import SCIENTIFIC, scientific_fields
from stac_coh.publish.raster_info import sha256_multihash
from stac_coh.publish.text import as_sentence

__all__ = [
    "HF_DEFAULT_FILE",
    "build_model_item",
    "bundled_weights_file",
    "mlm_name",
    "model_item_id",
    "weights_href",
    "weights_origin",
]

WORLD = {
    "type": "Polygon",
    "coordinates": [
        [[-180.0, -90.0], [180.0, -90.0], [180.0, 90.0], [-180.0, 90.0], [-180.0, -90.0]]
    ],
}
"""Where the model applies: any Sentinel-1 pair."""

HF_DEFAULT_FILE = "model.weights.h5"
"""File of a Hugging Face model repo when the source names only the repo."""

_ARTIFACT_TYPES = {
    ".h5": ("tf.keras.Model.save_weights", "application/x-hdf5"),
    ".safetensors": ("safetensors.torch.save_file", "application/octet-stream"),
}


def model_item_id(card: ModelCard) -> str:
    """Stable id of the weights: card name plus the first 8 hex of their checksum."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", card.name).strip("-") or "weights"
    return f"{name}-{card.sha256[:8]}" if card.sha256 else name


def weights_href(card: ModelCard) -> str | None:
    """A URL readers can fetch the weights from, derived from the card's provenance."""
    source = card.provenance.source.strip()
    if source.startswith(("https://", "http://", "s3://")):
        return source
    if source.startswith("hf://"):
        owner_repo_file = source[len("hf://") :].strip("/").split("/")
        if len(owner_repo_file) < 2:
            return None
        repo = "/".join(owner_repo_file[:2])
        path = "/".join(owner_repo_file[2:]) or HF_DEFAULT_FILE
        # The commit the weights were converted from, so the link keeps naming those bytes.
        revision = card.provenance.revision or "main"
        return f"https://huggingface.co/{repo}/resolve/{revision}/{path}"
    return None


def weights_origin(card: ModelCard) -> dict[str, str]:
    """``coh:`` fields naming the Hub repository, revision and license of the weights.

    Coherence items and the MLM item carry them, so a map names the exact release (and the
    terms) of the weights that made it; weights not converted from a repository have none.
    """
    prov = card.provenance
    fields = {
        "coh:weights_repository": prov.repository,
        "coh:weights_revision": prov.revision,
        "coh:weights_license": prov.license,
    }
    return {key: value for key, value in fields.items() if value}


def bundled_weights_file(card: ModelCard) -> Path | None:
    """The weights file bundled with stac-coh that ``card`` describes, if it is one."""
    if not card.sha256:
        return None
    for path in sorted(BUNDLED_WEIGHTS_DIR.glob("*.safetensors")):
        sidecar = path.with_name(f"{path.name}.card.json")
        if sidecar.is_file() and json.loads(sidecar.read_text()).get("sha256") == card.sha256:
            return path
    return None


def build_model_item(
    card: ModelCard,
    *,
    weights_url: str,
    card_href: str | None = None,
    self_href: str | None = None,
    weights_file: Path | None = None,
) -> dict[str, Any]:
    """MLM item of ``card``'s weights: inputs, outputs, hyperparameters, the weights asset.

    Args:
        card: The model card of the weights.
        weights_url: Where the weight file can be fetched (relative when published beside).
        card_href: Href (relative to the item) of the model card JSON, if published.
        self_href: Absolute href of the item where it is published.
        weights_file: The local weights file, when known (gives ``file:size``/``checksum``).
    """
    item = pystac.Item(
        id=model_item_id(card),
        geometry=WORLD,
        bbox=[-180.0, -90.0, 180.0, 90.0],
        datetime=datetime.now(UTC).replace(microsecond=0),
        properties={
            "title": f"Coherence model weights {card.name}",
            "description": _description(card),
            **scientific_fields(f"Weights '{card.name}' of the stac-coh coherence model."),
        },
    )
    MLMExtension.ext(item, add_if_missing=True)
    item.stac_extensions.append(SCIENTIFIC)
    item.properties.update(_mlm_properties(card))
    if card.provenance.license:
        item.properties["license"] = _license(card.provenance.license)
    item.properties.update(weights_origin(card))
    artifact_type, media_type = _ARTIFACT_TYPES.get(
        _suffix(weights_url), ("weights", "application/octet-stream")
    )
    weights = pystac.Asset(
        href=weights_url,
        title=f"Weights {card.name}",
        media_type=media_type,
        roles=["mlm:model", "mlm:weights", "data"],
        extra_fields={"mlm:artifact_type": artifact_type},
    )
    item.add_asset("weights", weights)
    if weights_file is not None:
        FileExtension.ext(weights, add_if_missing=True).apply(
            size=weights_file.stat().st_size, checksum=sha256_multihash(weights_file)
        )
    if card_href:
        item.add_asset(
            "model-card",
            pystac.Asset(
                href=card_href,
                title="stac-coh model card",
                media_type=pystac.MediaType.JSON,
                roles=["metadata"],
            ),
        )
    data = item.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = [
        {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../../catalog.json", "type": "application/json"},
    ]
    if self_href:
        data["links"].append({"rel": "self", "href": self_href, "type": "application/geo+json"})
    return data


def _mlm_properties(card: ModelCard) -> dict[str, Any]:
    """mlm: fields of the item properties."""
    prep, tiling = card.preprocessing, card.tiling
    patch = tiling.patch_size
    structure = {
        "shape": [-1, 2, patch, patch],
        "dim_order": ["batch", "channel", "height", "width"],
        "data_type": "float32",
    }
    return {
        "mlm:name": mlm_name(card.name),
        "mlm:architecture": "Residual U-Net",
        "mlm:tasks": ["regression"],
        "mlm:framework": "PyTorch",
        "mlm:pretrained": True,
        "mlm:batch_size_suggestion": tiling.batch_size,
        "mlm:input": [
            {
                "name": "backscatter pair",
                "bands": [],
                "input": structure,
                "description": (
                    "Two linear backscatter images of one relative orbit (earlier, later): "
                    f"{prep.describe()}."
                ),
                "value_scaling": [
                    {"type": "min-max", "minimum": prep.db_min, "maximum": prep.db_max}
                ],
                "resize_type": None,
            }
        ],
        "mlm:output": [
            {
                "name": "coherence and uncertainty",
                "tasks": ["regression"],
                "result": structure,
                "description": (
                    "Channel 0: InSAR coherence in [0, 1] (sigmoid). Channel 1: uncertainty "
                    "head in [0, 1] (sigmoid), mapped to a log-variance "
                    f"{card.uncertainty.log_variance_min} + head * "
                    f"({card.uncertainty.log_variance_max} - "
                    f"{card.uncertainty.log_variance_min})"
                    + ("." if card.uncertainty.calibrated else " (uncalibrated for these weights).")
                ),
            }
        ],
        "mlm:hyperparameters": {
            "base_filters": card.architecture.base,
            "patch_size": tiling.patch_size,
            "stride": tiling.stride,
            "aggregation": tiling.aggregation,
            "kaiser_beta": tiling.kaiser_beta,
            "db_min": prep.db_min,
            "db_max": prep.db_max,
        },
    }


def _description(card: ModelCard) -> str:
    """What the model does and where these weights come from, in sentences."""
    prov = card.provenance
    parts = [
        "A Residual U-Net that predicts InSAR coherence (0 to 1) and its uncertainty from "
        "two detected Sentinel-1 backscatter images of the same relative orbit, with the "
        "architecture of Sica, Pulella and Schmitt (2026).",
        f"These are the weights '{card.name}'.",
        as_sentence(f"Training data: {prov.trained_on}") if prov.trained_on else "",
        as_sentence(f"About the weights: {prov.notes}") if prov.notes else "",
        as_sentence(f"Source: {prov.source}") if prov.source else "",
        f"Tensor checksum (sha256): {card.sha256}." if card.sha256 else "",
    ]
    return " ".join(part for part in parts if part)


def mlm_name(name: str) -> str:
    """A name matching MLM's pattern (letter first, alphanumeric last)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-\s]", "-", name).strip(" _.-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}" if cleaned else "model"
    return cleaned if len(cleaned) > 2 else f"{cleaned}-model"


def _license(text: str) -> str:
    """An SPDX-looking id as is, anything else as ``other``."""
    return text if re.fullmatch(r"[A-Za-z0-9.+-]+", text) else "other"


def _suffix(url: str) -> str:
    """File extension of a URL path (lower case)."""
    path = url.split("?", 1)[0]
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
