"""search_pairs on local catalogs (directory, ndjson, stac-geoparquet) and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stac_coh.errors import InputError, NoPairsError, SearchError
from stac_coh.search.find import search_pairs
from stac_coh.search.local_source import LocalSource
from stac_coh.search.manifest import MANIFEST_SCHEMA_VERSION, Manifest
from stac_coh.search.manifest_io import read_manifest, write_manifest
from stac_coh.search.query import SearchQuery
from stac_coh.search.sources import open_source
from tests.stac_data import ES_GRD, PC_GRD, STAC, VALID_PAIRS, items, rtc_items

WORLD = (-180.0, -90.0, 180.0, 90.0)


def query(bbox=WORLD, **kw) -> SearchQuery:
    kw.setdefault("start", "2014-01-01")
    kw.setdefault("end", "2027-12-31")
    return SearchQuery.build(bbox=bbox, **kw)


def pair_ids(result) -> set[tuple[str, str]]:
    return {(p.reference.item_ids[0], p.secondary.item_ids[0]) for p in result.manifest.pairs}


@pytest.fixture(scope="module")
def ndjson(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ndjson") / "items.ndjson"
    path.write_text("".join(json.dumps(it) + "\n" for it in rtc_items()))
    return path


@pytest.fixture(scope="module")
def geoparquet(tmp_path_factory) -> Path:
    import rustac

    path = tmp_path_factory.mktemp("parquet") / "items.parquet"
    rustac.write_sync(str(path), rtc_items())
    return path


def test_directory_catalog_returns_exactly_the_valid_pairs():
    source = open_source(str(STAC / "planetary-computer"), collection="sentinel-1-rtc")
    assert isinstance(source, LocalSource)
    result = search_pairs(source, query())
    assert pair_ids(result) == VALID_PAIRS
    assert result.n_items == len(rtc_items())
    assert result.rejected_counts["baseline"] == 12


def test_ndjson_catalog_returns_exactly_the_valid_pairs(ndjson: Path):
    result = search_pairs(open_source(str(ndjson)), query())
    assert pair_ids(result) == VALID_PAIRS
    assert result.manifest.source.collection == "sentinel-1-rtc"  # the one it holds


def test_geoparquet_catalog_returns_exactly_the_valid_pairs(geoparquet: Path):
    result = search_pairs(open_source(str(geoparquet), collection="sentinel-1-rtc"), query())
    assert pair_ids(result) == VALID_PAIRS
    # Filters apply inside DuckDB: a small area and one month leave one pair.
    one = search_pairs(
        open_source(str(geoparquet)),
        query(bbox=(77.4, 12.8, 77.8, 13.1), start="2026-04-01", end="2026-04-30"),
    )
    assert pair_ids(one) == {min(VALID_PAIRS)}
    assert one.n_items == 2


def test_area_and_dates_filter_the_local_catalog(ndjson: Path):
    result = search_pairs(
        open_source(str(ndjson)),
        query(bbox=(77.4, 12.8, 77.8, 13.1), start="2026-06-01", end="2026-08-10"),
    )
    # 2026-08-10 is inclusive: the S1D pair is found.
    assert pair_ids(result) == {p for p in VALID_PAIRS if "202606" in p[0] or "S1D" in p[0]}
    assert result.n_items == 4


def test_manifest_contract(ndjson: Path, tmp_path: Path):
    result = search_pairs(open_source(str(ndjson)), query(bbox=(77.4, 12.8, 77.8, 13.1)))
    manifest = result.manifest
    assert manifest.schema_version == MANIFEST_SCHEMA_VERSION
    assert manifest.software.startswith("stac-coh ")
    assert manifest.query["bbox"] == [77.4, 12.8, 77.8, 13.1]
    used = {i for p in manifest.pairs for i in p.item_ids}
    assert set(manifest.items) == used
    for item in manifest.items.values():
        for asset in item["assets"].values():
            assert "?" not in asset["href"] or "blob.core" not in asset["href"]
    path = write_manifest(manifest, tmp_path / "sub" / "m.json")
    again = read_manifest(path)
    assert again == Manifest.from_json(manifest.to_json())
    assert [p.id for p in again.pairs] == [p.id for p in manifest.pairs]
    assert again.pairs[0].grid == manifest.pairs[0].grid


def test_max_items_is_a_total_and_truncation_is_reported(ndjson: Path):
    with pytest.warns(UserWarning, match="--limit 8"):
        result = search_pairs(open_source(str(ndjson)), query(max_items=8))
    assert result.n_items == 8
    assert result.truncated
    assert result.n_pairs == 2  # the last S1D acquisition was cut off


def test_zero_items_is_a_clear_error(ndjson: Path):
    with pytest.raises(SearchError, match="No items in sentinel-1-rtc") as info:
        search_pairs(open_source(str(ndjson)), query(bbox=(0, 0, 1, 1)))
    assert not isinstance(info.value, NoPairsError)


def test_items_but_no_pair_says_why_per_reason():
    with pytest.raises(NoPairsError) as info:
        search_pairs(open_source(str(ES_GRD)), query(polarization="HH"))
    message = str(info.value)
    assert "30 items" in message
    assert "different relative orbit or orbit state" in message
    assert "slice combinations of one pass" in message


def test_several_collections_need_a_choice(tmp_path: Path):
    mixed = tmp_path / "mixed.ndjson"
    mixed.write_text(
        "".join(json.dumps(it) + "\n" for it in items(ES_GRD, PC_GRD)[:2] + rtc_items())
    )
    with pytest.raises(InputError, match=r"several collections.*--collection"):
        search_pairs(open_source(str(mixed)), query())
    with pytest.raises(InputError, match="no collection 'nope'"):
        search_pairs(open_source(str(mixed), collection="nope"), query())
    result = search_pairs(open_source(str(mixed), collection="sentinel-1-rtc"), query())
    assert pair_ids(result) == VALID_PAIRS


def test_unknown_sources_and_collections_are_input_errors(tmp_path: Path):
    with pytest.raises(InputError, match="Unknown --source 'copernicus'"):
        open_source("copernicus")
    with pytest.raises(InputError, match="not a Sentinel-1 collection of planetary-computer"):
        open_source("planetary-computer", collection="sentinel-2-l2a")
    with pytest.raises(InputError, match="sentinel-1-rtc"):
        open_source("earth-search", collection="sentinel-1-rtc")
    with pytest.raises(InputError, match="also give --collection"):
        open_source("https://stac.example.com/v1")
    with pytest.raises(InputError, match="no such file"):
        search_pairs(open_source(str(tmp_path / "absent.ndjson")), query())
    broken = tmp_path / "broken.ndjson"
    broken.write_text("{not json\n")
    with pytest.raises(InputError, match="invalid JSON"):
        search_pairs(open_source(str(broken)), query())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bbox": (-190, 0, 10, 10)}, "longitudes"),
        ({"bbox": (0, -95, 10, 10)}, "latitudes"),
        ({"bbox": (10, 0, 5, 10)}, "west 10.0 is not less than east 5.0"),
        ({"bbox": (0, 10, 10, 5)}, "south 10.0 is not less than north 5.0"),
        ({"bbox": (0, 0, 1)}, "four numbers"),
        ({"start": "2026-05-01", "end": "2026-04-01"}, "before --start"),
        ({"start": "yesterday"}, "--start 'yesterday' is not a date"),
        ({"polarization": "XX"}, "not a Sentinel-1 polarisation"),
        ({"baselines": "6,x"}, "--baselines"),
        ({"baselines": "-6"}, "positive"),
        ({"orbit_state": "sideways"}, "ascending"),
        ({"relative_orbit": 200}, "1..175"),
        ({"min_coverage": 1.5}, "between 0 and 1"),
        ({"max_items": 0}, "at least 1"),
        ({"crs": "EPSG:4326"}, "not projected"),
        ({"crs": "nonsense"}, "not a CRS"),
        ({"resolution": -10.0}, "positive"),
    ],
)
def test_bad_queries_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        query(**kwargs)


def test_aoi_file(tmp_path: Path):
    from stac_coh.search.query import load_aoi

    feature = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[77.4, 12.8], [77.8, 12.8], [77.6, 13.1], [77.4, 12.8]]],
                },
            }
        ],
    }
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(feature))
    aoi = load_aoi(path)
    q = SearchQuery.build(aoi=aoi, start="2026-04-01", end="2026-05-01")
    result = search_pairs(
        open_source(str(STAC / "planetary-computer" / "sentinel-1-rtc-fields-subset")), q
    )
    assert result.n_pairs == 1
    with pytest.raises(InputError, match="no such file"):
        load_aoi(tmp_path / "none.geojson")
    (tmp_path / "point.geojson").write_text('{"type": "Point", "coordinates": [1, 2]}')
    with pytest.raises(InputError, match="no polygon"):
        load_aoi(tmp_path / "point.geojson")
    with pytest.raises(InputError, match="exactly one of --bbox"):
        SearchQuery.build(start="2026-04-01", end="2026-05-01")


def test_relative_hrefs_are_resolved_against_the_item_file(tmp_path, monkeypatch):
    """A static catalog with relative hrefs, searched from another working directory."""
    import json as _json

    from stac_coh.search.query import SearchQuery as _Query
    from stac_coh.search.sources import open_source as _open

    folder = tmp_path / "catalog" / "items"
    folder.mkdir(parents=True)
    from tests.stac_data import PC_RTC
    from tests.stac_data import item as _item

    it = _item(PC_RTC, "S1A_IW_GRDH_1SDV_20250311")
    it["assets"]["vv"]["href"] = "../assets/vv.tif"
    it["links"] = [{"rel": "collection", "href": "../collection.json"}]
    (folder / "one.json").write_text(_json.dumps(it))
    monkeypatch.chdir(tmp_path)
    found = _open("catalog/items").search(
        _Query.build(bbox=tuple(it["bbox"]), start="2025-03-01", end="2025-03-31")
    )
    (only,) = found
    assert only["assets"]["vv"]["href"] == str(tmp_path / "catalog" / "assets" / "vv.tif")
    links = {link["rel"]: link["href"] for link in only["links"]}
    assert links["collection"] == str(tmp_path / "catalog" / "collection.json")
    assert links["self"] == str(folder / "one.json")
