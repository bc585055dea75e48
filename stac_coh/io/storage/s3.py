"""``s3://bucket/prefix`` as a store, with S3's conditional writes (boto3, built lazily)."""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from stac_coh.errors import (
    ConflictError,
    ObjectNotFoundError,
    StorageError,
    TransientStorageError,
)
from stac_coh.io.storage.base import Store, StoredObject, check_key

__all__ = ["DEFAULT_PART_SIZE", "S3Store"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PART_SIZE = 64 * 2**20
"""Multipart part size on S3 (S3 needs >= 5 MiB for all parts but the last)."""

POOL_CONNECTIONS = 32
"""HTTP connections one client keeps: more than the threads stac-coh runs on it at once
(16 readers in ``finalize`` and the run report, 10 parts of a multipart upload); botocore's
10 would make every read beyond the tenth open and drop a connection."""


def _retry_conflicts(action: Callable[[], T], what: str, attempts: int = 8) -> T:
    """Retry S3's 409 ConditionalRequestConflict (a concurrent conditional write in flight)."""
    from botocore.exceptions import ClientError

    for attempt in range(attempts):
        try:
            return action()
        except ClientError as exc:
            if _status(exc) != 409 or attempt == attempts - 1:
                raise
            delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
            log.debug("conditional write conflict on %s; retrying in %.2f s", what, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _status(exc: Exception) -> int:
    """HTTP status of a botocore ClientError (0 if unknown)."""
    meta = getattr(exc, "response", {}).get("ResponseMetadata", {})
    return int(meta.get("HTTPStatusCode", 0))


def _error_code(exc: Exception) -> str:
    """Error code of a botocore ClientError."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "ExpiredToken",
        "TokenRefreshRequired",
    }
)
"""S3 error codes a later attempt may not see (throttling, server trouble, rotated credentials)."""

_NO_CREDENTIALS_HINT = (
    "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_ENDPOINT_URL "
    "for an S3-compatible store other than AWS)"
)


class S3Store(Store):
    """``s3://bucket/prefix`` through boto3, with S3's conditional writes.

    Throttling and 5xx answers are retried by botocore (``adaptive`` mode); S3's 409
    ``ConditionalRequestConflict`` (two conditional writes in flight) by us. Large
    create-only uploads go multipart with ``If-None-Match`` on the completion, since
    ``upload_file`` cannot carry the condition; a failed one is aborted.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any | None = None,
        public_base_url: str | None = None,
        max_attempts: int = 10,
        retry_mode: str = "adaptive",
        multipart_threshold: int = DEFAULT_PART_SIZE,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.public_base_url = public_base_url
        self.max_attempts = max_attempts
        self.retry_mode = retry_mode
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._client = client

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the client: each process builds its own."""
        state = dict(self.__dict__)
        state["_client"] = None
        return state

    @property
    def client(self) -> Any:
        """The boto3 S3 client, built on first use from the standard AWS environment."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            # AWS's own AWS_MAX_ATTEMPTS, when set (e.g. by a job definition), wins.
            attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or self.max_attempts)
            retries: Any = {"total_max_attempts": attempts, "mode": self.retry_mode}
            config = Config(retries=retries, max_pool_connections=POOL_CONNECTIONS)
            self._client = boto3.session.Session().client("s3", config=config)
        return self._client

    def object_key(self, key: str) -> str:
        """Full S3 object key of a store key."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def url_for(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def check_writable(self) -> None:
        """HEAD the bucket: credentials, existence and access, before any work is done.

        An endpoint whose name does not resolve fails at once (botocore would retry it).
        """
        from stac_coh.io.net import check_resolves

        with self._errors("/"):
            client = self.client
            check_resolves(str(client.meta.endpoint_url), what=f"the S3 endpoint of {self.url}")
            client.head_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        """Single PUT (atomic on S3)."""
        return self._put_object(key, data, content_type)

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> str:
        """Managed upload (multipart above the threshold, parts in parallel)."""
        from boto3.s3.transfer import TransferConfig

        extra = {"ContentType": content_type} if content_type else {}
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold, multipart_chunksize=self.part_size
        )
        with self._errors(key):
            self.client.upload_file(
                str(path), self.bucket, self.object_key(key), ExtraArgs=extra, Config=config
            )
            return str(
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))["ETag"]
            )

    def put_new(self, key: str, data: bytes | Path, *, content_type: str | None = None) -> str:
        """``If-None-Match: *`` on a PUT, or on CompleteMultipartUpload for large files."""
        if isinstance(data, Path) and data.stat().st_size > self.multipart_threshold:
            return self._multipart_new(key, data, content_type)
        body = data if isinstance(data, bytes) else data.read_bytes()
        return self._put_object(key, body, content_type, IfNoneMatch="*")

    def put_if_match(
        self, key: str, data: bytes, etag: str, *, content_type: str | None = None
    ) -> str:
        """``If-Match: ETAG`` on a PUT (S3 answers 404 when the object vanished)."""
        try:
            return self._put_object(key, data, content_type, IfMatch=etag)
        except ObjectNotFoundError:
            raise ConflictError(f"{self.url_for(key)} vanished before the update.") from None

    def get(self, key: str) -> StoredObject:
        """GET the object and its ETag."""
        with self._errors(key):
            answer = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            return StoredObject(key, answer["Body"].read(), str(answer["ETag"]))

    def exists(self, key: str) -> bool:
        """HEAD the object."""
        try:
            with self._errors(key):
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ObjectNotFoundError:
            return False
        return True

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """ListObjectsV2 under ``prefix``, one page (1,000 keys) at a time, in key order."""
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        cut = len(self.prefix) + 1 if self.prefix else 0
        with self._errors(prefix or "/"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                yield from (obj["Key"][cut:] for obj in page.get("Contents", []))

    def delete(self, key: str) -> None:
        """DELETE the object (no error if absent)."""
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def _put_object(self, key: str, body: bytes, content_type: str | None, **condition: str) -> str:
        """PUT with an optional condition; 409s retried, 412 -> ConflictError."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.object_key(key), "Body": body}
        if content_type:
            args["ContentType"] = content_type
        args.update(condition)
        with self._errors(key):
            answer = _retry_conflicts(lambda: self.client.put_object(**args), self.url_for(key))
        return str(answer["ETag"])

    def _multipart_new(self, key: str, path: Path, content_type: str | None) -> str:
        """Create-only multipart upload: parts first, the condition on completion."""
        obj = self.object_key(key)
        extra = {"ContentType": content_type} if content_type else {}
        with self._errors(key):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=obj, **extra)[
                "UploadId"
            ]
            try:
                parts = self._upload_parts(obj, upload_id, path)
                answer = _retry_conflicts(
                    lambda: self.client.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=obj,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                        IfNoneMatch="*",
                    ),
                    self.url_for(key),
                )
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=obj, UploadId=upload_id
                    )
                raise
        return str(answer["ETag"])

    def _upload_parts(self, obj: str, upload_id: str, path: Path) -> builtins.list[dict[str, Any]]:
        """Upload ``path`` in ``part_size`` parts; return the part list for completion."""
        parts = []
        with path.open("rb") as source:
            number = 1
            while chunk := source.read(self.part_size):
                answer = self.client.upload_part(
                    Bucket=self.bucket, Key=obj, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                number += 1
        return parts

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Turn botocore errors into stac-coh errors naming the object (never credentials).

        Throttling, 5xx and connection trouble are :class:`TransientStorageError` (exit 75);
        missing credentials, a missing bucket and refused access are permanent
        :class:`StorageError` (exit 5): retrying them cannot help.
        """
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        where = f"{self.url}/{key}" if key != "/" else self.url
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, where) from None
        except (NoCredentialsError, PartialCredentialsError):
            raise StorageError(
                f"No AWS credentials to reach {where}: {_NO_CREDENTIALS_HINT}."
            ) from None
        except BotoCoreError as exc:
            raise TransientStorageError(
                f"Cannot reach S3 for {where} ({type(exc).__name__}); check the network and "
                "AWS_ENDPOINT_URL, then try again."
            ) from None

    def _client_error(self, exc: Exception, where: str) -> StorageError:
        """The stac-coh error of an S3 error answer."""
        status, code = _status(exc), _error_code(exc)
        if status == 412 or code == "PreconditionFailed":
            return ConflictError(
                f"{where} exists or changed (a concurrent publisher won the race)."
            )
        if code == "NoSuchBucket" or (where == self.url and status == 404):
            return StorageError(
                f"The bucket {self.bucket!r} does not exist (or is not visible with these "
                "credentials); create it or fix the s3:// URL."
            )
        if status == 404 or code in {"NoSuchKey", "404", "NotFound"}:
            return ObjectNotFoundError(f"{where} does not exist.")
        if status >= 500 or code in _TRANSIENT_CODES:
            return TransientStorageError(
                f"S3 request on {where} failed ({code or status}) after retries; try again later."
            )
        if status == 403 or code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            return StorageError(
                f"S3 refused access to {where} ({code or status}): check the credentials "
                "(AWS_PROFILE or AWS_ACCESS_KEY_ID), their permissions on the bucket, and "
                "AWS_ENDPOINT_URL."
            )
        return StorageError(
            f"S3 request on {where} failed ({code or status}); check the bucket, "
            "permissions and AWS_ENDPOINT_URL."
        )
