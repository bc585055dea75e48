"""Geocoding synthetic GRD slices onto map grids through their GCPs.

The slices come from ``tests/grd_synth.py``: a 200 x 150 uint16 DN COG whose radar
geometry is an ascending, rotated, slightly curved swath in UTM 31N, with bright
markers placed exactly on geolocation grid points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyproj import Transformer

from stac_coh.errors import RasterReadError
from stac_coh.grid import OutputGrid, PairReader
from stac_coh.load.grd.annotation import parse_product
from stac_coh.load.grd.assets import grd_assets, make_xml_fetcher
from stac_coh.load.grd.geocode import GcpGeocoder, GridWindow
from stac_coh.load.grd.reader import (
    GrdAcquisitionReader,
    GrdPairReader,
    GrdSlice,
    _block_factor,
)
from tests import grd_synth as synth


def _item(paths: dict[str, Path], item_id: str = "synthetic") -> dict[str, Any]:
    """A GRD item dict whose assets point at local files (product via the RFI quirk)."""
    keys = ("vv", "schema-calibration-vv", "schema-noise-vv", "schema-product-vv")
    return {"id": item_id, "assets": {k: {"href": str(paths[k])} for k in keys}}


def _slice(folder: Path, scene: synth.SyntheticGrd, **kwargs: Any) -> GrdSlice:
    paths = synth.write_safe(scene, folder, **kwargs)
    return GrdSlice(grd_assets(_item(paths), "VV"), fetch_xml=make_xml_fetcher())


def _utm_grid(
    resolution: float = 10.0, origin: tuple[float, float] = synth.UTM_ORIGIN
) -> OutputGrid:
    corners = [synth.radar_to_utm(line, pixel, *origin) for line in (0, 149) for pixel in (0, 199)]
    xs, ys = zip(*corners, strict=True)
    return OutputGrid.from_bounds(
        synth.UTM, (min(xs) - 60, min(ys) - 60, max(xs) + 60, max(ys) + 60), resolution
    )


def _marker_offsets(image: np.ndarray, grid: OutputGrid, scene: synth.SyntheticGrd) -> list[float]:
    """Distance (output pixels) between each marker's centroid and its GCP's map position."""
    to_grid = Transformer.from_crs(synth.UTM, grid.crs, always_xy=True)
    inverse = ~grid.affine
    offsets = []
    for line, pixel in scene.bright:
        col, row = inverse * to_grid.transform(*synth.radar_to_utm(line, pixel, *scene.origin))
        r0, c0 = int(row) - 3, int(col) - 3
        patch = np.nan_to_num(image[r0 : r0 + 7, c0 : c0 + 7])
        weight = np.maximum(patch - 5.0, 0.0)  # the marker is ~200, its neighbourhood < 1
        rr, cc = np.mgrid[r0 : r0 + 7, c0 : c0 + 7] + 0.5  # pixel centres
        centroid = (np.sum(rr * weight) / weight.sum(), np.sum(cc * weight) / weight.sum())
        offsets.append(float(np.hypot(centroid[0] - row, centroid[1] - col)))
    return offsets


@pytest.mark.parametrize("with_gcps", [True, False], ids=["tiff-gcps", "annotation-gcps"])
def test_markers_land_on_their_gcp_positions(tmp_path: Path, with_gcps: bool) -> None:
    scene = synth.make_dn(seed=1)
    grd = _slice(tmp_path, scene, with_gcps=with_gcps)
    grid = _utm_grid()
    image = grd.read(grid, GridWindow(0, 0, grid.height, grid.width))
    grd.close()
    offsets = _marker_offsets(image, grid, scene)
    assert len(offsets) == 4
    assert max(offsets) < 1.0, offsets
    # The image is calibrated sigma0 (not DN): ordinary pixels are around 0.001 .. 1.
    assert 0.001 < float(np.nanmedian(image)) < 1.0


def test_markers_on_a_geographic_grid(tmp_path: Path) -> None:
    scene = synth.make_dn(seed=2)
    grd = _slice(tmp_path, scene)
    utm = _utm_grid()
    to_ll = Transformer.from_crs(synth.UTM, "EPSG:4326", always_xy=True)
    left, bottom, right, top = utm.bounds
    w, s = to_ll.transform(left, bottom)
    e, n = to_ll.transform(right, top)
    grid = OutputGrid.from_bounds("EPSG:4326", (w, s, e, n), 0.0001)
    image = grd.read(grid, GridWindow(0, 0, grid.height, grid.width))
    assert max(_marker_offsets(image, grid, scene)) < 1.0


@pytest.mark.parametrize("resolution", [10.0, 30.0], ids=["10m", "30m-block-mean"])
def test_tiles_stitch_to_the_full_read(tmp_path: Path, resolution: float) -> None:
    """A pixel reads the same whichever (halo) tile asks for it: tiles stitch exactly."""
    grd = _slice(tmp_path, synth.make_dn(seed=4))
    grid = _utm_grid(resolution)
    full = grd.read(grid, GridWindow(0, 0, grid.height, grid.width))
    tiled = np.full_like(full, np.nan)
    size, halo = 24, 5
    for r in range(0, grid.height, size):
        for c in range(0, grid.width, size):
            tile = grd.read(grid, GridWindow(r - halo, c - halo, size + 2 * halo, size + 2 * halo))
            core = tile[halo : halo + size, halo : halo + size]
            h, w = tiled[r : r + size, c : c + size].shape
            tiled[r : r + size, c : c + size] = core[:h, :w]
    assert np.isfinite(full).mean() > 0.4
    np.testing.assert_array_equal(tiled, full)


def test_small_windows_read_small_source_windows(tmp_path: Path) -> None:
    scene = synth.make_dn()
    geocoder = GcpGeocoder.from_gcps(
        parse_product(synth.product_xml(scene)).gcps(), synth.WIDTH, synth.HEIGHT
    )
    grid = _utm_grid()
    window = geocoder.source_window(geocoder.source_coords(grid, GridWindow(90, 100, 20, 20)))
    assert window is not None
    assert window.width * window.height < 0.1 * synth.WIDTH * synth.HEIGHT
    assert 0 < window.col_off < synth.WIDTH and 0 < window.row_off < synth.HEIGHT
    far = GridWindow(-5000, -5000, 32, 32)
    assert geocoder.source_window(geocoder.source_coords(grid, far)) is None
    grd = _slice(tmp_path, scene)
    assert np.isnan(grd.read(grid, far)).all()


def test_product_annotation_fallback_when_listed_product_is_rfi(tmp_path: Path) -> None:
    """Earth Search's schema-product asset can be the RFI XML: the derived href is used."""
    scene = synth.make_dn(seed=5)
    paths = synth.write_safe(scene, tmp_path, with_gcps=False)
    disguised = tmp_path / "annotation" / "product-listed.xml"
    disguised.write_bytes(paths["schema-product-vv"].read_bytes())  # RFI content, neutral name
    item = _item(paths)
    item["assets"]["schema-product-vv"]["href"] = str(disguised)
    assets = grd_assets(item, "VV")
    assert assets.product == str(disguised)
    assert assets.product_fallback == str(paths["product"])
    grd = GrdSlice(assets, fetch_xml=make_xml_fetcher())
    grid = _utm_grid()
    image = grd.read(grid, GridWindow(0, 0, grid.height, grid.width))
    assert max(_marker_offsets(image, grid, scene)) < 1.0


def test_slices_of_one_pass_mosaic(tmp_path: Path) -> None:
    first = synth.make_dn(seed=6, markers=False)
    second = synth.make_dn(seed=7, markers=False)
    second.origin = synth.radar_to_utm(140, 0)  # next slice, 10 lines of overlap
    a = _slice(tmp_path / "a", first)
    b = _slice(tmp_path / "b", second)
    grid = _utm_grid()
    left, bottom, right, top = grid.bounds
    grid = OutputGrid.from_bounds(grid.crs, (left, bottom, right + 600, top + 1500), 10.0)
    whole = GridWindow(0, 0, grid.height, grid.width)
    only_a, only_b = a.read(grid, whole), b.read(grid, whole)
    mosaic = GrdAcquisitionReader([a, b]).read(grid, whole)
    in_a = np.isfinite(only_a)
    np.testing.assert_array_equal(mosaic[in_a], only_a[in_a])
    from_b = ~in_a & np.isfinite(only_b)
    assert from_b.sum() > 1000
    np.testing.assert_array_equal(mosaic[from_b], only_b[from_b])
    assert np.isfinite(mosaic).sum() == (in_a | np.isfinite(only_b)).sum()


def test_pair_reader_contract(tmp_path: Path) -> None:
    ref = _slice(tmp_path / "ref", synth.make_dn(seed=8))
    sec = _slice(tmp_path / "sec", synth.make_dn(seed=9))
    grid = _utm_grid()
    reader = GrdPairReader(grid, GrdAcquisitionReader([ref]), GrdAcquisitionReader([sec]))
    assert isinstance(reader, PairReader)
    assert reader.grid == grid
    out = reader.read(-10, grid.width - 50, 80, 80)
    assert out.shape == (2, 80, 80) and out.dtype == np.float32
    assert np.isnan(out[:, :10, :]).all()  # rows above the grid
    assert np.isnan(out[:, :, 50:]).all()  # columns right of the grid
    centre = reader.read(grid.height // 2 - 20, grid.width // 2 - 20, 40, 40)
    assert np.isfinite(centre).all()
    assert not np.array_equal(centre[0], centre[1])  # two different acquisitions
    reader.close()


def test_block_factor() -> None:
    assert _block_factor(_utm_grid(10.0), 10.0) == 1
    assert _block_factor(_utm_grid(12.0), 10.0) == 1
    assert _block_factor(_utm_grid(30.0), 10.0) == 3
    geographic = OutputGrid.from_bounds("EPSG:4326", (2.0, 45.0, 2.1, 45.1), 0.0003)
    assert _block_factor(geographic, 10.0) == 3  # ~23.6 m x 33.4 m pixels


def test_unreadable_inputs_name_the_item(tmp_path: Path) -> None:
    paths = synth.write_safe(synth.make_dn(), tmp_path, with_gcps=False)
    grid = _utm_grid()
    window = GridWindow(0, 0, 16, 16)
    missing = _item(paths, "S1X_missing_measurement")
    missing["assets"]["vv"]["href"] = str(tmp_path / "measurement" / "gone.tiff")
    grd = GrdSlice(grd_assets(missing, "VV"), fetch_xml=make_xml_fetcher())
    with pytest.raises(RasterReadError, match="S1X_missing_measurement"):
        grd.read(grid, window)
    # No GCPs in the TIFF and the listed product annotation is an RFI file whose derived
    # neighbour is missing too: the error says what was tried.
    paths["product"].unlink()
    grd = GrdSlice(
        grd_assets(_item(paths, "S1X_no_geolocation"), "VV"), fetch_xml=make_xml_fetcher()
    )
    with pytest.raises(RasterReadError, match="Cannot read annotation"):
        grd.read(grid, window)
