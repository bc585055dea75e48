"""Pictures and raster facts of a coherence map: colour map, thumbnail, visual COG, stats."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.enums import MaskFlags
from rasterio.warp import transform
from rio_cogeo.cogeo import cog_info, cog_validate
from shapely.geometry import Point, shape

from stac_coh.io.cog import UINT8_UNIT, encode, overview_levels, translate_to_cog
from stac_coh.publish.raster_info import band_info, ensure_cog, footprint, sha256_multihash
from stac_coh.publish.render import colorize, colormap_lut, write_thumbnail, write_visual
from tests.publishing import coherence_values, make_pair, write_raster


@pytest.fixture
def wide(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 600 x 260 uint8 coherence raster (plain GeoTIFF) with a nodata corner."""
    pair = make_pair(0)
    pair = dataclasses.replace(pair, grid=dataclasses.replace(pair.grid, width=600, height=260))
    values = coherence_values(pair, seed=3)
    return write_raster(tmp_path / "wide.tif", pair, values), values


def test_colormap_maps_ends_and_hides_nodata() -> None:
    lut = colormap_lut()
    rgba = colorize(np.array([[0.0, 1.0, np.nan, 0.5]], dtype=np.float32))
    assert rgba.shape == (4, 1, 4)
    assert rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[:, 0, 0], lut[0])
    np.testing.assert_array_equal(rgba[:, 0, 1], lut[255])
    assert rgba[3, 0, 2] == 0  # transparent nodata
    assert rgba[3, 0, 3] == 255
    assert not np.array_equal(lut[0], lut[255])


def test_overview_levels_reach_256_px() -> None:
    assert overview_levels(200, 100) == 0
    assert overview_levels(600, 260) == 2  # 300, 150
    assert overview_levels(10_000, 3_000) == 6  # 157 px at the coarsest
    assert max(10_000, 3_000) / 2 ** overview_levels(10_000, 3_000) <= 256


def test_ensure_cog_rewrites_plain_tiffs_and_keeps_encoding(
    wide: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    plain, values = wide
    assert not cog_validate(str(plain), quiet=True)[0]
    cog = ensure_cog(plain, tmp_path)
    assert cog != plain
    assert cog_validate(str(cog), quiet=True)[0]
    assert ensure_cog(cog, tmp_path) == cog  # already a COG: used as is
    with rasterio.open(cog) as ds:
        assert ds.overviews(1) == [2, 4]
        assert ds.scales == (UINT8_UNIT.scale,)
        assert ds.nodata == UINT8_UNIT.nodata
        np.testing.assert_array_equal(ds.read(1), encode(values, UINT8_UNIT))


def test_visual_cog_is_rgb_colour_mapped_with_a_nodata_mask(
    wide: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    plain, values = wide
    cog = ensure_cog(plain, tmp_path)
    visual = write_visual(cog, tmp_path / "visual.tif")
    valid, info = cog_validate(str(visual), quiet=True)[0], cog_info(str(visual))
    assert valid and info.Profile.InternalMask and not info.Profile.AlphaBand
    with rasterio.open(visual) as ds:
        assert ds.count == 3
        assert ds.dtypes == ("uint8",) * 3
        assert ds.nodata is None  # transparency comes from the mask alone
        assert all(flags == [MaskFlags.per_dataset] for flags in ds.mask_flag_enums)
        assert ds.overviews(1) == [2, 4]
        rgb, mask = ds.read(), ds.dataset_mask()
    stored = encode(values, UINT8_UNIT)
    decoded = np.where(stored == 255, np.nan, stored * np.float32(0.004))
    expected = colorize(decoded)
    valid_px = np.isfinite(values)
    np.testing.assert_array_equal(rgb[:, valid_px], expected[:3, valid_px])
    assert (mask[~valid_px] == 0).all()
    assert (mask[valid_px] == 255).all()


def test_thumbnail_is_small_png_of_the_colour_map(
    wide: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    plain, _ = wide
    png = write_thumbnail(ensure_cog(plain, tmp_path), tmp_path / "thumb.png", max_size=300)
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.mode == "RGBA"
        assert image.size == (300, 130)
        pixels = np.asarray(image)
    assert pixels[0, 0, 3] == 0  # nodata corner is transparent
    assert pixels[-1, -1, 3] == 255
    lut = colormap_lut()
    assert any((pixels[-1, -1] == row).all() for row in lut)


def test_band_info_gives_stored_value_statistics(
    wide: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    plain, values = wide
    info = band_info(ensure_cog(plain, tmp_path))
    stored = encode(values, UINT8_UNIT).astype(np.float64)
    valid = stored[stored != 255]
    assert (info.data_type, info.nodata, info.scale, info.offset) == ("uint8", 255, 0.004, 0.0)
    assert info.stac_nodata == 255
    stats = info.statistics
    assert stats is not None
    assert (stats.minimum, stats.maximum) == (valid.min(), valid.max())
    assert stats.mean == pytest.approx(valid.mean(), abs=1e-5)
    assert stats.stddev == pytest.approx(valid.std(), abs=1e-5)
    assert stats.valid_percent == pytest.approx(100 * valid.size / stored.size, abs=1e-3)


def test_band_info_of_float32_reports_nan_nodata(tmp_path: Path) -> None:
    pair = make_pair(1)
    values = coherence_values(pair, seed=1)
    info = band_info(write_raster(tmp_path / "f.tif", pair, values, "float32"))
    assert info.data_type == "float32"
    assert info.stac_nodata == "nan"
    assert info.statistics is not None
    assert info.statistics.maximum == pytest.approx(np.nanmax(values))


def test_footprint_follows_valid_pixels(wide: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    plain, _ = wide
    geometry = footprint(plain)
    assert geometry is not None
    outline = shape(geometry)
    with rasterio.open(plain) as ds:
        corner_x, corner_y = ds.xy(5, 5)  # inside the nodata corner
        centre_x, centre_y = ds.xy(200, 400)
        (lon, lat) = transform(ds.crs, "EPSG:4326", [corner_x, centre_x], [corner_y, centre_y])
    assert not outline.contains(Point(lon[0], lat[0]))
    assert outline.contains(Point(lon[1], lat[1]))
    assert len(outline.exterior.coords) < 20  # simplified, not a pixel staircase


def test_footprint_of_empty_raster_is_none(tmp_path: Path) -> None:
    pair = make_pair(2)
    empty = np.full(pair.grid.shape, np.nan, dtype=np.float32)
    assert footprint(write_raster(tmp_path / "e.tif", pair, empty)) is None


def test_sha256_multihash(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    assert sha256_multihash(path) == (
        "1220ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_translate_to_cog_keeps_float_nan(tmp_path: Path) -> None:
    pair = make_pair(3, size=300)
    values = coherence_values(pair)
    src = write_raster(tmp_path / "f.tif", pair, values, "float32")
    translate_to_cog(src, tmp_path / "f.cog.tif")
    with rasterio.open(tmp_path / "f.cog.tif") as ds:
        assert np.isnan(ds.nodata)
        assert ds.overviews(1) == [2]
        np.testing.assert_array_equal(np.isnan(ds.read(1)), np.isnan(values))
