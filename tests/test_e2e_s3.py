"""The main job end to end on real services: a STAC API (stac-fastapi-pgstac) whose items'
assets are COGs in S3 (moto_server), a catalog written to S3, read back with plain pystac +
boto3 + odc-stac (none of stac-coh's code on the reading side)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import boto3
import numpy as np
import odc.stac
import pystac
import pytest
import requests
from pystac.stac_io import DefaultStacIO

from tests.run_scene import build_scene, stac_coh
from tests.stac_data import collection

pytestmark = pytest.mark.integration

COLLECTION = "s1-rtc-e2e"


class S3StacIO(DefaultStacIO):
    """pystac reading s3:// with boto3, written here so the check is independent of stac-coh."""

    def __init__(self) -> None:
        super().__init__()
        self.s3 = boto3.client("s3")

    def read_text(self, source, *args, **kwargs) -> str:
        href = str(source)
        if href.startswith("s3://"):
            url = urlparse(href)
            body = self.s3.get_object(Bucket=url.netloc, Key=url.path.lstrip("/"))["Body"]
            return body.read().decode()
        return super().read_text(source, *args, **kwargs)


@pytest.fixture
def api_with_s3_items(aws_env, pgstac_api, tmp_path: Path):
    """The test scene's items in the STAC API, their COGs uploaded to S3."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="inputs")
    s3.create_bucket(Bucket="catalog")
    scene = build_scene(tmp_path / "scene")
    items = []
    for item_id, item in scene.items.items():
        item = json.loads(json.dumps(item))
        local = Path(item["assets"]["vv"]["href"])
        key = f"rtc/{item_id}/vv.tif"
        s3.upload_file(str(local), "inputs", key)
        item["assets"]["vv"]["href"] = f"s3://inputs/{key}"
        item["collection"] = COLLECTION
        item["links"] = []
        items.append(item)
    coll = collection("planetary-computer", "sentinel-1-rtc")
    coll["id"] = COLLECTION
    coll["links"] = []
    pgstac_api.load([coll], items)
    return pgstac_api, scene


def test_search_and_run_from_api_with_s3_assets_into_s3(api_with_s3_items):
    api, scene = api_with_s3_items
    bbox = scene.search_args()[scene.search_args().index("--bbox") + 1 :][:4]
    done = stac_coh(
        "search-and-run",
        "--source", api.url, "--collection", COLLECTION, "--asset-key", "VV=vv",
        "--bbox", *bbox, "--start", "2024-04-01", "--end", "2024-05-31",
        "--out", "s3://catalog/coherence", "--weights", str(scene.weights),
        env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    io = S3StacIO()
    root = pystac.Catalog.from_file("s3://catalog/coherence/catalog.json", stac_io=io)
    items = list(root.get_items(recursive=True))
    assert len(items) == 2  # one item per valid pair (12-day pairs), none for the 24-day one
    assert len({i.id for i in items}) == 2
    for item in items:
        for link in item.links:
            if link.rel in {"self", "parent", "root", "collection"}:
                assert link.resolve_stac_object(root=root).target is not None
        for link in item.get_links("derived_from"):
            # Inputs are named by the API's canonical, unsigned item URLs: they resolve.
            assert link.href.startswith(api.url)
            assert requests.get(link.href, timeout=10).status_code == 200
        for asset in item.assets.values():
            href = asset.get_absolute_href()
            assert href.startswith("s3://catalog/coherence/")
            url = urlparse(href)
            boto3.client("s3").head_object(Bucket=url.netloc, Key=url.path.lstrip("/"))

    data = odc.stac.load(items, bands=["coherence"], chunks={})
    stored = data["coherence"].values
    valid = stored[stored != 255]
    assert valid.size > 1000
    coherence = valid.astype(np.float32) * 0.004
    assert coherence.min() >= 0.0 and coherence.max() <= 1.0
    band = items[0].assets["coherence"].extra_fields.get("raster:bands") or items[0].assets[
        "coherence"
    ].extra_fields.get("bands")
    assert band[0]["nodata"] == 255 and band[0]["scale"] == pytest.approx(0.004)
