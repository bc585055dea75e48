"""What building a pair's STAC item needs beside the pair: files, hrefs, weights, facts known."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from stac_coh.model.card import ModelCard
from stac_coh.publish.links import HrefResolver, public_href
from stac_coh.publish.raster_info import BandInfo

__all__ = ["ItemInputs"]


@dataclass(frozen=True)
class ItemInputs:
    """Everything :func:`build_item` needs beside the pair."""

    files: Mapping[str, Path]
    """Asset key -> local file (coherence required; uncertainty, visual, thumbnail optional)."""
    hrefs: Mapping[str, str]
    """Asset key -> href written into the item (relative to the item JSON)."""
    model_card: ModelCard
    """The weights that produced the coherence."""
    input_items: Mapping[str, Mapping[str, Any]]
    """Input item id -> item JSON (for canonical ``derived_from`` hrefs)."""
    collection_id: str
    """Collection the item belongs to."""
    processing_datetime: datetime
    """When the coherence was computed (UTC)."""
    model_item_href: str | None = None
    """Href of the published MLM item describing the weights, if any."""
    input_href: HrefResolver = public_href
    """Turns an input's canonical href into the published one (relative inside the
    published tree), or ``None`` to leave a machine path out."""
    footprint: Mapping[str, Any] | None = None
    """Outline of the valid pixels (EPSG:4326) when already known; else traced from the file."""
    band_infos: Mapping[str, BandInfo] = field(default_factory=dict)
    """Band metadata already known, by asset key (inference's exact statistics); else read."""
    precision: str | None = None
    """Numeric precision the network ran at (``fp32``, ``bf16``, ``fp16``), if known."""
