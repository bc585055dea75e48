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

A reader takes units by index: two ranged reads of the index give the byte range of a
block of units, one ranged read gets them, and the items they name are read (ranges that
lie close are merged) when asked for. :func:`open_sharded_manifest` wraps this as a
:class:`~stac_coh.search.manifest.Manifest` whose ``pairs`` and ``items`` read on demand,
so ``manifest.pairs[i]`` works as for a whole manifest, and a child's memory depends on
its share, not on the run.
"""

from __future__ import annotations

import json
import secrets
import struct
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from stac_coh.errors import ConflictError, InputError, StorageError
from stac_coh.search.manifest import Manifest, Pair, SourceSpec
from stac_coh.search.manifest_models import PairModel

__all__ = [
    "SHARDED_SCHEMA_VERSION",
    "ShardedManifestInfo",
    "is_sharded_head",
    "open_sharded_manifest",
    "write_sharded_manifest",
]

SHARDED_SCHEMA_VERSION = "stac-coh/manifest-shards/1"
"""Version of the head and of the files beside it."""

BLOCK_UNITS = 32
"""Units read per ranged request (a child's share is usually within one or two blocks)."""

_MERGE_GAP = 256 * 1024
"""Item ranges closer than this are read in one request."""

_OFFSET = struct.Struct("<Q")


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
            index_out.write(_OFFSET.pack(units_out.tell()))
            units_out.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
            n += 1
        index_out.write(_OFFSET.pack(units_out.tell()))
    return n, len(written)


def unit_record(unit: Pair) -> dict[str, Any]:
    """The JSON form of a unit, as ``PairModel.of(unit).model_dump(mode="json")`` gives it,
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


def open_sharded_manifest(uri: str, head: Mapping[str, Any], *, s3_client: Any = None) -> Manifest:
    """A manifest over the sharded one whose head (already parsed) is at ``uri``."""
    try:
        names = {k: str(head["files"][k]) for k in ("units", "index", "items")}
        count = int(head["units"])
        source = SourceSpec.from_dict(head["source"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"The manifest head {uri} is incomplete: {exc}.") from None
    folder = str(uri).rpartition("/")[0]
    reader = _RangeReader(folder, s3_client)
    units = ShardedUnits(reader, names, count)
    return Manifest(
        source=source,
        query=dict(head.get("query") or {}),
        pairs=units,
        items=units.items,
        created=str(head.get("created", "")),
        software=str(head.get("software", "")),
    )


class ShardedUnits(Sequence[Pair]):
    """Work units read by index on demand, a block at a time (only the last block kept)."""

    def __init__(self, reader: _RangeReader, names: Mapping[str, str], count: int) -> None:
        self._reader = reader
        self._names = dict(names)
        self._count = count
        self._block: tuple[int, list[Pair]] = (-1, [])
        self.items = ShardedItems(reader, names["items"])
        """Items of the units read so far."""

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Pair: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Pair]: ...

    def __getitem__(self, index: int | slice) -> Pair | Sequence[Pair]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"work unit {index} of {self._count}")
        block = index // BLOCK_UNITS
        if self._block[0] != block:
            self._block = (block, self._read_block(block))
        return self._block[1][index - block * BLOCK_UNITS]

    def __iter__(self) -> Iterator[Pair]:
        for block in range((self._count + BLOCK_UNITS - 1) // BLOCK_UNITS):
            yield from self._read_block(block, remember_items=False)

    def _read_block(self, block: int, remember_items: bool = True) -> list[Pair]:
        """Units ``[block * B, (block + 1) * B)``: two index reads, one units read."""
        first = block * BLOCK_UNITS
        last = min(first + BLOCK_UNITS, self._count)
        raw = self._reader.read(self._names["index"], first * 8, (last - first + 1) * 8)
        offsets = [_OFFSET.unpack_from(raw, 8 * k)[0] for k in range(last - first + 1)]
        body = self._reader.read(self._names["units"], offsets[0], offsets[-1] - offsets[0])
        from pydantic import ValidationError

        out = []
        for line in body.splitlines():
            record = json.loads(line)
            ranges = record.pop("item_ranges", {})
            if remember_items:
                self.items.register(ranges)
            try:
                out.append(PairModel.model_validate(record).contract())
            except ValidationError as exc:
                raise InputError(
                    f"Work unit {record.get('id')!r} of the sharded manifest is invalid: "
                    f"{exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}; submit again."
                ) from None
        if len(out) != last - first:
            raise InputError(
                f"The sharded manifest's units file holds {len(out)} units where its index "
                f"says {last - first}; submit the run again."
            )
        return out


class ShardedItems(Mapping[str, dict[str, Any]]):
    """Items of the units read so far, each read (with its neighbours) when first asked."""

    def __init__(self, reader: _RangeReader, name: str) -> None:
        self._reader = reader
        self._name = name
        self._ranges: dict[str, tuple[int, int]] = {}
        self._cache: dict[str, dict[str, Any]] = {}

    def register(self, ranges: Mapping[str, Sequence[int]]) -> None:
        """Make the items of a unit known (their byte ranges in the items file)."""
        for item_id, (offset, length) in ranges.items():
            self._ranges[item_id] = (int(offset), int(length))

    def __getitem__(self, item_id: str) -> dict[str, Any]:
        if item_id not in self._cache:
            if item_id not in self._ranges:
                raise KeyError(item_id)
            self._load([k for k in self._ranges if k not in self._cache])
        return self._cache[item_id]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ranges

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ranges))

    def __len__(self) -> int:
        return len(self._ranges)

    def _load(self, ids: list[str]) -> None:
        """Read the items ``ids`` in as few ranged requests as their layout allows."""
        spans = sorted((self._ranges[i], i) for i in ids)
        group: list[tuple[tuple[int, int], str]] = []
        for span in spans:
            if group and span[0][0] - (group[-1][0][0] + group[-1][0][1]) > _MERGE_GAP:
                self._load_group(group)
                group = []
            group.append(span)
        if group:
            self._load_group(group)

    def _load_group(self, group: list[tuple[tuple[int, int], str]]) -> None:
        """One ranged read covering ``group``; parse each item from it."""
        start = group[0][0][0]
        end = max(offset + length for (offset, length), _ in group)
        body = self._reader.read(self._name, start, end - start)
        for (offset, length), item_id in group:
            self._cache[item_id] = json.loads(body[offset - start : offset - start + length])


class _RangeReader:
    """Byte ranges of files beside the head: a local folder or an S3 prefix."""

    def __init__(self, folder: str, s3_client: Any = None) -> None:
        self.folder = folder
        self._client = s3_client

    def read(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes of ``name`` from ``offset`` (0 bytes: empty)."""
        if length <= 0:
            return b""
        if not self.folder.startswith("s3://"):
            path = Path(self.folder) / name
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read(length)
            except FileNotFoundError:
                raise InputError(f"{path} is missing: the manifest is incomplete.") from None
        else:
            data = self._read_s3(name, offset, length)
        if len(data) != length:
            raise InputError(
                f"{self.folder}/{name} ends before byte {offset + length}: the manifest is "
                "truncated; submit the run again."
            )
        return data

    def _read_s3(self, name: str, offset: int, length: int) -> bytes:
        """A ranged GET; missing objects are input errors, the rest may be retried."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, _, prefix = self.folder.removeprefix("s3://").partition("/")
        key = f"{prefix}/{name}" if prefix else name
        if self._client is None:
            import boto3

            self._client = boto3.session.Session().client("s3")
        try:
            answer = self._client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}"
            )
            return bytes(answer["Body"].read())
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NoSuchBucket"):
                raise InputError(
                    f"s3://{bucket}/{key} is missing: the manifest is incomplete."
                ) from None
            raise StorageError(f"Reading s3://{bucket}/{key} failed: {code or exc}.") from None
        except BotoCoreError as exc:
            raise StorageError(
                f"Reading s3://{bucket}/{key} failed: {type(exc).__name__}."
            ) from None


def _stem(key: str) -> str:
    """File name of ``key`` without its extension."""
    return key.rpartition("/")[2].rsplit(".", 1)[0]
