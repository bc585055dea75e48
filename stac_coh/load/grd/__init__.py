"""Sentinel-1 GRD in radar geometry -> calibrated, noise-removed, geocoded sigma0.

``annotation`` parses ESA's calibration / noise / product XML, ``calibrate`` turns DN
windows into sigma0, ``geocode`` warps radar-geometry windows onto a map grid with the
GCPs, ``assets`` finds the files of a STAC item and ``reader`` puts it together as a
:class:`stac_coh.grid.PairReader`.
"""

from stac_coh.load.grd.annotation import (
    CalibrationAnnotation,
    NoiseAnnotation,
    ProductAnnotation,
    parse_calibration,
    parse_noise,
    parse_product,
)
from stac_coh.load.grd.assets import GrdAssets, grd_assets, make_xml_fetcher
from stac_coh.load.grd.calibrate import SIGMA0_FLOOR, sigma0_window
from stac_coh.load.grd.geocode import GcpGeocoder, GridWindow
from stac_coh.load.grd.reader import (
    GrdAcquisitionReader,
    GrdPairReader,
    GrdSlice,
    is_grd_item,
    open_grd_pair_reader,
)

__all__ = [
    "SIGMA0_FLOOR",
    "CalibrationAnnotation",
    "GcpGeocoder",
    "GrdAcquisitionReader",
    "GrdAssets",
    "GrdPairReader",
    "GrdSlice",
    "GridWindow",
    "NoiseAnnotation",
    "ProductAnnotation",
    "grd_assets",
    "is_grd_item",
    "make_xml_fetcher",
    "open_grd_pair_reader",
    "parse_calibration",
    "parse_noise",
    "parse_product",
    "sigma0_window",
]
