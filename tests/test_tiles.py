"""The fixed tile grid: MGRS squares per UTM zone (UPS at the poles), one lattice per zone."""

from __future__ import annotations

import math

import pytest
import shapely
import shapely.geometry

from stac_coh.errors import InputError
from stac_coh.grid import TILE_SIZE_M, OutputGrid, tile_grid_for
from stac_coh.search.query import SearchQuery
from stac_coh.search.tiling import summarize_units

MGRS = tile_grid_for()


def pieces(bbox: tuple[float, float, float, float], resolution: float = 10.0) -> list:
    return MGRS.pieces(shapely.geometry.box(*bbox), resolution)


@pytest.mark.parametrize(
    ("lon", "lat", "code", "crs"),
    [
        (16.37, 48.2, "MGRS-33UXP", "EPSG:32633"),  # Vienna
        (77.6, 13.0, "MGRS-43PGQ", "EPSG:32643"),  # Bengaluru
        (4.5, 60.0, "MGRS-32VKM", "EPSG:32632"),  # Norway: zone 32 reaches 3 E in band V
        (15.2, 78.0, "MGRS-33XWG", "EPSG:32633"),  # Svalbard: zone 33 spans 9-21 E
        (3.3, -0.1, "MGRS-31MEV", "EPSG:32731"),  # just south of the equator
        (0.5, 85.0, "MGRS-ZAB", "EPSG:32661"),  # UPS north beyond 84 N
        (0.5, -81.0, "MGRS-BAY", "EPSG:32761"),  # UPS south beyond 80 S
    ],
)
def test_a_point_lies_on_the_mgrs_square_users_know(lon, lat, code, crs):
    (piece,) = pieces((lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001))
    assert (piece.tile.code, piece.tile.crs) == (code, crs)
    assert piece.tile.name == code.removeprefix("MGRS-")
    left, bottom, right, top = piece.tile.bounds
    assert right - left == top - bottom == TILE_SIZE_M
    assert left % TILE_SIZE_M == 0 and bottom % TILE_SIZE_M == 0


def test_pieces_partition_a_continental_area_across_zones():
    area = shapely.geometry.box(-5.0, 40.0, 25.0, 62.0)  # 6 UTM zones, Norway exception
    cut = MGRS.pieces(area, 10.0)
    codes = [p.tile.code for p in cut]
    assert len(codes) == len(set(codes)) > 300  # one piece per tile, none twice
    assert {p.tile.crs for p in cut} == {f"EPSG:{32600 + z}" for z in range(30, 36)}
    union = shapely.union_all([p.area for p in cut])
    assert union.symmetric_difference(area).area < 1e-6 * area.area  # nothing lost
    overlap = sum(p.area.area for p in cut) - union.area
    assert overlap < 1e-6 * area.area  # nothing counted twice


def test_every_grid_is_on_its_zones_lattice_inside_its_tile():
    for piece in pieces((15.0, 33.0, 16.8, 34.5), resolution=20.0):
        grid, tile = piece.grid, piece.tile
        left, bottom, right, top = grid.bounds
        assert grid.crs == tile.crs and grid.resolution == (20.0, 20.0)
        assert all(v % 20 == 0 for v in (left, bottom, right, top))
        t_left, t_bottom, t_right, t_top = tile.bounds
        assert t_left <= left < right <= t_right and t_bottom <= bottom < top <= t_top
        whole = tile.grid(20.0)  # the whole tile: what composites load onto
        assert (whole.width, whole.height) == (5000, 5000)
        col = (left - whole.affine.c) / 20.0
        row = (whole.affine.f - top) / 20.0
        assert col == int(col) and row == int(row)  # a window of the tile's grid


def test_units_of_two_pairs_over_one_tile_share_the_lattice():
    a = pieces((15.1, 33.6, 15.5, 33.9))
    b = pieces((15.3, 33.7, 15.9, 34.2))
    common = {p.tile.code for p in a} & {p.tile.code for p in b}
    assert common
    for code in common:
        ga = next(p.grid for p in a if p.tile.code == code)
        gb = next(p.grid for p in b if p.tile.code == code)
        assert ga.crs == gb.crs
        assert (ga.affine.c - gb.affine.c) % 10 == 0 and (ga.affine.f - gb.affine.f) % 10 == 0


def test_a_resolution_that_does_not_divide_the_tile_still_stays_near_it():
    (piece, *_) = pieces((15.0, 33.5, 15.9, 34.2), resolution=30.0)
    assert piece.grid.width <= math.ceil(TILE_SIZE_M / 30) + 1
    assert piece.grid.affine.c % 30 == 0


def test_a_chosen_crs_is_cut_in_100_km_squares_of_that_crs():
    grid = tile_grid_for("EPSG:3031")  # Antarctic polar stereographic
    cut = grid.pieces(shapely.geometry.box(-60.0, -75.0, -50.0, -72.0), 100.0)
    assert cut and all(p.tile.code.startswith("EPSG3031-X") for p in cut)
    assert all(p.grid.crs == "EPSG:3031" for p in cut)
    with pytest.raises(InputError, match="projected CRS"):
        tile_grid_for("EPSG:4326")


def test_resolution_must_fit_a_tile():
    with pytest.raises(InputError, match="at most the tile size"):
        pieces((15.0, 33.0, 15.1, 33.1), resolution=200_000.0)


def test_output_grid_round_trips_through_an_odc_geo_geobox():
    grid = OutputGrid.from_bounds(
        "EPSG:32633", (500_003.0, 3_700_001.0, 500_640.0, 3_700_640.0), 20
    )
    assert grid.transform == (20.0, 0.0, 500_000.0, 0.0, -20.0, 3_700_640.0)
    assert (grid.width, grid.height) == (32, 32)
    assert OutputGrid.from_geobox(grid.geobox) == grid


def test_tiling_summary_counts_units_tiles_and_sizes():
    from stac_coh.search.pairing import find_pairs
    from tests.stac_data import PC_RTC_SUBSET, items

    q = SearchQuery.build(bbox=(77.4, 12.8, 77.8, 13.1), start="2026-01-01", end="2026-12-31")
    result = find_pairs(items(PC_RTC_SUBSET), q)
    summary = summarize_units(result.pairs)
    assert (summary.pairs, summary.units, summary.tiles) == (3, 6, 2)
    assert summary.units_per_pair == (2, 2, 2.0)
    assert 0 < summary.megapixels[0] < summary.megapixels[1] <= 100.0
    text = "\n".join(summary.lines())
    assert "3 pairs -> 6 work units on 2 tiles" in text and "MP" in text
