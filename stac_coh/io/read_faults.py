"""Classify a failed raster read, asking the server when GDAL's error says too little.

GDAL discards the S3 error code on some paths: a read that fails after the file's header
came through, or an open whose second request is throttled, surfaces as a generic
``CPLE_AppDefinedError`` or ``CPLE_OpenFailedError`` ("not recognized as being in a
supported file format"), exactly as a corrupt file does. :func:`classify_read` then asks
the server itself with one ranged GET (:func:`probe`) and classifies its answer with
:func:`stac_coh.io.faults.classify`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from stac_coh.io.faults import VAGUE_GDAL_CODES, Fault, Kind, ProbeAnswer, classify

__all__ = ["classify_read", "probe"]


def classify_read(
    error: BaseException, hrefs: Sequence[str], gdal_options: Mapping[str, Any] | None = None
) -> Fault:
    """Classify a failed raster read; ask the server when GDAL's error class is vague.

    GDAL reports a throttled or failing request in the middle of a read, or the second
    request of an open, with the same class as a corrupt file. Then one ranged GET of each
    href (:func:`probe`) tells: an error answer decides (``SlowDown`` -> transient,
    ``NoSuchKey`` -> permanent); if every href answers, the service is fine now and GDAL's
    class stands (generic S3 errors transient, unreadable contents permanent).
    """
    fault = classify(error)
    if fault.kind is not Kind.BUG and fault.code not in VAGUE_GDAL_CODES:
        return fault
    for href in hrefs:
        answered = probe(href, gdal_options or {})
        if answered is not None:
            return answered
    return fault


def probe(href: str, gdal_options: Mapping[str, Any], timeout_s: float = 10.0) -> Fault | None:
    """One-byte ranged GET of ``href`` the way GDAL reaches it; the fault, or None if it answered.

    ``s3://`` and ``/vsis3/`` go through boto3 with GDAL's S3 endpoint settings
    (``AWS_S3_ENDPOINT``, ``AWS_HTTPS``, ``AWS_VIRTUAL_HOSTING``, ``AWS_REQUEST_PAYER``,
    ``AWS_NO_SIGN_REQUEST``); ``http(s)://`` (signed hrefs too) through requests. Other
    hrefs are not probed. Nothing of the href is kept: only the classification.
    """
    path = href.removeprefix("/vsicurl/")
    try:
        if path.startswith(("s3://", "/vsis3/")):
            _probe_s3(path, gdal_options, timeout_s)
        elif path.startswith(("http://", "https://")):
            _probe_http(path, timeout_s)
        else:
            return None
    except Exception as exc:
        return classify(exc)
    return None


def _probe_s3(path: str, options: Mapping[str, Any], timeout_s: float) -> None:
    """Ranged GET of the first byte through boto3, configured as GDAL is."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    bucket, _, key = path.removeprefix("s3://").removeprefix("/vsis3/").partition("/")

    def setting(name: str, default: str = "") -> str:
        return str(options.get(name, os.environ.get(name, default)))

    endpoint = setting("AWS_S3_ENDPOINT")
    https = setting("AWS_HTTPS", "YES").upper() not in ("NO", "FALSE", "OFF", "0")
    virtual = setting("AWS_VIRTUAL_HOSTING", "TRUE").upper() not in ("NO", "FALSE", "OFF", "0")
    config = Config(
        retries={"total_max_attempts": 1},
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        s3={"addressing_style": "virtual" if virtual else "path"},
        signature_version=UNSIGNED if setting("AWS_NO_SIGN_REQUEST").upper() == "YES" else None,
    )
    url = f"{'https' if https else 'http'}://{endpoint}" if endpoint else None
    client = boto3.session.Session().client("s3", endpoint_url=url, config=config)
    extra = {"RequestPayer": "requester"} if setting("AWS_REQUEST_PAYER") == "requester" else {}
    answer = client.get_object(Bucket=bucket, Key=key, Range="bytes=0-0", **extra)
    answer["Body"].close()


def _probe_http(url: str, timeout_s: float) -> None:
    """Ranged GET of the first byte; an error status becomes :class:`ProbeAnswer`."""
    import requests

    with requests.get(url, headers={"Range": "bytes=0-0"}, timeout=timeout_s, stream=True) as got:
        if got.status_code >= 400:
            raise ProbeAnswer(got.status_code)
