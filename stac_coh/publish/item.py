"""The STAC item of one coherence pair, exactly as the product description lays it out.

Pure: it turns a :class:`~stac_coh.search.manifest.Pair`, the local asset files and their hrefs
into a ``pystac.Item``; writing it is :mod:`stac_coh.publish.pair`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pystac
import rasterio
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.extensions.raster import Statistics as RasterStatistics
from pystac.extensions.sar import (
    FrequencyBand,
    ObservationDirection,
    Polarization,
    SarExtension,
)
from pystac.extensions.sat import OrbitState, SatExtension

from stac_coh import __version__
from stac_coh.io.cog import COG_MEDIA_TYPE
from stac_coh.model.card import ModelCard
from stac_coh.publish.model_item import weights_origin
from stac_coh.publish.raster_info import (
    BandInfo,
    band_info,
    footprint,
    grid_outline,
    sha256_multihash,
)
from stac_coh.search.manifest import Pair

__all__ = [
    "ASSETS",
    "PAIR_SCHEMA_URL",
    "PROCESSING_SCHEMA_URL",
    "AssetSpec",
    "ItemInputs",
    "build_item",
    "canonical_href",
    "unsigned_href",
]

log = logging.getLogger(__name__)

PAIR_SCHEMA_URL = "https://stac-coh.github.io/stac-coh/schemas/pair/v1.0.0/schema.json"
"""Our ``coh:`` fields; the schema ships as ``stac_coh/schemas/pair-v1.json``."""

PROCESSING_SCHEMA_URL = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
"""pystac has no processing extension class; v1.2.0 adds ``processing:datetime``."""

CENTER_FREQUENCY_GHZ = 5.405
"""Sentinel-1 C-SAR centre frequency."""

PRODUCT_TYPE = "COH"
"""``sar:product_type`` of a coherence map (required by sar v1.0.0)."""

ESTIMATOR = "resunet"
"""Fallback estimator name when the card names no architecture."""


@dataclass(frozen=True)
class AssetSpec:
    """Fixed description of one asset key (shared with the collection's ``item_assets``)."""

    title: str
    """Short title."""
    description: str
    """What the file holds and how to read it."""
    media_type: str
    """IANA media type."""
    roles: tuple[str, ...]
    """STAC roles."""
    suffix: str
    """File name suffix after the item id."""


ASSETS: dict[str, AssetSpec] = {
    "coherence": AssetSpec(
        "Coherence",
        "Predicted InSAR coherence in [0, 1]: value = stored * scale + offset "
        "(see raster:bands); nodata marks pixels outside both acquisitions.",
        COG_MEDIA_TYPE,
        ("data",),
        "_coherence.tif",
    ),
    "uncertainty": AssetSpec(
        "Coherence uncertainty",
        "The model's second head: predicted standard deviation of coherence when "
        "coh:uncertainty is 'sigma', the raw head output in [0, 1] when it is 'head'.",
        COG_MEDIA_TYPE,
        ("data", "uncertainty"),
        "_uncertainty.tif",
    ),
    "visual": AssetSpec(
        "Coherence (colour)",
        "RGBA rendering of coherence 0..1 with the viridis colour map; transparent at nodata.",
        COG_MEDIA_TYPE,
        ("visual",),
        "_visual.tif",
    ),
    "thumbnail": AssetSpec(
        "Thumbnail",
        "Colour-mapped coherence (viridis, 0..1), at most 512 px on the long side.",
        pystac.MediaType.PNG,
        ("thumbnail",),
        "_thumbnail.png",
    ),
}
"""Every asset an item may have, in publication order."""

_SIGNING_PARAMS = {"sig", "se", "st", "sp", "sv", "sr", "skoid", "sktid", "skt", "ske", "sks"}


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


def build_item(pair: Pair, inputs: ItemInputs) -> pystac.Item:
    """The STAC item of ``pair``: geometry, times, extensions, assets and links."""
    coherence = inputs.files["coherence"]
    geometry = footprint(coherence)
    if geometry is None:
        log.warning("%s has no valid pixel; its footprint is the whole grid", pair.id)
        geometry = grid_outline(coherence)
    item = pystac.Item(
        id=pair.id,
        geometry=geometry,
        bbox=_bbox(geometry),
        datetime=None,
        start_datetime=pair.reference.datetime,
        end_datetime=pair.secondary.datetime,
        properties=_common_properties(pair, inputs),
        collection=inputs.collection_id,
    )
    _apply_sar_sat(item, pair)
    _apply_projection(item, coherence)
    _add_assets(item, inputs)
    item.stac_extensions.extend([PROCESSING_SCHEMA_URL, PAIR_SCHEMA_URL])
    _add_derived_from(item, pair, inputs)
    return item


def _common_properties(pair: Pair, inputs: ItemInputs) -> dict[str, Any]:
    """Common metadata, processing and ``coh:`` fields."""
    card = inputs.model_card
    ref, sec = pair.reference, pair.secondary
    estimator = card.architecture.name or ESTIMATOR
    weights = f"'{card.name}'" + (f" (sha256 {card.sha256[:12]})" if card.sha256 else "")
    lineage = (
        f"Coherence predicted by stac-coh {__version__} ({estimator}) with weights {weights} "
        f"from Sentinel-1 {pair.polarization.upper()} backscatter of {_iso(ref.datetime)} and "
        f"{_iso(sec.datetime)}, relative orbit {ref.relative_orbit} {ref.orbit_state}."
    )
    props: dict[str, Any] = {
        "title": f"Coherence {ref.datetime:%Y-%m-%d} / {sec.datetime:%Y-%m-%d} "
        f"R{ref.relative_orbit:03d} {pair.polarization.upper()}",
        "description": lineage + (f" {card.provenance.notes}" if card.provenance.notes else ""),
        "constellation": "sentinel-1",
        "platform": ",".join(pair.platforms),
        "instruments": ["c-sar"],
        "created": _iso(inputs.processing_datetime),
        "processing:level": "L4",
        "processing:software": {"stac-coh": __version__},
        "processing:datetime": _iso(inputs.processing_datetime),
        "processing:lineage": lineage,
        "coh:baseline_days": round(float(pair.baseline_days), 6),
        "coh:reference_datetime": _iso(ref.datetime),
        "coh:secondary_datetime": _iso(sec.datetime),
        "coh:reference_item_ids": list(ref.item_ids),
        "coh:secondary_item_ids": list(sec.item_ids),
        "coh:reference_platform": ref.platform.lower(),
        "coh:secondary_platform": sec.platform.lower(),
        "coh:coverage": round(float(pair.coverage), 6),
        "coh:estimator": estimator,
        "coh:estimator_version": __version__,
        "coh:weights_name": card.name,
        "coh:uncertainty": "sigma" if card.uncertainty.calibrated else "head",
    }
    if inputs.model_item_href:
        props["processing:expression"] = {
            "format": "stac-mlm",
            "expression": inputs.model_item_href,
        }
    if len(card.sha256) == 64:
        props["coh:weights_sha256"] = card.sha256.lower()
    if card.provenance.source:
        props["coh:weights_source"] = card.provenance.source
    props.update(weights_origin(card))  # repository, revision, license of Hub weights
    return props


def _apply_sar_sat(item: pystac.Item, pair: Pair) -> None:
    """sar and sat extension fields."""
    ref = pair.reference
    SarExtension.ext(item, add_if_missing=True).apply(
        instrument_mode=ref.instrument_mode.upper(),
        frequency_band=FrequencyBand.C,
        polarizations=[Polarization(pair.polarization.upper())],
        product_type=PRODUCT_TYPE,
        center_frequency=CENTER_FREQUENCY_GHZ,
        observation_direction=ObservationDirection.RIGHT,
    )
    SatExtension.ext(item, add_if_missing=True).apply(
        orbit_state=OrbitState(ref.orbit_state.lower()),
        relative_orbit=int(ref.relative_orbit),
    )


def _apply_projection(item: pystac.Item, coherence: Path) -> None:
    """projection extension fields of the output grid (read from the coherence COG)."""
    with rasterio.open(coherence) as ds:
        epsg = ds.crs.to_epsg()
        ProjectionExtension.ext(item, add_if_missing=True).apply(
            code=f"EPSG:{epsg}" if epsg else None,
            wkt2=None if epsg else ds.crs.to_wkt(),
            shape=[ds.height, ds.width],
            transform=[float(v) for v in list(ds.transform)[:6]],
            bbox=[float(v) for v in ds.bounds],
        )


def _add_assets(item: pystac.Item, inputs: ItemInputs) -> None:
    """Assets in :data:`ASSETS` order, with raster bands and file info."""
    for key, spec in ASSETS.items():
        path = inputs.files.get(key)
        if path is None:
            continue
        asset = pystac.Asset(
            href=inputs.hrefs[key],
            title=spec.title,
            description=spec.description,
            media_type=spec.media_type,
            roles=list(spec.roles),
        )
        item.add_asset(key, asset)
        FileExtension.ext(asset, add_if_missing=True).apply(
            size=path.stat().st_size, checksum=sha256_multihash(path)
        )
        if key in {"coherence", "uncertainty"}:
            info = band_info(path)
            unit = _unit(key, inputs.model_card)
            RasterExtension.ext(asset, add_if_missing=True).apply([_raster_band(info, item, unit)])
        elif key == "thumbnail":
            from PIL import Image

            with Image.open(path) as image:
                ProjectionExtension.ext(asset).shape = [image.height, image.width]


def _unit(key: str, card: ModelCard) -> str | None:
    """UCUM unit: coherence and a calibrated sigma are dimensionless ('1')."""
    if key == "coherence" or card.uncertainty.calibrated:
        return "1"
    return None


def _raster_band(info: BandInfo, item: pystac.Item, unit: str | None) -> RasterBand:
    """raster:bands entry: encoding, statistics of stored values, resolution."""
    transform = ProjectionExtension.ext(item).transform or [1.0]
    stats = info.statistics
    return RasterBand.create(
        nodata=info.stac_nodata,  # type: ignore[arg-type]
        data_type=DataType(info.data_type),
        scale=info.scale,
        offset=info.offset,
        unit=unit,
        spatial_resolution=abs(float(transform[0])),
        statistics=RasterStatistics.create(**stats.to_dict()) if stats else None,
    )


def _add_derived_from(item: pystac.Item, pair: Pair, inputs: ItemInputs) -> None:
    """One ``derived_from`` link per input item (canonical, unsigned) and one to the model."""
    for item_id in pair.item_ids:
        data = inputs.input_items.get(item_id)
        href = canonical_href(data) if data is not None else None
        if href is None:
            log.warning("no canonical href for input item %s; derived_from link omitted", item_id)
            continue
        item.add_link(
            pystac.Link("derived_from", href, media_type=pystac.MediaType.GEOJSON, title=item_id)
        )
    if inputs.model_item_href:
        item.add_link(
            pystac.Link(
                "derived_from",
                inputs.model_item_href,
                media_type=pystac.MediaType.GEOJSON,
                title=f"Model weights {inputs.model_card.name} (STAC MLM item)",
                extra_fields={"mlm:name": inputs.model_card.name},
            )
        )


def canonical_href(item: Mapping[str, Any]) -> str | None:
    """The item's canonical (else self) href with signing parameters removed."""
    links = item.get("links") or []
    for rel in ("canonical", "self"):
        for link in links:
            if link.get("rel") == rel and isinstance(link.get("href"), str):
                return unsigned_href(link["href"])
    return None


def unsigned_href(href: str) -> str:
    """``href`` without SAS / presigned-URL query parameters (tokens never get published)."""
    parts = urlsplit(href)
    if not parts.query:
        return href
    kept = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _SIGNING_PARAMS
        and not k.lower().startswith(("x-amz-", "x-goog-"))
        and k.lower() not in {"token", "access_token", "signature"}
    ]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _bbox(geometry: Mapping[str, Any]) -> list[float]:
    """Bounds of a GeoJSON geometry; west > east when it was cut at the antimeridian."""
    from shapely.geometry import shape

    geom = shape(geometry)
    west, south, east, north = geom.bounds
    parts = list(getattr(geom, "geoms", [geom]))
    if west <= -179.9999 and east >= 179.9999 and len(parts) > 1:
        west = min(p.bounds[0] for p in parts if p.bounds[0] > 0)
        east = max(p.bounds[2] for p in parts if p.bounds[2] < 0)
    return [round(v, 7) for v in (west, south, east, north)]


def _iso(value: datetime) -> str:
    """RFC 3339 UTC with ``Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
