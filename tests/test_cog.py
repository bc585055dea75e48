"""COG writing: every overview an exact halving (STAC Browser / OpenLayers need it)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from stac_coh.io.cog import padded_size, translate_to_cog
from stac_coh.publish.render import write_visual


@pytest.mark.parametrize(("width", "height"), [(1008, 469), (497, 466), (300, 200), (2049, 77)])
def test_padded_size_makes_every_level_halve_exactly(width, height):
    w, h, levels = padded_size(width, height)
    assert w >= width and h >= height and w - width < 2**levels and h - height < 2**levels
    for k in range(levels + 1):
        assert w % 2**k == 0 and h % 2**k == 0


def write(path, data, *, nodata, scale=1.0):
    height, width = data.shape
    profile = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype=data.dtype.name,
        crs="EPSG:32610",
        transform=Affine(10, 0, 5e5, 0, -10, 4.2e6),
        nodata=nodata,
    )
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
        ds.scales, ds.offsets = (scale,), (0.0,)
        ds.set_band_description(1, "coherence")
    return path


def test_uint8_cog_is_padded_with_nodata_keeping_values_and_metadata(tmp_path):
    data = (np.arange(469 * 1008) % 251).astype("uint8").reshape(469, 1008)
    src = write(tmp_path / "a.tif", data, nodata=255, scale=0.004)
    translate_to_cog(src, tmp_path / "b.tif")
    assert cog_validate(str(tmp_path / "b.tif"))[0]
    with rasterio.open(tmp_path / "b.tif") as ds:
        assert (ds.width, ds.height) == (1008, 472)
        assert ds.transform == Affine(10, 0, 5e5, 0, -10, 4.2e6)
        assert ds.scales == (0.004,) and ds.nodata == 255 and ds.descriptions == ("coherence",)
        stored = ds.read(1)
        levels = ds.overviews(1)
    np.testing.assert_array_equal(stored[:469], data)
    assert (stored[469:] == 255).all()
    for factor in levels:  # exact halvings all the way down
        assert 1008 % factor == 0 and 472 % factor == 0


def test_float_cog_and_visual_are_padded_transparently(tmp_path):
    data = np.random.default_rng(0).random((469, 1008), dtype=np.float32)
    src = write(tmp_path / "a.tif", data, nodata=float("nan"))
    translate_to_cog(src, tmp_path / "b.tif")
    with rasterio.open(tmp_path / "b.tif") as ds:
        stored = ds.read(1)
    assert np.isnan(stored[469:]).all() and np.allclose(stored[:469], data)
    visual = write_visual(tmp_path / "b.tif", tmp_path / "v.tif")
    with rasterio.open(visual) as ds:
        assert (ds.width, ds.height) == (1008, 472)
        mask = ds.dataset_mask()
        coarse = {f: ds.dataset_mask(out_shape=(472 // f, 1008 // f)) for f in ds.overviews(1)}
    assert mask[469:].max() == 0 and mask[:469].min() == 255
    for f, level in coarse.items():  # the mask halves with the image: padding stays masked
        assert level[: 469 // f].min() == 255
        assert level[-(-469 // f) :].size == 0 or level[-(-469 // f) :].max() == 0
    assert coarse[2][-1].max() == 0  # rows 470-471: padding only
