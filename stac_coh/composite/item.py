"""The STAC item of one composite: tile, period and polarisation (STAC 1.1, ``bands``).

Pure: files in, a JSON dict out. Every data asset is a one-band COG whose STAC 1.1
``bands`` entry carries ``data_type``, ``nodata``, ``unit`` and the stored-value
``statistics`` STAC Browser stretches by; raster v1.1 ``raster:bands`` gives the scale
and offset stackstac and odc-stac decode with (raster v2 would move them into ``bands``
and forbid ``raster:bands``), as the pair items do. The time range is the period;
``derived_from`` links name every pair the composite used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from stac_coh import __version__
from stac_coh.composite.decay import MIN_BASELINES
from stac_coh.composite.layers import LayerSpec
from stac_coh.composite.pairs import PairRecord
from stac_coh.composite.periods import Period
from stac_coh.composite.tiles import TileStack
from stac_coh.io.cog import COG_MEDIA_TYPE
from stac_coh.publish.raster_info import (
    BandInfo,
    band_info,
    footprint,
    grid_outline,
    sha256_multihash,
)

__all__ = [
    "DECAY_MODEL",
    "EXTENSIONS",
    "CompositeInputs",
    "build_composite_item",
    "composite_item_id",
]

DECAY_MODEL = "gamma(t) = (1 - rho_inf) * exp(-t / tau) + rho_inf"
"""The decay model, as the items state it."""

GRID_SCHEMA_URL = "https://stac-extensions.github.io/grid/v1.1.0/schema.json"
EXTENSIONS = {
    "projection": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "processing": "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
}
"""Extensions every composite item uses (plus grid when the tile has a ``grid:code``)."""


@dataclass(frozen=True)
class CompositeInputs:
    """What one composite item is made of."""

    tile: TileStack
    """The tile."""
    period: Period
    """The period."""
    polarization: str
    """Polarisation of its pairs."""
    stat: str
    """``median`` or ``mean``."""
    files: Mapping[str, Path]
    """Asset key -> local file (layers, ``visual``, ``thumbnail``)."""
    specs: Mapping[str, LayerSpec]
    """Asset key -> how a data layer is stored."""
    baselines: Sequence[int]
    """Baselines with a composite."""
    pairs: Mapping[int, Sequence[PairRecord]]
    """Baseline -> pairs used."""
    derived_from: Sequence[tuple[str, str]]
    """(href, title) of every pair item, as the item should link it."""
    fitted: bool
    """Whether the decay layers exist."""
    preview_baseline: int
    """Baseline the ``visual`` and ``thumbnail`` show."""
    collection_id: str
    """The composite collection."""
    processing_datetime: datetime
    """When the composite was made."""


def composite_item_id(tile_code: str, period: Period, polarization: str, stat: str) -> str:
    """``MGRS-33UXP_2020-JJA_VV_median``: tile, period, polarisation, statistic."""
    return f"{tile_code}_{period.label}_{polarization.upper()}_{stat}"


def build_composite_item(inputs: CompositeInputs) -> dict[str, Any]:
    """The item JSON (structural links are added by the publisher)."""
    tile, period = inputs.tile, inputs.period
    item_id = composite_item_id(tile.code, period, inputs.polarization, inputs.stat)
    geometry = _footprint(inputs)
    from shapely.geometry import shape

    west, south, east, north = shape(geometry).bounds
    extensions = list(EXTENSIONS.values())
    props = _properties(inputs)
    if tile.grid_code:
        props["grid:code"] = tile.grid_code
        extensions.append(GRID_SCHEMA_URL)
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": sorted(extensions),
        "id": item_id,
        "collection": inputs.collection_id,
        "geometry": geometry,
        "bbox": [round(v, 7) for v in (west, south, east, north)],
        "properties": props,
        "assets": _assets(inputs, item_id),
        "links": [
            {"rel": "derived_from", "href": href, "type": "application/geo+json", "title": title}
            for href, title in inputs.derived_from
        ],
    }


def _properties(inputs: CompositeInputs) -> dict[str, Any]:
    """Time, common metadata, sar, projection, processing and ``coh:`` composite fields."""
    tile, period, pol = inputs.tile, inputs.period, inputs.polarization.upper()
    pairs = [p for b in inputs.baselines for p in inputs.pairs[b]]
    baselines = "/".join(str(b) for b in inputs.baselines)
    lineage = (
        f"Per-pixel {inputs.stat} of the coherence of {len(pairs)} Sentinel-1 {pol} pairs "
        f"({baselines}-day baselines) predicted by stac-coh, {period.label}, tile {tile.code}"
        + (
            f"; decay model {DECAY_MODEL} fitted per pixel where composites of at least "
            f"{MIN_BASELINES} baselines exist."
            if inputs.fitted
            else f"; no decay model: it needs composites of at least {MIN_BASELINES} baselines."
        )
    )
    props: dict[str, Any] = {
        "title": f"Coherence {inputs.stat} {period.label} {tile.code} {pol}",
        "description": lineage,
        "datetime": None,
        "start_datetime": _iso(period.start),
        "end_datetime": _iso(period.end),
        "created": _iso(inputs.processing_datetime),
        "constellation": "sentinel-1",
        "instruments": ["c-sar"],
        "sar:instrument_mode": "IW",
        "sar:frequency_band": "C",
        "sar:center_frequency": 5.405,
        "sar:polarizations": [pol],
        "sar:product_type": "COH",
        "sar:observation_direction": "right",
        "proj:code": tile.lattice.crs if len(tile.lattice.crs) < 32 else None,
        "proj:shape": [tile.height, tile.width],
        "proj:transform": [float(v) for v in list(tile.transform)[:6]],
        "proj:bbox": [
            tile.left,
            tile.top - tile.height * tile.lattice.res_y,
            tile.left + tile.width * tile.lattice.res_x,
            tile.top,
        ],
        "processing:level": "L4",
        "processing:software": {"stac-coh": __version__},
        "processing:datetime": _iso(inputs.processing_datetime),
        "processing:lineage": lineage,
        "coh:statistic": inputs.stat,
        "coh:period": period.label,
        "coh:baselines": list(inputs.baselines),
        "coh:pairs": len(pairs),
        "coh:pairs_per_baseline": {str(b): len(inputs.pairs[b]) for b in inputs.baselines},
        "coh:relative_orbits": sorted({p.relative_orbit for p in pairs if p.relative_orbit}),
        "coh:platforms": sorted({name for p in pairs for name in p.platforms}),
        "coh:decay_min_baselines": MIN_BASELINES,
    }
    if props["proj:code"] is None:
        props.pop("proj:code")
        props["proj:wkt2"] = tile.lattice.crs
    if period.season:
        props["coh:season"] = period.season
    if inputs.fitted:
        props["coh:decay_model"] = DECAY_MODEL
    return props


def _assets(inputs: CompositeInputs, item_id: str) -> dict[str, Any]:
    """Data layers, then ``visual`` and ``thumbnail``; hrefs relative to the item."""
    assets: dict[str, Any] = {}
    res = inputs.tile.lattice.res_x
    for key, path in inputs.files.items():
        asset: dict[str, Any] = {"href": f"./{item_id}_{path.name}"}
        spec = inputs.specs.get(key)
        if spec is not None:
            info = band_info(path)
            asset.update(
                type=COG_MEDIA_TYPE,
                title=spec.title,
                description=spec.description,
                roles=["data"]
                if key.startswith(("coherence", "rho", "tau"))
                else ["data", "metadata"],
                bands=[_band(info, spec)],
                **{"raster:bands": [_raster_band(info, spec, res)]},
            )
        elif key == "visual":
            asset.update(
                type=COG_MEDIA_TYPE,
                title=f"Coherence {inputs.preview_baseline}-day {inputs.stat} (colour)",
                description="Colour rendering (viridis, 0..1) of the "
                f"coherence_{inputs.preview_baseline}d layer; transparent where it has no data.",
                roles=["visual"],
            )
        else:
            asset.update(
                type="image/png",
                title="Thumbnail",
                description=f"coherence_{inputs.preview_baseline}d in viridis (0..1), at most "
                "512 px on the long side.",
                roles=["thumbnail"],
            )
        asset["file:size"] = path.stat().st_size
        asset["file:checksum"] = sha256_multihash(path)
        assets[key] = asset
    return assets


def _band(info: BandInfo, spec: LayerSpec) -> dict[str, Any]:
    """STAC 1.1 ``bands`` entry of a one-band layer: meaning, storage, stored-value statistics."""
    integer = np.dtype(info.data_type).kind in "iu"
    storage = f"Stored as {info.data_type}"
    if spec.scale != 1.0 or spec.offset != 0.0:
        storage += (
            f" 0-{round((1.0 - spec.offset) / spec.scale)}; value = stored x {spec.scale:g}"
            " (raster:bands scale and offset). Statistics are of the stored values"
        )
    band: dict[str, Any] = {
        "name": spec.key,
        "description": f"{spec.description} {storage}.",
        "data_type": info.data_type,
        "nodata": info.stac_nodata,
    }
    if spec.unit:
        band["unit"] = spec.unit
    if info.statistics is not None:
        band["statistics"] = _rounded(info.statistics.to_dict(), integer)
    return band


def _raster_band(info: BandInfo, spec: LayerSpec, resolution: float) -> dict[str, Any]:
    """raster v1.1 ``raster:bands`` entry: how to decode stored values (stackstac, odc-stac)."""
    return {
        "data_type": info.data_type,
        "nodata": info.stac_nodata,
        "scale": spec.scale,
        "offset": spec.offset,
        "spatial_resolution": resolution,
    }


def _rounded(stats: Mapping[str, float], integer: bool) -> dict[str, float]:
    """Statistics rounded for reading (whole extremes for integer data)."""
    digits = 2 if integer else 4
    return {
        key: (int(value) if integer and key in ("minimum", "maximum") else round(value, digits))
        for key, value in stats.items()
    }


def _footprint(inputs: CompositeInputs) -> dict[str, Any]:
    """Outline of the pixels with at least one pair (the union over baselines)."""
    import shapely
    from shapely.geometry import mapping, shape

    parts = []
    for key, path in inputs.files.items():
        if key.startswith("count_") and (geom := footprint(path)) is not None:
            parts.append(shape(geom))
    if not parts:
        first = next(p for k, p in inputs.files.items() if k.startswith("count_"))
        return grid_outline(first)
    union = shapely.union_all(parts) if len(parts) > 1 else parts[0]
    import json

    return json.loads(json.dumps(mapping(shapely.make_valid(union).normalize())))


def _iso(value: datetime) -> str:
    """RFC 3339 UTC with ``Z``."""
    return value.isoformat().replace("+00:00", "Z")
