"""RasterPairReader: T2 onto T1's grid, overlap cropping, nodata, dB, unreadable inputs."""

from __future__ import annotations

import uuid

import boto3
import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import calculate_default_transform, reproject

from stac_coh.errors import InputError, RasterReadError
from stac_coh.grid import PairReader
from stac_coh.io.gdal_env import gdal_env
from stac_coh.load.file_pair import ArrayPairReader, RasterPairReader
from tests.user_cli import write_raster

UTM = "EPSG:32633"
ORIGIN = (500000.0, 4600000.0)


def _field(height, width, res=20.0, origin=ORIGIN):
    """A smooth, positive backscatter field defined in map coordinates (so any grid samples
    the same underlying surface)."""
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x = origin[0] + cols * res
    y = origin[1] - rows * res
    return (0.1 + 0.05 * np.sin((x - ORIGIN[0]) / 300.0) * np.cos((y - ORIGIN[1]) / 500.0)).astype(
        np.float32
    )


def _write(path, data, **grid):
    return write_raster(path, data, dtype=None, **grid)


def test_same_grid_reads_both_images_exactly(tmp_path):
    a, b = _field(80, 96), _field(80, 96) * 2
    with RasterPairReader(_write(tmp_path / "a.tif", a), _write(tmp_path / "b.tif", b)) as r:
        assert isinstance(r, PairReader)
        assert r.resampling is None
        assert r.grid.shape == (80, 96) and r.grid.crs == UTM
        assert r.grid.affine == from_origin(*ORIGIN, 20.0, 20.0)
        got = r.read(0, 0, 80, 96)
    np.testing.assert_array_equal(got, np.stack([a, b]))


def test_reads_are_boundless(tmp_path):
    a = _field(20, 30)
    with RasterPairReader(_write(tmp_path / "a.tif", a), _write(tmp_path / "b.tif", a)) as r:
        got = r.read(-5, 25, 10, 10)
        assert np.isnan(r.read(100, 100, 4, 4)).all()
    assert np.isnan(got[:, :5]).all() and np.isnan(got[:, :, 5:]).all()
    np.testing.assert_array_equal(got[0, 5:, :5], a[:5, 25:])


def test_shifted_extent_on_the_same_pixel_grid_is_cropped_without_resampling(tmp_path):
    a = _field(80, 96)
    # T2 starts 10 rows lower and 7 columns further right, and runs past T1's corner.
    t2_origin = (ORIGIN[0] + 7 * 20.0, ORIGIN[1] - 10 * 20.0)
    b = _field(100, 120, origin=t2_origin) * 3
    t2 = _write(tmp_path / "b.tif", b, transform=from_origin(*t2_origin, 20.0, 20.0))
    with RasterPairReader(_write(tmp_path / "a.tif", a), t2) as r:
        assert r.resampling is None
        assert r.grid.shape == (70, 89)
        assert r.grid.affine == from_origin(*t2_origin, 20.0, 20.0)
        got = r.read(0, 0, 70, 89)
    np.testing.assert_array_equal(got[0], a[10:, 7:])
    np.testing.assert_array_equal(got[1], b[:70, :89])


def _reprojected(tmp_path, data, dst_crs, res_factor=1.0):
    """Write ``data`` (on the UTM grid) reprojected to ``dst_crs`` at ``res_factor`` x pixels."""
    src_transform = from_origin(*ORIGIN, 20.0, 20.0)
    height, width = data.shape
    bounds = rasterio.transform.array_bounds(height, width, src_transform)
    transform, w, h = calculate_default_transform(UTM, dst_crs, width, height, *bounds)
    transform = transform * transform.scale(res_factor)
    w, h = round(w / res_factor), round(h / res_factor)
    out = np.full((h, w), np.nan, dtype=np.float32)
    reproject(
        data,
        out,
        src_transform=src_transform,
        src_crs=UTM,
        dst_transform=transform,
        dst_crs=dst_crs,
        resampling=Resampling.bilinear,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    return _write(
        tmp_path / f"b-{res_factor}.tif", out, crs=dst_crs, transform=transform, nodata=np.nan
    )


def test_t2_in_another_crs_is_warped_onto_t1_and_cropped_to_the_overlap(tmp_path):
    a = _field(80, 96)
    # T2 covers only the left 60 columns of T1, in geographic coordinates.
    t2 = _reprojected(tmp_path, _field(80, 60), "EPSG:4326")
    with RasterPairReader(_write(tmp_path / "a.tif", a), t2) as r:
        assert r.resampling is Resampling.bilinear
        height, width = r.grid.shape
        assert r.grid.crs == UTM and r.grid.affine.c == ORIGIN[0]
        assert 58 <= width <= 62 and 78 <= height <= 82  # the overlap, within a pixel
        got = r.read(0, 0, height, width)
    # Away from T2's rotated edges the warped values are the same smooth surface.
    inner = got[1, 3 : min(height, 80) - 3, 3:56]
    assert np.isfinite(inner).all()
    np.testing.assert_allclose(inner, a[3 : min(height, 80) - 3, 3:56], rtol=0.01)


def test_a_much_finer_t2_is_averaged(tmp_path):
    a = _field(40, 40)
    t2 = _reprojected(tmp_path, _field(40, 40), UTM, res_factor=0.5)  # 10 m pixels
    with RasterPairReader(_write(tmp_path / "a.tif", a), t2) as r:
        assert r.resampling is Resampling.average
        got = r.read(0, 0, *r.grid.shape)
    np.testing.assert_allclose(got[1, 2:-2, 2:-2], a[2:-2, 2:-2], rtol=0.01)


def test_nodata_nan_and_non_positive_become_nan(tmp_path):
    a = _field(40, 50)
    a[:4] = -9999.0  # declared nodata border
    a[20, 20] = 0.0
    b = _field(40, 50)
    b[:, -6:] = np.nan
    b[30, 30] = -1.0
    t1 = _write(tmp_path / "a.tif", a, nodata=-9999.0)
    with RasterPairReader(t1, _write(tmp_path / "b.tif", b)) as r:
        got = r.read(0, 0, 40, 50)
    assert np.isnan(got[0, :4]).all() and np.isnan(got[0, 20, 20])
    assert np.isnan(got[1, :, -6:]).all() and np.isnan(got[1, 30, 30])
    assert np.isfinite(got[0, 4:20]).all() and np.isfinite(got[1, :, :-6][:30]).all()


def test_warping_excludes_zero_fill_of_a_linear_t2(tmp_path):
    a = _field(40, 40)
    b = _field(40, 40)
    b[:, :10] = 0.0  # zero fill, no nodata declared
    shifted = from_origin(ORIGIN[0] + 5.0, ORIGIN[1] - 5.0, 20.0, 20.0)  # quarter pixel off
    with RasterPairReader(
        _write(tmp_path / "a.tif", a), _write(tmp_path / "b.tif", b, transform=shifted)
    ) as r:
        got = r.read(0, 0, *r.grid.shape)
    finite = got[1][np.isfinite(got[1])]
    # Interpolating into the zeros would create values far below the field's minimum 0.05.
    assert finite.min() > 0.045
    assert np.isnan(got[1, :, :9]).all()


def test_db_inputs_are_converted_to_linear(tmp_path):
    a = _field(20, 20)
    db = (10 * np.log10(a)).astype(np.float32)
    with RasterPairReader(
        _write(tmp_path / "a.tif", db), _write(tmp_path / "b.tif", db), db=True
    ) as r:
        got = r.read(0, 0, 20, 20)
    np.testing.assert_allclose(got[0], a, rtol=1e-5)


def test_missing_input_names_the_path(tmp_path):
    a = _write(tmp_path / "a.tif", _field(10, 10))
    with pytest.raises(RasterReadError, match=r"T2 raster .*nope\.tif"):
        RasterPairReader(a, tmp_path / "nope.tif")


def test_corrupt_input_names_the_path(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    a = _write(tmp_path / "a.tif", _field(10, 10))
    with pytest.raises(RasterReadError, match=r"T1 raster .*bad\.tif"):
        RasterPairReader(bad, a)


def test_inputs_that_do_not_overlap_are_refused(tmp_path):
    a = _write(tmp_path / "a.tif", _field(10, 10))
    far = from_origin(ORIGIN[0] + 10_000, ORIGIN[1], 20.0, 20.0)
    b = _write(tmp_path / "b.tif", _field(10, 10), transform=far)
    with pytest.raises(InputError, match="do not overlap"):
        RasterPairReader(a, b)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_raster_without_crs_is_refused(tmp_path):
    a = _write(tmp_path / "a.tif", _field(10, 10))
    with rasterio.open(
        tmp_path / "b.tif", "w", driver="GTiff", width=10, height=10, count=1, dtype="float32"
    ) as ds:
        ds.write(_field(10, 10), 1)
    with pytest.raises(InputError, match="no CRS"):
        RasterPairReader(a, tmp_path / "b.tif")


def test_array_reader_does_not_modify_its_inputs():
    a = np.array([[1.0, np.nan], [0.0, 2.0]], dtype=np.float32)
    reader = ArrayPairReader(a, a)
    assert np.isnan(reader.read(0, 0, 2, 2)[0, 1, 0])
    assert a[1, 0] == 0.0


@pytest.mark.integration
def test_reads_s3_urls(tmp_path, aws_env):
    bucket = f"rasters-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=aws_env.endpoint)
    s3.create_bucket(Bucket=bucket)
    a = _field(30, 40)
    s3.upload_file(str(_write(tmp_path / "a.tif", a)), bucket, "a.tif")
    with gdal_env(), RasterPairReader(f"s3://{bucket}/a.tif", f"s3://{bucket}/a.tif") as r:
        np.testing.assert_array_equal(r.read(0, 0, 30, 40)[1], a)
    with gdal_env(), pytest.raises(RasterReadError, match=f"s3://{bucket}/missing.tif"):
        RasterPairReader(f"s3://{bucket}/a.tif", f"s3://{bucket}/missing.tif")


def test_crs_of_the_grid_is_an_authority_string(tmp_path):
    a = _write(tmp_path / "a.tif", _field(10, 10))
    with RasterPairReader(a, a) as r:
        assert CRS.from_user_input(r.grid.crs) == CRS.from_epsg(32633)
