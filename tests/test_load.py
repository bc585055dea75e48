"""Reading pairs: COGs on the grids real items declare, odc-stac vs stackstac vs rasterio.

The reference is the two-slice pass of PC ``sentinel-1-rtc`` 2024-04-19 (track 51,
EPSG:32633), its declared grids coarsened 250x (2.5 km pixels, ~85x116 px). Two later
passes reuse those footprints: one on a 2 km grid of the same UTM zone with another
origin, one on a 2 km grid of the neighbouring zone (EPSG:32634), so the secondary is
really resampled.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import from_bounds

from stac_coh.errors import InputError, RasterReadError
from stac_coh.grid import OutputGrid, PairReader
from stac_coh.io.signing import PlanetaryComputerSigner
from stac_coh.load.stac_pair import open_pair_reader
from stac_coh.search.manifest import Manifest, Pair, SourceSpec, pair_id
from stac_coh.search.pairing import find_pairs
from stac_coh.search.profiles import read_gdal_options
from stac_coh.search.query import SearchQuery
from tests.cog_server import CogServer
from tests.pc_token_server import TokenServer, pc_sdk_pointed_at
from tests.stac_data import (
    ES_GRD,
    NODATA,
    PC_RTC,
    item,
    items,
    reprojected,
    scaled,
    shifted_in_time,
    write_item_cog,
)

LOCAL = SourceSpec("local", "catalog", "sentinel-1-rtc")
AREA = (15.0, 33.0, 16.8, 34.5)  # across both reference slices


@dataclass(frozen=True)
class Scene:
    """Two pairs sharing the reference, their items and COG paths by item id."""

    same_zone: Pair
    other_zone: Pair
    items: dict[str, dict[str, Any]]
    paths: dict[str, Path]


def _pass(prefixes: tuple[str, str]) -> list[dict[str, Any]]:
    return [scaled(item(PC_RTC, p), 250) for p in prefixes]


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Scene:
    root = tmp_path_factory.mktemp("cogs")
    ref = _pass(("S1A_IW_GRDH_1SDV_20240419T045749", "S1A_IW_GRDH_1SDV_20240419T045814"))
    same = [reprojected(shifted_in_time(it, 12, "p12"), 32633, 2500.0) for it in ref]
    for it in same:  # move the origin off the reference's 2.5 km lattice
        t = it["properties"]["proj:transform"]
        t[2] += 730.0
        t[5] -= 410.0
    other = [reprojected(shifted_in_time(it, 24, "p24"), 32634, 2500.0) for it in ref]
    everything = ref + same + other
    paths = {}
    for n, it in enumerate(everything):
        paths[it["id"]] = write_item_cog(it, root / f"{n}.tif", seed=0.37 * n)
    query = SearchQuery.build(bbox=AREA, start="2024-01-01", end="2024-12-31", baselines="12,24")
    result = find_pairs(everything, query)
    assert result.rejected == {"same_pass": 3}
    # Loaders read any grid: these pairs cover the whole area on the reference's own
    # 2.5 km grid (several tiles' worth), not a tile of the fixed output grid.
    pairs = [_on_reference_grid(pp) for pp in result.pass_pairs]
    by_secondary = {p.secondary.item_ids[0].rsplit("_", 1)[-1]: p for p in pairs}
    first = by_secondary["p12"]
    second = next(p for p in pairs if p.reference == first.reference and p is not first)
    return Scene(first, second, {it["id"]: it for it in everything}, paths)


def _on_reference_grid(pp: Any) -> Pair:
    """A pair over its whole area on the reference's native grid (CRS, pixel, lattice)."""
    import shapely
    from pyproj import Transformer

    first = pp.reference.first
    crs, res = f"EPSG:{first.epsg}", float(first.resolution)
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    dense = shapely.segmentize(pp.area, max_segment_length=0.01)
    left, bottom, right, top = shapely.transform(
        dense, lambda c: np.column_stack(to_crs.transform(c[:, 0], c[:, 1]))
    ).bounds
    ax, ay = first.origin[0] % res, first.origin[1] % res
    grid = OutputGrid.from_bounds(crs, (left - ax, bottom - ay, right - ax, top - ay), res)
    a, b, c, d, e, f = grid.transform
    grid = OutputGrid(crs, (a, b, c + ax, d, e, f + ay), grid.width, grid.height)
    ref, sec = pp.reference.acquisition(), pp.secondary.acquisition()
    aoi = shapely.geometry.mapping(pp.area)
    return Pair(pair_id(ref, sec, "VV", grid), ref, sec, "VV", pp.baseline_days, aoi, grid)


def expected(paths: list[Path], grid: OutputGrid, *, aligned: bool) -> np.ndarray:
    """What rasterio reads directly: window reads (aligned) or a bilinear reproject."""
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    for path in paths:
        with rasterio.open(path) as src:
            if aligned:
                window = from_bounds(*grid.bounds, transform=src.transform)
                data = src.read(1, window=window, boundless=True, fill_value=NODATA)
                data[data == NODATA] = np.nan
            else:
                data = np.full(grid.shape, np.nan, dtype=np.float32)
                reproject(
                    rasterio.band(src, 1),
                    data,
                    src_nodata=NODATA,
                    dst_transform=grid.affine,
                    dst_crs=grid.crs,
                    dst_nodata=np.nan,
                    resampling=Resampling.bilinear,
                )
        take = np.isnan(out) & ~np.isnan(data)
        out[take] = data[take]
    return out


def read_all(reader: PairReader) -> np.ndarray:
    return reader.read(0, 0, reader.grid.height, reader.grid.width)


def paths_of(scene: Scene, acq) -> list[Path]:
    return [scene.paths[i] for i in acq.item_ids]


def test_grid_is_the_reference_native_grid(scene: Scene):
    grid = scene.same_zone.grid
    assert grid.crs == "EPSG:32633"
    assert grid.resolution == (2500.0, 2500.0)
    assert 50 < grid.width < 90 and 50 < grid.height < 90
    assert scene.same_zone.reference.item_ids == scene.other_zone.reference.item_ids
    assert len(scene.same_zone.reference.item_ids) == 2  # a two-slice mosaic


@pytest.mark.parametrize("loader", ["odc", "stackstac"])
def test_reference_mosaic_equals_direct_window_reads(scene: Scene, loader):
    pair = scene.same_zone
    got = read_all(open_pair_reader(pair, scene.items, LOCAL, loader=loader))
    assert got.shape == (2, *pair.grid.shape) and got.dtype == np.float32
    want = expected(paths_of(scene, pair.reference), pair.grid, aligned=True)
    np.testing.assert_array_equal(got[0], want)
    # Both slices contribute, and the nodata block and the off-footprint corners are NaN.
    assert 0.2 < np.isnan(want).mean() < 0.9 or np.isnan(want).any()
    assert np.isfinite(got[0]).sum() > 0.5 * got[0].size


@pytest.mark.parametrize("pair_name", ["same_zone", "other_zone"])
def test_secondary_is_resampled_like_rasterio(scene: Scene, pair_name):
    pair: Pair = getattr(scene, pair_name)
    got = read_all(open_pair_reader(pair, scene.items, LOCAL))[1]
    want = expected(paths_of(scene, pair.secondary), pair.grid, aligned=False)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    # Across UTM zones GDAL warps with its approximate transformer (<= 0.125 px error),
    # interpolated over each call's own region: odc-stac's region is not the whole grid.
    rtol = 1e-6 if pair_name == "same_zone" else 1e-2
    np.testing.assert_allclose(got, want, rtol=rtol, equal_nan=True)
    # Really resampled: no output value is a stored pixel value of the secondary.
    with rasterio.open(paths_of(scene, pair.secondary)[0]) as src:
        stored = set(np.unique(src.read(1)).tolist())
    finite = got[np.isfinite(got)]
    assert np.isin(finite, list(stored)).mean() < 0.05


def test_nodata_becomes_nan(scene: Scene):
    pair = scene.same_zone
    got = read_all(open_pair_reader(pair, scene.items, LOCAL))
    assert not (got == NODATA).any()
    # The block of nodata written inside the first slice shows up as NaN.
    first = scene.items[pair.reference.item_ids[0]]
    height, width = first["properties"]["proj:shape"]
    transform = rasterio.Affine(*first["properties"]["proj:transform"][:6])
    x, y = transform * (width // 2 + 2, height // 3 + 1.5)
    row, col = rasterio.transform.rowcol(pair.grid.affine, x, y)
    if 0 <= row < pair.grid.height and 0 <= col < pair.grid.width:
        assert np.isnan(got[0, row, col])


@pytest.mark.parametrize("pair_name", ["same_zone", "other_zone"])
def test_odc_and_stackstac_return_the_same_pixels(scene: Scene, pair_name):
    pair: Pair = getattr(scene, pair_name)
    odc = read_all(open_pair_reader(pair, scene.items, LOCAL, loader="odc"))
    stk = read_all(open_pair_reader(pair, scene.items, LOCAL, loader="stackstac"))
    assert np.array_equal(np.isnan(odc), np.isnan(stk))
    np.testing.assert_array_equal(odc[0], stk[0])  # the aligned reference: identical
    # Across UTM zones stackstac's WarpedVRT uses GDAL's approximate transformer
    # (error <= 0.125 px), odc-stac an exact reproject; within a zone both are exact.
    rtol = 1e-6 if pair_name == "same_zone" else 2e-2
    np.testing.assert_allclose(odc[1], stk[1], rtol=rtol, equal_nan=True)


def test_windows_are_boundless_and_match_the_full_read(scene: Scene):
    pair = scene.same_zone
    reader = open_pair_reader(pair, Manifest(LOCAL, {}, (pair,), scene.items), LOCAL)
    full = read_all(reader)
    h, w = pair.grid.shape
    for row, col, height, width in [(-7, -5, 30, 25), (h - 20, w - 10, 32, 32), (10, 12, 16, 16)]:
        tile = reader.read(row, col, height, width)
        assert tile.shape == (2, height, width)
        inside = np.full((2, height, width), np.nan, dtype=np.float32)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + height, h), min(col + width, w)
        inside[:, r0 - row : r1 - row, c0 - col : c1 - col] = full[:, r0:r1, c0:c1]
        np.testing.assert_array_equal(tile, inside)
    assert np.isnan(reader.read(h + 5, 0, 8, 8)).all()
    reader.close()


@pytest.mark.integration
@pytest.mark.parametrize("loader", ["odc", "stackstac"])
def test_s3_hrefs_read_through_moto(scene: Scene, aws_env, loader):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="rtc")
    pair = scene.other_zone
    on_s3 = {}
    for item_id in pair.item_ids:
        key = f"cogs/{item_id}.tif"
        s3.upload_file(str(scene.paths[item_id]), "rtc", key)
        copy = json.loads(json.dumps(scene.items[item_id]))
        copy["assets"]["vv"]["href"] = f"s3://rtc/{key}"
        on_s3[item_id] = copy
    from_s3 = read_all(open_pair_reader(pair, on_s3, LOCAL, loader=loader))
    from_files = read_all(open_pair_reader(pair, scene.items, LOCAL, loader=loader))
    np.testing.assert_array_equal(from_s3, from_files)
    assert np.isfinite(from_s3).any()


def test_expired_token_is_renewed_on_403(scene: Scene, tmp_path: Path, monkeypatch):
    """PC-style signing: a 403 on a stale token drops it, a new one is fetched, read again."""

    class LocalBlobSigner(PlanetaryComputerSigner):
        # The local server stands in for <account>.blob.core.windows.net.
        def _blob_parts(self, href: str) -> tuple[str, str] | None:
            return ("sentinel1euwestrtc", "sentinel1-grd-rtc") if "127.0.0.1" in href else None

    pair = scene.same_zone
    for item_id in pair.item_ids:
        (tmp_path / f"{item_id}.tif").write_bytes(scene.paths[item_id].read_bytes())
    with (
        TokenServer().running() as tokens,
        pc_sdk_pointed_at(tokens, monkeypatch),
        CogServer(tmp_path).running() as blobs,
    ):
        served = {}
        for item_id in pair.item_ids:
            copy = json.loads(json.dumps(scene.items[item_id]))
            copy["assets"]["vv"]["href"] = f"{blobs.url}/{item_id}.tif"
            served[item_id] = copy
        # GDAL would serve the second read from its cache; the real case is a new window
        # read long after the first one.
        options = {**read_gdal_options(LOCAL), "CPL_VSIL_CURL_NON_CACHED": f"/vsicurl/{blobs.url}"}
        reader = open_pair_reader(
            pair, served, LOCAL, signer=LocalBlobSigner(), gdal_options=options
        )
        first = reader.read(0, 0, 20, 20)
        assert tokens.issued == 1 and blobs.refused == 0
        blobs.min_token = 2  # token1 now refused, as an expired SAS token is
        second = reader.read(0, 0, 20, 20)
        assert blobs.refused >= 1
        assert tokens.issued == 2
        np.testing.assert_array_equal(first, second)
        np.testing.assert_array_equal(
            first, read_all(open_pair_reader(pair, scene.items, LOCAL))[:, :20, :20]
        )
        # Manifest hrefs stayed unsigned.
        assert all("?" not in it["assets"]["vv"]["href"] for it in served.values())


def test_read_errors_name_the_items_and_hide_signatures(scene: Scene, tmp_path: Path):
    class Signs:
        def sign(self, href: str) -> str:
            return f"{href}?se=2099&sig=SECRET"

        def invalidate(self, href: str) -> None:
            pass

    pair = scene.same_zone
    broken = {k: json.loads(json.dumps(v)) for k, v in scene.items.items()}
    missing = f"http://127.0.0.1:9/{pair.reference.item_ids[0]}.tif"
    broken[pair.reference.item_ids[0]]["assets"]["vv"]["href"] = missing
    reader = open_pair_reader(
        pair, broken, LOCAL, signer=Signs(), gdal_options={"GDAL_HTTP_MAX_RETRY": "0"}
    )
    with pytest.raises(RasterReadError) as info:
        reader.read(0, 0, 8, 8)
    message = str(info.value)
    assert pair.reference.item_ids[0] in message
    assert "SECRET" not in message and "sig=" not in message


def test_radar_geometry_items_dispatch_to_the_grd_reader(monkeypatch):
    import stac_coh.load.stac_pair as load

    grd = [it for it in items(ES_GRD) if it["id"].endswith("053501_067E15")][:1]
    later = shifted_in_time(grd[0], 12, "p12")
    query = SearchQuery.build(
        bbox=(-54, 57, -50, 59), start="2024-01-01", end="2024-12-31", polarization="HH"
    )
    pair = find_pairs([*grd, later], query).pairs[0]  # a unit on one of the tiles
    calls = []

    def radar_reader(pair_, acquisitions, source, **kwargs):
        calls.append((pair_, acquisitions, source, kwargs))
        return "grd-reader"

    monkeypatch.setitem(load.READERS, "radar", radar_reader)
    spec = SourceSpec("earth-search", "https://earth-search", "sentinel-1-grd")
    assert open_pair_reader(pair, [*grd, later], spec) == "grd-reader"
    ((got_pair, acquisitions, source, kwargs),) = calls
    assert got_pair is pair and source is spec
    assert [[it["id"] for it in a] for a in acquisitions] == [[grd[0]["id"]], [later["id"]]]
    # Signing is decided by each href's host: S3 hrefs pass unchanged, without a token.
    assert kwargs["signer"].sign("s3://bucket/a.tiff") == "s3://bucket/a.tiff"
    assert kwargs["gdal_options"]["AWS_REQUEST_PAYER"] == "requester"


def test_asset_keys_and_bad_inputs(scene: Scene):
    pair = scene.same_zone
    renamed = {}
    for item_id, it in scene.items.items():
        copy = json.loads(json.dumps(it))
        copy["assets"]["VV_gamma0"] = copy["assets"].pop("vv")
        renamed[item_id] = copy
    with pytest.raises(InputError, match=r"no asset .vv.*--asset-key VV=KEY"):
        open_pair_reader(pair, renamed, LOCAL)
    mapped = replace(LOCAL, asset_keys={"VV": "VV_gamma0"})
    got = open_pair_reader(pair, renamed, mapped).read(0, 0, 10, 10)
    np.testing.assert_array_equal(
        got, open_pair_reader(pair, scene.items, LOCAL).read(0, 0, 10, 10)
    )
    with pytest.raises(InputError, match="--loader 'rioxarray' is unknown"):
        open_pair_reader(pair, scene.items, LOCAL, loader="rioxarray")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not in the manifest"):
        open_pair_reader(pair, {}, LOCAL)


def test_source_gdal_options():
    es = read_gdal_options(
        SourceSpec("earth-search", "u", "sentinel-1-grd", options={"requester_pays": True})
    )
    assert es["AWS_REQUEST_PAYER"] == "requester"
    # The profile alone says so too (manifests written before the option existed).
    assert (
        read_gdal_options(SourceSpec("earth-search", "u", "sentinel-1-grd"))["AWS_REQUEST_PAYER"]
        == "requester"
    )
    pc = read_gdal_options(SourceSpec("planetary-computer", "u", "sentinel-1-rtc"))
    assert "AWS_REQUEST_PAYER" not in pc
    assert pc["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert re.search("429", pc["GDAL_HTTP_RETRY_CODES"])
