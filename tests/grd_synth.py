"""A small synthetic Sentinel-1 GRD slice: DN COG with GCPs plus annotation XML.

The XML follows the element structure of ESA's published annotation files (compare the
real ones in ``/work/shared/fixtures/safe/``): ``calibration`` with
``calibrationVectorList``, ``noise`` in the IPF >= 2.9 layout (``noiseRangeVectorList`` +
``noiseAzimuthVectorList``) or the older one (``noiseVectorList``), and a ``product``
annotation with ``imageInformation`` and ``geolocationGrid``. Every number is made up;
the LUT values are simple functions of (line, pixel) so tests can recompute them by hand.

Run ``python -m tests.grd_synth OUTDIR`` to write one slice for inspection.
"""

from __future__ import annotations

import sys
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from pyproj import Transformer
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning

WIDTH = 200
"""Samples (columns) of the synthetic image."""
HEIGHT = 150
"""Lines (rows) of the synthetic image."""
SPACING = 10.0
"""Ground-range and azimuth pixel spacing, metres."""
UTM = "EPSG:32631"
"""Map CRS the synthetic geometry is defined in (UTM 31N, central France)."""
UTM_ORIGIN = (500_000.0, 5_000_000.0)
"""UTM position of sample (0, 0) of the default slice."""

CAL_LINES = (0, 60, 120, 180)
"""Calibration vectors: lines (the last lies past the image, as in real products)."""
CAL_PIXELS = tuple(range(0, 201, 40))
"""Calibration vector samples (every 40 pixels, past the last column like ESA's)."""
NOISE_LINES = (0, 75, 149)
"""Noise range vectors: lines."""
NOISE_PIXELS = ((0, 50, 100, 150, 199), (0, 45, 99, 100, 150, 199), (0, 50, 100, 150, 199))
"""Noise range vector samples: they differ per vector, as they may in real files."""
SWATH_SPLIT = 100
"""First sample of the second azimuth-noise block (swath 2)."""
AZ_LINES = (*range(0, 150, 10), 149)
"""Lines of the azimuth noise profile."""
GRID_LINES = (0, 37, 74, 111, 149)
"""Geolocation grid lines."""
GRID_PIXELS = (0, 33, 66, 99, 132, 165, 199)
"""Geolocation grid samples."""


def sigma_lut(line: float, pixel: float) -> float:
    """A_sigma at an annotated point (smooth, in the range of real values).

    Quadratic in both directions, so bilinear interpolation between annotated points
    differs from this function and a test can tell the interpolation scheme apart.
    """
    return 500.0 + 0.004 * pixel**2 + 0.001 * line**2


def noise_range_lut(line: float, pixel: float) -> float:
    """Range noise (DN^2) at an annotated point (quadratic, like :func:`sigma_lut`)."""
    return 150.0 + 0.01 * pixel**2 + 0.002 * line**2


def noise_azimuth_lut(swath: int, line: float) -> float:
    """Azimuth noise scaling of block ``swath`` (0 or 1) at an annotated line."""
    return 1.0 + 0.002 * line if swath == 0 else 0.9 - 0.001 * line


def radar_to_utm(
    line: float, pixel: float, x0: float = UTM_ORIGIN[0], y0: float = UTM_ORIGIN[1]
) -> tuple[float, float]:
    """Where sample (line, pixel) lies in UTM: an ascending, slightly rotated, curved swath.

    Lines run north, samples east (so the radar image is upside down on a north-up map),
    rotated by ~10 degrees and with a gentle quadratic bend so no affine fit is exact.
    """
    along = line * SPACING
    across = pixel * SPACING
    angle = np.radians(10.0)
    x = x0 + across * np.cos(angle) + along * np.sin(angle) + 2e-4 * across**2 / SPACING
    y = y0 + along * np.cos(angle) - across * np.sin(angle) + 1e-4 * along**2 / SPACING
    return float(x), float(y)


@dataclass
class SyntheticGrd:
    """The arrays and metadata of one synthetic slice."""

    dn: np.ndarray
    """uint16 DN (HEIGHT, WIDTH); 0 is nodata."""
    polarisation: str = "VV"
    """Polarisation written into every header."""
    origin: tuple[float, float] = UTM_ORIGIN
    """UTM position of sample (0, 0)."""
    bright: list[tuple[int, int]] = field(default_factory=list)
    """(line, pixel) of bright marker pixels placed at geolocation grid points."""

    def grid_points(self) -> list[tuple[int, int, float, float]]:
        """(line, pixel, lat, lon) of every geolocation grid point."""
        to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
        points = []
        for line in GRID_LINES:
            for pixel in GRID_PIXELS:
                lon, lat = to_ll.transform(*radar_to_utm(line, pixel, *self.origin))
                points.append((line, pixel, lat, lon))
        return points

    def gcps(self) -> list[GroundControlPoint]:
        """GCPs as ESA's measurement TIFFs carry them: annotated (line, pixel) verbatim."""
        return [
            GroundControlPoint(row=line, col=pixel, x=lon, y=lat, z=0.0)
            for line, pixel, lat, lon in self.grid_points()
        ]


def make_dn(seed: int = 0, markers: bool = True) -> SyntheticGrd:
    """Random DN in a realistic range, a nodata border, and bright markers at grid points."""
    rng = np.random.default_rng(seed)
    dn = rng.integers(20, 400, size=(HEIGHT, WIDTH)).astype(np.uint16)
    dn[:, :3] = 0  # GRD products carry a zero (nodata) border at near range
    scene = SyntheticGrd(dn)
    if markers:
        for line, pixel in ((37, 66), (74, 99), (111, 132), (74, 33)):
            dn[line - 1 : line + 2, pixel - 1 : pixel + 2] = 40
            dn[line, pixel] = 9000
            scene.bright.append((line, pixel))
    return scene


# ----------------------------------------------------------------------------- XML


def _header(root: ET.Element, pol: str) -> None:
    """``adsHeader`` as in ESA files."""
    header = ET.SubElement(root, "adsHeader")
    for tag, text in (
        ("missionId", "S1A"),
        ("productType", "GRD"),
        ("polarisation", pol),
        ("mode", "IW"),
        ("swath", "IW"),
        ("startTime", "2021-08-09T17:39:53.153776"),
        ("stopTime", "2021-08-09T17:39:55.153776"),
        ("absoluteOrbitNumber", "39156"),
        ("missionDataTakeId", "302867"),
        ("imageNumber", "001"),
    ):
        ET.SubElement(header, tag).text = text


def _numbers(parent: ET.Element, tag: str, values: list[float]) -> None:
    """A ``count``-attributed list element of numbers."""
    node = ET.SubElement(parent, tag, count=str(len(values)))
    node.text = " ".join(f"{v:.6e}" if isinstance(v, float) else str(v) for v in values)


def _azimuth_time(line: float) -> str:
    """Made-up zero-Doppler time of a line (1.5 ms per line)."""
    return f"2021-08-09T17:39:53.{int(153776 + 1500 * line) % 1_000_000:06d}"


def calibration_xml(pol: str = "VV") -> bytes:
    """``calibration-*.xml`` with sigmaNought/betaNought/gamma/dn vectors."""
    root = ET.Element("calibration")
    _header(root, pol)
    info = ET.SubElement(root, "calibrationInformation")
    ET.SubElement(info, "absoluteCalibrationConstant").text = "1.000000e+00"
    vectors = ET.SubElement(root, "calibrationVectorList", count=str(len(CAL_LINES)))
    for line in CAL_LINES:
        vec = ET.SubElement(vectors, "calibrationVector")
        ET.SubElement(vec, "azimuthTime").text = _azimuth_time(line)
        ET.SubElement(vec, "line").text = str(line)
        _numbers(vec, "pixel", list(CAL_PIXELS))
        _numbers(vec, "sigmaNought", [sigma_lut(line, p) for p in CAL_PIXELS])
        _numbers(vec, "betaNought", [474.0 for _ in CAL_PIXELS])
        _numbers(vec, "gamma", [0.9 * sigma_lut(line, p) for p in CAL_PIXELS])
        _numbers(vec, "dn", [474.0 for _ in CAL_PIXELS])
    return _serialise(root)


def noise_xml(pol: str = "VV", legacy: bool = False) -> bytes:
    """``noise-*.xml`` in the IPF >= 2.9 layout, or the older one with ``legacy=True``."""
    root = ET.Element("noise")
    _header(root, pol)
    list_tag, vec_tag, lut_tag = (
        ("noiseVectorList", "noiseVector", "noiseLut")
        if legacy
        else ("noiseRangeVectorList", "noiseRangeVector", "noiseRangeLut")
    )
    vectors = ET.SubElement(root, list_tag, count=str(len(NOISE_LINES)))
    for line, pixels in zip(NOISE_LINES, NOISE_PIXELS, strict=True):
        vec = ET.SubElement(vectors, vec_tag)
        ET.SubElement(vec, "azimuthTime").text = _azimuth_time(line)
        ET.SubElement(vec, "line").text = str(line)
        _numbers(vec, "pixel", list(pixels))
        _numbers(vec, lut_tag, [noise_range_lut(line, p) for p in pixels])
    if not legacy:
        blocks = ET.SubElement(root, "noiseAzimuthVectorList", count="2")
        for swath, (first, last) in enumerate(((0, SWATH_SPLIT - 1), (SWATH_SPLIT, WIDTH - 1))):
            vec = ET.SubElement(blocks, "noiseAzimuthVector")
            ET.SubElement(vec, "swath").text = f"IW{swath + 1}"
            ET.SubElement(vec, "firstAzimuthLine").text = "0"
            ET.SubElement(vec, "firstRangeSample").text = str(first)
            ET.SubElement(vec, "lastAzimuthLine").text = str(HEIGHT - 1)
            ET.SubElement(vec, "lastRangeSample").text = str(last)
            _numbers(vec, "line", list(AZ_LINES))
            _numbers(vec, "noiseAzimuthLut", [noise_azimuth_lut(swath, ln) for ln in AZ_LINES])
    return _serialise(root)


def product_xml(scene: SyntheticGrd) -> bytes:
    """Product annotation: ``imageAnnotation/imageInformation`` and ``geolocationGrid``."""
    root = ET.Element("product")
    _header(root, scene.polarisation)
    image = ET.SubElement(ET.SubElement(root, "imageAnnotation"), "imageInformation")
    for tag, text in (
        ("pixelValue", "Detected"),
        ("outputPixels", "16 bit Unsigned Integer"),
        ("rangePixelSpacing", f"{SPACING:.6e}"),
        ("azimuthPixelSpacing", f"{SPACING:.6e}"),
        ("numberOfSamples", str(WIDTH)),
        ("numberOfLines", str(HEIGHT)),
    ):
        ET.SubElement(image, tag).text = text
    points = scene.grid_points()
    grid = ET.SubElement(ET.SubElement(root, "geolocationGrid"), "geolocationGridPointList")
    grid.set("count", str(len(points)))
    for line, pixel, lat, lon in points:
        point = ET.SubElement(grid, "geolocationGridPoint")
        ET.SubElement(point, "azimuthTime").text = _azimuth_time(line)
        ET.SubElement(point, "slantRangeTime").text = "5.340119e-03"
        ET.SubElement(point, "line").text = str(line)
        ET.SubElement(point, "pixel").text = str(pixel)
        ET.SubElement(point, "latitude").text = f"{lat:.15e}"
        ET.SubElement(point, "longitude").text = f"{lon:.15e}"
        ET.SubElement(point, "height").text = "0.000000000000000e+00"
        ET.SubElement(point, "incidenceAngle").text = f"{30.0 + 15.0 * pixel / WIDTH:.6e}"
        ET.SubElement(point, "elevationAngle").text = f"{27.0 + 13.0 * pixel / WIDTH:.6e}"
    return _serialise(root)


def rfi_xml(pol: str = "VV") -> bytes:
    """A minimal RFI annotation (what Earth Search's ``schema-product-*`` points at)."""
    root = ET.Element("rfi")
    _header(root, pol)
    ET.SubElement(root, "rfiMitigationApplied").text = "BothDomains"
    return _serialise(root)


def _serialise(root: ET.Element) -> bytes:
    """Indented XML with the declaration ESA writes."""
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


# ----------------------------------------------------------------------------- raster


def write_measurement(scene: SyntheticGrd, path: Path, with_gcps: bool = True) -> Path:
    """Write the DN as a tiled, overview-free COG, with or without embedded GCPs."""
    profile = {
        "driver": "GTiff",
        "width": WIDTH,
        "height": HEIGHT,
        "count": 1,
        "dtype": "uint16",
        "tiled": True,
        "blockxsize": 64,
        "blockysize": 64,
        "compress": "deflate",
    }
    tmp = path.with_suffix(".tmp.tif")
    with warnings.catch_warnings():
        # Radar geometry has no geotransform; without GCPs it has no georeferencing at all.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(scene.dn, 1)
            if with_gcps:
                dst.gcps = (scene.gcps(), CRS.from_epsg(4326))
        rasterio.shutil.copy(tmp, path, driver="COG", blocksize=128, overviews="NONE")
    tmp.unlink()
    return path


def write_safe(
    scene: SyntheticGrd, folder: Path, *, with_gcps: bool = True, legacy_noise: bool = False
) -> dict[str, Path]:
    """Write a slice in the renamed layout PC and Earth Search serve; return asset paths."""
    pol = scene.polarisation.lower()
    (folder / "measurement").mkdir(parents=True, exist_ok=True)
    (folder / "annotation" / "calibration").mkdir(parents=True, exist_ok=True)
    (folder / "annotation" / "rfi").mkdir(parents=True, exist_ok=True)
    paths = {
        pol: folder / "measurement" / f"iw-{pol}.tiff",
        f"schema-calibration-{pol}": folder
        / "annotation"
        / "calibration"
        / f"calibration-iw-{pol}.xml",
        f"schema-noise-{pol}": folder / "annotation" / "calibration" / f"noise-iw-{pol}.xml",
        "product": folder / "annotation" / f"iw-{pol}.xml",
        f"schema-product-{pol}": folder / "annotation" / "rfi" / f"rfi-iw-{pol}.xml",
    }
    write_measurement(scene, paths[pol], with_gcps=with_gcps)
    paths[f"schema-calibration-{pol}"].write_bytes(calibration_xml(scene.polarisation))
    paths[f"schema-noise-{pol}"].write_bytes(noise_xml(scene.polarisation, legacy=legacy_noise))
    paths["product"].write_bytes(product_xml(scene))
    paths[f"schema-product-{pol}"].write_bytes(rfi_xml(scene.polarisation))
    return paths


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "grd-synth")
    for key, path in write_safe(make_dn(), out).items():
        print(f"{key}: {path}")
