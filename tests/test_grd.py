"""GRD annotation parsing and radiometric calibration (sigma0 with thermal noise removal).

Real annotation files: the two IW GRDH products in ``/work/shared/fixtures/safe/`` (see
that folder's README for provenance; the files are read in place, not copied). Synthetic
files: ``tests/grd_synth.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from stac_coh.errors import AnnotationError
from stac_coh.load.grd.annotation import parse_calibration, parse_noise, parse_product, root_tag
from stac_coh.load.grd.assets import derived_product_href, grd_assets, is_rfi_href
from stac_coh.load.grd.calibrate import (
    SIGMA0_FLOOR,
    calibration_window,
    interpolate_lut,
    noise_window,
    sigma0_window,
)
from stac_coh.load.grd.geocode import GcpGeocoder
from tests import grd_synth as synth

SAFE = Path("/work/shared/fixtures/safe")
S1A = SAFE / "S1A_IW_GRDH_1SDV_20210809T173953_20210809T174018_039156_049F13_6FF8.SAFE"
S1B = SAFE / "S1B_IW_GRDH_1SDV_20211223T051122_20211223T051147_030148_039993_5371.SAFE"

pytestmark = pytest.mark.skipif(not SAFE.is_dir(), reason="shared SAFE fixtures not mounted")


def _one(folder: Path, pattern: str) -> Path:
    (path,) = sorted(folder.glob(pattern))
    return path


def _raw_vectors(text: str, vector: str, lut: str) -> list[tuple[int, list[float], list[float]]]:
    """(line, pixels, values) of every vector, by regular expression (not our parser)."""
    out = []
    for block in re.findall(rf"<{vector}>(.*?)</{vector}>", text, flags=re.S):
        line = int(re.search(r"<line>(-?\d+)</line>", block).group(1))  # type: ignore[union-attr]
        pixels = re.search(r"<pixel count=\"\d+\">([^<]*)</pixel>", block).group(1)  # type: ignore[union-attr]
        values = re.search(rf"<{lut} count=\"\d+\">([^<]*)</{lut}>", block).group(1)  # type: ignore[union-attr]
        out.append((line, [float(v) for v in pixels.split()], [float(v) for v in values.split()]))
    return out


# ----------------------------------------------------------------------------- real XML


@pytest.mark.parametrize(
    ("product", "pol"), [(S1A, "vv"), (S1A, "vh"), (S1B, "vv")], ids=["S1A-VV", "S1A-VH", "S1B-VV"]
)
def test_real_calibration_lut_at_annotated_points(product: Path, pol: str) -> None:
    path = _one(product / "annotation" / "calibration", f"calibration-*-{pol}-*.xml")
    text = path.read_text()
    cal = parse_calibration(path.read_bytes(), path.name)
    raw = _raw_vectors(text, "calibrationVector", "sigmaNought")
    assert cal.polarisation == pol.upper()
    assert len(cal.sigma_nought.lines) == len(raw) == 27
    assert {"sigmaNought", "betaNought", "gamma", "dn"} <= set(cal.luts)
    for k in (0, 13, 26):
        line, pixels, values = raw[k]
        for j in (0, 300, len(pixels) - 1):
            got = calibration_window(cal, [line], [pixels[j]])
            assert got.shape == (1, 1)
            assert got[0, 0] == pytest.approx(values[j], rel=1e-9)
    # Half way between two annotated lines and two samples: the mean of the four corners.
    (l0, p0, v0), (l1, _, v1) = raw[5], raw[6]
    mid = calibration_window(cal, [(l0 + l1) / 2], [(p0[10] + p0[11]) / 2])[0, 0]
    assert mid == pytest.approx((v0[10] + v0[11] + v1[10] + v1[11]) / 4, rel=1e-9)


def test_real_calibration_vv_equals_vh() -> None:
    """ESA's IW GRD calibration LUTs do not depend on polarisation (README of the fixtures)."""
    paths = [
        _one(S1A / "annotation" / "calibration", f"calibration-*-{p}-*.xml") for p in ("vv", "vh")
    ]
    vv, vh = (parse_calibration(p.read_bytes()) for p in paths)
    rows, cols = np.arange(0, 16676, 997), np.arange(0, 26144, 1301)
    np.testing.assert_array_equal(
        calibration_window(vv, rows, cols), calibration_window(vh, rows, cols)
    )


@pytest.mark.parametrize(
    ("product", "pol"), [(S1A, "vv"), (S1A, "vh"), (S1B, "vv")], ids=["S1A-VV", "S1A-VH", "S1B-VV"]
)
def test_real_noise_ipf29_layout(product: Path, pol: str) -> None:
    path = _one(product / "annotation" / "calibration", f"noise-*-{pol}-*.xml")
    text = path.read_text()
    noise = parse_noise(path.read_bytes(), path.name)
    assert noise.layout == "range-azimuth"
    assert [b.swath for b in noise.azimuth_blocks] == ["IW1", "IW2", "IW3"]
    raw = _raw_vectors(text, "noiseRangeVector", "noiseRangeLut")
    assert len(noise.range_lut.lines) == len(raw)
    # At an annotated (line, sample) inside IW1, noise = range LUT x azimuth LUT of IW1,
    # the azimuth LUT interpolated by hand between its two annotated lines around it.
    block = noise.azimuth_blocks[0]
    az_lines = [
        float(v) for v in re.search(r"<line count=\"\d+\">([^<]*)</line>", text).group(1).split()
    ]  # type: ignore[union-attr]
    az_vals = [
        float(v)
        for v in re.search(r"<noiseAzimuthLut count=\"\d+\">([^<]*)</noiseAzimuthLut>", text)  # type: ignore[union-attr]
        .group(1)
        .split()
    ]
    line, pixels, values = raw[1]
    j = 20  # a sample well inside IW1
    assert pixels[j] <= block.last_sample
    i = max(k for k, a in enumerate(az_lines) if a <= line)
    frac = (line - az_lines[i]) / (az_lines[i + 1] - az_lines[i])
    azimuth = az_vals[i] * (1 - frac) + az_vals[i + 1] * frac
    got = noise_window(noise, [line], [pixels[j]])[0, 0]
    assert got == pytest.approx(values[j] * azimuth, rel=1e-9)


@pytest.mark.parametrize("product", [S1A, S1B], ids=["S1A", "S1B"])
def test_real_noise_equivalent_sigma0_is_physical(product: Path) -> None:
    """NESZ = noise / A_sigma^2 across the swath lies where Sentinel-1 IW's does (-18..-35 dB)."""
    cal = parse_calibration(
        _one(product / "annotation" / "calibration", "calibration-*-vv-*.xml").read_bytes()
    )
    noise = parse_noise(
        _one(product / "annotation" / "calibration", "noise-*-vv-*.xml").read_bytes()
    )
    rows, cols = np.arange(100, 16600, 1500), np.arange(200, 25900, 700)
    nesz_db = 10 * np.log10(
        noise_window(noise, rows, cols) / calibration_window(cal, rows, cols) ** 2
    )
    assert -35.0 < nesz_db.min() < nesz_db.max() < -18.0


@pytest.mark.parametrize(
    ("product", "size"), [(S1A, (26144, 16676)), (S1B, (26102, 16705))], ids=["S1A", "S1B"]
)
def test_real_product_annotation(product: Path, size: tuple[int, int]) -> None:
    path = _one(product / "annotation", "s1*-vv-*.xml")
    ann = parse_product(path.read_bytes(), path.name)
    assert (ann.width, ann.height) == size
    assert (ann.range_pixel_spacing, ann.azimuth_pixel_spacing) == (10.0, 10.0)
    assert (ann.mission, ann.mode, ann.polarisation) == (product.name[:3], "IW", "VV")
    gcps = ann.gcps()
    assert len(gcps) == 210
    assert len(set(ann.grid_line)) == 10 and len(set(ann.grid_pixel)) == 21
    # First grid point, as written in the file, shifted to GDAL's corner convention.
    first = re.search(r"<geolocationGridPoint>(.*?)</geolocationGridPoint>", path.read_text(), re.S)
    lat = float(re.search(r"<latitude>([^<]+)<", first.group(1)).group(1))  # type: ignore[union-attr]
    lon = float(re.search(r"<longitude>([^<]+)<", first.group(1)).group(1))  # type: ignore[union-attr]
    assert (gcps[0].row, gcps[0].col, gcps[0].y, gcps[0].x) == (0.5, 0.5, lat, lon)
    assert max(ann.grid_pixel) == size[0] - 1 and max(ann.grid_line) == size[1] - 1
    # The GCPs alone give the 10 m pixel spacing back (what a TIFF without annotation has).
    spacing = GcpGeocoder.from_gcps(gcps, ann.width, ann.height).pixel_spacing_m()
    assert spacing == pytest.approx(ann.range_pixel_spacing, abs=0.3)


def test_rfi_annotation_is_not_a_product_annotation() -> None:
    path = _one(S1B / "annotation" / "rfi", "rfi-*.xml")
    assert root_tag(path.read_bytes()) == "rfi"
    with pytest.raises(AnnotationError, match="<rfi>"):
        parse_product(path.read_bytes(), path.name)


def test_malformed_xml_is_a_clear_error() -> None:
    with pytest.raises(AnnotationError, match="not well-formed"):
        parse_calibration(b"<calibration><calibrationVectorList>", "cal.xml")
    with pytest.raises(AnnotationError, match="no calibrationVectorList"):
        parse_calibration(b"<calibration/>", "cal.xml")
    with pytest.raises(AnnotationError, match="neither noiseRangeVectorList nor noiseVectorList"):
        parse_noise(b"<noise><adsHeader/></noise>", "noise.xml")


# ----------------------------------------------------------------------------- synthetic


def _bilinear(corners: list[list[float]], t: float, u: float) -> float:
    """Hand bilinear: corners[[top-left, top-right], [bottom-left, bottom-right]]."""
    (a, b), (c, d) = corners
    return (1 - t) * ((1 - u) * a + u * b) + t * ((1 - u) * c + u * d)


def test_synthetic_sigma0_matches_hand_computation() -> None:
    scene = synth.make_dn(seed=3, markers=False)
    cal = parse_calibration(synth.calibration_xml())
    noise = parse_noise(synth.noise_xml())
    row_off, col_off = 20, 60
    window = scene.dn[row_off : row_off + 40, col_off : col_off + 100]
    got = sigma0_window(window, row_off, col_off, cal, noise)

    # Pixel (row 35, col 70). Calibration: lines 0/60 (t = 35/60), samples 40/80 (u = 0.75).
    s = synth.sigma_lut
    a_sigma = _bilinear([[s(0, 40), s(0, 80)], [s(60, 40), s(60, 80)]], 35 / 60, 30 / 40)
    # Range noise: lines 0/75 (t = 35/75); line 0 samples 50/100 (u = 0.4), line 75 has
    # different samples, 45/99 (u = 25/54).
    n = synth.noise_range_lut
    top = n(0, 50) * 0.6 + n(0, 100) * 0.4
    bottom = n(75, 45) * (1 - 25 / 54) + n(75, 99) * (25 / 54)
    range_noise = top * (1 - 35 / 75) + bottom * (35 / 75)
    # Azimuth noise of swath 1 (samples 0-99): lines 30/40, half way.
    az = (synth.noise_azimuth_lut(0, 30) + synth.noise_azimuth_lut(0, 40)) / 2
    dn = float(scene.dn[35, 70])
    expected = (dn**2 - range_noise * az) / a_sigma**2
    assert got[35 - row_off, 70 - col_off] == pytest.approx(max(expected, SIGMA0_FLOOR), rel=1e-5)

    # Pixel (row 40, col 150): annotated azimuth line 40 of swath 2; samples 150 are
    # annotated in both noise vectors; calibration samples 120/160 (u = 0.75).
    a_sigma = _bilinear([[s(0, 120), s(0, 160)], [s(60, 120), s(60, 160)]], 40 / 60, 0.75)
    range_noise = n(0, 150) * (1 - 40 / 75) + n(75, 150) * (40 / 75)
    dn = float(scene.dn[40, 150])
    expected = (dn**2 - range_noise * synth.noise_azimuth_lut(1, 40)) / a_sigma**2
    assert got[40 - row_off, 150 - col_off] == pytest.approx(max(expected, SIGMA0_FLOOR), rel=1e-5)


def test_synthetic_floor_and_nodata() -> None:
    cal = parse_calibration(synth.calibration_xml())
    noise = parse_noise(synth.noise_xml())
    dn = np.array([[0, 1, 400]], dtype=np.uint16)
    got = sigma0_window(dn, 10, 150, cal, noise)
    assert np.isnan(got[0, 0])  # DN 0 is nodata
    assert got[0, 1] == pytest.approx(SIGMA0_FLOOR)  # DN^2 = 1 is far below the noise
    assert got[0, 2] > 0.3  # 400^2 / ~600^2, well above the noise
    without = sigma0_window(dn, 10, 150, cal, None)
    assert without[0, 2] > got[0, 2]  # noise removal lowers every value
    assert got.dtype == np.float32


def test_legacy_noise_layout_has_no_azimuth_term() -> None:
    noise = parse_noise(synth.noise_xml(legacy=True), "legacy noise")
    assert noise.layout == "range-only"
    assert noise.azimuth_blocks == ()
    n = synth.noise_range_lut
    got = noise_window(noise, [0, 75], [50, 150])
    np.testing.assert_allclose(got, [[n(0, 50), n(0, 150)], [_at_75(50), n(75, 150)]])
    modern = parse_noise(synth.noise_xml(), "ipf 2.9 noise")
    ratio = noise_window(modern, [40], [150]) / noise_window(noise, [40], [150])
    assert ratio[0, 0] == pytest.approx(synth.noise_azimuth_lut(1, 40))


def _at_75(pixel: float) -> float:
    """Range noise of the line-75 vector at ``pixel`` (its samples are 0, 45, 99, 100, ...)."""
    n = synth.noise_range_lut
    return n(75, 45) + (n(75, 99) - n(75, 45)) * (pixel - 45) / (99 - 45)


def test_interpolation_clamps_outside_annotated_range() -> None:
    cal = parse_calibration(synth.calibration_xml())
    lut = cal.sigma_nought
    edge = interpolate_lut(lut, [-5, 0], [-3, 0])
    assert np.all(edge == synth.sigma_lut(0, 0))
    far = interpolate_lut(lut, [500], [500])
    assert far[0, 0] == pytest.approx(synth.sigma_lut(180, 200))


# ----------------------------------------------------------------------------- assets


STAC = Path(__file__).parent / "data" / "stac"


def _stac_item(provider: str, item_id: str) -> dict:
    import json

    return json.loads((STAC / provider / "sentinel-1-grd" / f"{item_id}.json").read_text())


def test_assets_of_real_items_and_the_rfi_quirk() -> None:
    es = _stac_item(
        "earth-search", "S1A_IW_GRDH_1SDH_20240419T094842_20240419T094907_053501_067E15"
    )
    assets = grd_assets(es, "hh")
    prefix = "s3://sentinel-s1-l1c/GRD/2024/4/19/IW/DH/"
    assert assets.measurement.startswith(prefix) and assets.measurement.endswith(
        "/measurement/iw-hh.tiff"
    )
    assert assets.calibration.endswith("/annotation/calibration/calibration-iw-hh.xml")
    assert assets.noise is not None and assets.noise.endswith("/noise-iw-hh.xml")
    # schema-product-hh is the RFI file: the product annotation is derived instead.
    assert is_rfi_href(es["assets"]["schema-product-hh"]["href"])
    assert assets.product == assets.measurement.replace(
        "/measurement/iw-hh.tiff", "/annotation/iw-hh.xml"
    )
    assert assets.product_fallback is None

    old = _stac_item(
        "planetary-computer", "S1A_EW_GRDM_1SSH_20150129T081916_20150129T081938_004383_005598"
    )
    listed = old["assets"]["schema-product-hh"]["href"]
    assert grd_assets(old, "HH").product == listed  # a real product annotation is kept

    with pytest.raises(AnnotationError, match="no asset 'schema-calibration-vv'"):
        grd_assets(es | {"assets": {"vv": es["assets"]["hh"]}}, "VV")


def test_derived_product_href_with_esa_names() -> None:
    measurement = (
        "https://example.com/S1A.SAFE/measurement/"
        "s1a-iw-grd-vv-20210809t173953-20210809t174018-039156-049f13-001.tiff?sig=secret"
    )
    assert derived_product_href(measurement) == (
        "https://example.com/S1A.SAFE/annotation/"
        "s1a-iw-grd-vv-20210809t173953-20210809t174018-039156-049f13-001.xml"
    )
    # The real product annotation of that name exists in the SAFE fixture.
    assert (S1A / "annotation" / Path(derived_product_href(measurement)).name).is_file()
    with pytest.raises(AnnotationError, match="Cannot derive"):
        derived_product_href("s3://bucket/iw-vv.tiff")
