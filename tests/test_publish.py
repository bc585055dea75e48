"""Publishing pairs into a local directory and into moto S3, then reading them back."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import odc.stac
import pystac
import pytest
from pystac.extensions.raster import RasterExtension
from rio_cogeo.cogeo import cog_validate

from stac_coh.errors import RasterReadError
from stac_coh.io.cog import COG_MEDIA_TYPE, UINT8_UNIT, encode
from stac_coh.io.stac_io import StoreStacIO
from stac_coh.io.storage import Store, open_store
from stac_coh.publish.collection import item_key
from stac_coh.publish.item import MODEL_REL
from stac_coh.publish.pair import PublishResult, publish_pair
from tests.publishing import (
    input_items,
    listed_item_hrefs,
    make_pair,
    model_card,
    stack_coherence,
    write_pair_rasters,
)
from tests.stac_validation import assert_valid

N_PAIRS = 3
STRUCTURAL = {"self", "root", "parent", "collection", "child", "item"}


@pytest.fixture
def published(store: Store, tmp_path: Path) -> dict[str, Any]:
    """Three pairs published; returns the store, results and the original values."""
    results: list[PublishResult] = []
    values: dict[str, np.ndarray] = {}
    for index in range(N_PAIRS):
        pair = make_pair(index)
        coh, unc, vals = write_pair_rasters(tmp_path / "in", pair, seed=index)
        results.append(
            publish_pair(
                pair, coh, unc, store, model_card=model_card(), manifest_items=input_items(pair)
            )
        )
        values[pair.id] = vals
    return {"store": store, "results": results, "values": values}


def load_json(store: Store, key: str) -> dict[str, Any]:
    return json.loads(store.get(key).data)


def read_items(store: Store) -> list[pystac.Item]:
    """Walk catalog -> collection -> items with pystac, through the store."""
    io = StoreStacIO(store)
    catalog = pystac.Catalog.from_file(store.url_for("catalog.json"), stac_io=io)
    (collection,) = list(catalog.get_children())
    return list(collection.get_items())


def test_publishes_items_listed_once_in_a_valid_tree(published: dict[str, Any]) -> None:
    store: Store = published["store"]
    results: list[PublishResult] = published["results"]
    assert [r.status for r in results] == ["published"] * N_PAIRS
    assert all(r.registered for r in results)
    for key in store.list():
        if key.endswith(".json") and not key.endswith(".model-card.json"):
            assert_valid(load_json(store, key))
    item_links = listed_item_hrefs(store)  # through the tile group, tile and year catalogs
    assert sorted(item_links) == sorted(f"./{r.pair_id}/{r.pair_id}.json" for r in results)
    catalog = load_json(store, "catalog.json")
    children = [link["href"] for link in catalog["links"] if link["rel"] == "child"]
    assert children == ["./sentinel-1-coherence/collection.json"]
    assert any(link["rel"] == "item" and "models/" in link["href"] for link in catalog["links"])


def test_assets_are_valid_cogs_where_published(published: dict[str, Any]) -> None:
    store: Store = published["store"]
    result: PublishResult = published["results"][0]
    for name, asset in result.item["assets"].items():
        key = f"sentinel-1-coherence/{result.pair_id}/{asset['href'][2:]}"
        assert store.exists(key), name
        if asset["type"] == COG_MEDIA_TYPE:
            valid, errors, _ = cog_validate(store.url_for(key), quiet=True)
            assert valid, (name, errors)
        assert asset["file:size"] == len(store.get(key).data)


def test_pystac_resolves_every_link(published: dict[str, Any]) -> None:
    store: Store = published["store"]
    io = StoreStacIO(store)
    catalog = pystac.Catalog.from_file(store.url_for("catalog.json"), stac_io=io)
    objects: list[pystac.STACObject] = [catalog]
    (collection,) = list(catalog.get_children())
    assert collection.id == "sentinel-1-coherence"
    items = list(collection.get_items(recursive=True))  # listed by the tile sub-catalogs
    models = list(catalog.get_items())
    assert len(items) == N_PAIRS and len(models) == 1
    subcatalogs = [sub for root, _, _ in collection.walk() for sub in root.get_children()]
    assert len(subcatalogs) == 3  # tile group 31S, tile 31SDV, year 2024
    objects += [collection, *subcatalogs, *items, *models]
    for obj in objects:
        for link in obj.links:
            href = link.get_absolute_href()
            assert isinstance(href, str)
            if link.rel in STRUCTURAL:
                json.loads(io.read_text(href))  # resolvable where published
    for item in items:
        assert item.get_collection().id == collection.id
        assert item.get_root().id == catalog.id
        for asset in item.assets.values():
            assert store.key_for(asset.get_absolute_href()) is not None
            assert store.exists(store.key_for(asset.get_absolute_href()))
        derived = [link for link in item.links if link.rel == "derived_from"]
        assert len(derived) == 2  # the two input items; the model has its own relation
        assert all(link.href.startswith("https://") for link in derived)
        (model,) = [link for link in item.links if link.rel == MODEL_REL]
        assert model.resolve_stac_object().target.id == models[0].id


def test_odc_stac_loads_coherence_with_nan_nodata(published: dict[str, Any]) -> None:
    """odc-stac never applies a scale (odc-stac#55): the README's recipe does, from the item."""
    store: Store = published["store"]
    for item in read_items(store):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = odc.stac.load([item], bands=["coherence"]).coherence
        original = published["values"][item.id]
        np.testing.assert_array_equal(loaded.values[0], encode(original, UINT8_UNIT))
        assert loaded.odc.nodata == 255  # from the STAC 1.1 band
        (raster,) = RasterExtension.ext(item.assets["coherence"]).bands or []
        coherence = loaded.where(loaded != loaded.odc.nodata) * raster.scale + raster.offset
        values = coherence.values[0]
        np.testing.assert_array_equal(np.isnan(values), np.isnan(original))  # nodata -> NaN
        assert np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0
        assert np.nanmax(np.abs(values - original)) <= 0.002 + 1e-6


def test_stackstac_loads_coherence_rescaled(published: dict[str, Any]) -> None:
    store: Store = published["store"]
    for item in read_items(store):
        item.make_asset_hrefs_absolute()  # static catalog: stackstac needs absolute hrefs
        data = stack_coherence(item)  # rescale=True: the scale from raster:bands, applied
        original = published["values"][item.id]
        assert data.shape == original.shape
        np.testing.assert_array_equal(np.isnan(data), np.isnan(original))
        assert np.nanmin(data) >= 0.0 and np.nanmax(data) <= 1.0
        assert np.nanmax(np.abs(data - original)) <= 0.002 + 1e-6


def test_rerun_skips_and_overwrite_republishes(published: dict[str, Any], tmp_path: Path) -> None:
    store: Store = published["store"]
    pair = make_pair(0)
    coh, unc, _ = write_pair_rasters(tmp_path / "again", pair, seed=0)
    key = item_key("sentinel-1-coherence", pair.id)
    before = store.get(key).data
    args = (pair, coh, unc, store)
    kwargs = {"model_card": model_card(), "manifest_items": input_items(pair)}
    again = publish_pair(*args, **kwargs)
    assert again.status == "skipped"
    assert store.get(key).data == before
    # Overwrite with new rasters: the item and its assets are replaced (datetimes are to the
    # second, so the rasters, not the clock, must tell the two publications apart).
    coh2, unc2, _ = write_pair_rasters(tmp_path / "new", pair, seed=1)
    redone = publish_pair(pair, coh2, unc2, store, **kwargs, overwrite=True)
    assert redone.status == "published"
    after = json.loads(store.get(key).data)
    checksum = after["assets"]["coherence"]["file:checksum"]
    assert checksum != json.loads(before)["assets"]["coherence"]["file:checksum"]
    assert (
        after["properties"]["processing:datetime"]
        >= json.loads(before)["properties"]["processing:datetime"]
    )
    hrefs = listed_item_hrefs(store)
    assert hrefs.count(f"./{pair.id}/{pair.id}.json") == 1
    assert len(hrefs) == N_PAIRS


def test_public_base_url_sets_self_hrefs(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c", public_base_url="https://data.example.org/coh")
    pair = make_pair(0)
    coh, _, _ = write_pair_rasters(tmp_path / "in", pair)
    result = publish_pair(
        pair, coh, None, store, model_card=model_card(), manifest_items=input_items(pair)
    )
    self_link = next(link for link in result.item["links"] if link["rel"] == "self")
    assert self_link["href"] == (
        f"https://data.example.org/coh/sentinel-1-coherence/{pair.id}/{pair.id}.json"
    )
    assert result.item_href == self_link["href"]
    assert "uncertainty" not in result.item["assets"]
    assert_valid(result.item)


def test_weights_without_location_publish_no_model_item(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c")
    pair = make_pair(0)
    coh, unc, _ = write_pair_rasters(tmp_path / "in", pair)
    card = model_card(source="stac-coh train --seed 1")
    result = publish_pair(pair, coh, unc, store, model_card=card, manifest_items=input_items(pair))
    assert not store.list("models/")
    assert "processing:expression" not in result.item["properties"]
    assert result.item["properties"]["coh:weights_name"] == card.name
    assert_valid(result.item)


def test_missing_prediction_is_a_clear_error(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c")
    pair = make_pair(0)
    with pytest.raises(RasterReadError, match="does not exist"):
        publish_pair(
            pair,
            tmp_path / "nope.tif",
            None,
            store,
            model_card=model_card(),
            manifest_items=input_items(pair),
        )
    assert not store.exists(item_key("sentinel-1-coherence", pair.id))


def test_derived_from_is_relative_inside_the_tree_and_absent_for_local_paths(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "catalog")
    pair = make_pair(0)
    inside, outside = pair.item_ids
    inputs_dir = tmp_path / "catalog" / "inputs"
    inputs_dir.mkdir(parents=True)
    items = {}
    for item_id, folder in ((inside, inputs_dir), (outside, tmp_path / "elsewhere")):
        path = folder / f"{item_id}.json"
        items[item_id] = {"id": item_id, "links": [{"rel": "self", "href": str(path)}]}
    (inputs_dir / f"{inside}.json").write_text(json.dumps(items[inside]))
    coh, unc, _ = write_pair_rasters(tmp_path / "in", pair)
    result = publish_pair(pair, coh, unc, store, model_card=model_card(), manifest_items=items)
    derived = [link for link in result.item["links"] if link["rel"] == "derived_from"]
    assert derived == [
        {
            "rel": "derived_from",
            "href": f"../../inputs/{inside}.json",
            "type": "application/geo+json",
            "title": inside,
        }
    ]
    assert str(tmp_path) not in json.dumps(result.item)  # no path of this machine
    item_dir = tmp_path / "catalog" / "sentinel-1-coherence" / pair.id
    assert (item_dir / derived[0]["href"]).resolve() == (inputs_dir / f"{inside}.json")
