"""Sharded manifests: a child of a Batch array job reads only its share.

A run of a million work units has a manifest of gigabytes; every child reading all of it
costs each child its download and its memory. A sharded manifest is four objects side by
side (``runs/<run_id>/`` on S3, or a folder):

- ``manifest.json``, the head: source, query, counts and the names of the three others
  (a few kB, whatever the run's size);
- ``manifest-<tag>.units.ndjson``: one work unit per line (a version 2 pair) with the byte
  range of each item it reads in the items file;
- ``manifest-<tag>.units.idx``: little-endian uint64 byte offsets of every unit line, plus
  the file's end;
- ``manifest-<tag>.items.ndjson``: each STAC item the run uses, once, one per line.

This module writes them; :mod:`stac_coh.search.shard_reader` reads them: a child takes
units by index with ranged reads, so its memory depends on its share, not on the run.
"""

from __future__ import annotations

import json
import secrets
import struct
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stac_coh.errors import ConflictError
from stac_coh.search.manifest import Pair, SourceSpec

__all__ = [
    "OFFSET",
    "SHARDED_SCHEMA_VERSION",
    "ShardedManifestInfo",
    "is_sharded_head",
    "unit_record",
    "write_sharded_manifest",
]

SHARDED_SCHEMA_VERSION = "stac-coh/manifest-shards/1"
"""Version of the head and of the files beside it."""

OFFSET = struct.Struct("<Q")
"""One entry of the units index: a little-endian uint64 byte offset."""


def is_sharded_head(data: Any) -> bool:
    """Whether parsed JSON is the head of a sharded manifest."""
    return isinstance(data, dict) and data.get("schema_version") == SHARDED_SCHEMA_VERSION


@dataclass(frozen=True)
class ShardedManifestInfo:
    """What :func:`write_sharded_manifest` wrote."""

    uri: str
    """The head's URI (what workers get as ``STAC_COH_MANIFEST``)."""
    units: int
    """Work units."""
    items: int
    """Distinct items."""
    bytes: int
    """Bytes of the three data files."""


def write_sharded_manifest(
    store: Any,
    key: str,
    *,
    source: SourceSpec,
    query: Mapping[str, Any],
    units: Iterable[Pair],
    items: Mapping[str, Mapping[str, Any]],
    created: str = "",
    software: str = "",
) -> ShardedManifestInfo:
    """Stream ``units`` into a sharded manifest whose head is at ``key`` in ``store``.

    Memory holds one unit at a time plus the byte range of each item written. The data
    files go up first, under names no other run uses, and the head last, create-only: a
    head that exists means the run exists (:class:`~stac_coh.errors.ConflictError`).

    Args:
        store: The store (:func:`stac_coh.io.storage.open_store`) the manifest goes into.
        key: Key of the head, e.g. ``runs/<run_id>/manifest.json``.
        source: Where the items' assets are read from.
        query: The search, for provenance.
        units: Work units in the order children take them.
        items: Item id -> item JSON for every item the units read.
        created: RFC 3339 creation time.
        software: ``stac-coh <version>``.

    Raises:
        ConflictError: a manifest already exists at ``key`` (nothing is written).
    """
    head_key = key
    if store.exists(head_key):
        raise ConflictError(
            f"{store.url_for(head_key)} exists already: that run was submitted; use a new run id."
        )
    tag = secrets.token_hex(4)
    names = {
        "units": f"{_stem(head_key)}-{tag}.units.ndjson",
        "index": f"{_stem(head_key)}-{tag}.units.idx",
        "items": f"{_stem(head_key)}-{tag}.items.ndjson",
    }
    with tempfile.TemporaryDirectory(prefix="stac-coh-manifest-") as tmp:
        paths = {k: Path(tmp) / Path(v).name for k, v in names.items()}
        n_units, n_items = _write_files(paths, units, items)
        size = sum(p.stat().st_size for p in paths.values())
        folder = head_key.rpartition("/")[0]
        for kind, path in paths.items():
            data_key = f"{folder}/{names[kind]}" if folder else names[kind]
            store.put_file(data_key, path, content_type="application/octet-stream")
    head = {
        "schema_version": SHARDED_SCHEMA_VERSION,
        "created": created,
        "software": software,
        "query": dict(query),
        "source": source.to_dict(),
        "units": n_units,
        "items": n_items,
        "files": names,
    }
    store.put_new(head_key, json.dumps(head, indent=1).encode(), content_type="application/json")
    return ShardedManifestInfo(store.url_for(head_key), n_units, n_items, size)


def _write_files(
    paths: Mapping[str, Path], units: Iterable[Pair], items: Mapping[str, Mapping[str, Any]]
) -> tuple[int, int]:
    """Write units, index and items; return (units, items)."""
    written: dict[str, tuple[int, int]] = {}
    n = 0
    with (
        paths["units"].open("wb") as units_out,
        paths["index"].open("wb") as index_out,
        paths["items"].open("wb") as items_out,
    ):
        for unit in units:
            ranges = {}
            for item_id in unit.item_ids:
                if item_id not in written:
                    if item_id not in items:
                        continue  # as in a whole manifest: the loader names it if read
                    line = json.dumps(items[item_id], separators=(",", ":")).encode() + b"\n"
                    written[item_id] = (items_out.tell(), len(line) - 1)
                    items_out.write(line)
                ranges[item_id] = list(written[item_id])
            record = unit_record(unit)
            record["item_ranges"] = ranges
            index_out.write(OFFSET.pack(units_out.tell()))
            units_out.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
            n += 1
        index_out.write(OFFSET.pack(units_out.tell()))
    return n, len(written)


def unit_record(unit: Pair) -> dict[str, Any]:
    """The JSON form of a unit, as ``unit.to_dict()`` gives it,
    built directly: a million units are written at submit (a test keeps the two equal)."""
    grid = unit.grid
    left, bottom, right, top = grid.bounds
    return {
        "id": unit.id,
        "reference": _acquisition_record(unit.reference),
        "secondary": _acquisition_record(unit.secondary),
        "polarization": unit.polarization,
        "baseline_days": unit.baseline_days,
        "aoi": unit.aoi,
        "grid": {
            "crs": grid.crs,
            "transform": list(grid.transform),
            "width": grid.width,
            "height": grid.height,
            "resolution": list(grid.resolution),
            "bounds": [left, bottom, right, top],
        },
        "coverage": unit.coverage,
        "tile": unit.tile,
    }


def _acquisition_record(acq: Any) -> dict[str, Any]:
    """JSON form of an acquisition (see :func:`unit_record`)."""
    return {
        "platform": acq.platform,
        "datetime": acq.datetime.isoformat().replace("+00:00", "Z"),
        "item_ids": list(acq.item_ids),
        "relative_orbit": acq.relative_orbit,
        "orbit_state": acq.orbit_state,
        "instrument_mode": acq.instrument_mode,
        "absolute_orbit": acq.absolute_orbit,
        "datatake_id": acq.datatake_id,
    }


def _stem(key: str) -> str:
    """File name of ``key`` without its extension."""
    return key.rpartition("/")[2].rsplit(".", 1)[0]
