"""Pairing rules on real fixture items and on their documented quirks."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
import shapely.geometry

from stac_coh.errors import InputError
from stac_coh.search.pairing import (
    find_pairs,
    format_rejections,
    group_acquisitions,
    item_datetime,
    normalize_item,
)
from stac_coh.search.query import SearchQuery
from tests.stac_data import ES_GRD, PC_GRD, PC_RTC, PC_RTC_SUBSET, VALID_PAIRS, item, items

WORLD = [-180.0, -90.0, 180.0, 90.0]
BENGALURU = [77.4, 12.8, 77.8, 13.1]


def query(bbox=WORLD, **kw) -> SearchQuery:
    return SearchQuery.build(bbox=bbox, start="2014-01-01", end="2027-12-31", **kw)


def ids(result) -> set[tuple[str, str]]:
    """(reference, secondary) first item ids of the pairs of passes, before tiling."""
    return {(p.reference.first.item_id, p.secondary.first.item_id) for p in result.pass_pairs}


def test_fixture_rtc_items_give_exactly_the_readme_pairs():
    result = find_pairs(items(PC_RTC, PC_RTC_SUBSET), query())
    assert ids(result) == VALID_PAIRS
    for pair in result.pairs:  # work units: each pair cut by the MGRS tiles it covers
        assert pair.baseline_days == pytest.approx(12.0, abs=0.01)
        assert pair.reference.datetime < pair.secondary.datetime
        assert pair.grid.crs in ("EPSG:32643", "EPSG:32644")  # the scenes span 78 E
        assert pair.tile.startswith("MGRS-" + pair.grid.crs[-2:])
        assert f"_{pair.tile.removeprefix('MGRS-')}_" in pair.id
        assert pair.grid.resolution == (10.0, 10.0)
        assert pair.coverage > 0.99
    assert len({p.tile for p in result.pairs}) > 4
    # 6 acquisitions of track 165 -> 15 combinations, 3 valid, the 12 others by baseline.
    assert result.rejected["baseline"] == 12


def test_grd_fixtures_have_no_pair_and_reasons_are_counted():
    result = find_pairs(items(ES_GRD, PC_GRD), query(polarization="HH"))
    assert result.pairs == ()
    assert result.rejected["track"] > 0
    assert result.rejected["same_pass"] > 0
    # PC's VV-only GRD scene lacks HH.
    assert result.rejected["polarization"] == 1
    assert "different relative orbit" in format_rejections(result.rejected)


def test_slices_of_one_pass_become_one_acquisition_in_along_track_order():
    es = items(ES_GRD)
    datatake = [it for it in es if it["id"].endswith("053501_067E15")]
    assert len(datatake) == 11
    shuffled = list(reversed(datatake))
    passes = group_acquisitions(normalize_item(it) for it in shuffled)
    assert len(passes) == 1
    acq = passes[0].acquisition()
    assert acq.item_ids == tuple(sorted(it["id"] for it in datatake))
    assert acq.absolute_orbit == 53501
    assert acq.datatake_id == "425493"
    assert acq.datetime == min(item_datetime(it) for it in datatake)


def test_same_pass_slices_are_never_paired_even_with_a_matching_baseline():
    # Two slices of one pass, 25 s apart, must merge; and even asked for tiny baselines
    # they never pair with each other.
    slices = items(PC_RTC)[:2]
    result = find_pairs(slices, query(baselines="0.0003,6,12"))
    assert result.pairs == ()
    assert result.rejected == {"same_pass": 1}
    assert len(result.passes) == 1


def test_cross_platform_pairs_are_valid():
    s1a = item(PC_RTC_SUBSET, "S1A_IW_GRDH_1SDV_20260616")
    s1d = item(PC_RTC_SUBSET, "S1D_IW_GRDH_1SDV_20260729")
    # The fixtures have S1D 43 days after S1A; ask for that baseline.
    result = find_pairs([s1a, s1d], query(baselines="43"))
    assert len(result.pass_pairs) == 1
    pair = result.pairs[0]
    assert pair.platforms == ("sentinel-1a", "sentinel-1d")
    assert pair.id.startswith("S1A-S1D_R165D_20260616_20260729_VV_")
    assert pair.baseline_days == pytest.approx(43.0, abs=0.01)


def test_platform_is_compared_case_insensitively():
    upper = copy.deepcopy(item(PC_RTC_SUBSET, "S1A_IW_GRDH_1SDV_20260417"))
    upper["properties"]["platform"] = "SENTINEL-1A"
    lower = item(PC_RTC_SUBSET, "S1A_IW_GRDH_1SDV_20260429")
    pair = find_pairs([upper, lower], query()).pairs[0]
    assert pair.reference.platform == pair.secondary.platform == "sentinel-1a"
    # Two upper/lower-case slices of one pass still merge into one acquisition.
    twin = copy.deepcopy(lower)
    twin["id"] += "_twin"
    twin["properties"]["platform"] = "Sentinel-1A"
    assert len(group_acquisitions([normalize_item(lower), normalize_item(twin)])) == 1


def test_non_rfc3339_start_datetime_is_read():
    rtc = copy.deepcopy(items(PC_RTC)[0])
    assert " " in rtc["properties"]["start_datetime"]
    rtc["properties"]["datetime"] = None
    when = item_datetime(rtc)
    assert when.tzinfo is not None
    assert when == datetime.fromisoformat(rtc["properties"]["start_datetime"].replace(" ", "T"))
    rtc["properties"]["start_datetime"] = "2024-04-19T04:57:49.123456789Z"  # nanoseconds
    assert item_datetime(rtc) == datetime(2024, 4, 19, 4, 57, 49, 123456, tzinfo=UTC)


def test_string_slice_numbers_and_datatake_ids_are_parsed():
    rtc = items(PC_RTC)[0]
    assert isinstance(rtc["properties"]["s1:slice_number"], str)
    s = normalize_item(rtc)
    assert s.slice_number == int(rtc["properties"]["s1:slice_number"])
    assert s.datatake_id == rtc["properties"]["s1:datatake_id"]


def test_missing_optional_fields_come_from_the_product_id():
    subset = item(PC_RTC_SUBSET, "S1D_IW_GRDH_1SDV_20260729")
    assert "sat:absolute_orbit" not in subset["properties"]
    s = normalize_item(subset)
    assert s.absolute_orbit == 3881
    assert s.datatake_id == str(0x00701D)
    bare = copy.deepcopy(subset)
    for key in ("platform", "sar:instrument_mode", "sar:polarizations"):
        del bare["properties"][key]
    s = normalize_item(bare)
    assert (s.platform, s.instrument_mode) == ("sentinel-1d", "IW")
    assert s.polarizations == {"VV", "VH"}  # from the asset keys


def test_items_without_required_fields_are_counted_not_fatal():
    broken = copy.deepcopy(item(PC_RTC_SUBSET, "S1A_IW_GRDH_1SDV_20260417"))
    del broken["properties"]["sat:relative_orbit"]
    with pytest.raises(InputError, match="relative_orbit"):
        normalize_item(broken)
    result = find_pairs([broken, *items(PC_RTC_SUBSET)[1:]], query())
    assert result.rejected["unusable"] == 1
    assert len(result.pass_pairs) == 2


def test_items_without_proj_get_the_utm_zone_of_the_area():
    grd = item(PC_GRD, "S1A_IW_GRDH_1SDV_20250312")
    assert not any(k.startswith("proj:") for k in grd["properties"])
    later = copy.deepcopy(grd)
    later["id"] = "S1A_IW_GRDH_1SDV_20250324T052236_20250324T052301_058442_07A1A1"
    later["properties"]["datetime"] = "2025-03-24T05:22:49.103098Z"
    later["properties"]["sat:absolute_orbit"] = 58442
    pair = find_pairs([grd, later], query(bbox=[9.0, 33.0, 9.5, 33.5])).pairs[0]
    assert pair.grid.crs == "EPSG:32632"  # 9.25 E
    assert pair.grid.resolution == (10.0, 10.0)


def test_grid_is_the_area_clipped_to_the_common_footprint_and_snapped():
    result = find_pairs(items(PC_RTC_SUBSET), query(bbox=BENGALURU))
    first = result.pass_pairs[0]
    units = [p for p in result.pairs if p.reference.datetime == first.reference.first.datetime]
    # The area (~43 km x 33 km at 13 N) straddles the 800 km easting of zone 43: two tiles.
    assert sorted(p.tile for p in units) == ["MGRS-43PGQ", "MGRS-43PHQ"]
    lefts, rights = [], []
    for pair in units:
        left, bottom, right, top = pair.grid.bounds
        assert all(v % 10 == 0 for v in (left, bottom, right, top))  # the zone's lattice
        assert 32_000 < top - bottom < 35_000
        lefts.append(left)
        rights.append(right)
    assert min(rights) == max(lefts) == 800_000  # the tiles meet on their common edge
    assert 42_000 < max(rights) - min(lefts) < 45_000
    area = shapely.union_all([shapely.geometry.shape(p.aoi) for p in units])
    assert area.bounds == pytest.approx(BENGALURU, abs=1e-5)  # ~1 m: projected and back


def test_overrides_of_resolution_and_crs():
    q = query(bbox=BENGALURU, resolution=20.0, crs="EPSG:32644")
    pair = find_pairs(items(PC_RTC_SUBSET), q).pairs[0]
    assert pair.grid.crs == "EPSG:32644"
    assert pair.grid.resolution == (20.0, 20.0)
    assert pair.tile == "EPSG32644-X1Y14"  # the 100 km cut of the chosen CRS


def test_orbit_filters_and_polarisation_are_item_level_exclusions():
    everything = items(PC_RTC, PC_RTC_SUBSET)
    asc = find_pairs(everything, query(orbit_state="ascending"))
    assert asc.pairs == ()
    assert asc.rejected == {"orbit_state_filter": len(everything)}
    other = find_pairs(everything, query(relative_orbit=51))
    assert other.pairs == ()
    assert other.rejected["relative_orbit_filter"] == len(everything) - 2
    hh = find_pairs(everything, query(polarization="HH"))
    assert hh.rejected == {"polarization": len(everything)}


def test_min_coverage_rejects_footprints_that_barely_overlap():
    a = item(PC_RTC_SUBSET, "S1A_IW_GRDH_1SDV_20260417")
    b = copy.deepcopy(item(PC_RTC_SUBSET, "S1A_IW_GRDH_1SDV_20260429"))
    # Shift the secondary's footprint 2.2 degrees east: a sliver of overlap remains.
    b["geometry"]["coordinates"] = [[[x + 2.2, y] for x, y in b["geometry"]["coordinates"][0]]]
    loose = find_pairs([a, b], query(min_coverage=0.0))
    (pair,) = loose.pass_pairs
    assert 0 < pair.coverage < 0.2
    strict = find_pairs([a, b], query())
    assert strict.pairs == ()
    assert strict.rejected["coverage"] == 1


def test_baseline_tolerance_is_well_under_a_day():
    a = item(PC_RTC_SUBSET, "S1A_IW_GRDH_1SDV_20260417")
    b = copy.deepcopy(item(PC_RTC_SUBSET, "S1A_IW_GRDH_1SDV_20260429"))
    b["properties"]["datetime"] = "2026-04-29T06:40:24Z"  # 12.25 days
    assert find_pairs([a, b], query()).rejected["baseline"] == 1
    b["properties"]["datetime"] = "2026-04-29T02:00:00Z"  # 12.06 days
    assert len(find_pairs([a, b], query()).pass_pairs) == 1


def test_pair_ids_are_deterministic():
    first = find_pairs(items(PC_RTC_SUBSET), query(bbox=BENGALURU))
    again = find_pairs(list(reversed(items(PC_RTC_SUBSET))), query(bbox=BENGALURU))
    assert [p.id for p in first.pairs] == [p.id for p in again.pairs]
    assert len({p.id for p in first.pairs}) == 3 * 2  # three pairs on two tiles each
