"""The manifest: the plain JSON contract between search and every worker.

A manifest names the query that produced it, the source to read from, every STAC item it
uses (by canonical, unsigned href, with the item JSON embedded so a worker never has to
search again) and the work units to process: pairs restricted to one tile of the fixed
tile grid, each with the grid to process it on.

The contracts here are frozen dataclasses; the JSON edge (parsing, validation, JSON
Schema) is :mod:`stac_coh.search.manifest_models`; reading and writing files is
:mod:`stac_coh.search.manifest_io`. A Batch run's manifest is sharded
(:mod:`stac_coh.search.shards`), and then read with its pairs and items on demand, so a
child reads only its share.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stac_coh.grid import OutputGrid, as_transform
from stac_coh.search.manifest_models import (
    MANIFEST_V1,
    MANIFEST_V2,
    AcquisitionModel,
    GridModel,
    ManifestModel,
    PairModel,
    SourceModel,
)

__all__ = [
    "MANIFEST_SCHEMA_VERSION",
    "Acquisition",
    "Manifest",
    "Pair",
    "SourceSpec",
    "pair_id",
]

MANIFEST_SCHEMA_VERSION = MANIFEST_V2
"""Bumped whenever a reader of an older manifest would misread a newer one (2: work
units name their tile; version 1 manifests are still read)."""


@dataclass(frozen=True)
class Acquisition:
    """All slices of one datatake on one date that touch the area: one image to read."""

    platform: str
    """Lower-case platform, e.g. ``sentinel-1a``."""
    datetime: datetime
    """Start of the acquisition (earliest slice's nominal datetime), timezone-aware UTC."""
    item_ids: tuple[str, ...]
    """STAC item ids of the slices, in along-track order."""
    relative_orbit: int
    """``sat:relative_orbit``."""
    orbit_state: str
    """``ascending`` or ``descending``."""
    instrument_mode: str
    """``IW``, ``EW``, ..."""
    absolute_orbit: int | None = None
    """``sat:absolute_orbit`` when the items carry it."""
    datatake_id: str | None = None
    """``s1:datatake_id`` when the items carry it."""

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest's JSON form."""
        return _acquisition_model(self).model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Acquisition:
        """Parse the manifest's JSON form."""
        return _acquisition(AcquisitionModel.model_validate(data))


@dataclass(frozen=True)
class Pair:
    """Two acquisitions of one track to turn into one coherence map."""

    id: str
    """Deterministic id (see :func:`pair_id`): a re-run finds its earlier output."""
    reference: Acquisition
    """The earlier acquisition (model channel t1)."""
    secondary: Acquisition
    """The later acquisition (model channel t2)."""
    polarization: str
    """Polarisation to read, e.g. ``VV``."""
    baseline_days: float
    """Temporal baseline, secondary minus reference, in days."""
    aoi: dict[str, Any]
    """GeoJSON geometry (EPSG:4326) of the area to process."""
    grid: OutputGrid
    """Where output pixels lie."""
    coverage: float = 1.0
    """Share of the imaged part of the area that both acquisitions cover:
    area(aoi ∩ ref ∩ sec) / area(aoi ∩ (ref ∪ sec)) (see ``stac_coh.search.pairing``), over
    the pair's whole area (not only this unit's tile)."""
    tile: str | None = None
    """``grid:code`` of the tile this unit lies on (``MGRS-33UXP``); ``None`` for a pair
    planned without the tile grid (version 1 manifests)."""

    @property
    def platforms(self) -> tuple[str, ...]:
        """Distinct platforms of the two acquisitions, sorted."""
        return tuple(sorted({self.reference.platform, self.secondary.platform}))

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Every item the pair reads."""
        return self.reference.item_ids + self.secondary.item_ids

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest's JSON form."""
        return _pair_model(self).model_dump(mode="json", exclude_none=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pair:
        """Parse the manifest's JSON form."""
        return _pair(PairModel.model_validate(data))


@dataclass(frozen=True)
class SourceSpec:
    """Where the items came from and how to read their assets; never holds a secret."""

    kind: str
    """``planetary-computer``, ``earth-search``, ``stac-api`` or ``local``."""
    url: str
    """API root URL or local catalog path."""
    collection: str
    """Collection searched."""
    asset_keys: dict[str, str] = field(default_factory=dict)
    """Polarisation (upper case) -> asset key, e.g. ``{"VV": "vv"}``."""
    options: dict[str, Any] = field(default_factory=dict)
    """Per-source reading options (e.g. ``{"requester_pays": true}``)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest's JSON form."""
        return SourceModel.model_construct(**self.__dict__).model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSpec:
        """Parse the manifest's JSON form."""
        return cls(**SourceModel.model_validate(data).__dict__)


@dataclass(frozen=True)
class Manifest:
    """A versioned list of pairs plus everything needed to process them anywhere."""

    source: SourceSpec
    """Where to read the items' assets."""
    query: dict[str, Any]
    """The search that produced the pairs (bbox/aoi, dates, filters), for provenance."""
    pairs: Sequence[Pair]
    """Work units to process; a worker takes a slice of them by index. A tuple, or for a
    sharded manifest a sequence that reads units on demand."""
    items: Mapping[str, dict[str, Any]]
    """Item id -> STAC item JSON with unsigned hrefs (what the loader reads); for a sharded
    manifest, the items of the units read so far."""
    created: str = ""
    """RFC 3339 creation time."""
    software: str = ""
    """``stac-coh <version>`` that wrote it."""
    schema_version: str = MANIFEST_SCHEMA_VERSION
    """Contract version; see :data:`MANIFEST_SCHEMA_VERSION`."""

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "schema_version": self.schema_version,
            "created": self.created,
            "software": self.software,
            "query": self.query,
            "source": self.source.to_dict(),
            "pairs": [p.to_dict() for p in self.pairs],
            "items": dict(self.items),
        }

    def to_json(self) -> str:
        """Serialise with stable key order (diff-friendly)."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Parse and check the version of a manifest's JSON form (hrefs unsigned)."""
        from pydantic import ValidationError

        from stac_coh.errors import InputError
        from stac_coh.io.signing import unsigned_item

        if not isinstance(data, dict):
            raise InputError(
                f"This is not a stac-coh manifest: it holds a JSON {type(data).__name__}, not "
                "an object with schema_version, source and pairs. Write one with "
                "`stac-coh search ... --json FILE`."
            )
        version = data.get("schema_version")
        if version not in (MANIFEST_V1, MANIFEST_V2):
            raise InputError(
                f"Manifest schema_version is {version!r}, this stac-coh reads "
                f"{MANIFEST_V1!r} and {MANIFEST_V2!r}; regenerate it with "
                "`stac-coh search --json`."
            )
        try:
            model = ManifestModel.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "/".join(str(p) for p in first["loc"])
            raise InputError(
                f"The manifest is invalid at {where}: {first['msg']} ({exc.error_count()} "
                "errors); regenerate it with `stac-coh search --json`."
            ) from None
        return cls(
            source=SourceSpec(**model.source.__dict__),
            query=model.query,
            pairs=tuple(_pair(p) for p in model.pairs),
            items={k: unsigned_item(v) for k, v in model.items.items()},
            created=model.created,
            software=model.software,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest from JSON text."""
        return cls.from_dict(json.loads(text))


def pair_id(
    reference: Acquisition,
    secondary: Acquisition,
    polarization: str,
    grid: OutputGrid,
    tile: str | None = None,
) -> str:
    """Deterministic work-unit id: platforms, track, both dates, polarisation, tile, grid hash.

    Example: ``S1A-S1C_R165D_20260417_20260429_VV_43PGQ_3f9c2a1b`` (without a tile, as
    version 1 manifests had it: ``S1A-S1C_R165D_20260417_20260429_VV_3f9c2a1b``).
    """
    platforms = "-".join(
        sorted({_platform_code(reference.platform), _platform_code(secondary.platform)})
    )
    track = f"R{reference.relative_orbit:03d}{reference.orbit_state[:1].upper()}"
    dates = f"{reference.datetime:%Y%m%d}_{secondary.datetime:%Y%m%d}"
    digest = hashlib.sha256(
        json.dumps(
            [grid.crs, [round(v, 6) for v in grid.transform], grid.width, grid.height],
        ).encode()
    ).hexdigest()[:8]
    where = f"{tile}_" if tile else ""
    return f"{platforms}_{track}_{dates}_{polarization.upper()}_{where}{digest}"


def _platform_code(platform: str) -> str:
    """``sentinel-1a`` -> ``S1A``."""
    p = platform.lower()
    return "S1" + p[-1].upper() if p.startswith("sentinel-1") and len(p) > 10 else p.upper()


def _iso(value: datetime) -> str:
    """RFC 3339 with a ``Z`` for UTC."""
    return value.isoformat().replace("+00:00", "Z")


# The JSON edge: contracts <-> pydantic models (kept here so the models stay pure schema).


def _acquisition_model(acq: Acquisition) -> AcquisitionModel:
    """The model of an acquisition (no validation: contracts are valid by construction)."""
    return AcquisitionModel.model_construct(**{**acq.__dict__, "item_ids": list(acq.item_ids)})


def _acquisition(model: AcquisitionModel) -> Acquisition:
    """The acquisition of a validated model."""
    return Acquisition(**{**model.__dict__, "item_ids": tuple(model.item_ids)})


def _pair_model(pair: Pair) -> PairModel:
    """The model of a work unit (no validation: contracts are valid by construction)."""
    grid = pair.grid
    return PairModel.model_construct(
        id=pair.id,
        reference=_acquisition_model(pair.reference),
        secondary=_acquisition_model(pair.secondary),
        polarization=pair.polarization,
        baseline_days=pair.baseline_days,
        aoi=pair.aoi,
        grid=GridModel.model_construct(
            crs=grid.crs,
            transform=list(grid.transform),
            width=grid.width,
            height=grid.height,
            resolution=list(grid.resolution),
            bounds=list(grid.bounds),
        ),
        coverage=pair.coverage,
        tile=pair.tile,
    )


def _pair(model: PairModel) -> Pair:
    """The work unit of a validated model."""
    g = model.grid
    return Pair(
        id=model.id,
        reference=_acquisition(model.reference),
        secondary=_acquisition(model.secondary),
        polarization=model.polarization,
        baseline_days=model.baseline_days,
        aoi=model.aoi,
        grid=OutputGrid(g.crs, as_transform(g.transform), g.width, g.height),
        coverage=model.coverage,
        tile=model.tile,
    )
