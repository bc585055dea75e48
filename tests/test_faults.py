"""Failures classed from the error itself: S3 codes through GDAL and boto3, HTTP, CUDA.

The S3 faults are real answers of a fault-injecting proxy in front of moto_server, read
through GDAL's ``/vsis3/`` (rasterio) and boto3 (the output store), so the classes and
codes are the ones those libraries really raise.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import rasterio
import torch
from botocore.config import Config
from botocore.exceptions import ClientError
from rasterio.transform import from_origin

from stac_coh.batch.exits import EXIT_BAD_INPUT, EXIT_BUG, EXIT_DEVICE, EXIT_RETRY
from stac_coh.batch.worker import exit_code_for_error
from stac_coh.errors import (
    ConflictError,
    DeviceError,
    InputError,
    ObjectNotFoundError,
    RasterReadError,
    StorageError,
    TransientStorageError,
)
from stac_coh.io.faults import Fault, Kind, classify, mark
from stac_coh.io.gdal_env import gdal_env, gdal_options
from stac_coh.io.read_faults import classify_read, probe
from stac_coh.io.storage import S3Store
from tests.s3_proxy import (
    Fault as ProxyFault,
)
from tests.s3_proxy import (
    S3Proxy,
    access_denied,
    expired_token,
    internal_error,
    slow_down,
)
from tests.services import MotoServer

# --------------------------------------------------------------------------------------
# a COG in moto, read through the proxy


@pytest.fixture(scope="module")
def bucket(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A bucket with a tiled 1024 x 1024 GeoTIFF (``cog.tif``) and a corrupt one (``bad.tif``).

    With GDAL's cloud defaults, opening it takes one GET and reading it one more.
    """
    name = f"faults-{uuid.uuid4().hex[:8]}"
    s3 = _client(moto_server.endpoint)
    s3.create_bucket(Bucket=name)
    path = tmp_path_factory.mktemp("faults") / "cog.tif"
    profile = {
        "driver": "GTiff",
        "width": 1024,
        "height": 1024,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32633",
        "transform": from_origin(500_000, 3_700_000, 10, 10),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.random.default_rng(0).random((1, 1024, 1024), dtype=np.float32))
    s3.upload_file(str(path), name, "cog.tif")
    s3.put_object(Bucket=name, Key="bad.tif", Body=b"II*\x00 not a GeoTIFF at all")
    return name


def _client(endpoint: str, attempts: int = 1) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}),
    )


@pytest.fixture
def proxy(aws_env: MotoServer) -> Iterator[S3Proxy]:
    """A proxy whose faults each test sets (``proxy.faults``)."""
    with S3Proxy(aws_env.endpoint).running() as running:
        yield running


def _gdal_read(key: str, bucket: str, endpoint: str) -> tuple[BaseException, dict[str, Any]]:
    """Open and read ``s3://bucket/key`` through GDAL at ``endpoint``; the error raised."""
    options = gdal_options(
        extra={
            "AWS_S3_ENDPOINT": endpoint,
            "GDAL_HTTP_MAX_RETRY": "1",
            "GDAL_HTTP_RETRY_DELAY": "0.1",
            "GDAL_NUM_THREADS": "1",
        }
    )
    with (
        pytest.raises(rasterio.errors.RasterioIOError) as raised,
        gdal_env(options),
        rasterio.open(f"s3://{bucket}/{key}") as src,
    ):
        src.read()
    return raised.value, options


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        (slow_down(), Kind.TRANSIENT, "s3:SlowDown"),
        (internal_error(), Kind.TRANSIENT, "s3:InternalError"),
        (expired_token(), Kind.TRANSIENT, "s3:ExpiredToken"),
        (ProxyFault(400, "RequestTimeout", "Socket not read"), Kind.TRANSIENT, "s3:RequestTimeout"),
        (access_denied(), Kind.PERMANENT, "gdal:CPLE_AWSAccessDenied"),
        # Throttled from the second request on: GDAL says "not recognized as being in a
        # supported file format", as for a corrupt file; the probe asks S3 itself.
        (slow_down(skip=1), Kind.TRANSIENT, "s3:SlowDown"),
        # The header came through, the tiles are throttled: a generic TIFF read error.
        (slow_down(skip=2), Kind.TRANSIENT, "s3:SlowDown"),
        (internal_error(skip=2), Kind.TRANSIENT, "s3:InternalError"),
    ],
    ids=["503", "500", "expired", "timeout", "403", "503-open", "503-read", "500-read"],
)
def test_gdal_s3_errors_are_classed_by_their_code(
    bucket: str, proxy: S3Proxy, fault: ProxyFault, kind: Kind, code: str
) -> None:
    fault.path = r"/cog\.tif"
    proxy.faults = [fault]
    error, options = _gdal_read("cog.tif", bucket, proxy.address)
    assert fault.served > 0
    if fault.skip:  # GDAL lost the S3 code: the same class as a corrupt file would raise
        assert classify(error).kind in (Kind.PERMANENT, Kind.BUG)
    got = classify_read(error, [f"s3://{bucket}/cog.tif"], options)
    assert (got.kind, got.code) == (kind, code)


@pytest.mark.integration
def test_a_deleted_or_corrupt_input_is_permanent(bucket: str, aws_env: MotoServer) -> None:
    direct = f"127.0.0.1:{aws_env.port}"
    missing, options = _gdal_read("deleted.tif", bucket, direct)
    assert classify_read(missing, [f"s3://{bucket}/deleted.tif"], options) == Fault(
        Kind.PERMANENT, "gdal:CPLE_AWSObjectNotFound"
    )
    corrupt, options = _gdal_read("bad.tif", bucket, direct)
    got = classify_read(corrupt, [f"s3://{bucket}/bad.tif"], options)
    assert got.kind is Kind.PERMANENT  # S3 serves it fine: the contents are at fault


@pytest.mark.integration
def test_http_hrefs_are_classed_by_status(bucket: str, proxy: S3Proxy) -> None:
    proxy.faults = [slow_down(path="cog")]
    options = gdal_options(extra={"GDAL_HTTP_MAX_RETRY": "0"})
    href = f"{proxy.url}/{bucket}/cog.tif"
    with pytest.raises(rasterio.errors.RasterioIOError) as raised, gdal_env(options):
        rasterio.open(href)
    assert classify_read(raised.value, [href], options) == Fault(Kind.TRANSIENT, "http:503")
    assert probe(f"{proxy.url}/{bucket}/nothing.tif", {}) == Fault(Kind.PERMANENT, "http:404")
    assert probe(f"{proxy.url}/{bucket}/cog.tif?sig=x", {}) == Fault(Kind.TRANSIENT, "http:503")
    assert probe("http://127.0.0.1:9/x.tif", {}).kind is Kind.TRANSIENT  # type: ignore[union-attr]
    assert probe("/local/file.tif", {}) is None


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        (slow_down(), Kind.TRANSIENT, "s3:SlowDown"),
        (internal_error(), Kind.TRANSIENT, "s3:InternalError"),
        (expired_token(), Kind.TRANSIENT, "s3:ExpiredToken"),
        (access_denied(), Kind.PERMANENT, "s3:AccessDenied"),
    ],
    ids=["503", "500", "expired", "403"],
)
def test_boto3_reads_and_writes_are_classed_by_their_code(
    bucket: str, proxy: S3Proxy, tmp_path: Path, fault: ProxyFault, kind: Kind, code: str
) -> None:
    fault.methods = ("GET", "HEAD", "PUT", "POST")
    proxy.faults = [fault]
    store = S3Store(bucket, "out", client=_client(proxy.url))
    small = tmp_path / "x.tif"
    small.write_bytes(b"x" * 100)
    # The store decides from the code (TransientStorageError or StorageError, raised
    # `from None`); boto3's managed upload raises S3UploadFailedError over the ClientError.
    store_class = "TransientStorageError" if kind is Kind.TRANSIENT else "StorageError"
    for action, expected in (
        (lambda: store.get("a.json"), f"stac-coh:{store_class}"),
        (lambda: store.put("a.json", b"{}"), f"stac-coh:{store_class}"),
        (lambda: store.put_new("b.json", b"{}"), f"stac-coh:{store_class}"),
        (lambda: store.put_file("c.tif", small), code),
    ):
        with pytest.raises(Exception) as raised:
            action()
        assert classify(raised.value) == Fault(kind, expected), raised.value
        assert code.removeprefix("s3:") in str(raised.value)  # the S3 code, for the report
        exit_code = EXIT_RETRY if kind is Kind.TRANSIENT else EXIT_BAD_INPUT
        assert exit_code_for_error(raised.value) == exit_code


@pytest.mark.integration
def test_boto3_errors_without_an_answer(bucket: str, aws_env: MotoServer) -> None:
    store = S3Store(bucket, "out", client=_client(aws_env.endpoint))
    with pytest.raises(ObjectNotFoundError) as missing:
        store.get("nothing.json")
    assert classify(missing.value).kind is Kind.PERMANENT
    unreachable = S3Store(bucket, "out", client=_client("http://127.0.0.1:9"))
    with pytest.raises(StorageError) as refused:
        unreachable.get("a.json")
    assert classify(refused.value) == Fault(Kind.TRANSIENT, "stac-coh:TransientStorageError")


# --------------------------------------------------------------------------------------
# CUDA and the rest, without services


def test_cuda_runtime_errors_are_device_faults() -> None:
    illegal = torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
    assert classify(illegal) == Fault(Kind.DEVICE, "cuda:error")
    illegal.error_code = 700  # type: ignore[attr-defined] - what torch sets from cudaError_t
    assert classify(illegal) == Fault(Kind.DEVICE, "cuda:700")
    plain = RuntimeError("CUDA error: misaligned address\nCUDA kernel errors might be ...")
    assert classify(plain).kind is Kind.DEVICE
    cublas = RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm")
    assert classify(cublas).kind is Kind.DEVICE
    cudnn = RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")
    assert classify(cudnn) == Fault(Kind.DEVICE, "cuda:CUDNN_STATUS_EXECUTION_FAILED")
    assert classify(torch.OutOfMemoryError("CUDA out of memory")).kind is Kind.TRANSIENT
    assert classify(RuntimeError("shape mismatch")).kind is Kind.BUG
    # wrapped by a pair's failure, the CUDA error still decides
    try:
        try:
            raise illegal
        except RuntimeError as exc:
            raise RasterReadError("while predicting") from exc
    except RasterReadError as wrapped:
        assert classify(wrapped).kind is Kind.DEVICE
    assert exit_code_for_error(illegal) == EXIT_DEVICE
    assert exit_code_for_error(DeviceError("no GPU")) == EXIT_DEVICE


def test_the_chain_stops_at_from_none_and_marks_win() -> None:
    def wrapped(inner: BaseException, outer: BaseException, suppress: bool) -> BaseException:
        try:
            try:
                raise inner
            except BaseException:
                if suppress:
                    raise outer from None
                raise outer  # noqa: B904 - the implicit context is the point
        except BaseException as exc:
            return exc

    throttled = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
    )
    assert classify(wrapped(throttled, StorageError("x"), suppress=False)).code == "s3:SlowDown"
    # a deliberate error raised `from None` is classed by itself
    assert classify(wrapped(throttled, InputError("bad"), suppress=True)) == Fault(
        Kind.PERMANENT, "stac-coh:InputError"
    )
    decided = mark(RasterReadError("probe said so"), Fault(Kind.TRANSIENT, "s3:SlowDown"))
    assert classify(decided) == Fault(Kind.TRANSIENT, "s3:SlowDown")
    assert classify(TransientStorageError("S3 down")).kind is Kind.TRANSIENT  # exit code 75
    assert classify(StorageError("no bucket")).kind is Kind.PERMANENT  # exit code 5
    assert classify(ConflictError("lost a race")).kind is Kind.TRANSIENT
    assert classify(ObjectNotFoundError("gone")).kind is Kind.PERMANENT
    assert classify(ConnectionResetError()).kind is Kind.TRANSIENT
    assert classify(OSError(28, "No space left on device")).kind is Kind.TRANSIENT
    assert classify(ZeroDivisionError()).kind is Kind.BUG
    assert exit_code_for_error(ZeroDivisionError()) == EXIT_BUG
    no_such = ClientError(
        {"Error": {"Code": "NoSuchBucket"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "Put"
    )
    assert classify(no_such) == Fault(Kind.PERMANENT, "s3:NoSuchBucket")
    head_503 = ClientError({"Error": {"Code": "503"}, "ResponseMetadata": {}}, "HeadObject")
    assert classify(head_503) == Fault(Kind.TRANSIENT, "s3:503")
