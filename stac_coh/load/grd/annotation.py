"""Parse the Sentinel-1 GRD annotation XML: calibration, thermal noise, product geolocation.

Only what sigma0 and geocoding need is kept. Lookup tables stay sparse (a few dozen
annotated lines with a few hundred samples each); :mod:`stac_coh.load.grd.calibrate`
interpolates them to the pixels of one window at a time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from rasterio.control import GroundControlPoint

from stac_coh.errors import AnnotationError

__all__ = [
    "GCP_CENTER_SHIFT",
    "CalibrationAnnotation",
    "LutVectors",
    "NoiseAnnotation",
    "NoiseAzimuthBlock",
    "ProductAnnotation",
    "parse_calibration",
    "parse_noise",
    "parse_product",
]

FloatArray = npt.NDArray[np.float64]

GCP_CENTER_SHIFT = 0.5
"""Added to annotated (line, pixel) to get GDAL image coordinates.

The annotation counts samples from zero and locates each sample's centre; GDAL puts
(0, 0) at the outer corner of the first pixel, so sample ``i`` is centred at ``i + 0.5``.
"""


@dataclass(frozen=True, eq=False)
class LutVectors:
    """A lookup table sampled on a sparse grid: one vector of samples per annotated line."""

    lines: FloatArray
    """Annotated image lines, increasing (K,)."""
    pixels: tuple[FloatArray, ...]
    """Sample positions of each vector (K arrays, each increasing; may differ per line)."""
    values: tuple[FloatArray, ...]
    """LUT values at those samples (K arrays, same lengths as ``pixels``)."""

    def __post_init__(self) -> None:
        if len(self.lines) == 0:
            raise AnnotationError("A lookup table has no vectors; the annotation is empty.")
        for px, val in zip(self.pixels, self.values, strict=True):
            if px.shape != val.shape:
                raise AnnotationError(
                    f"A LUT vector has {px.size} pixels but {val.size} values; "
                    "the annotation file is corrupt."
                )


@dataclass(frozen=True, eq=False)
class CalibrationAnnotation:
    """The ``calibration`` annotation of one polarisation."""

    polarisation: str
    """``VV``, ``VH``, ``HH`` or ``HV``."""
    luts: dict[str, LutVectors]
    """``sigmaNought``, ``betaNought``, ``gamma`` (and ``dn``) lookup tables."""

    @property
    def sigma_nought(self) -> LutVectors:
        """The sigma0 calibration LUT (A_sigma in sigma0 = DN^2 / A_sigma^2)."""
        return self.luts["sigmaNought"]


@dataclass(frozen=True, eq=False)
class NoiseAzimuthBlock:
    """One block of the azimuth noise profile (IPF >= 2.9): a swath over a line range."""

    swath: str
    """Swath name, e.g. ``IW1``."""
    first_line: int
    """First image line of the block (inclusive)."""
    last_line: int
    """Last image line of the block (inclusive)."""
    first_sample: int
    """First image sample (pixel) of the block (inclusive)."""
    last_sample: int
    """Last image sample of the block (inclusive)."""
    lines: FloatArray
    """Lines at which the profile is given."""
    values: FloatArray
    """Azimuth noise scaling at those lines."""


@dataclass(frozen=True, eq=False)
class NoiseAnnotation:
    """The thermal ``noise`` annotation of one polarisation, in either IPF layout."""

    polarisation: str
    """``VV``, ``VH``, ``HH`` or ``HV``."""
    range_lut: LutVectors
    """``noiseRangeLut`` (IPF >= 2.9) or ``noiseLut`` (older): noise power in DN^2."""
    azimuth_blocks: tuple[NoiseAzimuthBlock, ...]
    """Azimuth scaling blocks; empty for the older layout (no azimuth term)."""

    @property
    def layout(self) -> str:
        """``range-azimuth`` (IPF >= 2.9) or ``range-only`` (older IPF)."""
        return "range-azimuth" if self.azimuth_blocks else "range-only"


@dataclass(frozen=True, eq=False)
class ProductAnnotation:
    """Image size, pixel spacing and the geolocation grid of the product annotation."""

    mission: str
    """``S1A``, ``S1B``, ``S1C``, ..."""
    mode: str
    """``IW``, ``EW``, ..."""
    polarisation: str
    """``VV``, ``VH``, ``HH`` or ``HV``."""
    width: int
    """``numberOfSamples``: image columns."""
    height: int
    """``numberOfLines``: image rows."""
    range_pixel_spacing: float
    """Ground-range pixel spacing in metres."""
    azimuth_pixel_spacing: float
    """Azimuth pixel spacing in metres."""
    grid_line: FloatArray
    """Geolocation grid: image line of each point."""
    grid_pixel: FloatArray
    """Geolocation grid: image sample of each point."""
    latitude: FloatArray
    """Geolocation grid: latitude (degrees, WGS84)."""
    longitude: FloatArray
    """Geolocation grid: longitude (degrees, WGS84)."""
    grid_height: FloatArray
    """Geolocation grid: height the point was located at (metres)."""

    def gcps(self) -> list[GroundControlPoint]:
        """The geolocation grid as GDAL GCPs (EPSG:4326), in GDAL image coordinates."""
        return [
            GroundControlPoint(
                row=float(line) + GCP_CENTER_SHIFT,
                col=float(pixel) + GCP_CENTER_SHIFT,
                x=float(lon),
                y=float(lat),
                z=float(h),
            )
            for line, pixel, lat, lon, h in zip(
                self.grid_line,
                self.grid_pixel,
                self.latitude,
                self.longitude,
                self.grid_height,
                strict=True,
            )
        ]


def parse_calibration(xml: bytes | str, source: str = "calibration XML") -> CalibrationAnnotation:
    """Parse a ``calibration-*.xml`` annotation (``calibrationVectorList``)."""
    root = _root(xml, "calibration", source)
    vectors = root.findall("calibrationVectorList/calibrationVector")
    if not vectors:
        raise AnnotationError(f"{source} has no calibrationVectorList/calibrationVector.")
    luts = {}
    for name in ("sigmaNought", "betaNought", "gamma", "dn"):
        if vectors[0].find(name) is not None:
            luts[name] = _lut_vectors(vectors, name, source)
    if "sigmaNought" not in luts:
        raise AnnotationError(f"{source} has calibration vectors without sigmaNought.")
    return CalibrationAnnotation(_polarisation(root), luts)


def parse_noise(xml: bytes | str, source: str = "noise XML") -> NoiseAnnotation:
    """Parse a ``noise-*.xml`` annotation in the IPF >= 2.9 or the older layout."""
    root = _root(xml, "noise", source)
    range_vectors = root.findall("noiseRangeVectorList/noiseRangeVector")
    if range_vectors:
        range_lut = _lut_vectors(range_vectors, "noiseRangeLut", source)
        blocks = tuple(
            _azimuth_block(v, source)
            for v in root.findall("noiseAzimuthVectorList/noiseAzimuthVector")
        )
        return NoiseAnnotation(_polarisation(root), range_lut, blocks)
    legacy = root.findall("noiseVectorList/noiseVector")
    if not legacy:
        raise AnnotationError(
            f"{source} has neither noiseRangeVectorList nor noiseVectorList; "
            "it is not a Sentinel-1 noise annotation."
        )
    return NoiseAnnotation(_polarisation(root), _lut_vectors(legacy, "noiseLut", source), ())


def parse_product(xml: bytes | str, source: str = "product annotation XML") -> ProductAnnotation:
    """Parse a product annotation (``annotation/*.xml``): image size, spacing, GCPs."""
    root = _root(xml, "product", source)
    info = root.find("imageAnnotation/imageInformation")
    points = root.findall("geolocationGrid/geolocationGridPointList/geolocationGridPoint")
    if info is None or not points:
        raise AnnotationError(f"{source} lacks imageInformation or geolocationGridPoint elements.")
    header = root.find("adsHeader")
    grid = np.array(
        [
            [_float(p, tag, source) for tag in ("line", "pixel", "latitude", "longitude", "height")]
            for p in points
        ]
    )
    return ProductAnnotation(
        mission=_text(header, "missionId", ""),
        mode=_text(header, "mode", ""),
        polarisation=_polarisation(root),
        width=int(_float(info, "numberOfSamples", source)),
        height=int(_float(info, "numberOfLines", source)),
        range_pixel_spacing=_float(info, "rangePixelSpacing", source),
        azimuth_pixel_spacing=_float(info, "azimuthPixelSpacing", source),
        grid_line=grid[:, 0],
        grid_pixel=grid[:, 1],
        latitude=grid[:, 2],
        longitude=grid[:, 3],
        grid_height=grid[:, 4],
    )


def root_tag(xml: bytes | str) -> str:
    """Tag of the root element (``product``, ``rfi``, ``calibration``, ``noise``...)."""
    try:
        return ET.fromstring(xml).tag
    except ET.ParseError:
        return ""


def _root(xml: bytes | str, expected: str, source: str) -> ET.Element:
    """Parse ``xml`` and check its root element is ``expected``."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise AnnotationError(f"{source} is not well-formed XML ({exc}).") from None
    if root.tag != expected:
        raise AnnotationError(
            f"{source} has root element <{root.tag}>, expected <{expected}>; "
            "check that the asset is the right annotation file."
        )
    return root


def _lut_vectors(vectors: list[ET.Element], name: str, source: str) -> LutVectors:
    """Collect line / pixel / ``name`` of every vector, sorted by line."""
    rows = sorted(
        (
            (_float(v, "line", source), _floats(v, "pixel", source), _floats(v, name, source))
            for v in vectors
        ),
        key=lambda row: row[0],
    )
    return LutVectors(
        lines=np.array([r[0] for r in rows]),
        pixels=tuple(r[1] for r in rows),
        values=tuple(r[2] for r in rows),
    )


def _azimuth_block(vector: ET.Element, source: str) -> NoiseAzimuthBlock:
    """One ``noiseAzimuthVector``."""
    return NoiseAzimuthBlock(
        swath=_text(vector, "swath", ""),
        first_line=int(_float(vector, "firstAzimuthLine", source)),
        last_line=int(_float(vector, "lastAzimuthLine", source)),
        first_sample=int(_float(vector, "firstRangeSample", source)),
        last_sample=int(_float(vector, "lastRangeSample", source)),
        lines=_floats(vector, "line", source),
        values=_floats(vector, "noiseAzimuthLut", source),
    )


def _polarisation(root: ET.Element) -> str:
    """``adsHeader/polarisation`` upper case ('' when absent)."""
    return _text(root.find("adsHeader"), "polarisation", "").upper()


def _text(parent: ET.Element | None, tag: str, default: str) -> str:
    """Stripped text of a child element, or ``default``."""
    if parent is None:
        return default
    found = parent.findtext(tag)
    return found.strip() if found is not None else default


def _float(parent: ET.Element, tag: str, source: str) -> float:
    """A child element's text as a float; a clear error when missing or malformed."""
    text = parent.findtext(tag)
    try:
        return float(text)  # type: ignore[arg-type]  # None raises TypeError, caught below
    except (TypeError, ValueError):
        raise AnnotationError(f"{source}: <{tag}> is missing or not a number.") from None


def _floats(parent: ET.Element, tag: str, source: str) -> FloatArray:
    """A child element's whitespace-separated numbers as a float array."""
    text = parent.findtext(tag)
    if text is None:
        raise AnnotationError(f"{source}: <{tag}> is missing in <{parent.tag}>.")
    try:
        return np.array(text.split(), dtype=np.float64)
    except ValueError:
        raise AnnotationError(f"{source}: <{tag}> holds something other than numbers.") from None
