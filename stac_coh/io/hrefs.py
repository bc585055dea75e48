"""Local paths in written JSON are relative to the file that holds them, never absolute.

A manifest of a local catalog names the catalog's folder and every item's files. Written
as absolute paths they leak the machine's layout (home directories, temp folders) into a
published tree and break when the folders move together. :func:`portable_hrefs` rewrites
them relative to where the JSON is written; :func:`resolved_hrefs` turns them back into
absolute paths when it is read, so readers (GDAL, odc-stac) always see absolute ones.
URLs (``https://``, ``s3://``) are left alone; so are JSONs that go to S3 or standard
output, whose readers share no folder with the local files.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["portable_hrefs", "relative_to_root", "resolved_hrefs"]

Document = dict[str, Any]


def portable_hrefs(document: Document, location: str | Path) -> Document:
    """A copy of a manifest-shaped ``document`` with absolute local paths made relative.

    Args:
        document: ``{"source": {"url"}, "items": {id: item}}`` (other keys are kept).
        location: where the document will be written; only a local file path changes
            anything.
    """
    base = _local_folder(location)
    if base is None:
        return document

    def relative(href: str) -> str:
        path = _absolute_local(href)
        return Path(os.path.relpath(path, base)).as_posix() if path is not None else href

    return _map_hrefs(document, relative)


def resolved_hrefs(document: Document, location: str | Path) -> Document:
    """A copy of ``document`` with relative local paths made absolute against ``location``."""
    base = _local_folder(location)
    if base is None:
        return document

    def absolute(href: str) -> str:
        if not href or "://" in href or Path(href).is_absolute() or href.startswith("/vsi"):
            return href
        return os.path.normpath(base / href)

    return _map_hrefs(document, absolute)


def relative_to_root(href: str, root: str) -> str:
    """``href`` relative to a catalog ``root`` when it lies under it, else unchanged."""
    prefix = root.rstrip("/") + "/"
    text = str(href).removeprefix("file://")
    return text[len(prefix) :] if text.startswith(prefix) else href


def _map_hrefs(document: Document, change: Callable[[str], str]) -> Document:
    """Apply ``change`` to the source URL and every asset and link href of every item."""
    if not isinstance(document, dict):
        return document  # not a manifest: its reader says so
    out = copy.deepcopy(document)
    source = out.get("source")
    if isinstance(source, dict) and isinstance(source.get("url"), str):
        source["url"] = change(source["url"])
    items = out.get("items")
    for item in items.values() if isinstance(items, dict) else ():
        if not isinstance(item, dict):
            continue
        for asset in (item.get("assets") or {}).values():
            if isinstance(asset, dict) and isinstance(asset.get("href"), str):
                asset["href"] = change(asset["href"])
        for link in item.get("links") or []:
            if isinstance(link, dict) and isinstance(link.get("href"), str):
                link["href"] = change(link["href"])
    return out


def _local_folder(location: str | Path) -> Path | None:
    """Absolute folder of a local file ``location``; ``None`` for URLs and ``-``."""
    text = str(location)
    if text == "-" or ("://" in text and not text.startswith("file://")) or text.startswith("s3:/"):
        return None
    return Path(os.path.abspath(Path(text.removeprefix("file://")).expanduser())).parent


def _absolute_local(href: str) -> Path | None:
    """The path of an absolute local href (``/a/b`` or ``file:///a/b``), else ``None``."""
    text = href.removeprefix("file://")
    if "://" in text or text.startswith("/vsi") or not Path(text).is_absolute():
        return None
    return Path(text)
