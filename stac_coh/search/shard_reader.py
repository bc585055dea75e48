"""Reading a sharded manifest (:mod:`stac_coh.search.shards`) by byte range, on demand.

A reader takes units by index: two ranged reads of the index give the byte range of a
block of units, one ranged read gets them, and the items they name are read (ranges that
lie close are merged) when asked for. :func:`open_sharded_manifest` wraps this as a
:class:`~stac_coh.search.manifest.Manifest` whose ``pairs`` and ``items`` read on demand,
so ``manifest.pairs[i]`` works as for a whole manifest, and a child's memory depends on
its share, not on the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from stac_coh.errors import InputError, StorageError
from stac_coh.search.manifest import Manifest, Pair, SourceSpec
from stac_coh.search.shards import OFFSET

__all__ = ["BLOCK_UNITS", "ShardedItems", "ShardedUnits", "open_sharded_manifest"]

BLOCK_UNITS = 32
"""Units read per ranged request (a child's share is usually within one or two blocks)."""

_MERGE_GAP = 256 * 1024
"""Item ranges closer than this are read in one request."""


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
        offsets = [OFFSET.unpack_from(raw, 8 * k)[0] for k in range(last - first + 1)]
        body = self._reader.read(self._names["units"], offsets[0], offsets[-1] - offsets[0])
        from pydantic import ValidationError

        out = []
        for line in body.splitlines():
            record = json.loads(line)
            ranges = record.pop("item_ranges", {})
            if remember_items:
                self.items.register(ranges)
            try:
                out.append(Pair.from_dict(record))
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
