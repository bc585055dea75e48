"""The coherence collection and the root catalog, and how items fold into them.

The layout in a store (all links relative, so the tree can be copied or served anywhere)::

    catalog.json                              root catalog
    models/<model-id>/<model-id>.json         MLM item of the weights (when published)
    <collection-id>/collection.json           the collection
    <collection-id>/<item-id>/<item-id>.json  one item per work unit, assets beside it
    <collection-id>/tiles/...                 the sub-catalogs listing the items by tile
                                              group, tile and year (publish.layout)

Folding is done on plain JSON dicts so a compare-and-swap loop can re-apply it to whatever
version of the collection it reads; :func:`rebuild_collection` recomputes everything from
the items (what ``finalize`` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pystac
from pystac.extensions.render import Render, RenderExtension

from stac_coh.constants import DEFAULT_COLLECTION_ID
from stac_coh.io.cog import UINT8_UNIT
from stac_coh.publish.extensions import INSAR, SCIENTIFIC, scientific_fields
from stac_coh.publish.item import ASSETS
from stac_coh.publish.layout import TILES_DIR, group_key, item_place
from stac_coh.publish.render import COLORMAP_NAME

__all__ = [
    "CATALOG_KEY",
    "DEFAULT_COLLECTION_ID",
    "ROOT_CATALOG_ID",
    "add_item_to_collection",
    "add_link",
    "asset_key",
    "build_collection",
    "build_root_catalog",
    "collection_key",
    "extend_extent",
    "is_item_key",
    "item_key",
    "rebuild_collection",
    "set_self_link",
]

ROOT_CATALOG_ID = "stac-coh"
"""Id of the root catalog."""

CATALOG_KEY = "catalog.json"
"""Key of the root catalog in the store."""

COPERNICUS_LEGAL_NOTICE = (
    "https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice"
)
"""Terms of use of Copernicus Sentinel data, which every coherence map derives from."""

_SUMMARY_LISTS = (
    "constellation",
    "platform",
    "instruments",
    "sar:instrument_mode",
    "sar:frequency_band",
    "sar:polarizations",
    "sat:orbit_state",
    "sat:relative_orbit",
    "coh:estimator",
    "coh:weights_name",
)
_SUMMARY_RANGES = ("insar:temporal_baseline",)
_COLLECTION_EXTENSIONS = (
    RenderExtension.get_schema_uri(),
    "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    INSAR,
    SCIENTIFIC,
)
"""Extensions whose fields the collection itself uses (renders, summaries, citation)."""
_EMPTY_INTERVAL: list[str | None] = [None, None]


def collection_key(collection_id: str) -> str:
    """Key of a collection JSON."""
    return f"{collection_id}/collection.json"


def item_key(collection_id: str, item_id: str) -> str:
    """Key of an item JSON."""
    return f"{collection_id}/{item_id}/{item_id}.json"


def asset_key(collection_id: str, item_id: str, asset: str) -> str:
    """Key of an item's asset file."""
    return f"{collection_id}/{item_id}/{item_id}{ASSETS[asset].suffix}"


def is_item_key(collection_id: str, key: str) -> bool:
    """Whether ``key`` is an item JSON of the collection (``<cid>/<id>/<id>.json``)."""
    parts = key.split("/")
    return (
        len(parts) == 3
        and parts[0] == collection_id
        and parts[2] == f"{parts[1]}.json"
        and not parts[1].startswith(".")
    )


def build_root_catalog(self_href: str | None = None) -> dict[str, Any]:
    """An empty root catalog (children are added with :func:`add_link`)."""
    catalog = pystac.Catalog(
        id=ROOT_CATALOG_ID,
        title="InSAR coherence from Sentinel-1 backscatter (stac-coh)",
        description=(
            "Coherence maps predicted by stac-coh from pairs of detected Sentinel-1 "
            "acquisitions, as Cloud-Optimized GeoTIFFs, and the model weights that made them."
        ),
    )
    data = catalog.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = [_link("root", "./catalog.json", "application/json")]
    if self_href:
        data["links"].append(_link("self", self_href, "application/json"))
    return data


def build_collection(
    collection_id: str,
    *,
    self_href: str | None = None,
    provider_name: str = "stac-coh",
    provider_url: str | None = None,
) -> dict[str, Any]:
    """An empty coherence collection; items are folded in with :func:`add_item_to_collection`."""
    now = datetime.now(UTC)
    collection = pystac.Collection(
        id=collection_id,
        title="Sentinel-1 InSAR coherence (stac-coh)",
        description=(
            "Per-pixel InSAR coherence, 0 to 1, predicted by a Residual U-Net from two "
            "detected (GRD or RTC) Sentinel-1 acquisitions of the same relative orbit, "
            "without phase: no SLC processing is involved. Each item is one pair. Its "
            "`coherence` asset is a Cloud-Optimized GeoTIFF whose band gives the scale, "
            "offset and nodata of the stored values; `uncertainty` is the model's second "
            "output; `visual` and `thumbnail` are colour pictures. Each item names the "
            "weights that produced it (`coh:weights_name`, `processing:lineage`) and links "
            "to their model description when it is published. Contains modified Copernicus "
            "Sentinel data."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[now, now]]),
        ),
        license="other",
        keywords=["sentinel-1", "sar", "insar", "coherence", "deep learning", "copernicus"],
        providers=[
            pystac.Provider(provider_name, roles=[pystac.ProviderRole.PROCESSOR], url=provider_url),
            pystac.Provider(
                "European Space Agency (Copernicus Sentinel-1)",
                roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR],
                url="https://sentinels.copernicus.eu/",
            ),
        ],
    )
    for key, spec in ASSETS.items():
        collection.item_assets[key] = pystac.ItemAssetDefinition.create(
            title=spec.title,
            description=spec.description,
            media_type=spec.media_type,
            roles=list(spec.roles),
        )
    data = collection.to_dict(include_self_link=False, transform_hrefs=False)
    data["extent"] = {"spatial": {"bbox": []}, "temporal": {"interval": [list(_EMPTY_INTERVAL)]}}
    data["summaries"] = {}
    data["stac_extensions"] = list(_COLLECTION_EXTENSIONS)
    data.update(scientific_fields("Sentinel-1 InSAR coherence predicted by stac-coh."))
    data["links"] = [
        _link("root", "../catalog.json", "application/json"),
        _link("parent", "../catalog.json", "application/json"),
        _link(
            "license",
            COPERNICUS_LEGAL_NOTICE,
            "application/pdf",
            "Legal notice on the use of Copernicus Sentinel data",
        ),
    ]
    if self_href:
        data["links"].append(_link("self", self_href, "application/json"))
    return data


def add_link(
    parent: dict[str, Any], rel: str, href: str, media_type: str, title: str | None = None
) -> bool:
    """Add a link unless one with the same rel and href exists; return whether it changed."""
    if any(link.get("rel") == rel and link.get("href") == href for link in parent["links"]):
        return False
    parent["links"].append(_link(rel, href, media_type, title))
    return True


def set_self_link(
    doc: dict[str, Any], href: str | None, media_type: str = "application/json"
) -> bool:
    """Point the document's ``self`` link at ``href`` (``None``: no self link); return whether
    it changed."""
    links = [link for link in doc["links"] if link.get("rel") != "self"]
    if href is not None:
        links.append(_link("self", href, media_type))
    changed = links != doc["links"]
    doc["links"] = links
    return changed


def add_item_to_collection(collection: dict[str, Any], item: Mapping[str, Any]) -> bool:
    """Fold one item in: the link to its tile group's catalog (which lists it through its
    tile and year catalogs, see :mod:`stac_coh.publish.layout`), the extent, the
    summaries, the render; True if changed."""
    before = repr((collection["links"], collection["extent"], collection.get("summaries")))
    group = item_place(item)[0]
    href = "./" + group_key(str(collection["id"]), group).split("/", 1)[1]
    add_link(collection, "child", href, "application/json", f"Tiles {group}")
    extend_extent(collection, item)
    _extend_summaries(collection.setdefault("summaries", {}), item)
    if "renders" not in collection:
        collection["renders"] = _renders(item)
    return before != repr((collection["links"], collection["extent"], collection.get("summaries")))


def rebuild_collection(
    collection: Mapping[str, Any], items: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """A copy of ``collection`` whose tile-group links, extent, summaries and renders come
    from ``items`` alone (streamed once, in any order; every other link kept)."""
    rebuilt = dict(collection)
    rebuilt["stac_extensions"] = list(_COLLECTION_EXTENSIONS)  # drop retired schema URLs
    rebuilt["links"] = [link for link in collection["links"] if not _is_listing(link)]
    rebuilt["extent"] = {"spatial": {"bbox": []}, "temporal": {"interval": [list(_EMPTY_INTERVAL)]}}
    rebuilt["summaries"] = {}
    rebuilt.pop("renders", None)
    for item in items:
        add_item_to_collection(rebuilt, item)
    kept = [link for link in rebuilt["links"] if not _is_listing(link)]
    listing = sorted((link for link in rebuilt["links"] if _is_listing(link)), key=_href)
    rebuilt["links"] = kept + listing
    if not rebuilt["extent"]["spatial"]["bbox"]:  # no item yet: a valid, honest extent
        rebuilt["extent"]["spatial"]["bbox"] = [[-180.0, -90.0, 180.0, 90.0]]
        rebuilt["extent"]["temporal"]["interval"] = [[_iso_now(), None]]
        rebuilt["renders"] = _renders({"assets": {}})
    return rebuilt


def _is_listing(link: Mapping[str, Any]) -> bool:
    """Links the items decide: item links (older flat layout) and tile-group children."""
    rel, href = link.get("rel"), str(link.get("href", ""))
    return rel == "item" or (rel == "child" and href.startswith(f"./{TILES_DIR}/"))


def _href(link: Mapping[str, Any]) -> str:
    """A link's href (sort key)."""
    return str(link.get("href", ""))


def _link(rel: str, href: str, media_type: str, title: str | None = None) -> dict[str, Any]:
    """A link object."""
    link = {"rel": rel, "href": href, "type": media_type}
    if title:
        link["title"] = title
    return link


def _title(item: Mapping[str, Any]) -> str | None:
    """An item's title, if any."""
    value = item.get("properties", {}).get("title")
    return str(value) if value else None


def extend_extent(
    collection: dict[str, Any], item: Mapping[str, Any], *, reset: bool = False
) -> None:
    """Grow the collection's overall bbox and interval to cover ``item``.

    ``reset`` replaces the extent by the item's (a placeholder extent, before the first item).
    """
    spatial = collection["extent"]["spatial"]
    bbox = [float(v) for v in item["bbox"][:4]]
    if bbox[0] > bbox[2]:  # crosses the antimeridian: longitudes span the globe
        bbox = [-180.0, bbox[1], 180.0, bbox[3]]
    if spatial["bbox"] and not reset:
        old = spatial["bbox"][0]
        bbox = [
            min(old[0], bbox[0]),
            min(old[1], bbox[1]),
            max(old[2], bbox[2]),
            max(old[3], bbox[3]),
        ]
    spatial["bbox"] = [bbox]
    props = item["properties"]
    start = props.get("start_datetime") or props.get("datetime")
    end = props.get("end_datetime") or props.get("datetime")
    interval = collection["extent"]["temporal"]["interval"][0]
    if start and (reset or interval[0] is None or _parse(start) < _parse(interval[0])):
        interval[0] = start
    if end and (reset or interval[1] is None or _parse(end) > _parse(interval[1])):
        interval[1] = end


def _extend_summaries(summaries: dict[str, Any], item: Mapping[str, Any]) -> None:
    """Distinct values (lists) and ranges (min/max) of the summarised properties."""
    props = item["properties"]
    for name in _SUMMARY_LISTS:
        if name not in props:
            continue
        value = props[name]
        values = value if isinstance(value, list) else [value]
        if name == "platform":  # a pair across platforms names the other in coh:platforms
            values = [*values, *props.get("coh:platforms", [])]
        merged = set(summaries.get(name, [])) | set(values)
        summaries[name] = sorted(merged, key=lambda v: (str(type(v)), v))
    for name in _SUMMARY_RANGES:
        if name not in props:
            continue
        value = props[name]
        old = summaries.get(name, {"minimum": value, "maximum": value})
        summaries[name] = {
            "minimum": min(old["minimum"], value),
            "maximum": max(old["maximum"], value),
        }


def _renders(item: Mapping[str, Any]) -> dict[str, Any]:
    """Render presets for tilers (titiler): stored-value rescale of the item's encoding."""
    default = {"scale": UINT8_UNIT.scale, "offset": UINT8_UNIT.offset, "nodata": UINT8_UNIT.nodata}
    band = (item["assets"].get("coherence", {}).get("raster:bands") or [default])[0]
    scale, offset = float(band.get("scale", 1.0)), float(band.get("offset", 0.0))
    low, high = (0.0 - offset) / scale, (1.0 - offset) / scale
    renders = {
        "coherence": Render.create(
            assets=["coherence"],
            title="Coherence 0-1 (viridis)",
            rescale=[[round(low, 6), round(high, 6)]],
            nodata=band.get("nodata"),
            colormap_name=COLORMAP_NAME,
            resampling="average",
        ).to_dict()
    }
    if "visual" in item["assets"]:
        renders["visual"] = Render.create(assets=["visual"], title="Coherence (colour)").to_dict()
    return {k: {f: v for f, v in r.items() if v is not None} for k, r in renders.items()}


def _iso_now() -> str:
    """The current time, RFC 3339 UTC."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    """Parse an RFC 3339 datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
