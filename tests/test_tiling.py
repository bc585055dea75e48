"""Tile planning: coverage, bounds, alignment, and the published patch layout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stac_coh.infer.tiling import (
    kaiser_window_2d,
    patch_starts,
    plan_reference,
    plan_tiles,
    round_up,
)

# Shapes chosen to hit the edge cases: smaller than one tile, exact multiples, one pixel
# over a multiple, sizes not divisible by 16, a single row.
SHAPES = [(1, 1), (1, 300), (15, 17), (64, 64), (65, 64), (96, 80), (200, 129), (513, 1040)]
TILE_ARGS = [(64, 0, 16), (64, 144, 16), (128, 20, 16), (100, 7, 1), (32, 4, 8), (1024, 144, 16)]


def _cover_count(height, width, windows):
    count = np.zeros((height, width), dtype=np.int32)
    for w in windows:
        count[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    return count


@pytest.mark.parametrize(("shape", "args"), list(itertools.product(SHAPES, TILE_ARGS)))
def test_plan_tiles_covers_every_pixel_once_and_reads_enough_context(shape, args):
    height, width = shape
    tile, halo, multiple = args
    tiles = plan_tiles(height, width, tile, halo, multiple)
    np.testing.assert_array_equal(_cover_count(height, width, tiles), 1)
    _check_context(tiles, height, width, tile, halo, multiple)


def _check_context(tiles, height, width, tile, halo, multiple):
    halo_r, tile_r = round_up(halo, multiple), round_up(tile, multiple)
    # One read shape per scene, never more than a full tile with two halos.
    assert len({t.read_shape for t in tiles}) == 1
    for t in tiles:
        assert t.height > 0 and t.width > 0
        for off, size, read_off, read_size, length in (
            (t.row_off, t.height, t.read_row_off, t.read_height, height),
            (t.col_off, t.width, t.read_col_off, t.read_width, width),
        ):
            padded = round_up(length, multiple)
            assert read_size <= max(tile_r + 2 * halo_r, padded)
            # Reads stay inside the grid padded to the multiple, on the pooling phase...
            assert read_off >= 0 and read_off + read_size <= padded
            assert read_off % multiple == 0 and read_size % multiple == 0
            assert off % multiple == 0
            # ...and hold the full halo around the core, or everything up to the edge.
            assert read_off <= max(0, off - halo_r)
            assert read_off + read_size >= min(padded, off + size + halo_r)


@pytest.mark.parametrize("length", [*range(1, 700, 7), 1311, 1312, 1313, 1328, 2048, 4096, 5003])
@pytest.mark.parametrize(("tile", "halo", "multiple"), [(64, 144, 16), (1024, 144, 16), (32, 4, 1)])
def test_plan_tiles_along_one_axis_for_many_lengths(length, tile, halo, multiple):
    tiles = plan_tiles(length, 17, tile, halo, multiple)
    np.testing.assert_array_equal(_cover_count(length, 17, tiles), 1)
    _check_context(tiles, length, 17, tile, halo, multiple)


def test_plan_tiles_gives_edge_tiles_bigger_cores_and_all_tiles_one_read_shape():
    tiles = plan_tiles(4096, 4096, 1024, 144)
    rows = sorted({(t.row_off, t.height) for t in tiles})
    assert rows == [(0, 1104), (1104, 960), (2064, 960), (3024, 1072)]
    assert {t.read_shape for t in tiles} == {(1248, 1248)}
    # An axis that fits in one tile plus its halos is one tile, read whole.
    assert [(t.height, t.read_height) for t in plan_tiles(1040, 1, 1024, 144)] == [(1040, 1040)]


def test_crop_returns_the_core_of_a_read_window():
    tile = plan_tiles(300, 300, 64, 32)[4]
    read = np.arange(tile.read_height * tile.read_width).reshape(tile.read_shape)
    rows = np.arange(tile.read_row_off, tile.read_row_off + tile.read_height)
    core = tile.crop(read)
    assert core.shape == (tile.height, tile.width)
    assert core[0, 0] == read[tile.crop_row, tile.crop_col]
    assert rows[tile.crop_row] == tile.row_off


@pytest.mark.parametrize("bad", [{"tile": 0}, {"halo": -1}, {"height": 0}])
def test_plan_tiles_rejects_nonsense(bad):
    args = {"height": 10, "width": 10, "tile": 16, "halo": 0} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        plan_tiles(**args)


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (100, [0]),  # smaller than a patch: one zero-padded patch
        (128, [0]),
        (129, [0, 1]),  # snapped edge patch
        (160, [0, 32]),
        (161, [0, 32, 33]),
        (256, [0, 32, 64, 96, 128]),
    ],
)
def test_patch_starts_follow_the_published_rule(length, expected):
    assert patch_starts(length, 128, 32) == expected


@pytest.mark.parametrize("length", [1, 50, 127, 128, 129, 300, 1000, 1043])
def test_patch_starts_cover_the_axis_and_end_at_the_border(length):
    starts = patch_starts(length)
    assert starts[0] == 0
    assert starts[-1] == max(0, length - 128)
    assert all(b - a <= 32 for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize(("shape", "block"), [((96, 80), 64), ((300, 450), 128), ((70, 700), 256)])
def test_reference_blocks_cover_once_and_hold_every_overlapping_patch(shape, block):
    height, width = shape
    blocks = plan_reference(height, width, block=block)
    np.testing.assert_array_equal(_cover_count(height, width, [b.window for b in blocks]), 1)
    rows, cols = patch_starts(height), patch_starts(width)
    for b in blocks:
        w = b.window
        want_r = [r for r in rows if r < w.row_off + w.height and r + 128 > w.row_off]
        want_c = [c for c in cols if c < w.col_off + w.width and c + 128 > w.col_off]
        assert list(b.row_starts) == want_r and list(b.col_starts) == want_c
        # The read window is exactly the union of the block's patches.
        assert (w.read_row_off, w.read_col_off) == (want_r[0], want_c[0])
        assert w.read_row_off + w.read_height == want_r[-1] + 128
        relative = b.patches
        assert relative[0] == (0, 0) and len(relative) == len(want_r) * len(want_c)


def test_kaiser_window_is_the_outer_product_of_numpy_kaiser():
    w = kaiser_window_2d(128, 5.0)
    one = np.kaiser(128, 5.0)
    assert w.dtype == np.float32 and w.shape == (128, 128)
    np.testing.assert_allclose(w, np.outer(one, one), rtol=1e-6)
    assert w.min() > 0  # every covered pixel gets weight, so the division is safe
