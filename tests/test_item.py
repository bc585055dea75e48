"""The STAC item, collection, catalog and model item: content and offline schema validity."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from stac_coh.publish.collection import (
    add_item_to_collection,
    build_collection,
    build_root_catalog,
    rebuild_collection,
)
from stac_coh.publish.extensions import INSAR, PAPER_DOI, RASTER_BANDS_V1, SCIENTIFIC
from stac_coh.publish.item import MODEL_REL, ItemInputs, build_item
from stac_coh.publish.links import canonical_href, unsigned_href
from stac_coh.publish.model_item import (
    build_model_item,
    bundled_weights_file,
    model_item_id,
    weights_href,
)
from stac_coh.publish.raster_info import ensure_cog, sha256_multihash
from stac_coh.publish.render import write_thumbnail, write_visual
from tests.publishing import input_items, make_pair, model_card, write_pair_rasters
from tests.stac_validation import assert_valid, unshared_schemas, validation_errors

PROCESSED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def item_for(
    tmp_path: Path,
    index: int = 0,
    dtype: str = "uint8",
    inputs: dict[str, Any] | None = None,
    **card: Any,
) -> dict[str, Any]:
    """Build (not publish) the item of test pair ``index``."""
    pair = make_pair(index)
    coh, unc, _ = write_pair_rasters(tmp_path / "in", pair, dtype=dtype, seed=index)
    files = {"coherence": ensure_cog(coh, tmp_path), "uncertainty": ensure_cog(unc, tmp_path)}
    files["visual"] = write_visual(files["coherence"], tmp_path / f"{index}v.tif")
    files["thumbnail"] = write_thumbnail(files["coherence"], tmp_path / f"{index}t.png")
    item = build_item(
        pair,
        ItemInputs(
            files=files,
            hrefs={k: f"./{pair.id}_{k}" for k in files},
            model_card=model_card(**card),
            input_items=input_items(pair) if inputs is None else inputs,
            collection_id="sentinel-1-coherence",
            processing_datetime=PROCESSED,
            model_item_href="../../models/m/m.json",
        ),
    )
    data = item.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] += [  # what the publisher adds (core requires a collection link)
        {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
    ]
    data["_files"] = {k: str(v) for k, v in files.items()}
    return data


@pytest.fixture
def item(tmp_path: Path) -> dict[str, Any]:
    return item_for(tmp_path)


def without_files(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "_files"}


def test_item_validates_against_core_and_every_extension(item: dict[str, Any]) -> None:
    body = without_files(item)
    assert_valid(body)
    declared = set(body["stac_extensions"])
    for prefix in ("sar", "sat", "projection", "raster", "file", "processing", "insar"):
        assert any(f"/{prefix}/" in url for url in declared), prefix
    assert {INSAR, SCIENTIFIC, RASTER_BANDS_V1} <= declared
    assert not unshared_schemas(body)  # every schema resolves where validators fetch it
    assert not [url for url in declared if "stac-coh" in url]


def test_standard_extensions_check_the_pair_fields(item: dict[str, Any]) -> None:
    body = without_files(item)
    for field, value in (
        ("insar:temporal_baseline", "12 days"),
        ("insar:reference_datetime", 20240401),
        ("insar:unknown", 1),
        ("sci:publications", "arXiv"),
    ):
        broken = copy.deepcopy(body)
        broken["properties"][field] = value
        assert validation_errors(broken), field


def test_item_time_and_platform_facts(item: dict[str, Any]) -> None:
    pair = make_pair(0)
    props = item["properties"]
    assert item["id"] == pair.id
    assert props["datetime"] is None
    assert props["start_datetime"] == "2024-04-01T05:58:01Z"
    assert props["end_datetime"] == "2024-04-13T05:58:01Z"
    assert props["constellation"] == "sentinel-1"
    assert props["platform"] == "sentinel-1a"
    assert props["coh:platforms"] == ["sentinel-1a"]
    assert props["instruments"] == ["c-sar"]
    assert props["sar:polarizations"] == ["VV"]
    assert props["sar:frequency_band"] == "C"
    assert props["sar:center_frequency"] == 5.405
    assert props["sar:observation_direction"] == "right"
    assert props["sar:instrument_mode"] == "IW"
    assert (props["sat:relative_orbit"], props["sat:orbit_state"]) == (51, "descending")
    assert props["proj:code"] == "EPSG:32631"
    assert props["proj:shape"] == [64, 64]
    assert props["proj:transform"][:3] == [20.0, 0.0, 500000.0]
    assert props["insar:temporal_baseline"] == 12.0
    assert props["insar:reference_datetime"] == props["start_datetime"]
    assert props["insar:secondary_datetime"] == props["end_datetime"]
    assert props["coh:reference_item_ids"] == list(pair.reference.item_ids)
    assert props["processing:level"] == "L4"
    assert props["processing:datetime"] == "2026-05-01T12:00:00Z"
    assert "stac-coh" in props["processing:software"]
    assert not [key for key in props if key.startswith("coh:baseline")]


def test_values_are_rounded_and_descriptions_are_sentences(tmp_path: Path) -> None:
    pair = make_pair(0)
    odd = dataclasses.replace(
        pair,
        reference=dataclasses.replace(
            pair.reference, datetime=pair.reference.datetime + timedelta(microseconds=500_000)
        ),
        baseline_days=12.000012,
    )
    coh, unc, _ = write_pair_rasters(tmp_path / "in", odd)
    files = {"coherence": ensure_cog(coh, tmp_path), "uncertainty": ensure_cog(unc, tmp_path)}
    notes = "trained on simulated data; for demonstration"
    body = build_item(
        odd,
        ItemInputs(
            files=files,
            hrefs={k: f"./{k}.tif" for k in files},
            model_card=dataclasses.replace(
                model_card(), provenance=dataclasses.replace(model_card().provenance, notes=notes)
            ),
            input_items=input_items(odd),
            collection_id="c",
            processing_datetime=PROCESSED + timedelta(microseconds=123_456),
        ),
    ).to_dict(include_self_link=False)
    text = json.dumps(body)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", text)  # no fractional seconds anywhere
    props = body["properties"]
    assert props["start_datetime"] == "2024-04-01T05:58:02Z"  # rounded half up
    assert props["insar:temporal_baseline"] == 12.0
    assert props["processing:datetime"] == "2026-05-01T12:00:00Z"
    stats = body["assets"]["coherence"]["bands"][0]["statistics"]
    assert isinstance(stats["minimum"], int) and isinstance(stats["maximum"], int)
    assert all(len(str(v).split(".")[-1]) <= 2 for v in stats.values() if isinstance(v, float))
    texts = [props["title"], props["description"], props["processing:lineage"]]
    texts += [a["description"] for a in body["assets"].values()]
    texts += [b["description"] for a in body["assets"].values() for b in a.get("bands", [])]
    for text in texts[1:]:
        assert text[0].isupper() and text.endswith("."), text
    assert (
        "About the weights: trained on simulated data; for demonstration." in (props["description"])
    )


def test_mixed_platform_pair_has_one_platform_and_is_found_by_either(tmp_path: Path) -> None:
    import cql2

    props = item_for(tmp_path, index=1)["properties"]
    assert props["platform"] == "sentinel-1a"  # the reference's: one platform per field
    assert props["coh:secondary_platform"] == "sentinel-1c"
    assert props["coh:platforms"] == ["sentinel-1a", "sentinel-1c"]
    for platform, found in (("sentinel-1a", True), ("sentinel-1c", True), ("sentinel-1b", False)):
        expr = cql2.Expr(f"a_contains(\"coh:platforms\", ('{platform}'))")
        assert expr.matches({"type": "Feature", "properties": props}) is found, platform


def test_item_says_which_weights_made_it(item: dict[str, Any]) -> None:
    card = model_card()
    props = item["properties"]
    assert props["coh:weights_name"] == card.name
    assert props["coh:weights_sha256"] == card.sha256
    assert props["coh:weights_source"] == card.provenance.source
    assert card.name in props["processing:lineage"]
    assert props["processing:expression"] == {
        "format": "stac-mlm",
        "expression": "../../models/m/m.json",
    }
    (model,) = [link for link in item["links"] if link["href"] == "../../models/m/m.json"]
    assert model["rel"] == MODEL_REL == "processing-expression"  # not among the input scenes
    assert model["mlm:name"] == card.name
    (publication,) = props["sci:publications"]
    assert publication["doi"] == PAPER_DOI
    assert (
        "Beyond Backscatter" in publication["citation"]
        and "Beyond Backscatter" in (props["sci:citation"])
    )


def test_bands_describe_stored_values_with_scale_offset_nodata(item: dict[str, Any]) -> None:
    asset = item["assets"]["coherence"]
    (band,) = asset["bands"]  # STAC 1.1: what STAC Browser 5 draws with, odc-stac reads
    assert band["name"] == "coherence"
    assert (band["data_type"], band["nodata"], band["unit"]) == ("uint8", 255, "1")
    assert not [key for key in band if key.startswith("raster:")]
    (decode,) = asset["raster:bands"]  # raster v1.1: where stackstac takes the scale from
    assert decode == {
        "data_type": "uint8",
        "nodata": 255,
        "scale": 0.004,
        "offset": 0.0,
        "spatial_resolution": 20.0,
    }
    with rasterio.open(item["_files"]["coherence"]) as ds:
        stored = ds.read(1).astype(float)
    valid = stored[stored != 255]
    stats = band["statistics"]
    assert stats["minimum"] == valid.min()
    assert stats["maximum"] == valid.max()
    assert stats["maximum"] > 1  # stored units, not coherence: what STAC Browser stretches
    assert stats["mean"] == pytest.approx(valid.mean(), abs=0.005)
    assert stats["valid_percent"] == pytest.approx(100 * valid.size / stored.size, abs=0.005)
    # ...and the band says so, with the scale that turns them into coherence.
    assert band["description"] == (
        "InSAR coherence predicted by the model, 0 to 1. Stored as uint8 0-250; 255 = no "
        "data; value = stored × 0.004 (raster:bands scale and offset). Statistics are of "
        "the stored values."
    )
    (unc,) = item["assets"]["uncertainty"]["bands"]
    assert (unc["data_type"], unc["nodata"]) == ("float32", "nan")
    assert unc["description"].endswith("Stored as float32; NaN = no data.")
    assert item["assets"]["uncertainty"]["raster:bands"][0]["scale"] == 1.0


def test_float32_coherence_declares_nan_nodata(tmp_path: Path) -> None:
    body = item_for(tmp_path, dtype="float32")
    (band,) = body["assets"]["coherence"]["bands"]
    assert (band["data_type"], band["nodata"]) == ("float32", "nan")
    assert "raster:scale" not in band  # stored values are coherence
    assert band["statistics"]["maximum"] <= 1.0
    assert_valid(without_files(body))


def test_assets_roles_media_types_and_file_info(item: dict[str, Any]) -> None:
    assets = item["assets"]
    cog = "image/tiff; application=geotiff; profile=cloud-optimized"
    assert (assets["coherence"]["type"], assets["coherence"]["roles"]) == (
        cog,
        ["data", "coherence"],  # the InSAR extension's role
    )
    assert assets["visual"]["type"] == cog
    assert assets["visual"]["roles"] == ["visual"]
    assert (assets["thumbnail"]["type"], assets["thumbnail"]["roles"]) == (
        "image/png",
        ["thumbnail"],
    )
    for key, asset in assets.items():
        path = Path(item["_files"][key])
        assert asset["file:size"] == path.stat().st_size
        assert asset["file:checksum"] == sha256_multihash(path)


def test_geometry_and_bbox_cover_valid_pixels_in_lonlat(item: dict[str, Any]) -> None:
    west, south, east, north = item["bbox"]
    assert 2.9 < west < east < 3.1
    assert 36.0 < south < north < 36.2
    coords = np.array(item["geometry"]["coordinates"][0])
    assert coords[:, 0].min() == pytest.approx(west)
    assert coords[:, 1].max() == pytest.approx(north)


def test_derived_from_links_are_canonical_and_unsigned(item: dict[str, Any]) -> None:
    pair = make_pair(0)
    derived = [link for link in item["links"] if link["rel"] == "derived_from"]
    assert [link["title"] for link in derived] == list(pair.item_ids)  # inputs only
    for link in derived:
        assert isinstance(link["href"], str)
        assert link["href"].startswith("https://planetarycomputer.microsoft.com/")
        assert "sig=" not in link["href"] and "?" not in link["href"]
    assert "SECRETSIGNATURE" not in json.dumps(without_files(item))


def test_derived_from_never_publishes_a_machine_path(tmp_path: Path) -> None:
    pair = make_pair(0)
    local = {
        item_id: {"id": item_id, "links": [{"rel": "self", "href": f"/home/me/cat/{item_id}.json"}]}
        for item_id in pair.item_ids
    }
    local[pair.item_ids[1]]["links"][0]["href"] = "file:///home/me/cat/x.json"
    body = item_for(tmp_path, inputs=local)
    assert not [link for link in body["links"] if link["rel"] == "derived_from"]
    assert "/home/me" not in json.dumps(without_files(body))


def test_unsigned_href_strips_only_signing_parameters() -> None:
    assert unsigned_href("https://a.blob/x.tif?st=1&se=2&sp=r&sv=3&sr=b&sig=abc") == (
        "https://a.blob/x.tif"
    )
    assert unsigned_href("https://h/x?X-Amz-Signature=1&X-Amz-Credential=2&page=3") == (
        "https://h/x?page=3"
    )
    assert unsigned_href("s3://b/k.json") == "s3://b/k.json"
    canonical = {
        "links": [
            {"rel": "self", "href": "https://s/1"},
            {"rel": "canonical", "href": "s3://c/1.json"},
        ]
    }
    assert canonical_href(canonical) == "s3://c/1.json"
    assert canonical_href({"links": []}) is None


def test_uncalibrated_weights_publish_the_raw_head(tmp_path: Path) -> None:
    body = item_for(tmp_path, calibrated=False)
    assert body["properties"]["coh:uncertainty"] == "head"
    (band,) = body["assets"]["uncertainty"]["bands"]
    assert "unit" not in band and "uncalibrated" in band["description"]


def test_collection_and_catalog_validate_and_summarise(tmp_path: Path) -> None:
    items = [without_files(item_for(tmp_path / str(i), index=i)) for i in range(3)]
    collection = build_collection("sentinel-1-coherence", self_href="/x/collection.json")
    for body in items:
        assert add_item_to_collection(collection, body)
    assert not add_item_to_collection(collection, items[0])  # folding twice changes nothing
    assert_valid(collection)
    hrefs = [link["href"] for link in collection["links"] if link["rel"] in ("item", "child")]
    assert hrefs == ["./tiles/31S/catalog.json"]  # items are listed by tile sub-catalogs
    bbox = collection["extent"]["spatial"]["bbox"][0]
    for body in items:
        assert bbox[0] <= body["bbox"][0] and bbox[2] >= body["bbox"][2]
        assert bbox[1] <= body["bbox"][1] and bbox[3] >= body["bbox"][3]
    assert collection["extent"]["temporal"]["interval"] == [
        ["2024-04-01T05:58:01Z", "2024-04-15T05:58:01Z"]
    ]
    summaries = collection["summaries"]
    assert summaries["platform"] == ["sentinel-1a", "sentinel-1c"]  # S1C only as secondary
    assert summaries["sat:relative_orbit"] == [51]
    assert summaries["insar:temporal_baseline"] == {"minimum": 12.0, "maximum": 12.0}
    assert collection["sci:publications"][0]["doi"] == PAPER_DOI
    assert not unshared_schemas(collection)
    render = collection["renders"]["coherence"]
    assert render["assets"] == ["coherence"]
    assert render["rescale"] == [[0.0, 250.0]]  # stored units of uint8 scale 0.004
    assert render["colormap_name"] == "viridis"
    assert set(collection["item_assets"]) == {"coherence", "uncertainty", "visual", "thumbnail"}
    assert collection["license"] == "other"
    assert any(link["rel"] == "license" for link in collection["links"])
    assert any("processor" in p["roles"] for p in collection["providers"])
    old = {**collection, "stac_extensions": [*collection["stac_extensions"], "https://x/pair.json"]}
    rebuilt = rebuild_collection(old, reversed(items))  # finalize repairs older collections
    assert rebuilt["stac_extensions"] == collection["stac_extensions"]
    assert rebuilt["extent"] == collection["extent"]
    assert rebuilt["summaries"] == collection["summaries"]
    empty = rebuild_collection(collection, [])
    assert_valid(empty)
    assert not [link for link in empty["links"] if link["rel"] == "item"]
    assert_valid(build_root_catalog("/x/catalog.json"))


def test_model_item_is_valid_mlm() -> None:
    card = model_card()
    url = weights_href(card)
    assert url == (
        "https://huggingface.co/FPSica/beyond-backscatter-grd-gee/resolve/main/model.weights.h5"
    )
    body = build_model_item(card, weights_url=url, card_href="./card.json")
    assert_valid(body)
    props = body["properties"]
    assert props["mlm:name"] == card.name
    assert props["mlm:tasks"] == ["regression"]
    assert props["mlm:architecture"] == "Residual U-Net"
    assert props["mlm:input"][0]["input"]["shape"] == [-1, 2, 128, 128]
    weights = body["assets"]["weights"]
    assert "mlm:model" in weights["roles"]
    assert weights["mlm:artifact_type"] == "tf.keras.Model.save_weights"
    assert body["id"] == model_item_id(card) == f"{card.name}-{card.sha256[:8]}"
    # A page STAC Browser can show: a map (applies anywhere), sentences, the paper.
    assert body["bbox"] == [-180.0, -90.0, 180.0, 90.0] and body["geometry"]["type"] == "Polygon"
    description = props["description"]
    assert description.startswith("A Residual U-Net that predicts InSAR coherence")
    assert re.fullmatch(r"([A-Z][^.]*(\.[^ ][^.]*)*\. ?)+", description), description
    assert props["sci:publications"][0]["doi"] == PAPER_DOI
    assert not unshared_schemas(body)


def test_bundled_weights_are_published_with_their_model_item(tmp_path: Path) -> None:
    from stac_coh.io.storage import open_store
    from stac_coh.model.weights import load_weights
    from stac_coh.publish.pair import ensure_model_item

    _, card = load_weights(None)
    bundled = bundled_weights_file(card)
    assert bundled is not None and weights_href(card) is None  # no public location
    store = open_store(tmp_path / "catalog")
    key = ensure_model_item(store, card)
    assert key is not None
    body = json.loads(store.get(key).data)
    assert_valid(body)
    weights = body["assets"]["weights"]
    assert weights["href"] == f"./{bundled.name}"
    published = tmp_path / "catalog" / Path(key).parent / bundled.name
    assert published.read_bytes() == bundled.read_bytes()
    assert weights["file:checksum"] == sha256_multihash(bundled)
    assert bundled_weights_file(model_card()) is None


def test_weights_without_public_location_get_no_model_item() -> None:
    local = dataclasses.replace(
        model_card(),
        provenance=dataclasses.replace(model_card().provenance, source="stac-coh train"),
    )
    assert weights_href(local) is None
    assert weights_href(model_card(source="hf://o/r/w.safetensors")) == (
        "https://huggingface.co/o/r/resolve/main/w.safetensors"
    )
    assert weights_href(model_card(source="https://x/w.h5")) == "https://x/w.h5"
