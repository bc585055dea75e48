"""Where a command writes: one abstraction for files and catalog folders, local or ``s3://``.

Every command that writes goes through here: ``predict`` (COGs), ``search --json`` and
``search-and-run --json`` (manifests) through :class:`OutputFile`; ``run``,
``search-and-run``, ``demo`` and ``finalize`` (catalogs) through :func:`open_output_store`.
The rules are the same everywhere:

- ``s3://bucket/key`` goes to S3 (boto3's standard environment), never to a local folder
  named ``s3:``;
- ``-`` means standard output, for JSON outputs only;
- anything else is a local path, written atomically (temp name, then rename);
- :meth:`OutputFile.check` and :meth:`~stac_coh.io.storage.Store.check_writable` fail
  *before* the work, and every failure is one line naming the location and what to do
  (exit 5; 75 only for what a retry may fix).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from stac_coh.errors import InputError, StacCohError, StorageError
from stac_coh.io.storage import Store, open_store
from stac_coh.io.storage.base import os_error

__all__ = ["STDOUT", "OutputFile", "is_s3", "local_folder", "open_output_store"]

STDOUT = "-"
"""What a user writes for "standard output"."""

Kind = Literal["local", "s3", "stdout"]


def is_s3(location: str | Path) -> bool:
    """Whether ``location`` names S3 (``s3://``; also as mangled by ``Path``: ``s3:/``)."""
    text = str(location)
    return text.startswith(("s3://", "s3:/"))


@dataclass(frozen=True)
class OutputFile:
    """One output file: a local path, an ``s3://bucket/key`` object or standard output."""

    location: str
    """What the user typed."""
    option: str = "-o"
    """The option that named it, for messages."""
    s3_client: Any = field(default=None, compare=False, repr=False)
    """A boto3 S3 client to use (default: built from the standard AWS environment)."""

    @classmethod
    def parse(
        cls,
        location: str | Path,
        *,
        option: str = "-o",
        stdout_ok: bool = False,
        s3_client: Any | None = None,
    ) -> OutputFile:
        """Validate ``location`` for ``option``; ``-`` is accepted only when ``stdout_ok``."""
        text = str(location).strip()
        if not text:
            raise InputError(f"{option} is empty; give a file path or s3://bucket/key.")
        if text.startswith("s3:/") and not text.startswith("s3://"):
            text = "s3://" + text[len("s3:/") :]  # Path() folded the double slash
        if text == STDOUT and not stdout_ok:
            raise InputError(f"{option} - (standard output) only works for JSON outputs.")
        if text.startswith("s3://"):
            bucket, _, key = text[len("s3://") :].partition("/")
            if not bucket or not key or key.endswith("/"):
                raise InputError(f"{option} {text} must name an object: s3://BUCKET/KEY.")
        elif "://" in text and not text.startswith("file://"):
            raise InputError(
                f"{option} {text}: stac-coh writes to a local path or s3://bucket/key only."
            )
        return cls(text.removeprefix("file://"), option, s3_client)

    @property
    def kind(self) -> Kind:
        """``local``, ``s3`` or ``stdout``."""
        if self.location == STDOUT:
            return "stdout"
        return "s3" if self.location.startswith("s3://") else "local"

    @property
    def path(self) -> Path:
        """The local path (only for ``local`` outputs)."""
        return Path(self.location).expanduser()

    def __str__(self) -> str:
        return "standard output" if self.kind == "stdout" else self.location

    def exists(self) -> bool:
        """Whether something is already at the location (standard output: never)."""
        if self.kind == "stdout":
            return False
        if self.kind == "local":
            return self.path.exists()
        store, key = self._store()
        return store.exists(key)

    def check(self, *, overwrite: bool = True) -> None:
        """Fail now, in one line, if writing here later cannot work.

        Args:
            overwrite: whether an existing file may be replaced (else :class:`InputError`).
        """
        if self.kind == "stdout":
            return
        if self.kind == "s3":
            store, _ = self._store()
            store.check_writable()
        else:
            self._check_local()
        if not overwrite and self.exists():
            raise InputError(f"{self} exists; pass --overwrite to replace it.")

    def write_bytes(self, data: bytes, *, content_type: str | None = None) -> str:
        """Write ``data`` (atomically); return where it went."""
        if self.kind == "stdout":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return str(self)
        store, key = self._store()
        store.put(key, data, content_type=content_type)
        return self.location

    def write_text(self, text: str, *, content_type: str | None = "application/json") -> str:
        """Write ``text`` as UTF-8; return where it went."""
        return self.write_bytes(text.encode("utf-8"), content_type=content_type)

    @contextlib.contextmanager
    def staged(self, *, suffix: str = "") -> Iterator[Path]:
        """A local path to write the whole file to; it is published when the block succeeds.

        Local outputs are written in place (the writer is expected to be atomic itself, as
        stac-coh's COG writer is); ``s3://`` outputs go to a temporary folder first and are
        uploaded when the block ends without an error.
        """
        if self.kind == "stdout":
            raise InputError(f"{self.option} -: this output cannot go to standard output.")
        if self.kind == "local":
            self._check_local()
            try:
                yield self.path
            except StacCohError:  # RasterReadError and friends are OSErrors too: not ours
                raise
            except OSError as exc:
                raise os_error(self.path, exc) from None
            return
        scratch = Path(tempfile.mkdtemp(prefix="stac-coh-upload-"))
        try:
            local = scratch / (PurePosixPath(self.location).name or f"output{suffix}")
            yield local
            store, key = self._store()
            store.put_file(key, local, content_type=_content_type(local.name))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _check_local(self) -> None:
        """The name is not a folder, and a file can be created where it goes.

        Nothing is left behind: folders that do not exist yet are not created here (a
        probe folder is made in the nearest existing one, then removed).
        """
        path = Path(os.path.abspath(self.path))
        if path.is_dir():
            raise StorageError(
                f"Cannot write {path}: it is a folder; give a file name ({self.option})."
            )
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        try:
            if not ancestor.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{ancestor} is a file")
            os.rmdir(tempfile.mkdtemp(prefix=".stac-coh-probe-", dir=ancestor))
        except OSError as exc:
            raise os_error(path, exc) from None

    def _store(self) -> tuple[Store, str]:
        """The store holding the location, and its key there."""
        if self.kind == "s3":
            bucket, _, key = self.location[len("s3://") :].partition("/")
            return open_store(f"s3://{bucket}", s3_client=self.s3_client), key
        return _store_of(self.path.parent), self.path.name


def _store_of(folder: Path) -> Store:
    """A local store rooted at ``folder`` (made absolute; nothing is created yet)."""
    return open_store(folder if str(folder) else Path("."))


def open_output_store(
    location: str | Path,
    *,
    option: str = "--out",
    public_base_url: str | None = None,
    s3_client: Any | None = None,
    check: bool = True,
) -> Store:
    """Open a catalog folder or ``s3://bucket/prefix`` for writing, checked up front.

    Raises:
        InputError: the location is ``-`` or an unsupported URL.
        StorageError: it cannot be written (one line: where, why, what to do).
    """
    text = str(location).strip()
    if text == STDOUT:
        raise InputError(f"{option} -: a catalog needs a folder or s3://bucket/prefix.")
    if text.startswith("s3:/") and not text.startswith("s3://"):
        text = "s3://" + text[len("s3:/") :]
    store = open_store(text, s3_client=s3_client, public_base_url=public_base_url)
    if check:
        store.check_writable()
    return store


def local_folder(location: str | Path, *, option: str, command: str) -> Path:
    """``location`` as a local folder; an ``s3://`` location is refused in one line."""
    if is_s3(location):
        raise InputError(
            f"{option} {location}: `stac-coh {command}` writes a local folder; give a path "
            "(publish to S3 with search-and-run or run --out s3://bucket/prefix)."
        )
    if str(location).strip() == STDOUT:
        raise InputError(f"{option} -: `stac-coh {command}` needs a folder.")
    return Path(location).expanduser()


def _content_type(name: str) -> str | None:
    """Content type of an uploaded file, from its name."""
    lower = name.lower()
    if lower.endswith((".tif", ".tiff")):
        return "image/tiff; application=geotiff; profile=cloud-optimized"
    if lower.endswith(".json"):
        return "application/json"
    return None
