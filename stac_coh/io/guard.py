"""Destructive options remove only what stac-coh wrote; anything else is refused in one line.

``--fresh`` and ``--overwrite`` act on a location the user named, and a typo there (``--out
.``, a thesis folder, ``-o notes.txt``) must cost nothing. A folder stac-coh manages carries
a marker file (:data:`MARKER`) naming what wrote it; a folder without one is recognised
only by its known layout (every entry one stac-coh writes). Files are recognised by their
content (:func:`check_replaceable_cog`). Only the known entries are ever removed, never the
folder itself, and never an entry stac-coh does not know.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from stac_coh.errors import InputError, StorageError

__all__ = [
    "MARKER",
    "check_no_clash",
    "check_replaceable_cog",
    "check_replaceable_manifest",
    "clear_owned",
    "owned_entries",
    "write_marker",
]

MARKER = ".stac-coh"
"""Marker file in a folder stac-coh manages: JSON ``{"kind": ..., "created": ...}``."""

COG_BANDS = frozenset({"coherence", "uncertainty"})
"""Band descriptions of the COGs ``stac-coh predict`` writes."""


def write_marker(folder: Path, kind: str) -> None:
    """Mark ``folder`` as managed by stac-coh (``kind``: e.g. ``demo``); keeps an existing one."""
    marker = folder / MARKER
    if marker.exists():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        body = {"kind": kind, "created": datetime.now(UTC).isoformat(timespec="seconds")}
        marker.write_text(json.dumps(body) + "\n")
    except OSError as exc:
        from stac_coh.io.storage.base import os_error

        raise os_error(folder, exc) from None


def owned_entries(folder: Path, *, kind: str, layout: Iterable[str], option: str) -> list[Path]:
    """The entries of ``folder`` stac-coh wrote and may remove; refuse a folder not its own.

    Args:
        folder: the folder the user named.
        kind: what the marker must say (e.g. ``demo``).
        layout: names of the entries stac-coh writes there (the marker aside).
        option: the option asking for the removal, for the message.

    Raises:
        InputError: the folder is neither marked as ``kind`` nor made only of ``layout``.
    """
    names = set(layout)
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise InputError(f"{option}: {folder} is a file, not a folder; choose another location.")
    entries = sorted(folder.iterdir())
    if not entries:
        return []
    marked = _marker_kind(folder / MARKER)
    foreign = [e.name for e in entries if e.name not in names | {MARKER}]
    if marked != kind and (foreign or not any(e.name in names for e in entries)):
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise InputError(
            f"{option} refuses to delete anything in {folder}: stac-coh did not write it (no "
            f"{MARKER} marker of a {kind} folder; it holds {shown or 'other files'}). Delete "
            "what you want gone yourself, or choose another folder."
        )
    return [e for e in entries if e.name in names or e.name == MARKER]


def check_no_clash(folder: Path, *, kind: str, layout: Iterable[str], option: str) -> None:
    """Refuse to write the ``layout`` entries into a folder where others' entries of that name are.

    A folder marked as ``kind``, or holding nothing but ``layout``, is stac-coh's to reuse;
    in any other folder the entries must not exist yet.
    """
    names = set(layout)
    if not folder.is_dir() or _marker_kind(folder / MARKER) == kind:
        return
    entries = {e.name for e in folder.iterdir()}
    clash = sorted(entries & names)
    if clash and entries - names - {MARKER}:
        raise InputError(
            f"{option} {folder}: {folder / clash[0]} exists and stac-coh did not write it (no "
            f"{MARKER} marker of a {kind} folder). Choose a new or empty folder."
        )


def clear_owned(folder: Path, *, kind: str, layout: Iterable[str], option: str) -> list[Path]:
    """Remove what :func:`owned_entries` allows (never ``folder`` itself); return what went."""
    removed = owned_entries(folder, kind=kind, layout=layout, option=option)
    for entry in removed:
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise StorageError(
                f"{option}: cannot delete {entry}: {exc.strerror or exc}; fix its permissions "
                "or delete it yourself."
            ) from None
    return removed


def check_replaceable_cog(path: Path, *, option: str = "--overwrite") -> None:
    """Refuse to replace ``path`` unless it is a COG stac-coh wrote (band ``coherence`` ...)."""
    if not path.exists():
        return
    if path.is_dir():
        raise StorageError(f"Cannot write {path}: it is a folder; give a file name.")
    try:
        import rasterio

        with rasterio.open(path) as ds:
            ours = ds.count == 1 and ds.descriptions[0] in COG_BANDS
    except Exception:  # not a raster GDAL can open: certainly not ours
        ours = False
    if not ours:
        raise InputError(
            f"{option} replaces only rasters stac-coh wrote, and {path} is not one (not a "
            "one-band coherence/uncertainty GeoTIFF). Move it away yourself, or choose "
            "another output name."
        )


def check_replaceable_manifest(path: Path, *, option: str = "--json") -> None:
    """Refuse to replace an existing local file that is not a stac-coh manifest."""
    if not path.exists():
        return
    if path.is_dir():
        raise StorageError(f"Cannot write {path}: it is a folder; give a file name ({option}).")
    try:
        with path.open("rb") as source:
            head = source.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return  # the write will say what is wrong
    if '"stac-coh/manifest/' not in head:
        raise InputError(
            f"{option} {path} exists and is not a stac-coh manifest; stac-coh replaces only "
            "its own manifests. Choose another name, or move the file away yourself."
        )


def _marker_kind(marker: Path) -> str | None:
    """What a marker says it belongs to (``None`` without a readable marker)."""
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("kind")) if isinstance(data, dict) else None
