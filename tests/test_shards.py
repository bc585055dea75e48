"""Sharded manifests: a child reads only its share, by byte range; the JSON edge (pydantic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stac_coh.errors import ConflictError, InputError
from stac_coh.io.storage import open_store
from stac_coh.search import shard_reader
from stac_coh.search.manifest import Manifest, Pair
from stac_coh.search.manifest_io import read_manifest
from stac_coh.search.manifest_models import manifest_json_schema
from stac_coh.search.shards import SHARDED_SCHEMA_VERSION, unit_record, write_sharded_manifest
from tests.fake_manifest import fake_manifest

SCHEMA = Path(__file__).parents[1] / "stac_coh" / "schemas" / "manifest-v2.json"


def items_of(manifest: Manifest) -> dict[str, dict]:
    return {
        i: {"type": "Feature", "id": i, "pad": "x" * 500}
        for p in manifest.pairs
        for i in p.item_ids
    }


def write(tmp_path: Path, manifest: Manifest) -> Path:
    store = open_store(tmp_path / "run")
    write_sharded_manifest(
        store,
        "manifest.json",
        source=manifest.source,
        query=manifest.query,
        units=manifest.pairs,
        items=items_of(manifest),
    )
    return tmp_path / "run" / "manifest.json"


def test_a_sharded_manifest_reads_back_unit_by_unit(tmp_path: Path) -> None:
    manifest = fake_manifest(100)
    head = write(tmp_path, manifest)
    assert json.loads(head.read_text())["schema_version"] == SHARDED_SCHEMA_VERSION
    assert head.stat().st_size < 2000  # the head does not grow with the run
    back = read_manifest(head)
    assert len(back.pairs) == 100
    assert back.pairs[77] == manifest.pairs[77] and back.pairs[-1] == manifest.pairs[-1]
    assert list(back.pairs) == list(manifest.pairs)
    assert back.source == manifest.source and back.query == manifest.query


def test_a_child_reads_only_its_units_and_their_items(tmp_path: Path, monkeypatch) -> None:
    manifest = fake_manifest(400)
    head = write(tmp_path, manifest)
    total = sum(f.stat().st_size for f in head.parent.iterdir())
    reads: list[int] = []
    original = shard_reader._RangeReader.read

    def counting(self, name: str, offset: int, length: int) -> bytes:
        reads.append(length)
        return original(self, name, offset, length)

    monkeypatch.setattr(shard_reader._RangeReader, "read", counting)
    back = read_manifest(head)
    share = [back.pairs[i] for i in range(200, 204)]  # child 50 at 4 units per child
    items = {i: back.items[i] for unit in share for i in unit.item_ids}
    assert share == list(manifest.pairs[200:204])
    assert set(items) == {i for p in manifest.pairs[200:204] for i in p.item_ids}
    assert sum(reads) < total / 10  # a block of units and its items, not the run
    assert set(back.items) >= set(items) and "ref-0" not in back.items


def test_unit_records_are_what_the_json_edge_writes(tmp_path: Path) -> None:
    from tests.publishing import make_pair

    for pair in [*fake_manifest(3).pairs, make_pair(4)]:
        assert unit_record(pair) == pair.to_dict()
        assert Pair.from_dict(unit_record(pair)) == pair


def test_an_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    manifest = fake_manifest(3)
    write(tmp_path, manifest)
    with pytest.raises(ConflictError, match="exists already"):
        write(tmp_path, manifest)


def test_a_truncated_units_file_is_an_input_error(tmp_path: Path) -> None:
    head = write(tmp_path, fake_manifest(10))
    (units,) = head.parent.glob("*.units.ndjson")
    units.write_bytes(units.read_bytes()[:-50])
    with pytest.raises(InputError, match="truncated"):
        read_manifest(head).pairs[9]


def test_invalid_manifests_name_the_field(tmp_path: Path) -> None:
    data = json.loads(fake_manifest(2).to_json())
    data["pairs"][1]["reference"]["orbit_state"] = "sideways"
    with pytest.raises(InputError, match="pairs/1/reference/orbit_state"):
        Manifest.from_dict(data)
    data["schema_version"] = "stac-coh/manifest/9"
    with pytest.raises(InputError, match="schema_version"):
        Manifest.from_dict(data)


def test_version_1_manifests_are_still_read() -> None:
    data = json.loads(fake_manifest(2).to_json())
    data["schema_version"] = "stac-coh/manifest/1"
    for pair in data["pairs"]:
        del pair["tile"]
    assert [p.tile for p in Manifest.from_dict(data).pairs] == [None, None]


def test_the_shipped_json_schema_is_the_models_schema() -> None:
    assert json.loads(SCHEMA.read_text()) == manifest_json_schema()
