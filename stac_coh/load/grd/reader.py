"""Read GRD acquisitions as calibrated, geocoded sigma0 windows of a pair's map grid.

Per window and per slice: map the window's footprint into radar geometry through the
GCPs, read only that DN window (plus a margin), calibrate and remove thermal noise
there, then warp it onto the window. Slices of one pass are mosaicked (the first slice,
in along-track order, that has data wins), so memory is bounded by the window size.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from stac_coh.errors import AnnotationError, RasterReadError
from stac_coh.grid import OutputGrid
from stac_coh.io.gdal_env import gdal_env
from stac_coh.io.net import check_resolves
from stac_coh.io.signing import HrefSigner, strip_query
from stac_coh.load.grd.annotation import (
    GCP_CENTER_SHIFT,
    CalibrationAnnotation,
    NoiseAnnotation,
    ProductAnnotation,
    parse_calibration,
    parse_noise,
    parse_product,
)
from stac_coh.load.grd.assets import GrdAssets, XmlFetcher, grd_assets, make_xml_fetcher
from stac_coh.load.grd.calibrate import SIGMA0_FLOOR, sigma0_window
from stac_coh.load.grd.geocode import GcpGeocoder, GridWindow
from stac_coh.search.manifest import Pair, SourceSpec
from stac_coh.search.profiles import asset_key

__all__ = [
    "GrdAcquisitionReader",
    "GrdPairReader",
    "GrdSlice",
    "is_grd_item",
    "open_grd_pair_reader",
]

log = logging.getLogger(__name__)

_AVERAGE_ABOVE = 1.5
"""Output pixels this many times coarser than the GRD spacing get block-averaged input."""

_METRES_PER_DEGREE = 111_320.0


def is_grd_item(item: Mapping[str, Any]) -> bool:
    """True for a Sentinel-1 GRD item in radar geometry (it carries calibration LUT assets)."""
    return any(str(key).startswith("schema-calibration-") for key in item.get("assets", {}))


class GrdSlice:
    """One polarisation of one GRD item: sigma0 on any window of any map grid."""

    def __init__(
        self,
        assets: GrdAssets,
        *,
        fetch_xml: XmlFetcher,
        signer: HrefSigner | None = None,
        gdal_options: Mapping[str, Any] | None = None,
        remove_noise: bool = True,
        floor: float = SIGMA0_FLOOR,
    ) -> None:
        """Prepare a slice; nothing is read until the first :meth:`read`.

        Args:
            assets: the item's hrefs (canonical, unsigned).
            fetch_xml: reads an annotation href (see ``make_xml_fetcher``).
            signer: signs the measurement href right before it is opened.
            gdal_options: GDAL config entered around every open and read.
            remove_noise: subtract the thermal noise LUT (GEE's S1_GRD does).
            floor: linear sigma0 that noise-dominated pixels are raised to.
        """
        self.assets = assets
        self._fetch = fetch_xml
        self._signer = signer
        self._options = dict(gdal_options) if gdal_options is not None else None
        self._remove_noise = remove_noise
        self._floor = floor
        self._lock = threading.Lock()
        self._dataset: rasterio.io.DatasetReader | None = None
        self._calibration: CalibrationAnnotation | None = None
        self._noise: NoiseAnnotation | None = None
        self._geocoder: GcpGeocoder | None = None
        self._spacing = 10.0  # metres; replaced by the product's own when it is opened

    def read(self, grid: OutputGrid, window: GridWindow) -> npt.NDArray[np.float32]:
        """Linear sigma0 of ``window`` of ``grid`` (height, width); NaN where no data."""
        with self._lock, gdal_env(self._options):
            self._prepare()
            assert self._geocoder is not None and self._calibration is not None
            coords = self._geocoder.source_coords(grid, window)
            block = _block_factor(grid, self._spacing)
            source_window = self._geocoder.source_window(coords, block)
            if source_window is None:
                return np.full((window.height, window.width), np.nan, dtype=np.float32)
            dn = self._read_dn(source_window)
            sigma0 = sigma0_window(
                dn,
                int(source_window.row_off),
                int(source_window.col_off),
                self._calibration,
                self._noise,
                floor=self._floor,
            )
            return self._geocoder.sample(sigma0, source_window, coords, block)

    def close(self) -> None:
        """Close the measurement dataset."""
        with self._lock:
            if self._dataset is not None:
                self._dataset.close()
                self._dataset = None

    # -- preparation ---------------------------------------------------------------

    def _prepare(self) -> None:
        """Parse the LUTs, open the measurement, build the GCP geocoder (once)."""
        if self._calibration is None:
            self._calibration = parse_calibration(
                self._fetch(self.assets.calibration), strip_query(self.assets.calibration)
            )
            if self._remove_noise and self.assets.noise is not None:
                self._noise = parse_noise(
                    self._fetch(self.assets.noise), strip_query(self.assets.noise)
                )
        if self._dataset is None:
            self._dataset = self._open()
        if self._geocoder is None:
            self._geocoder = self._make_geocoder(self._dataset)

    def _open(self) -> rasterio.io.DatasetReader:
        """Open the measurement, signed now; on a refusal renew the token once."""
        href = self.assets.measurement
        check_resolves(href)  # GDAL would retry an unknown host for ~50 s
        for attempt in range(2):
            url = self._signer.sign(href) if self._signer is not None else href
            try:
                with warnings.catch_warnings():
                    # Radar geometry never has a geotransform; GCPs (or none) are expected.
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    return rasterio.open(url)
            except RasterioIOError as exc:
                if attempt == 0 and self._signer is not None and _looks_forbidden(exc):
                    self._signer.invalidate(href)
                    continue
                raise RasterReadError(
                    f"Cannot open GRD measurement {strip_query(href)} of item "
                    f"{self.assets.item_id}: {_clean(exc)}"
                ) from None
        raise AssertionError("unreachable")

    def _make_geocoder(self, dataset: rasterio.io.DatasetReader) -> GcpGeocoder:
        """GCPs of the GeoTIFF itself, else the product annotation's geolocation grid."""
        gcps, crs = dataset.gcps
        if gcps:
            shifted = _to_gdal_image_coords(gcps)
            geocoder = GcpGeocoder.from_gcps(
                shifted, dataset.width, dataset.height, str(crs or "EPSG:4326")
            )
            self._spacing = geocoder.pixel_spacing_m()
            return geocoder
        product = self._product_annotation()
        self._spacing = (product.range_pixel_spacing + product.azimuth_pixel_spacing) / 2
        return GcpGeocoder.from_gcps(product.gcps(), dataset.width, dataset.height)

    def _product_annotation(self) -> ProductAnnotation:
        """Parse the product annotation, falling back to the derived href if needed."""
        hrefs = [self.assets.product]
        if self.assets.product_fallback:
            hrefs.append(self.assets.product_fallback)
        for href in hrefs[:-1]:
            try:
                return parse_product(self._fetch(href), strip_query(href))
            except (AnnotationError, RasterReadError) as exc:
                log.info("Item %s: %s; trying %s", self.assets.item_id, exc, strip_query(hrefs[-1]))
        try:
            return parse_product(self._fetch(hrefs[-1]), strip_query(hrefs[-1]))
        except AnnotationError as exc:
            raise AnnotationError(
                f"Item {self.assets.item_id}: the measurement has no GCPs and no product "
                f"annotation could be used ({exc})"
            ) from None

    def _read_dn(self, window: rasterio.windows.Window) -> npt.NDArray[np.uint16]:
        """Read a DN window; re-open once (fresh signature) if the read is refused."""
        assert self._dataset is not None
        try:
            return self._dataset.read(1, window=window)
        except RasterioIOError as exc:
            if self._signer is None or not _looks_forbidden(exc):
                raise RasterReadError(
                    f"Cannot read GRD measurement {strip_query(self.assets.measurement)}: "
                    f"{_clean(exc)}"
                ) from None
            self._signer.invalidate(self.assets.measurement)
            self._dataset.close()
            self._dataset = self._open()
            return self._dataset.read(1, window=window)


class GrdAcquisitionReader:
    """The slices of one pass, mosaicked: the first slice with data wins."""

    def __init__(self, slices: Sequence[GrdSlice]) -> None:
        """Slices in along-track order."""
        if not slices:
            raise ValueError("An acquisition needs at least one GRD slice.")
        self.slices = tuple(slices)

    def read(self, grid: OutputGrid, window: GridWindow) -> npt.NDArray[np.float32]:
        """Mosaic of every slice on ``window``; NaN where none has data."""
        out = self.slices[0].read(grid, window)
        for piece in self.slices[1:]:
            holes = np.isnan(out)
            if not holes.any():
                break
            out[holes] = piece.read(grid, window)[holes]
        return out

    def close(self) -> None:
        """Close every slice."""
        for piece in self.slices:
            piece.close()


class GrdPairReader:
    """A :class:`stac_coh.grid.PairReader` over two GRD acquisitions."""

    def __init__(
        self,
        grid: OutputGrid,
        reference: GrdAcquisitionReader,
        secondary: GrdAcquisitionReader,
    ) -> None:
        """Read ``reference`` (t1) and ``secondary`` (t2) onto ``grid``."""
        self._grid = grid
        self.reference = reference
        self.secondary = secondary

    @property
    def grid(self) -> OutputGrid:
        """The grid every window refers to."""
        return self._grid

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """(2, height, width) float32 linear sigma0 (t1, t2); NaN outside the grid or data."""
        window = GridWindow(row_off, col_off, height, width)
        out = np.stack(
            [self.reference.read(self._grid, window), self.secondary.read(self._grid, window)]
        )
        rows = np.arange(row_off, row_off + height)
        cols = np.arange(col_off, col_off + width)
        outside = ((rows < 0) | (rows >= self._grid.height))[:, None] | (
            (cols < 0) | (cols >= self._grid.width)
        )[None, :]
        out[:, outside] = np.nan
        return out

    def close(self) -> None:
        """Close both acquisitions."""
        self.reference.close()
        self.secondary.close()


def _to_gdal_image_coords(gcps: Sequence[GroundControlPoint]) -> list[GroundControlPoint]:
    """Shift GCPs by half a pixel when they hold integer sample indices (ESA's convention).

    ESA's measurement TIFFs repeat the annotation's geolocation grid, whose (line, pixel)
    are zero-based sample indices locating sample centres; GCPs already given in GDAL's
    corner-based coordinates (non-integer) are kept as they are.
    """
    integral = all(float(g.row).is_integer() and float(g.col).is_integer() for g in gcps)
    shift = GCP_CENTER_SHIFT if integral else 0.0
    return [
        GroundControlPoint(row=g.row + shift, col=g.col + shift, x=g.x, y=g.y, z=g.z) for g in gcps
    ]


def _block_factor(grid: OutputGrid, spacing_m: float) -> int:
    """Source pixels averaged per output pixel and axis: 1 unless the grid is much coarser."""
    res_x, res_y = grid.resolution
    if grid.rasterio_crs.is_geographic:
        lat = math.radians((grid.bounds[1] + grid.bounds[3]) / 2)
        res_x, res_y = res_x * _METRES_PER_DEGREE * math.cos(lat), res_y * _METRES_PER_DEGREE
    ratio = (res_x + res_y) / 2 / spacing_m
    return max(1, round(ratio)) if ratio > _AVERAGE_ABOVE else 1


def _looks_forbidden(exc: Exception) -> bool:
    """GDAL's message for an HTTP 403 (an expired or refused SAS token)."""
    text = str(exc)
    return "403" in text or "Forbidden" in text or "AccessDenied" in text


def _clean(exc: Exception) -> str:
    """An exception message with any query string (signature) cut from URLs in it."""
    return " ".join(strip_query(word) if "://" in word else word for word in str(exc).split())


def open_grd_pair_reader(
    pair: Pair,
    acquisitions: Sequence[Sequence[Mapping[str, Any]]],
    source: SourceSpec,
    *,
    signer: HrefSigner | None,
    gdal_options: Mapping[str, Any],
    fetch_xml: XmlFetcher | None = None,
    remove_noise: bool = True,
    **_: Any,
) -> GrdPairReader:
    """The ``radar`` reader of :data:`stac_coh.load.stac_pair.READERS`: GRD items of a pair.

    ``acquisitions`` holds the reference and the secondary items, each in along-track
    order. The loader's ``loader``/``resampling`` choices do not apply (GRD windows are
    geocoded here, see :mod:`stac_coh.load.grd.geocode`). Annotation XMLs are fetched with the
    same signer, and with requester pays when the GDAL options ask for it.
    """
    key = asset_key(source, pair.polarization)
    fetch = fetch_xml or make_xml_fetcher(
        signer=signer,
        requester_pays=str(gdal_options.get("AWS_REQUEST_PAYER", "")).lower() == "requester",
    )
    readers = [
        GrdAcquisitionReader(
            [
                GrdSlice(
                    grd_assets(item, pair.polarization, measurement_key=key),
                    fetch_xml=fetch,
                    signer=signer,
                    gdal_options=gdal_options,
                    remove_noise=remove_noise,
                )
                for item in items
            ]
        )
        for items in acquisitions
    ]
    if len(readers) != 2:
        raise ValueError(f"A pair has two acquisitions, got {len(readers)}.")
    return GrdPairReader(pair.grid, readers[0], readers[1])
