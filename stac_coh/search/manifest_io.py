"""Reading and writing manifests: a local file, ``s3://``, stdout, or a sharded Batch manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stac_coh.io.hrefs import resolved_hrefs
from stac_coh.search.manifest import Manifest

__all__ = ["manifest_from_bytes", "read_manifest", "write_manifest"]


def read_manifest(uri: str | Path, *, s3_client: Any = None) -> Manifest:
    """Read a manifest from a local path or an ``s3://bucket/key`` URI.

    ``s3_client`` defaults to ``boto3.client("s3")`` (standard AWS environment).
    """
    from stac_coh.errors import InputError

    text = str(uri)
    try:
        if text.startswith("s3://"):
            bucket, key = _split_s3(text)
            client = s3_client or _s3_client()
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        else:
            body = Path(text).read_text()
        return manifest_from_bytes(
            body.encode() if isinstance(body, str) else body, text, s3_client=s3_client
        )
    except InputError as exc:
        raise InputError(f"{text}: {exc}") from None  # name the file at fault
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"Cannot read the manifest {text}: {exc}. Write one with "
            "`stac-coh search ... --json FILE`."
        ) from None
    except Exception as exc:  # botocore ClientError and friends
        raise InputError(f"Cannot read the manifest {text}: {exc}.") from None


def manifest_from_bytes(body: bytes, uri: str, *, s3_client: Any = None) -> Manifest:
    """Parse a manifest read from ``uri``: a whole one, or the head of a sharded one (whose
    units and items are then read from beside it, on demand)."""
    from stac_coh.search.shard_reader import open_sharded_manifest
    from stac_coh.search.shards import is_sharded_head

    data = json.loads(body)
    if is_sharded_head(data):
        return open_sharded_manifest(uri, data, s3_client=s3_client)
    # Local paths are stored relative to the manifest (see write_manifest).
    return Manifest.from_dict(resolved_hrefs(data, uri))


def write_manifest(manifest: Manifest, uri: str | Path, *, s3_client: Any = None) -> str:
    """Write a manifest to a local path (parents created), ``s3://bucket/key`` or ``-``.

    Local paths in it are written relative to the manifest's own location (no machine
    path in the file; :func:`read_manifest` resolves them back). Returns where it went.
    """
    from stac_coh.io.hrefs import portable_hrefs
    from stac_coh.io.output import OutputFile

    text = str(uri)
    body = json.dumps(portable_hrefs(manifest.to_dict(), text), indent=1)
    target = OutputFile.parse(text, option="--json", stdout_ok=True, s3_client=s3_client)
    return target.write_text(body)


def _split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    from stac_coh.errors import InputError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise InputError(f"{uri!r} is not an s3://BUCKET/KEY URI.")
    return bucket, key


def _s3_client() -> Any:
    """A boto3 S3 client from the standard AWS environment."""
    import boto3

    return boto3.client("s3")
