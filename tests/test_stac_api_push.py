"""Pushing the catalog into stac-fastapi-pgstac (Transactions) and searching it back."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pystac_client
import pytest
import requests

from stac_coh.errors import InputError
from stac_coh.io.http import make_session
from stac_coh.io.storage import Store, open_store
from stac_coh.publish.finalize import finalize
from stac_coh.publish.pair import publish_pair
from stac_coh.publish.stac_api import api_collection, api_item, push_collection
from tests.publishing import (
    input_items,
    make_pair,
    model_card,
    stack_coherence,
    write_pair_rasters,
)
from tests.services import PgstacApi

COLLECTION = "sentinel-1-coherence"


def publish(store: Store, tmp_path: Path, n: int = 3) -> dict[str, np.ndarray]:
    values = {}
    for index in range(n):
        pair = make_pair(index)
        coh, unc, vals = write_pair_rasters(tmp_path / "in", pair, seed=index)
        publish_pair(
            pair, coh, unc, store, model_card=model_card(), manifest_items=input_items(pair)
        )
        values[pair.id] = vals
    return values


def search(api: PgstacApi, **kwargs: Any) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = pystac_client.Client.open(api.url)
        return list(client.search(collections=[COLLECTION], **kwargs).items())


def test_api_forms_have_absolute_hrefs_and_no_static_links() -> None:
    item = {
        "id": "x",
        "properties": {
            "processing:expression": {"format": "stac-mlm", "expression": "../../m.json"}
        },
        "assets": {"coherence": {"href": "./x_coherence.tif"}},
        "links": [
            {"rel": "self", "href": "s3://b/p/c/x/x.json"},
            {"rel": "root", "href": "../../catalog.json"},
            {"rel": "derived_from", "href": "https://api/items/a"},
            {"rel": "derived_from", "href": "../../models/m/m.json"},
        ],
    }
    body = api_item(item, "s3://b/p/c/x/x.json")
    assert body["assets"]["coherence"]["href"] == "s3://b/p/c/x/x_coherence.tif"
    assert [link["href"] for link in body["links"]] == [
        "https://api/items/a",
        "s3://b/p/models/m/m.json",
    ]
    assert body["properties"]["processing:expression"]["expression"] == "s3://b/p/m.json"
    coll = api_collection(
        {
            "id": "c",
            "links": [
                {"rel": "item", "href": "./x/x.json"},
                {"rel": "license", "href": "https://l"},
            ],
        },
        "https://h/c/collection.json",
    )
    assert coll["links"] == [{"rel": "license", "href": "https://l"}]


@pytest.mark.integration
def test_push_upserts_and_pystac_client_finds_the_items(
    pgstac_api: PgstacApi, tmp_path: Path
) -> None:
    pgstac_api.clear()
    store = open_store(tmp_path / "catalog")
    values = publish(store, tmp_path)
    result = finalize(store, stac_api=pgstac_api.url, session=make_session(retries=2))
    assert result.pushed is not None
    assert (result.pushed.collection, result.pushed.created, result.pushed.updated) == (
        "created",
        3,
        0,
    )
    found = search(pgstac_api)
    assert sorted(i.id for i in found) == sorted(values)
    one = search(pgstac_api, bbox=found[0].bbox, datetime="2024-04-01/2024-04-13")
    assert found[0].id in {i.id for i in one}
    again = finalize(store, stac_api=pgstac_api.url)  # upsert: second push replaces
    assert again.pushed is not None
    assert (again.pushed.collection, again.pushed.created, again.pushed.updated) == (
        "updated",
        0,
        3,
    )
    assert len(search(pgstac_api)) == 3
    collection = requests.get(f"{pgstac_api.url}/collections/{COLLECTION}", timeout=10).json()
    assert collection["extent"]["spatial"]["bbox"][0] == result.bbox


@pytest.mark.integration
def test_items_from_the_api_load_with_stackstac(pgstac_api: PgstacApi, tmp_path: Path) -> None:
    pgstac_api.clear()
    store = open_store(tmp_path / "catalog")
    values = publish(store, tmp_path, n=1)
    finalize(store, stac_api=pgstac_api.url)
    (item,) = search(pgstac_api)
    assert Path(item.assets["coherence"].href).is_absolute()  # usable straight from the API
    data = stack_coherence(item)
    original = values[item.id]
    np.testing.assert_array_equal(np.isnan(data), np.isnan(original))
    assert np.nanmax(np.abs(data - original)) <= 0.002 + 1e-6


@pytest.mark.integration
def test_push_to_a_wrong_url_names_it(pgstac_api: PgstacApi) -> None:
    with pytest.raises(InputError, match="Transactions"):
        push_collection(
            f"{pgstac_api.url}/nope",
            {"id": "c", "links": []},
            [],
            collection_href="/x/collection.json",
            session=make_session(retries=0),
        )
