"""Publish one pair: COG assets, pictures, the STAC item, and its place in the collection.

The protocol, safe for hundreds of concurrent publishers on one store:

1. If the item JSON exists (and ``overwrite`` is off) the pair is done: skip it.
2. Write every asset (unconditional: assets without an item are orphans a re-run replaces).
3. Write the item JSON last, create-only; its presence means the pair is done. Losing the
   create race means another publisher finished the same pair: skip.
4. List the item in its year catalog (:mod:`stac_coh.publish.layout`), make sure the tile,
   tile group, collection and root catalog lead to it, and fold it into the collection's
   extent and summaries, each with a compare-and-swap loop, so the catalog is browsable
   while a run goes on. A publisher that gives up or dies here loses nothing: ``finalize``
   rebuilds every listing from the items themselves, and any re-run of the pair folds it
   in again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pystac

from stac_coh.errors import ConflictError, RasterReadError
from stac_coh.infer.engine import PredictionSummary
from stac_coh.io.storage import Store
from stac_coh.model.card import ModelCard
from stac_coh.publish.cas import CAS_ATTEMPTS, cas_update_json
from stac_coh.publish.collection import (
    DEFAULT_COLLECTION_ID,
    add_item_to_collection,
    add_link,
    asset_key,
    build_collection,
    collection_key,
    item_key,
)
from stac_coh.publish.item import ASSETS, ItemInputs, build_item
from stac_coh.publish.known import KnownFacts
from stac_coh.publish.layout import (
    GEOJSON,
    JSON,
    build_subcatalog,
    group_key,
    item_href_from_year,
    item_parent_href,
    item_place,
    tile_key,
    year_key,
)
from stac_coh.publish.links import HrefResolver, public_href, relative_key
from stac_coh.publish.model_item import (
    build_model_item,
    bundled_weights_file,
    model_item_id,
    weights_href,
)
from stac_coh.publish.raster_info import ensure_cog
from stac_coh.publish.render import write_thumbnail, write_visual
from stac_coh.publish.root_catalog import update_root_catalog
from stac_coh.search.manifest import Pair

__all__ = [
    "PublishResult",
    "ensure_model_item",
    "list_in_subcatalogs",
    "publish_pair",
    "register_item",
    "tree_href",
]

log = logging.getLogger(__name__)

_OCTETS = "application/octet-stream"


@dataclass(frozen=True)
class PublishResult:
    """What happened to one pair."""

    pair_id: str
    """The pair (and item) id."""
    status: Literal["published", "skipped"]
    """``skipped``: the item already existed (an earlier run or a concurrent publisher)."""
    item_href: str
    """Where the item JSON is (public URL if the store knows one)."""
    item: dict[str, Any]
    """The item JSON as stored."""
    registered: bool
    """Whether the collection lists the item now (else ``finalize`` will)."""


def publish_pair(
    pair: Pair,
    coherence_path: str | Path,
    uncertainty_path: str | Path | None,
    store: Store,
    *,
    model_card: ModelCard,
    manifest_items: Mapping[str, Mapping[str, Any]],
    collection_id: str = DEFAULT_COLLECTION_ID,
    overwrite: bool = False,
    processing_datetime: datetime | None = None,
    weights_url: str | None = None,
    update_collection: bool = True,
    extra_properties: Mapping[str, Any] | None = None,
    prediction: PredictionSummary | None = None,
) -> PublishResult:
    """Publish a pair's coherence (and uncertainty) COG as a STAC item in ``store``.

    Args:
        pair: The pair; its id is the item id.
        coherence_path: Local coherence GeoTIFF (uint8 scale 0.004 nodata 255, or float32
            NaN); rewritten as a COG if it is not one.
        uncertainty_path: Local uncertainty GeoTIFF, or ``None``.
        store: Where the catalog lives.
        model_card: Card of the weights that produced the coherence.
        manifest_items: Input item id -> item JSON (canonical hrefs for ``derived_from``).
        collection_id: Collection to publish into.
        overwrite: Re-publish even if the item exists.
        processing_datetime: When the coherence was computed (default: now).
        weights_url: Where readers fetch the weights (default: from the card's provenance);
            with one, an MLM item describing the weights is published and linked.
        update_collection: Fold the item into the collection now (off: leave it to finalize).
        extra_properties: More item properties (namespaced by the caller).
        prediction: What inference learnt while writing these files (exact statistics,
            the valid mask, renders written in the same pass, precision); used instead of
            reading the COGs again. Files are still checked (COG layout, checksum).
    """
    ikey = item_key(collection_id, pair.id)
    if not overwrite and (existing := store.get_or_none(ikey)) is not None:
        return _skipped(store, collection_id, ikey, existing.data, update_collection)
    model_href = ensure_model_item(store, model_card, weights_url=weights_url)
    known = KnownFacts.of(prediction, Path(coherence_path))
    with tempfile.TemporaryDirectory(prefix="stac-coh-publish-") as tmp:
        files = _prepare_files(Path(coherence_path), uncertainty_path, Path(tmp), known.visual)
        item = build_item(
            pair,
            ItemInputs(
                files=files,
                hrefs={key: f"./{pair.id}{ASSETS[key].suffix}" for key in files},
                model_card=model_card,
                input_items=manifest_items,
                collection_id=collection_id,
                processing_datetime=processing_datetime or datetime.now(UTC),
                model_item_href=relative_key(model_href, ikey) if model_href else None,
                input_href=tree_href(store, ikey),
                footprint=known.footprint,
                band_infos=known.band_infos(files),
                precision=known.precision,
            ),
        )
        if extra_properties:
            item.properties.update(extra_properties)
        data = _item_json(item, store, ikey)
        for key, path in files.items():
            store.put_file(
                asset_key(collection_id, pair.id, key), path, content_type=ASSETS[key].media_type
            )
    body = json.dumps(data, indent=2).encode()
    if overwrite:
        store.put(ikey, body, content_type=GEOJSON)
    else:
        try:
            store.put_new(ikey, body, content_type=GEOJSON)
        except ConflictError:
            log.info("%s was published concurrently by another worker; skipping", pair.id)
            return _skipped(store, collection_id, ikey, store.get(ikey).data, update_collection)
    registered = update_collection and register_item(store, collection_id, data)
    log.info("published %s", store.href_for(ikey))
    return PublishResult(pair.id, "published", store.href_for(ikey), data, registered)


def tree_href(store: Store, from_key: str) -> HrefResolver:
    """Resolver for input hrefs: relative to ``from_key`` when the input lies in ``store``'s
    tree, the URL itself when it is one, and ``None`` for a path of this machine."""

    def resolve(href: str) -> str | None:
        key = store.key_for(href)
        if key is not None and store.exists(key):
            return relative_key(key, from_key)
        return public_href(href)

    return resolve


def _prepare_files(
    coherence: Path, uncertainty: str | Path | None, workdir: Path, visual: Path | None = None
) -> dict[str, Path]:
    """COG data assets plus the visual COG (rendered unless given) and PNG thumbnail."""
    for path in (coherence, uncertainty):
        if path is not None and not Path(path).is_file():
            raise RasterReadError(
                f"{path} does not exist; publish a pair only after its prediction is written."
            )
    files = {"coherence": ensure_cog(coherence, workdir)}
    if uncertainty is not None:
        files["uncertainty"] = ensure_cog(Path(uncertainty), workdir)
    if visual is not None and visual.is_file():
        files["visual"] = visual
    else:
        files["visual"] = write_visual(files["coherence"], workdir / "visual.tif")
    files["thumbnail"] = write_thumbnail(files["coherence"], workdir / "thumbnail.png")
    return files


def _item_json(item: pystac.Item, store: Store, ikey: str) -> dict[str, Any]:
    """Item dict with relative structural links and an absolute self href."""
    data: dict[str, Any] = item.to_dict(include_self_link=False, transform_hrefs=False)
    structural = {"self", "root", "parent", "collection"}
    self_href = store.self_href(ikey)
    data["links"] = [
        *([{"rel": "self", "href": self_href, "type": GEOJSON}] if self_href else []),
        {"rel": "root", "href": "../../catalog.json", "type": JSON},
        {"rel": "parent", "href": item_parent_href(data), "type": JSON},
        {"rel": "collection", "href": "../collection.json", "type": JSON},
        *[link for link in data["links"] if link.get("rel") not in structural],
    ]
    return data


def _skipped(
    store: Store, collection_id: str, ikey: str, body: bytes, update_collection: bool
) -> PublishResult:
    """Result for a pair already published; folds it in again in case a run died before."""
    data = json.loads(body)
    registered = update_collection and register_item(store, collection_id, data)
    return PublishResult(data["id"], "skipped", store.href_for(ikey), data, registered)


def register_item(
    store: Store, collection_id: str, item: Mapping[str, Any], *, attempts: int = CAS_ATTEMPTS
) -> bool:
    """List ``item`` in its year catalog and fold it into the collection (creating the
    sub-catalogs, the collection and the root catalog as needed).

    Returns False if every compare-and-swap attempt lost its race; ``finalize`` repairs that.
    """
    if not list_in_subcatalogs(store, collection_id, item, attempts=attempts):
        log.warning("could not list %s in its tile catalogs; run `stac-coh finalize`", item["id"])
        return False
    ckey = collection_key(collection_id)

    def fold(current: dict[str, Any] | None) -> dict[str, Any] | None:
        coll = current or build_collection(collection_id, self_href=store.self_href(ckey))
        changed = add_item_to_collection(coll, item)
        return coll if changed or current is None else None

    if not cas_update_json(store, ckey, fold, attempts):
        log.warning("could not add %s to %s; run `stac-coh finalize`", item["id"], ckey)
        return False
    link = ("child", f"./{collection_id}/collection.json", JSON, collection_id)
    return update_root_catalog(store, [link], attempts=attempts)


def list_in_subcatalogs(
    store: Store, collection_id: str, item: Mapping[str, Any], *, attempts: int = CAS_ATTEMPTS
) -> bool:
    """Add the item's link to its year catalog and the year/tile links above it."""
    place = item_place(item)
    group, tile, year = place
    title = str(item.get("properties", {}).get("title") or "") or None
    steps = [
        (
            year_key(collection_id, place),
            "year",
            ("item", item_href_from_year(item["id"]), GEOJSON, title),
        ),
        (
            tile_key(collection_id, group, tile),
            "tile",
            ("child", f"./{year}/catalog.json", JSON, year),
        ),
        (group_key(collection_id, group), "group", ("child", f"./{tile}/catalog.json", JSON, tile)),
    ]
    for key, level, link in steps:

        def fold(
            current: dict[str, Any] | None,
            key: str = key,
            level: str = level,
            link: tuple[str, str, str, str | None] = link,
        ) -> dict[str, Any] | None:
            doc = current or build_subcatalog(collection_id, level, place, store.self_href(key))
            changed = add_link(doc, *link)
            return doc if changed or current is None else None

        if not cas_update_json(store, key, fold, attempts):
            return False
    return True


def ensure_model_item(
    store: Store, card: ModelCard, *, weights_url: str | None = None
) -> str | None:
    """Publish the MLM item (and model card) of the weights once; return its key or None.

    Weights without a public location are published beside the item when they are the
    ones bundled with stac-coh (16 MB); for any other local file there is no MLM item.
    """
    url = weights_url or weights_href(card)
    bundled = None
    if url is None:
        bundled = bundled_weights_file(card)
        if bundled is None:
            log.info("weights %s have no public location; no MLM item published", card.name)
            return None
        url = f"./{bundled.name}"
    mid = model_item_id(card)
    key, card_key = f"models/{mid}/{mid}.json", f"models/{mid}/{mid}.model-card.json"
    title = f"Coherence model weights {card.name}"
    if not store.exists(key):
        store.put(card_key, card.to_json().encode(), content_type=JSON)
        if bundled is not None:
            store.put_file(f"models/{mid}/{bundled.name}", bundled, content_type=_OCTETS)
        data = build_model_item(
            card,
            weights_url=url,
            card_href=f"./{mid}.model-card.json",
            self_href=store.self_href(key),
            weights_file=bundled,
        )
        title = data["properties"]["title"]
        with contextlib.suppress(ConflictError):  # a concurrent publisher wrote the same one
            store.put_new(key, json.dumps(data, indent=2).encode(), content_type=GEOJSON)
    update_root_catalog(store, [("item", f"./{key}", GEOJSON, title)])
    return key
