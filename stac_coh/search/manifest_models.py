"""The manifest's JSON edge: pydantic models that parse, validate and describe it.

In memory the contracts stay frozen dataclasses (:mod:`stac_coh.search.manifest`): cheap,
hashable, and what loaders, inference and publishing already take. Pydantic does what it
is good at, at the boundary: one declaration gives validation with messages that name the
field at fault, the JSON form, and a JSON Schema (``stac_coh/schemas/manifest-v2.json``)
that other tools can check a manifest against.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PositiveInt

__all__ = [
    "MANIFEST_V1",
    "MANIFEST_V2",
    "AcquisitionModel",
    "GridModel",
    "ManifestModel",
    "PairModel",
    "SourceModel",
    "manifest_json_schema",
]

MANIFEST_V1 = "stac-coh/manifest/1"
"""Pairs without tiles (read for compatibility)."""
MANIFEST_V2 = "stac-coh/manifest/2"
"""Work units on the fixed tile grid: each pair names its ``tile``."""


class _Model(BaseModel):
    """Unknown keys are kept out, not refused: a newer minor writer may add some."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class AcquisitionModel(_Model):
    """All slices of one datatake on one date that touch the unit: one image to read."""

    platform: str = Field(description="Lower-case platform, e.g. sentinel-1a.")
    datetime: AwareDatetime = Field(description="Earliest slice's time, UTC.")
    item_ids: list[str] = Field(min_length=1, description="STAC item ids, along-track order.")
    relative_orbit: int = Field(ge=1, le=175)
    orbit_state: Literal["ascending", "descending"]
    instrument_mode: str
    absolute_orbit: int | None = None
    datatake_id: str | None = None


class GridModel(_Model):
    """A north-up raster grid: CRS, affine transform, shape."""

    crs: str = Field(description="EPSG:nnnn, or WKT.")
    transform: list[float] = Field(min_length=6, max_length=9)
    width: PositiveInt
    height: PositiveInt
    resolution: list[float] | None = Field(default=None, description="Derived; ignored.")
    bounds: list[float] | None = Field(default=None, description="Derived; ignored.")


class PairModel(_Model):
    """One work unit: two acquisitions of one track on one tile's grid."""

    id: str = Field(min_length=1, description="Deterministic id; names the STAC item.")
    reference: AcquisitionModel
    secondary: AcquisitionModel
    polarization: Literal["VV", "VH", "HH", "HV"]
    baseline_days: float = Field(gt=0)
    aoi: dict[str, Any] = Field(description="GeoJSON geometry (EPSG:4326) of the unit.")
    grid: GridModel
    coverage: float = Field(default=1.0, ge=0, le=1)
    tile: str | None = Field(
        default=None,
        pattern=r"^[A-Z0-9]+-[-_.A-Za-z0-9]+$",
        description="grid:code of the unit's tile, e.g. MGRS-33UXP.",
    )


class SourceModel(_Model):
    """Where the items came from and how to read their assets; never a secret."""

    kind: str
    url: str
    collection: str
    asset_keys: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)


class ManifestModel(_Model):
    """A versioned list of work units plus everything needed to process them anywhere."""

    schema_version: Literal["stac-coh/manifest/1", "stac-coh/manifest/2"]
    created: str = ""
    software: str = ""
    query: dict[str, Any] = Field(default_factory=dict)
    source: SourceModel
    pairs: list[PairModel]
    items: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Item id -> STAC item JSON, unsigned hrefs."
    )


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of a (single-file) manifest."""
    schema = ManifestModel.model_json_schema()
    schema["$id"] = "https://stac-coh.github.io/stac-coh/schemas/manifest/v2/schema.json"
    schema["title"] = "stac-coh manifest"
    return schema
