"""Which files of a GRD STAC item to read, and fetching the small annotation XMLs.

Planetary Computer and Earth Search name the assets of one polarisation ``vv``,
``schema-calibration-vv``, ``schema-noise-vv`` and ``schema-product-vv``. Both have been
seen pointing ``schema-product-*`` at the RFI annotation (``annotation/rfi/rfi-*.xml``)
instead of the product annotation; the product annotation then lies next to the
measurement (``measurement/iw-vv.tiff`` -> ``annotation/iw-vv.xml``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from stac_coh.errors import AnnotationError, RasterReadError, TransientError
from stac_coh.io.signing import HrefSigner, strip_query

__all__ = [
    "GrdAssets",
    "XmlFetcher",
    "derived_product_href",
    "grd_assets",
    "is_rfi_href",
    "make_xml_fetcher",
]

XmlFetcher = Callable[[str], bytes]
"""Reads the bytes of an (unsigned) annotation href."""


@dataclass(frozen=True)
class GrdAssets:
    """Canonical (unsigned) hrefs of one polarisation of one GRD item."""

    item_id: str
    """The STAC item id (for messages)."""
    polarization: str
    """Upper-case polarisation, e.g. ``VV``."""
    measurement: str
    """DN GeoTIFF in radar geometry."""
    calibration: str
    """Calibration annotation XML."""
    noise: str | None
    """Thermal noise annotation XML (``None``: item has none; noise is not removed)."""
    product: str
    """Product annotation XML (geolocation grid), derived when the item's is an RFI file."""
    product_fallback: str | None = None
    """The derived product annotation href, tried when ``product`` holds no geolocation."""


def grd_assets(
    item: Mapping[str, Any], polarization: str, measurement_key: str | None = None
) -> GrdAssets:
    """Resolve the GRD assets of ``polarization`` in a STAC item dict."""
    pol = polarization.lower()
    assets = item.get("assets", {})
    item_id = str(item.get("id", "?"))
    key = measurement_key or pol

    def href(name: str, required: bool = True) -> str | None:
        asset = assets.get(name)
        if asset is None or not asset.get("href"):
            if required:
                raise AnnotationError(
                    f"Item {item_id} has no asset {name!r} (has: {sorted(assets)}); a GRD "
                    f"item needs the measurement and its calibration annotation for {pol}."
                )
            return None
        return str(asset["href"])

    measurement = href(key)
    assert measurement is not None
    derived = derived_product_href(measurement)
    listed = href(f"schema-product-{pol}", required=False)
    if listed is None or is_rfi_href(listed):
        product, fallback = derived, None
    else:
        product, fallback = listed, (derived if derived != listed else None)
    return GrdAssets(
        item_id=item_id,
        polarization=polarization.upper(),
        measurement=measurement,
        calibration=str(href(f"schema-calibration-{pol}")),
        noise=href(f"schema-noise-{pol}", required=False),
        product=product,
        product_fallback=fallback,
    )


def is_rfi_href(href: str) -> bool:
    """True for an RFI annotation (``annotation/rfi/...`` or ``rfi-*.xml``)."""
    path = urlparse(href).path if "://" in href else href
    return "/rfi/" in path or Path(path).name.startswith("rfi-")


_MEASUREMENT = re.compile(r"/measurement/([^/?]+)\.tiff?(?=$|\?)", re.IGNORECASE)


def derived_product_href(measurement_href: str) -> str:
    """Product annotation next to a measurement: ``measurement/X.tiff`` -> ``annotation/X.xml``."""
    bare = strip_query(measurement_href)
    derived, count = _MEASUREMENT.subn(r"/annotation/\1.xml", bare)
    if count != 1:
        raise AnnotationError(
            f"Cannot derive the product annotation href from {bare!r}: it does not end in "
            "'/measurement/<name>.tiff'. Give the item a schema-product asset."
        )
    return derived


def make_xml_fetcher(
    *,
    signer: HrefSigner | None = None,
    requester_pays: bool = False,
    timeout_s: float = 30.0,
    retries: int = 5,
    s3_client: Any = None,
) -> XmlFetcher:
    """A fetcher for local paths, ``file://``, ``http(s)://`` (signed) and ``s3://`` hrefs.

    ``s3_client`` defaults to a boto3 client built on first use; boto3 resolves
    credentials and endpoint itself. ``requester_pays`` adds ``RequestPayer=requester``
    (Earth Search's ``sentinel-s1-l1c`` bucket).
    """
    state: dict[str, Any] = {"s3": s3_client, "http": None}

    def fetch(href: str) -> bytes:
        scheme = urlparse(href).scheme
        if scheme == "s3":
            return _fetch_s3(href, state, requester_pays)
        if scheme in ("http", "https"):
            return _fetch_http(href, state, signer, timeout_s, retries)
        path = Path(href[len("file://") :] if scheme == "file" else href)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise RasterReadError(f"Cannot read annotation {path}: {exc.strerror}.") from None

    return fetch


def _fetch_s3(href: str, state: dict[str, Any], requester_pays: bool) -> bytes:
    """GET an s3:// object, paying for the request when asked."""
    import botocore.exceptions

    if state["s3"] is None:
        import boto3

        state["s3"] = boto3.client("s3")
    parsed = urlparse(href)
    extra = {"RequestPayer": "requester"} if requester_pays else {}
    try:
        response = state["s3"].get_object(
            Bucket=parsed.netloc, Key=parsed.path.lstrip("/"), **extra
        )
        return bytes(response["Body"].read())
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        hint = (
            " The bucket is requester-pays: set requester_pays for this source."
            if code in ("403", "AccessDenied") and not requester_pays
            else ""
        )
        raise RasterReadError(f"Cannot read annotation {href}: S3 error {code}.{hint}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise TransientError(f"Cannot read annotation {href}: {type(exc).__name__}.") from None


def _fetch_http(
    href: str,
    state: dict[str, Any],
    signer: HrefSigner | None,
    timeout_s: float,
    retries: int,
) -> bytes:
    """GET an http(s) href, signed just before; on 403 renew the token once."""
    import requests

    from stac_coh.io.http import RETRY_STATUS, make_session

    if state["http"] is None:
        state["http"] = make_session(timeout_s=timeout_s, retries=retries)
    session: requests.Session = state["http"]
    for attempt in range(2):
        url = signer.sign(href) if signer is not None else href
        try:
            response = session.get(url)
        except requests.RequestException as exc:
            raise TransientError(
                f"Cannot read annotation {strip_query(href)}: {type(exc).__name__}."
            ) from None
        if response.status_code == 403 and signer is not None and attempt == 0:
            signer.invalidate(href)
            continue
        if response.status_code in RETRY_STATUS:
            raise TransientError(
                f"Cannot read annotation {strip_query(href)}: HTTP {response.status_code} "
                "after retries; try again later."
            )
        if response.status_code != 200:
            raise RasterReadError(
                f"Cannot read annotation {strip_query(href)}: HTTP {response.status_code}."
            )
        return response.content
    raise RasterReadError(f"Cannot read annotation {strip_query(href)}: HTTP 403 twice.")
