"""The STAC item of one coherence pair, exactly as the product description lays it out.

Pure: it turns a :class:`~stac_coh.search.manifest.Pair`, the local asset files and their hrefs
into a ``pystac.Item``; writing it is :mod:`stac_coh.publish.pair`'s job. Properties come
from the groups in :mod:`stac_coh.publish.item_fields`; this module adds the extension
fields pystac knows (sar, sat, projection, file), the assets with their STAC 1.1 ``bands``
(plus raster v1.1 ``raster:bands`` for the scale) and the links.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac
import rasterio
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.sar import (
    FrequencyBand,
    ObservationDirection,
    Polarization,
    SarExtension,
)
from pystac.extensions.sat import OrbitState, SatExtension

from stac_coh.io.cog import COG_MEDIA_TYPE
from stac_coh.model.card import ModelCard
from stac_coh.publish.extensions import RASTER_BANDS_V1
from stac_coh.publish.item_fields import PROPERTY_GROUPS, round_seconds
from stac_coh.publish.item_inputs import ItemInputs
from stac_coh.publish.links import canonical_href
from stac_coh.publish.model_item import mlm_name
from stac_coh.publish.raster_info import (
    BandInfo,
    band_info,
    band_object,
    footprint,
    grid_outline,
    raster_band_v1,
    sha256_multihash,
)
from stac_coh.search.manifest import Pair

__all__ = [
    "ASSETS",
    "GRID_SCHEMA_URL",
    "MODEL_REL",
    "AssetSpec",
    "ItemInputs",
    "build_item",
]

log = logging.getLogger(__name__)

GRID_SCHEMA_URL = "https://stac-extensions.github.io/grid/v1.1.0/schema.json"
"""``grid:code``: the tile of the fixed output grid the item lies on (``MGRS-33UXP``)."""

CENTER_FREQUENCY_GHZ = 5.405
"""Sentinel-1 C-SAR centre frequency."""

PRODUCT_TYPE = "COH"
"""``sar:product_type`` of a coherence map (required by sar v1.0.0)."""

MODEL_REL = "processing-expression"
"""Relation of the link to the model (MLM) item: the processing extension's relation for
how the data was processed, paired with ``processing:expression``. MLM suggests
``derived_from``, but STAC Browser lists every ``derived_from`` as an input scene."""


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
    """STAC roles (``coherence`` is the InSAR extension's role)."""
    suffix: str
    """File name suffix after the item id."""


ASSETS: dict[str, AssetSpec] = {
    "coherence": AssetSpec(
        "Coherence",
        "Predicted InSAR coherence, 0 to 1. The band says how values are stored (scale, "
        "offset, nodata) and what its statistics describe.",
        COG_MEDIA_TYPE,
        ("data", "coherence"),
        "_coherence.tif",
    ),
    "uncertainty": AssetSpec(
        "Coherence uncertainty",
        "The model's second output: the predicted standard deviation of the coherence when "
        "coh:uncertainty is 'sigma', the raw head output (0 to 1, uncalibrated) when it is "
        "'head'.",
        COG_MEDIA_TYPE,
        ("data", "uncertainty"),
        "_uncertainty.tif",
    ),
    "visual": AssetSpec(
        "Coherence (colour)",
        "Coherence 0 to 1 drawn with the viridis colour map, as an RGB image whose mask "
        "makes pixels without data transparent.",
        COG_MEDIA_TYPE,
        ("visual",),
        "_visual.tif",
    ),
    "thumbnail": AssetSpec(
        "Thumbnail",
        "Coherence 0 to 1 drawn with the viridis colour map, at most 512 px on the long side.",
        pystac.MediaType.PNG,
        ("thumbnail",),
        "_thumbnail.png",
    ),
}
"""Every asset an item may have, in publication order."""

_BAND_MEANING = {
    "coherence": ("coherence", "InSAR coherence predicted by the model, 0 to 1."),
    "uncertainty": ("uncertainty", "Uncertainty of the predicted coherence."),
}


def build_item(pair: Pair, inputs: ItemInputs) -> pystac.Item:
    """The STAC item of ``pair``: geometry, times, extensions, assets and links."""
    coherence = inputs.files["coherence"]
    geometry = dict(inputs.footprint) if inputs.footprint else footprint(coherence)
    if geometry is None:
        log.warning("%s has no valid pixel; its footprint is the whole grid", pair.id)
        geometry = grid_outline(coherence)
    properties: dict[str, Any] = {}
    schemas: list[str] = []
    for group in PROPERTY_GROUPS:
        properties.update(group.build(pair, inputs))
        if group.schema:
            schemas.append(group.schema)
    if pair.tile:  # the tile of the fixed output grid the unit lies on
        properties["grid:code"] = pair.tile
        schemas.append(GRID_SCHEMA_URL)
    item = pystac.Item(
        id=pair.id,
        geometry=geometry,
        bbox=_bbox(geometry),
        datetime=None,
        start_datetime=round_seconds(pair.reference.datetime),
        end_datetime=round_seconds(pair.secondary.datetime),
        properties=properties,
        collection=inputs.collection_id,
    )
    _apply_sar_sat(item, pair)
    _apply_projection(item, coherence)
    schemas.extend(_add_assets(item, inputs))
    item.stac_extensions.extend(s for s in schemas if s not in item.stac_extensions)
    _add_links(item, pair, inputs)
    return item


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


def _add_assets(item: pystac.Item, inputs: ItemInputs) -> list[str]:
    """Assets in :data:`ASSETS` order with bands and file info; the schemas they need."""
    schemas: list[str] = []
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
        if key in _BAND_MEANING:
            info = inputs.band_infos.get(key) or band_info(path)
            schemas.extend(_add_bands(asset, key, info, item, inputs.model_card))
        elif key == "thumbnail":
            from PIL import Image

            with Image.open(path) as image:
                ProjectionExtension.ext(asset).shape = [image.height, image.width]
    return schemas


def _add_bands(
    asset: pystac.Asset, key: str, info: BandInfo, item: pystac.Item, card: ModelCard
) -> list[str]:
    """STAC 1.1 ``bands`` and raster v1.1 ``raster:bands``; the schema they need.

    ``bands`` holds the core fields (data type, nodata, statistics of stored values, unit):
    what STAC Browser 5 draws with and odc-stac reads. Scale, offset and resolution go in
    ``raster:bands``, the only place stackstac (0.5.1) takes them from when it rescales;
    raster v2 puts them inside ``bands`` but forbids ``raster:bands`` beside them.
    """
    name, meaning = _BAND_MEANING[key]
    if key == "uncertainty":
        meaning = (
            "Predicted standard deviation of the coherence (the model's second output)."
            if card.uncertainty.calibrated
            else "Raw uncertainty output of the model, 0 to 1 (uncalibrated for these weights)."
        )
    transform = ProjectionExtension.ext(item).transform or [1.0]
    asset.extra_fields["bands"] = [
        band_object(info, name=name, meaning=meaning, unit=_unit(key, card))
    ]
    asset.extra_fields["raster:bands"] = [
        raster_band_v1(info, spatial_resolution=abs(float(transform[0])))
    ]
    return [RASTER_BANDS_V1]


def _unit(key: str, card: ModelCard) -> str | None:
    """UCUM unit: coherence and a calibrated sigma are dimensionless ('1')."""
    if key == "coherence" or card.uncertainty.calibrated:
        return "1"
    return None


def _add_links(item: pystac.Item, pair: Pair, inputs: ItemInputs) -> None:
    """``derived_from`` each input item (where it has a public href), and the model."""
    for item_id in pair.item_ids:
        data = inputs.input_items.get(item_id)
        canonical = canonical_href(data) if data is not None else None
        href = inputs.input_href(canonical) if canonical else None
        if href is None:
            log.warning(
                "input item %s has no href readers can resolve (%s); derived_from omitted",
                item_id,
                canonical or "no self link",
            )
            continue
        item.add_link(
            pystac.Link("derived_from", href, media_type=pystac.MediaType.GEOJSON, title=item_id)
        )
    if inputs.model_item_href:
        item.add_link(
            pystac.Link(
                MODEL_REL,
                inputs.model_item_href,
                media_type=pystac.MediaType.GEOJSON,
                title=f"Model that made this map: weights {inputs.model_card.name} (MLM item)",
                extra_fields={"mlm:name": mlm_name(inputs.model_card.name)},
            )
        )


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
