"""search_pairs against a real STAC API: stac-fastapi-pgstac loaded with the fixture items."""

from __future__ import annotations

import socket

import pytest

from stac_coh.errors import InputError, NoPairsError, SourceUnreachableError
from stac_coh.io.http import make_session
from stac_coh.search.api_source import StacApiSource
from stac_coh.search.find import search_pairs
from stac_coh.search.manifest import SourceSpec
from stac_coh.search.query import SearchQuery
from stac_coh.search.sources import open_source
from tests.stac_data import ES_GRD, VALID_PAIRS, collection, items, rtc_items

pytestmark = pytest.mark.integration

WORLD = (-180.0, -90.0, 180.0, 90.0)


def query(bbox=WORLD, **kw) -> SearchQuery:
    kw.setdefault("start", "2014-01-01")
    kw.setdefault("end", "2027-12-31")
    return SearchQuery.build(bbox=bbox, **kw)


@pytest.fixture(scope="module")
def api(pgstac_api):
    pgstac_api.load(
        [
            collection("planetary-computer", "sentinel-1-rtc"),
            collection("earth-search", "sentinel-1-grd"),
        ],
        rtc_items() + items(ES_GRD),
    )
    return pgstac_api


def pair_ids(result) -> set[tuple[str, str]]:
    return {(p.reference.item_ids[0], p.secondary.item_ids[0]) for p in result.manifest.pairs}


def test_api_search_returns_exactly_the_valid_pairs(api):
    source = open_source(api.url, collection="sentinel-1-rtc", session=make_session(retries=1))
    result = search_pairs(source, query())
    assert pair_ids(result) == VALID_PAIRS
    assert result.n_items == len(rtc_items())
    assert result.rejected_counts["baseline"] == 12
    assert result.manifest.source == SourceSpec("stac-api", api.url, "sentinel-1-rtc")


def test_api_search_filters_by_area_and_dates(api):
    source = open_source(api.url, collection="sentinel-1-rtc")
    result = search_pairs(
        source, query(bbox=(77.4, 12.8, 77.8, 13.1), start="2026-04-01", end="2026-06-30")
    )
    assert pair_ids(result) == {p for p in VALID_PAIRS if "2026072" not in p[0]}
    assert result.n_items == 4


def test_planetary_computer_profile_records_signing_and_keeps_hrefs_unsigned(api):
    spec = SourceSpec(
        "planetary-computer", api.url, "sentinel-1-rtc", options={"signing": "planetary-computer"}
    )
    result = search_pairs(StacApiSource(spec), query(bbox=(77.4, 12.8, 77.8, 13.1)))
    assert result.manifest.source.options == {"signing": "planetary-computer"}
    hrefs = [a["href"] for it in result.manifest.items.values() for a in it["assets"].values()]
    blob = [h for h in hrefs if ".blob.core.windows.net" in h]
    assert blob and all("?" not in h for h in blob)


def test_max_items_is_a_total_across_pages(api):
    source = open_source(api.url, collection="sentinel-1-grd")
    with pytest.warns(UserWarning, match="--limit 3"), pytest.raises(NoPairsError, match="3 items"):
        search_pairs(source, query(max_items=3, polarization="HH"))


def test_api_items_without_a_pair_say_why(api):
    source = open_source(api.url, collection="sentinel-1-grd")
    with pytest.raises(NoPairsError) as info:
        search_pairs(source, query(polarization="HH"))
    assert f"{len(items(ES_GRD))} items" in str(info.value)
    assert "different relative orbit or orbit state" in str(info.value)


def test_unknown_collection_lists_what_the_api_has(api):
    source = open_source(api.url, collection="sentinel-2-l2a")
    with pytest.raises(InputError, match="no collection 'sentinel-2-l2a'") as info:
        search_pairs(source, query())
    assert "sentinel-1-rtc" in str(info.value) and "sentinel-1-grd" in str(info.value)


def test_unreachable_api_names_the_url_and_suggests_a_local_source():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/stac/v1"
    source = open_source(url, collection="sentinel-1-rtc", session=make_session(retries=0))
    with pytest.raises(SourceUnreachableError) as info:
        search_pairs(source, query())
    assert url in str(info.value)
    assert "--source PATH" in str(info.value)
    assert info.value.exit_code == 75


def test_cli_search_against_the_api_writes_the_manifest_to_s3(api, aws_env):
    import boto3
    from typer.testing import CliRunner

    from stac_coh.cli import app
    from stac_coh.search.manifest_io import read_manifest

    boto3.client("s3").create_bucket(Bucket="manifests")
    uri = "s3://manifests/runs/bengaluru.json"
    result = CliRunner().invoke(
        app,
        [
            *("search", "--source", api.url, "--collection", "sentinel-1-rtc"),
            *("--bbox", "77.4", "12.8", "77.8", "13.1", "--start", "2026-04-01"),
            *("--end", "2026-08-31", "--json", uri),
        ],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert f"Manifest: {uri}" in result.output
    manifest = read_manifest(uri)
    got = {(p.reference.item_ids[0], p.secondary.item_ids[0]) for p in manifest.pairs}
    assert got == VALID_PAIRS
    assert manifest.source.url == api.url


def test_reading_a_missing_manifest_is_a_clear_error(aws_env):
    from stac_coh.search.manifest_io import read_manifest

    with pytest.raises(InputError, match=r"Cannot read the manifest s3://nobucket/m\.json"):
        read_manifest("s3://nobucket/m.json")
