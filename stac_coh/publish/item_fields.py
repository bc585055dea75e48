"""The property groups of a coherence item: one function per group, one list of groups.

Each group returns the properties it owns and names the extension schema it needs (or
none, for plain ``coh:`` facts that no standard field covers). To add properties, add a
function and a :class:`PropertyGroup` line to :data:`PROPERTY_GROUPS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from stac_coh import __version__
from stac_coh.publish.extensions import INSAR, PROCESSING, SCIENTIFIC, scientific_fields
from stac_coh.publish.model_item import weights_origin
from stac_coh.publish.text import as_sentence
from stac_coh.search.manifest import Pair

if TYPE_CHECKING:
    from stac_coh.publish.item_inputs import ItemInputs

__all__ = [
    "ESTIMATOR",
    "PROPERTY_GROUPS",
    "PropertyGroup",
    "iso_seconds",
    "lineage",
    "round_seconds",
]

ESTIMATOR = "resunet"
"""Fallback estimator name when the card names no architecture."""


@dataclass(frozen=True)
class PropertyGroup:
    """Properties that belong together, and the extension schema they need."""

    name: str
    """What the group is (for readers of this module)."""
    schema: str | None
    """Extension schema URL declared when the group adds fields; ``None`` for none."""
    build: Callable[[Pair, ItemInputs], dict[str, Any]]
    """The group's properties for one pair."""


def round_seconds(value: datetime) -> datetime:
    """``value`` in UTC, rounded to the nearest second (half up)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC) + timedelta(microseconds=500_000)
    return value.replace(microsecond=0)


def iso_seconds(value: datetime) -> str:
    """RFC 3339 UTC with ``Z``, whole seconds."""
    return round_seconds(value).isoformat().replace("+00:00", "Z")


def _readable(value: datetime) -> str:
    """``2026-06-09 01:51:53 UTC``."""
    return f"{round_seconds(value):%Y-%m-%d %H:%M:%S} UTC"


def lineage(pair: Pair, inputs: ItemInputs) -> str:
    """``processing:lineage``: how the map was made, in one sentence."""
    card = inputs.model_card
    ref, sec = pair.reference, pair.secondary
    estimator = card.architecture.name or ESTIMATOR
    weights = f"'{card.name}'" + (f" (sha256 {card.sha256[:12]})" if card.sha256 else "")
    return (
        f"Coherence predicted by stac-coh {__version__} ({estimator}) with the weights "
        f"{weights} from Sentinel-1 {pair.polarization.upper()} backscatter acquired on "
        f"{_readable(ref.datetime)} and {_readable(sec.datetime)}, relative orbit "
        f"{ref.relative_orbit}, {ref.orbit_state.lower()}."
    )


def common_metadata(pair: Pair, inputs: ItemInputs) -> dict[str, Any]:
    """Title, description and STAC common metadata (one platform per ``platform``)."""
    ref, sec = pair.reference, pair.secondary
    notes = inputs.model_card.provenance.notes
    description = lineage(pair, inputs)
    if notes:
        description += " " + as_sentence(f"About the weights: {notes}")
    return {
        "title": f"Coherence {ref.datetime:%Y-%m-%d} / {sec.datetime:%Y-%m-%d} "
        f"R{ref.relative_orbit:03d} {pair.polarization.upper()}",
        "description": description,
        "constellation": "sentinel-1",
        "platform": ref.platform.lower(),
        "instruments": ["c-sar"],
        "created": iso_seconds(inputs.processing_datetime),
    }


def insar_fields(pair: Pair, _inputs: ItemInputs) -> dict[str, Any]:
    """The pair's dates and temporal baseline (days, to 0.01)."""
    return {
        "insar:temporal_baseline": round(float(pair.baseline_days), 2),
        "insar:reference_datetime": iso_seconds(pair.reference.datetime),
        "insar:secondary_datetime": iso_seconds(pair.secondary.datetime),
    }


def citation_fields(_pair: Pair, _inputs: ItemInputs) -> dict[str, Any]:
    """The paper whose model made the map."""
    return scientific_fields(f"Sentinel-1 InSAR coherence predicted by stac-coh {__version__}.")


def processing_fields(pair: Pair, inputs: ItemInputs) -> dict[str, Any]:
    """Level, software, time, lineage and (when published) the model item as expression."""
    props: dict[str, Any] = {
        "processing:level": "L4",
        "processing:software": {"stac-coh": __version__},
        "processing:datetime": iso_seconds(inputs.processing_datetime),
        "processing:lineage": lineage(pair, inputs),
    }
    if inputs.model_item_href:
        props["processing:expression"] = {
            "format": "stac-mlm",
            "expression": inputs.model_item_href,
        }
    return props


def stac_coh_fields(pair: Pair, inputs: ItemInputs) -> dict[str, Any]:
    """Facts no standard field covers: both platforms, inputs, coverage, weights."""
    card = inputs.model_card
    props: dict[str, Any] = {
        "coh:platforms": sorted({p.lower() for p in pair.platforms}),
        "coh:secondary_platform": pair.secondary.platform.lower(),
        "coh:reference_item_ids": list(pair.reference.item_ids),
        "coh:secondary_item_ids": list(pair.secondary.item_ids),
        "coh:coverage": round(float(pair.coverage), 4),
        "coh:estimator": card.architecture.name or ESTIMATOR,
        "coh:weights_name": card.name,
        "coh:uncertainty": "sigma" if card.uncertainty.calibrated else "head",
    }
    if len(card.sha256) == 64:
        props["coh:weights_sha256"] = card.sha256.lower()
    if card.provenance.source:
        props["coh:weights_source"] = card.provenance.source
    props.update(weights_origin(card))  # repository, revision, license of Hub weights
    return props


def precision_fields(_pair: Pair, inputs: ItemInputs) -> dict[str, Any]:
    """``coh:precision``: the arithmetic the network ran in (fp32, bf16 or fp16; #17)."""
    return {"coh:precision": inputs.precision} if inputs.precision else {}


PROPERTY_GROUPS: tuple[PropertyGroup, ...] = (
    PropertyGroup("common metadata", None, common_metadata),
    PropertyGroup("InSAR pair", INSAR, insar_fields),
    PropertyGroup("paper credited", SCIENTIFIC, citation_fields),
    PropertyGroup("processing", PROCESSING, processing_fields),
    PropertyGroup("stac-coh facts (no schema)", None, stac_coh_fields),
    PropertyGroup("network precision (no schema)", None, precision_fields),
)
"""Every property group of an item, in the order they appear."""
