"""A local directory as a store: temp name + rename, hard-link create, locked CAS."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from stac_coh.errors import ConflictError, ObjectNotFoundError, StorageError
from stac_coh.io.storage.base import Store, StoredObject, check_key, os_error

__all__ = ["LocalStore"]

_TEMP_SUFFIX = ".tmp"
_LOCK_SUFFIX = ".lock"


class LocalStore(Store):
    """A directory; atomic by temp-name-then-rename, create-only by hard link, CAS by lock.

    Locks are ``fcntl`` advisory locks on hidden ``.NAME.lock`` files beside the object, so
    all writers must run on one host or on a file system with working POSIX locks.
    """

    def __init__(self, root: Path, *, public_base_url: str | None = None) -> None:
        self.root = root.expanduser().resolve()
        self.url = str(self.root)
        self.public_base_url = public_base_url

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    def path_for(self, key: str) -> Path:
        """Filesystem path of ``key``."""
        return self.root / check_key(key)

    def self_href(self, key: str) -> str | None:
        """No ``self`` link without a public URL: every link of a local catalog is relative,
        so the tree stays valid when copied or served from anywhere (viewers such as STAC
        Browser use the URL they loaded it from)."""
        return self.href_for(key) if self.public_base_url else None

    def url_for(self, key: str) -> str:
        """Absolute filesystem path of ``key``."""
        return str(self.path_for(key))

    def check_writable(self) -> None:
        """Create the folder if needed and write (then remove) a hidden probe file in it."""
        with _os_errors(self.root, "write to"):
            if self.root.exists() and not self.root.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a folder")
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".stac-coh-probe-{uuid.uuid4().hex}{_TEMP_SUFFIX}"
            probe.write_bytes(b"")
            probe.unlink()

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        """Write ``key`` by temp file + rename."""
        path = self.path_for(key)
        tmp = self._write_temp(path, data)
        with _os_errors(path):
            os.replace(tmp, path)
        return _md5_etag(data)

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> str:
        """Copy a file in by temp file + rename."""
        dest = self.path_for(key)
        tmp = self._write_temp(dest, path)
        with _os_errors(dest):
            os.replace(tmp, dest)
        return _file_etag(dest)

    def put_new(self, key: str, data: bytes | Path, *, content_type: str | None = None) -> str:
        """Create-only: a hard link from a complete temp file fails if the name exists."""
        dest = self.path_for(key)
        tmp = self._write_temp(dest, data)
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise ConflictError(f"{dest} already exists (another publisher wrote it).") from None
        except OSError as exc:
            raise os_error(dest, exc) from None
        finally:
            tmp.unlink(missing_ok=True)
        return _md5_etag(data) if isinstance(data, bytes) else _file_etag(dest)

    def put_if_match(
        self, key: str, data: bytes, etag: str, *, content_type: str | None = None
    ) -> str:
        """Compare-and-swap under an exclusive lock on ``.NAME.lock``."""
        dest = self.path_for(key)
        with self._locked(dest):
            try:
                current = _md5_etag(dest.read_bytes())
            except FileNotFoundError:
                raise ConflictError(f"{dest} vanished before the update; re-read it.") from None
            if current != etag:
                raise ConflictError(f"{dest} changed since it was read; re-read it and retry.")
            tmp = self._write_temp(dest, data)
            os.replace(tmp, dest)
        return _md5_etag(data)

    def get(self, key: str) -> StoredObject:
        """Read a file and its MD5 ETag."""
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"{path} does not exist.") from None
        except OSError as exc:
            raise os_error(path, exc, action="read") from None
        return StoredObject(key, data, _md5_etag(data))

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self.path_for(key).is_file()

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``, folder by folder, skipping hidden temp/lock files."""
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith("."):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    yield key

    def delete(self, key: str) -> None:
        """Remove the file if present."""
        path = self.path_for(key)
        with _os_errors(path, "delete"):
            path.unlink(missing_ok=True)

    def _write_temp(self, dest: Path, data: bytes | Path) -> Path:
        """Write ``data`` completely under a hidden unique name beside ``dest``."""
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}"
            with tmp.open("wb") as sink:
                if isinstance(data, bytes):
                    sink.write(data)
                else:
                    with data.open("rb") as source:
                        while chunk := source.read(2**22):
                            sink.write(chunk)
                sink.flush()
                os.fsync(sink.fileno())
        except OSError as exc:
            raise os_error(dest, exc) from None
        return tmp

    @contextlib.contextmanager
    def _locked(self, dest: Path) -> Iterator[None]:
        """Hold an exclusive advisory lock tied to ``dest``."""
        lock = dest.parent / f".{dest.name}{_LOCK_SUFFIX}"
        with _os_errors(dest):
            dest.parent.mkdir(parents=True, exist_ok=True)
            handle = lock.open("a")
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _os_errors(path: Path, action: str = "write") -> Iterator[None]:
    """Turn an ``OSError`` on ``path`` into a one-line storage error (what to do included)."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        raise os_error(path, exc, action=action) from None


def _md5_etag(data: bytes) -> str:
    """S3-style quoted MD5 ETag of ``data``."""
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def _file_etag(path: Path) -> str:
    """S3-style quoted MD5 ETag of a file, streamed."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as source:
        while chunk := source.read(2**22):
            digest.update(chunk)
    return f'"{digest.hexdigest()}"'
