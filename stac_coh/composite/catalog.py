"""The composite collection beside the pair collection, and publishing composite items.

Layout in the catalog's store (the pair collection's, extended)::

    catalog.json                                   root: links both collections
    sentinel-1-coherence/...                       the pairs
    sentinel-1-coherence-seasonal/collection.json  the composites
    sentinel-1-coherence-seasonal/<id>/<id>.json   one item per tile, period, polarisation
    sentinel-1-coherence-seasonal/<id>/<id>_<layer>.tif

A composite item is written after its assets; the collection folds it in with a
compare-and-swap loop (one Batch child per tile publishes at once), so the collection
lists every item once, with an extent, summaries and render presets for each layer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac

from stac_coh.composite.item import EXTENSIONS
from stac_coh.composite.layers import coherence_key, decay_layers, layers_for
from stac_coh.constants import DEFAULT_COMPOSITE_COLLECTION_ID
from stac_coh.io.cog import COG_MEDIA_TYPE
from stac_coh.io.storage import Store
from stac_coh.publish.cas import cas_update_json
from stac_coh.publish.collection import (
    COPERNICUS_LEGAL_NOTICE,
    add_link,
    collection_key,
    extend_extent,
    item_key,
)
from stac_coh.publish.layout import GEOJSON, JSON
from stac_coh.publish.render import COLORMAP_NAME
from stac_coh.publish.root_catalog import update_root_catalog

__all__ = [
    "DEFAULT_COMPOSITE_COLLECTION_ID",
    "build_composite_collection",
    "fold_composite",
    "publish_composite",
]

log = logging.getLogger(__name__)

RENDER_SCHEMA_URL = "https://stac-extensions.github.io/render/v2.0.0/schema.json"
TAU_RENDER_MAX = 100.0
"""Upper end (days) of the decay-time colour scale of the ``tau`` render preset."""
ITEM_ASSET_BASELINES = (6, 12, 18, 24, 36, 48)
"""Baselines the collection's ``item_assets`` describe (items may hold others)."""


def build_composite_collection(
    collection_id: str, pair_collection_id: str | None, *, self_href: str | None = None
) -> dict[str, Any]:
    """An empty composite collection; :func:`fold_composite` adds items."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    data: dict[str, Any] = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": [RENDER_SCHEMA_URL, EXTENSIONS["sar"]],
        "id": collection_id,
        "title": "Sentinel-1 seasonal coherence composites and decay model (stac-coh)",
        "description": (
            "Per-pixel median (or mean) of the coherence of every Sentinel-1 pair of a season "
            "or period, per temporal baseline, with the number of pairs behind each pixel, and "
            "the exponential decay model gamma(t) = (1 - rho_inf) * exp(-t / tau) + rho_inf "
            "fitted to the composites (rho_inf, tau in days, fit RMSE) where at least three "
            "baselines exist: the layers of the Global Seasonal Sentinel-1 Interferometric "
            "Coherence data set (Kellndorfer et al. 2022), made here from coherence predicted "
            "from detected images by stac-coh, for any period, at the pairs' resolution. One "
            "item per tile, period and polarisation; `derived_from` links name its pairs. "
            "Contains modified Copernicus Sentinel data."
        ),
        "keywords": [
            "sentinel-1",
            "sar",
            "insar",
            "coherence",
            "seasonal",
            "temporal decorrelation",
        ],
        "license": "other",
        "providers": [
            {"name": "stac-coh", "roles": ["processor"]},
            {
                "name": "European Space Agency (Copernicus Sentinel-1)",
                "roles": ["producer", "licensor"],
                "url": "https://sentinels.copernicus.eu/",
            },
        ],
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[now, None]]},
        },
        "summaries": {},
        "item_assets": _item_assets(),
        "renders": {},
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": JSON},
            {"rel": "parent", "href": "../catalog.json", "type": JSON},
            {
                "rel": "license",
                "href": COPERNICUS_LEGAL_NOTICE,
                "type": "application/pdf",
                "title": "Legal notice on the use of Copernicus Sentinel data",
            },
        ],
    }
    if pair_collection_id:
        data["links"].append(
            {
                "rel": "derived_from",
                "href": f"../{collection_key(pair_collection_id)}",
                "type": JSON,
                "title": "The coherence pairs the composites are made of",
            }
        )
    if self_href:
        data["links"].append({"rel": "self", "href": self_href, "type": JSON})
    return data


def fold_composite(collection: dict[str, Any], item: Mapping[str, Any]) -> bool:
    """Fold one item in: link, extent, summaries, render presets; True if it changed."""
    before = json.dumps(collection, sort_keys=True)
    first = not any(link.get("rel") == "item" for link in collection["links"])
    href = f"./{item['id']}/{item['id']}.json"
    add_link(collection, "item", href, GEOJSON, item["properties"].get("title"))
    extend_extent(collection, item, reset=first)
    summaries = collection.setdefault("summaries", {})
    props = item["properties"]
    for name in ("sar:polarizations", "coh:baselines", "coh:statistic", "coh:season"):
        values = props.get(name)
        if values is None:
            continue
        merged = set(summaries.get(name, [])) | set(
            values if isinstance(values, list) else [values]
        )
        summaries[name] = sorted(merged)
    renders = collection.setdefault("renders", {})
    for key in item["assets"]:
        if key not in renders and (render := _render(key)) is not None:
            renders[key] = render
    return before != json.dumps(collection, sort_keys=True)


def publish_composite(
    store: Store,
    item: dict[str, Any],
    files: Mapping[str, Path],
    *,
    collection_id: str = DEFAULT_COMPOSITE_COLLECTION_ID,
    pair_collection_id: str | None = None,
) -> str:
    """Upload the assets, then the item JSON, then fold it into the collection; return its href."""
    item_id = item["id"]
    ikey = item_key(collection_id, item_id)
    for key, path in files.items():
        href = item["assets"][key]["href"]
        store.put_file(
            f"{collection_id}/{item_id}/{href[2:]}", path, content_type=item["assets"][key]["type"]
        )
    self_href = store.self_href(ikey)
    item["links"] = [
        *([{"rel": "self", "href": self_href, "type": GEOJSON}] if self_href else []),
        {"rel": "root", "href": "../../catalog.json", "type": JSON},
        {"rel": "parent", "href": "../collection.json", "type": JSON},
        {"rel": "collection", "href": "../collection.json", "type": JSON},
        *[
            link
            for link in item["links"]
            if link.get("rel") not in {"self", "root", "parent", "collection"}
        ],
    ]
    store.put(ikey, json.dumps(item, indent=2).encode(), content_type=GEOJSON)
    ckey = collection_key(collection_id)

    def fold(current: dict[str, Any] | None) -> dict[str, Any] | None:
        coll = current or build_composite_collection(
            collection_id, pair_collection_id, self_href=store.self_href(ckey)
        )
        return coll if fold_composite(coll, item) or current is None else None

    if not cas_update_json(store, ckey, fold):
        log.warning("could not add %s to %s; run `stac-coh composite` again", item_id, ckey)
    title = "Seasonal coherence composites"
    update_root_catalog(store, [("child", f"./{ckey}", JSON, title)])
    return store.href_for(ikey)


def _render(key: str) -> dict[str, Any] | None:
    """Render preset of one asset (stored values, as tilers read them)."""
    if key.startswith("coherence_"):
        baseline = key.removeprefix("coherence_")
        return _preset(key, f"Coherence {baseline} (viridis, 0-1)", [0, 250], 255, COLORMAP_NAME)
    if key == "rho_inf":
        return _preset(
            key, "Long-term coherence rho_inf (viridis, 0-1)", [0, 250], 255, COLORMAP_NAME
        )
    if key == "tau":
        return _preset(
            key,
            f"Decay time tau (magma, 0-{TAU_RENDER_MAX:g} days)",
            [0, TAU_RENDER_MAX],
            "nan",
            "magma",
        )
    if key == "rmse":
        return _preset(key, "Decay fit RMSE (magma, 0-0.1)", [0, 25], 255, "magma")
    if key == "visual":
        return {"assets": ["visual"], "title": "Coherence (colour)"}
    return None


def _preset(
    key: str, title: str, rescale: list[float], nodata: float | str, cmap: str
) -> dict[str, Any]:
    """One render preset."""
    return {
        "assets": [key],
        "title": title,
        "rescale": [rescale],
        "nodata": nodata,
        "colormap_name": cmap,
        "resampling": "average",
    }


def _item_assets() -> dict[str, Any]:
    """Asset definitions for the usual baselines, the decay layers and the pictures."""
    out: dict[str, Any] = {}
    for baseline in ITEM_ASSET_BASELINES:
        for spec in layers_for(baseline, "median or mean"):
            roles = ["data"] if spec.key == coherence_key(baseline) else ["data", "metadata"]
            out[spec.key] = _definition(spec.title, spec.description, roles)
    for spec in decay_layers():
        out[spec.key] = _definition(spec.title, spec.description, ["data"])
    out["visual"] = _definition(
        "Coherence (colour)", "Colour rendering of one composite.", ["visual"]
    )
    out["thumbnail"] = {
        "title": "Thumbnail",
        "type": pystac.MediaType.PNG,
        "roles": ["thumbnail"],
    }
    return out


def _definition(title: str, description: str, roles: list[str]) -> dict[str, Any]:
    """An ``item_assets`` entry of a COG."""
    return {"title": title, "description": description, "type": COG_MEDIA_TYPE, "roles": roles}
