"""Classify a failure from the error itself: S3 codes, HTTP status, GDAL classes, CUDA errors.

Whether a failed pair is worth retrying, and where, decides what an AWS Batch child does
(exit 75, 69 or 0). The answer comes from what the error carries, never from how its
message is worded:

- botocore: the S3 error code and HTTP status of a ``ClientError`` (``SlowDown``,
  ``InternalError``, ``ExpiredToken`` ... or ``NoSuchKey``, ``AccessDenied``), and the
  class of a ``BotoCoreError`` (connection, timeout, credentials);
- GDAL through rasterio: the ``CPLE_*`` class (``CPLE_AWSObjectNotFoundError``,
  ``CPLE_AWSAccessDeniedError`` ... for S3; ``CPLE_AWSError`` for any other S3 error
  document, e.g. throttling; ``CPLE_HttpResponseError`` with the status GDAL reports);
- requests: the response status, or the connection/timeout class;
- PyTorch: ``torch.AcceleratorError`` (a CUDA runtime error, with its ``error_code``),
  ``torch.OutOfMemoryError``;
- stac-coh's own errors: their class (a ``DeviceError``, a ``ConflictError``) or exit code.

The chain of causes is followed (``raise ... from exc`` and implicit context, but not past
``from None``), outermost first: the first error that carries a code decides. An error
can also carry a decision made where more was known (:func:`mark`).

GDAL discards the S3 error code on some paths; :mod:`stac_coh.io.read_faults` then asks
the server itself.
"""

from __future__ import annotations

import errno
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from stac_coh.errors import ConflictError, DeviceError, ObjectNotFoundError, StacCohError

__all__ = ["VAGUE_GDAL_CODES", "Fault", "Kind", "ProbeAnswer", "classify", "mark"]


class Kind(StrEnum):
    """What a retry can do about a failure."""

    TRANSIENT = "transient"
    """The service failed this time (throttling, 5xx, timeout, expired token): retry later."""
    DEVICE = "device"
    """The GPU failed or is missing: only a new process (maybe another host) can help."""
    PERMANENT = "permanent"
    """Retrying cannot help: not found, forbidden, bad input, corrupt data."""
    BUG = "bug"
    """Unexpected: no code says what it is."""


@dataclass(frozen=True)
class Fault:
    """A classified failure: its kind and the code it was classified from."""

    kind: Kind
    code: str
    """What decided, e.g. ``s3:SlowDown``, ``http:503``, ``gdal:CPLE_AWSObjectNotFound``,
    ``cuda:700``, ``network:ReadTimeoutError``, ``stac-coh:InputError``."""

    @property
    def transient(self) -> bool:
        """A retry may succeed (a transient or device fault)."""
        return self.kind in (Kind.TRANSIENT, Kind.DEVICE)

    @property
    def forbidden(self) -> bool:
        """The server refused the credentials or signature (worth re-signing once)."""
        return self.code in _FORBIDDEN


# S3 (and other AWS) error codes worth a retry: throttling, server errors, expired tokens.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "ExpiredToken",
        "ExpiredTokenException",
        "TokenRefreshRequired",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "OperationAborted",
        "ConditionalRequestConflict",
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
    }
)
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_FORBIDDEN = frozenset(
    {
        "http:401",
        "http:403",
        "s3:AccessDenied",
        "s3:403",
        "gdal:CPLE_AWSAccessDenied",
        "gdal:CPLE_AWSInvalidCredentials",
        "gdal:CPLE_AWSSignatureDoesNotMatch",
    }
)
# GDAL classes that name the S3 answer; every other CPLE_AWS* error is some other S3 error
# document (throttling, InternalError, ExpiredToken, RequestTimeout ...).
_GDAL_PERMANENT = frozenset(
    {
        "CPLE_AWSObjectNotFoundError",
        "CPLE_AWSBucketNotFoundError",
        "CPLE_AWSAccessDeniedError",
        "CPLE_AWSInvalidCredentialsError",
        "CPLE_AWSSignatureDoesNotMatchError",
    }
)
# GDAL classes that do not say whether the file or the connection is at fault.
VAGUE_GDAL_CODES = frozenset(
    {"gdal:CPLE_AppDefined", "gdal:CPLE_OpenFailed", "gdal:CPLE_FileIO", "gdal:CPLE_AWS"}
)
_GDAL_STATUS = re.compile(r"HTTP response code: (\d{3})")
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENOSPC,  # a full scratch disk is this host's problem, not the pair's
    }
)
# cuBLAS/cuDNN failures that torch raises as a plain RuntimeError; the status name is the code.
_CUDA_LIBRARY_STATUS = re.compile(
    r"\b(CUBLAS_STATUS_(?:EXECUTION_FAILED|INTERNAL_ERROR|NOT_INITIALIZED|ALLOC_FAILED)"
    r"|CUDNN_STATUS_(?:EXECUTION_FAILED|INTERNAL_ERROR|NOT_INITIALIZED|ALLOC_FAILED))\b"
)
_MARK = "stac_coh_fault"
_CUDA_RUNTIME = re.compile(r"^(?:CUDA error|CUDA driver error)\b")


def mark(error: BaseException, fault: Fault) -> BaseException:
    """Attach a decision to ``error`` (made where more was known); :func:`classify` keeps it."""
    setattr(error, _MARK, fault)
    return error


def classify(error: BaseException) -> Fault:
    """Classify ``error`` from the first error in its chain that carries a code."""
    chain = list(_chain(error))
    for link in chain:
        found = _attached(link) or _by_code(link)
        if found is not None:
            return found
    return _fallback(chain)


# --------------------------------------------------------------------------------------
# the chain and its codes


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and its causes, outermost first; implicit context unless ``from None``."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        if link.__cause__ is not None:
            link = link.__cause__
        elif not link.__suppress_context__:
            link = link.__context__
        else:
            link = None


def _attached(error: BaseException) -> Fault | None:
    """A decision :func:`mark` attached."""
    found = getattr(error, _MARK, None)
    return found if isinstance(found, Fault) else None


def _by_code(error: BaseException) -> Fault | None:
    """The classification of one error that carries a code, else None."""
    for check in (_botocore, _gdal, _requests, _torch, _probe_answer):
        found = check(error)
        if found is not None:
            return found
    return None


def _from_status(prefix: str, status: int) -> Fault:
    """HTTP status: 408/425/429/5xx transient, everything else permanent."""
    kind = Kind.TRANSIENT if status in _TRANSIENT_STATUS or status >= 500 else Kind.PERMANENT
    return Fault(kind, f"{prefix}:{status}")


def _botocore(error: BaseException) -> Fault | None:
    """botocore ``ClientError`` (S3 code, status) and ``BotoCoreError`` (by class)."""
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is None:
        return None
    if isinstance(error, botocore.ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in _TRANSIENT_CODES:
            return Fault(Kind.TRANSIENT, f"s3:{code}")
        if code and not code.isdigit():
            kind = _from_status("s3", status).kind if status else Kind.PERMANENT
            return Fault(kind, f"s3:{code}")
        return _from_status("s3", status or int(code or 0))
    if not isinstance(error, botocore.BotoCoreError):
        return None
    name = type(error).__name__
    permanent = (
        botocore.NoCredentialsError,
        botocore.PartialCredentialsError,
        botocore.NoRegionError,
        botocore.ParamValidationError,
        botocore.UnknownServiceError,
    )
    kind = Kind.PERMANENT if isinstance(error, permanent) else Kind.TRANSIENT
    return Fault(kind, f"network:{name}" if kind is Kind.TRANSIENT else f"aws:{name}")


def _gdal(error: BaseException) -> Fault | None:
    """rasterio's ``CPLE_*`` errors, by class (and the status GDAL puts in HTTP errors)."""
    name = type(error).__name__
    if not name.startswith("CPLE_") or not type(error).__module__.startswith("rasterio"):
        return None
    code = f"gdal:{name.removesuffix('Error')}"
    if name in _GDAL_PERMANENT:
        return Fault(Kind.PERMANENT, code)
    if name == "CPLE_AWSError":
        return Fault(Kind.TRANSIENT, code)
    if name == "CPLE_HttpResponseError":
        status = _GDAL_STATUS.search(str(error))
        if status:
            return _from_status("http", int(status.group(1)))
        return Fault(Kind.TRANSIENT, "network:curl")  # no status: curl never got an answer
    return Fault(Kind.PERMANENT, code)


def _requests(error: BaseException) -> Fault | None:
    """requests: the response status, or connection/timeout errors."""
    requests_exc = sys.modules.get("requests.exceptions")
    if requests_exc is None or not isinstance(error, requests_exc.RequestException):
        return None
    response = getattr(error, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return _from_status("http", int(response.status_code))
    network = (
        requests_exc.ConnectionError,
        requests_exc.Timeout,
        requests_exc.ChunkedEncodingError,
        requests_exc.ContentDecodingError,
    )
    if isinstance(error, network):
        return Fault(Kind.TRANSIENT, f"network:{type(error).__name__}")
    return Fault(Kind.PERMANENT, f"http:{type(error).__name__}")


def _torch(error: BaseException) -> Fault | None:
    """CUDA runtime errors (sticky: the process must go) and GPU out-of-memory."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    accelerator = getattr(torch, "AcceleratorError", None)
    if accelerator is not None and isinstance(error, accelerator):
        number = getattr(error, "error_code", None)
        return Fault(Kind.DEVICE, f"cuda:{number}" if number is not None else "cuda:error")
    if isinstance(error, getattr(torch, "OutOfMemoryError", ())):
        # Not sticky, and a retry may land on a larger GPU (g5/g6 have 24 GB, g4dn 16 GB).
        return Fault(Kind.TRANSIENT, "cuda:out-of-memory")
    if type(error) is RuntimeError:
        text = str(error)
        if _CUDA_RUNTIME.match(text):
            return Fault(Kind.DEVICE, "cuda:error")
        if status := _CUDA_LIBRARY_STATUS.search(text):
            return Fault(Kind.DEVICE, f"cuda:{status.group(1)}")
    return None


class ProbeAnswer(Exception):
    """What a probe got back: an HTTP status (the URL is not kept)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _probe_answer(error: BaseException) -> Fault | None:
    """A status a probe got."""
    return _from_status("http", error.status) if isinstance(error, ProbeAnswer) else None


def _fallback(chain: Sequence[BaseException]) -> Fault:
    """No code anywhere: stac-coh's own classes and exit codes, then builtin network errors."""
    for link in chain:
        if isinstance(link, DeviceError):
            return Fault(Kind.DEVICE, "stac-coh:DeviceError")
        if isinstance(link, ObjectNotFoundError):
            return Fault(Kind.PERMANENT, "stac-coh:ObjectNotFoundError")
        if isinstance(link, ConflictError):
            return Fault(Kind.TRANSIENT, "stac-coh:ConflictError")
        if isinstance(link, StacCohError):
            kind = Kind.TRANSIENT if link.exit_code == 75 else Kind.PERMANENT
            return Fault(kind, f"stac-coh:{type(link).__name__}")
    for link in chain:
        if isinstance(link, ConnectionError | TimeoutError) or (
            isinstance(link, OSError) and link.errno in _NETWORK_ERRNOS
        ):
            return Fault(Kind.TRANSIENT, f"network:{type(link).__name__}")
    return Fault(Kind.BUG, f"bug:{type(chain[0]).__name__}")
