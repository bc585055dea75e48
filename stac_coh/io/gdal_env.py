"""GDAL configuration as a value: cloud defaults, built once, entered where I/O happens.

Threads do not inherit ``rasterio.Env``; code that reads in worker threads captures the
options with :func:`gdal_options` on the caller and enters :func:`gdal_env` in each thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import rasterio

__all__ = ["CLOUD_DEFAULTS", "gdal_env", "gdal_options", "masked"]

CLOUD_DEFAULTS: dict[str, Any] = {
    # Opening a COG must not list its directory (thousands of keys on S3/Azure).
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.png,.jpg,.xml,.vrt",
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_RETRY_CODES": "429,500,502,503,504",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_VERSION": "2",
    "GDAL_HTTP_TIMEOUT": "60",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(64 * 2**20),
    # rasterio.Env hands an int to GDALSetCacheMax64, i.e. BYTES (a str raises TypeError);
    # the setting outlives the Env, so a wrong unit slows every later read of the process.
    "GDAL_CACHEMAX": 256 * 2**20,
    "GDAL_NUM_THREADS": "ALL_CPUS",
}
"""Options every cloud read gets unless the caller overrides them."""

_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "SIGNATURE", "KEY_ID", "SAS", "CREDENTIAL")


def gdal_options(
    *, requester_pays: bool = False, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build the GDAL options of one source: cloud defaults, requester pays, overrides."""
    options = dict(CLOUD_DEFAULTS)
    if requester_pays:
        options["AWS_REQUEST_PAYER"] = "requester"
    options.update(extra or {})
    return options


def gdal_env(options: Mapping[str, Any] | None = None) -> rasterio.Env:
    """A ``rasterio.Env`` with ``options`` (default: cloud defaults); enter it in every thread."""
    return rasterio.Env(**dict(options if options is not None else CLOUD_DEFAULTS))


def masked(options: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``options`` safe to log: values of secret-looking keys replaced by ``***``."""
    return {
        k: ("***" if any(word in k.upper() for word in _SECRET_WORDS) else v)
        for k, v in options.items()
    }
