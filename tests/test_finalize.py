"""finalize: the collection rebuilt from the items in the store, run reports, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stac_coh.cli import app
from stac_coh.errors import InputError
from stac_coh.io.storage import Store, open_store
from stac_coh.io.storage.base import JSON_CHUNK
from stac_coh.pipeline.records import record_outcome
from stac_coh.pipeline.report import RUN_REPORT_FORMAT, STATUSES, OutcomeTable, report_head
from stac_coh.pipeline.run import finish_run
from stac_coh.pipeline.runner import PairOutcome
from stac_coh.publish.collection import asset_key, collection_key
from stac_coh.publish.finalize import finalize
from stac_coh.publish.pair import PublishResult, publish_pair
from tests.fake_manifest import fake_manifest
from tests.publishing import (
    input_items,
    listed_item_hrefs,
    make_pair,
    model_card,
    write_pair_rasters,
)
from tests.stac_validation import assert_valid

COLLECTION = "sentinel-1-coherence"


def publish_unregistered(store: Store, tmp_path: Path, n: int = 3) -> list[PublishResult]:
    """Publish ``n`` pairs without touching the collection (as a finalize-only run does)."""
    results = []
    for index in range(n):
        pair = make_pair(index)
        coh, unc, _ = write_pair_rasters(tmp_path / "in", pair, seed=index)
        results.append(
            publish_pair(
                pair,
                coh,
                unc,
                store,
                model_card=model_card(),
                manifest_items=input_items(pair),
                update_collection=False,
            )
        )
    return results


def run_report(run_id: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A small run report in memory, as a runner hands it to ``finalize --report``."""
    pairs = sorted(entries, key=lambda e: str(e["pair_id"]))
    counts = dict.fromkeys(STATUSES, 0)
    for e in pairs:
        counts[e["status"]] += 1
    return {**report_head(run_id), "counts": counts, "pairs": pairs}


def entry(result: PublishResult, seconds: float = 0.0) -> dict[str, Any]:
    """The run-report entry a run records for a published pair."""
    outcome = PairOutcome(result.pair_id, result.status, seconds, f"{COLLECTION}/x.json")
    return outcome.to_entry()


def failure(pair_id: str, error: str) -> dict[str, Any]:
    """The run-report entry of a failed pair."""
    return PairOutcome(pair_id, "failed", 0.0, error=error).to_entry()


def load(store: Store, key: str) -> dict[str, Any]:
    return json.loads(store.get(key).data)


def item_hrefs(store: Store) -> list[str]:
    """Items listed through the collection's tile sub-catalogs."""
    return sorted(listed_item_hrefs(store, COLLECTION))


def test_finalize_builds_the_collection_from_items(store: Store, tmp_path: Path) -> None:
    results = publish_unregistered(store, tmp_path)
    assert not store.exists(collection_key(COLLECTION))
    result = finalize(store)
    assert result.items == 3
    collection = load(store, collection_key(COLLECTION))
    assert_valid(collection)
    assert item_hrefs(store) == sorted(f"./{r.pair_id}/{r.pair_id}.json" for r in results)
    assert not [link for link in collection["links"] if link["rel"] == "item"]
    assert [link["href"] for link in collection["links"] if link["rel"] == "child"] == [
        "./tiles/31S/catalog.json"
    ]
    for key in store.list(f"{COLLECTION}/tiles/"):
        assert_valid(load(store, key))  # group, tile and year catalogs
    west, south, east, north = result.bbox or []
    for r in results:
        w, s, e, n = r.item["bbox"]
        assert west <= w and south <= s and east >= e and north >= n
    assert result.interval == ["2024-04-01T05:58:01Z", "2024-04-15T05:58:01Z"]
    catalog = load(store, "catalog.json")
    assert_valid(catalog)
    rels = [(link["rel"], link["href"]) for link in catalog["links"]]
    assert ("child", f"./{COLLECTION}/collection.json") in rels
    assert any(rel == "item" and href.startswith("./models/") for rel, href in rels)
    again = finalize(store)  # idempotent
    assert again.items == 3
    assert item_hrefs(store) == sorted(f"./{r.pair_id}/{r.pair_id}.json" for r in results)


def test_finalize_repairs_a_damaged_collection(tmp_path: Path) -> None:
    store = open_store(tmp_path / "catalog")
    results = publish_unregistered(store, tmp_path)
    finalize(store)
    year = f"{COLLECTION}/tiles/31S/31SDV/2024/catalog.json"
    listing = load(store, year)
    listing["links"] = [link for link in listing["links"] if results[0].pair_id not in link["href"]]
    listing["links"].append({"rel": "item", "href": "../../../../ghost/ghost.json"})
    listing["links"].append(dict(listing["links"][-2]))  # a duplicate
    store.put(year, json.dumps(listing).encode())
    damaged = load(store, collection_key(COLLECTION))
    damaged["links"].append({"rel": "child", "href": "./tiles/99X/catalog.json"})
    damaged["extent"]["spatial"]["bbox"] = [[0.0, 0.0, 0.1, 0.1]]
    store.put(collection_key(COLLECTION), json.dumps(damaged).encode())
    finalize(store)
    repaired = load(store, collection_key(COLLECTION))
    assert item_hrefs(store) == sorted(f"./{r.pair_id}/{r.pair_id}.json" for r in results)
    assert repaired["extent"]["spatial"]["bbox"][0][0] == pytest.approx(3.0, abs=1e-6)
    assert_valid(repaired)


def test_finalize_of_an_empty_store_gives_a_valid_empty_collection(tmp_path: Path) -> None:
    store = open_store(tmp_path / "empty")
    result = finalize(store)
    assert (result.items, result.bbox) == (0, None)
    collection = load(store, collection_key(COLLECTION))
    assert_valid(collection)
    assert item_hrefs(store) == []


def test_finalize_writes_the_run_report(store: Store, tmp_path: Path) -> None:
    results = publish_unregistered(store, tmp_path, n=2)
    entries = [entry(r, seconds=1.5) for r in results]
    entries.append(failure("S1A_R051D_X", "RuntimeError: corrupt raster x.tif"))
    report = run_report("run-42", entries)
    assert report["counts"] == {"published": 2, "skipped": 0, "failed": 1}
    end = finish_run(store, report=report)
    assert end.report_href == store.href_for("reports/run-42.json")
    stored = load(store, "reports/run-42.json")
    assert stored["format"] == RUN_REPORT_FORMAT
    assert stored["catalog"]["items"] == 2
    assert stored["catalog"]["collection_id"] == COLLECTION
    # relative to the report, so the catalog can move and no machine path leaks
    assert stored["catalog"]["collection_href"] == f"../{COLLECTION}/collection.json"
    failed = next(p for p in stored["pairs"] if p["pair_id"] == "S1A_R051D_X")
    assert failed["status"] == "failed"
    assert failed["error"] == "RuntimeError: corrupt raster x.tif"
    with pytest.raises(InputError):
        finish_run(store, report={"run_id": "../escape"})


def test_cli_finalize_rebuilds_and_prints_json(tmp_path: Path) -> None:
    store = open_store(tmp_path / "catalog")
    publish_unregistered(store, tmp_path, n=2)
    (tmp_path / "run.json").write_text(json.dumps(run_report("r1", [])))
    answer = CliRunner().invoke(
        app,
        ["finalize", str(tmp_path / "catalog"), "--json", "--report", str(tmp_path / "run.json")],
    )
    assert answer.exit_code == 0, answer.output
    printed = json.loads(answer.output)
    assert printed["items"] == 2
    assert printed["report_href"].endswith("reports/r1.json")
    assert store.exists("reports/r1.json")


def test_cli_finalize_help_teaches() -> None:
    answer = CliRunner().invoke(app, ["finalize", "--help"])
    assert answer.exit_code == 0
    for word in ("Examples", "s3://", "--stac-api", "--report"):
        assert word in answer.output


def test_cli_finalize_bad_input_is_one_line_error(tmp_path: Path) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "stac_coh", "finalize", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert answer.returncode == InputError.exit_code
    assert "Traceback" not in answer.stderr
    assert "is not a directory" in answer.stderr


def test_finalize_points_self_links_at_the_public_url(tmp_path: Path) -> None:
    publish_unregistered(open_store(tmp_path / "catalog"), tmp_path, n=1)
    public = open_store(tmp_path / "catalog", public_base_url="https://data.example.org/coh")
    finalize(public)
    for key in ("catalog.json", collection_key(COLLECTION)):
        selfs = [link["href"] for link in load(public, key)["links"] if link["rel"] == "self"]
        assert selfs == [f"https://data.example.org/coh/{key}"]


def test_finalize_gathers_outcomes_recorded_by_workers(tmp_path: Path) -> None:
    store = open_store(tmp_path / "catalog")
    results = publish_unregistered(store, tmp_path, n=2)
    for r in results:
        record_outcome(store, "batch-7", entry(r))
    record_outcome(store, "batch-7", failure("S1A_BAD", "RasterReadError: x"))
    answer = CliRunner().invoke(app, ["finalize", str(tmp_path / "catalog"), "--run-id", "batch-7"])
    assert answer.exit_code == 0, answer.output
    stored = load(store, "reports/batch-7.json")
    assert stored["counts"] == {"published": 2, "skipped": 0, "failed": 1}
    assert {p["pair_id"] for p in stored["pairs"]} == {r.pair_id for r in results} | {"S1A_BAD"}
    assert stored["catalog"]["items"] == 2
    assert "batch-7/pairs/" not in json.dumps(load(store, collection_key(COLLECTION)))


def test_run_report_of_more_outcomes_than_one_read_chunk(store: Store, tmp_path: Path) -> None:
    results = publish_unregistered(store, tmp_path, n=1)
    record_outcome(store, "big-1", entry(results[0]))
    ids = [f"S1A_R{k % 7:03d}_{k:04d}" for k in range(JSON_CHUNK + 40)]
    for k, pair_id in enumerate(ids):
        done = failure(pair_id, f"RasterReadError: {k}.tif") if k % 9 == 0 else None
        record_outcome(store, "big-1", done or {"pair_id": pair_id, "status": "published"})
    end = finish_run(store, run_id="big-1")
    assert end.report is not None and "pairs" not in end.report  # the pairs stay on disk
    stored = load(store, "reports/big-1.json")  # one JSON document, streamed out
    every = sorted([*ids, results[0].pair_id])
    assert [p["pair_id"] for p in stored["pairs"]] == every
    failed = sum(1 for k in range(len(ids)) if k % 9 == 0)
    expected = {"published": len(every) - failed, "skipped": 0, "failed": failed}
    assert stored["counts"] == end.report["counts"] == expected
    assert stored["catalog"]["items"] == 1
    assert stored["pairs"][every.index(ids[9])]["error"] == "RasterReadError: 9.tif"


def test_finish_run_removes_only_the_orphans_of_its_manifest(tmp_path: Path) -> None:
    store = open_store(tmp_path / "catalog")
    mine, other = fake_manifest(3).pairs[:2], fake_manifest(3).pairs[2]
    manifest = replace(fake_manifest(3), pairs=tuple(mine))
    record_outcome(store, "run-o", failure(mine[0].id, "RasterReadError: x"))  # mine[1]: none
    for pair in (*mine, other):  # assets of killed publishers: no item
        store.put(asset_key(COLLECTION, pair.id, "coherence"), b"cog")
    end = finish_run(store, run_id="run-o", manifest=manifest, remove_orphans=True)
    assert end.catalog.orphans is not None and end.catalog.orphans.removed == 2
    assert store.exists(asset_key(COLLECTION, other.id, "coherence"))  # another run's
    assert not any(store.exists(asset_key(COLLECTION, p.id, "coherence")) for p in mine)
    stored = load(store, "reports/run-o.json")
    assert {p["pair_id"]: p["status"] for p in stored["pairs"]} == {
        mine[0].id: "failed",
        mine[1].id: "missing",
    }
    assert stored["manifest_pairs"] == 2


def test_manifest_pairs_without_an_outcome_are_skipped_or_missing_over_many_chunks(
    store: Store, tmp_path: Path
) -> None:
    # A run whose children all died: every pair is looked up, more than one chunk of them.
    published = publish_unregistered(store, tmp_path, n=3)
    record_outcome(store, "run-m", entry(published[2]))
    unrun = fake_manifest(JSON_CHUNK + 40).pairs
    twice = (unrun[3], unrun[7])  # listed again in the same chunk and in a later one
    pairs = (*unrun[:5], twice[0], make_pair(0), *unrun[5:], make_pair(1), make_pair(2), twice[1])
    finish_run(store, run_id="run-m", manifest=replace(fake_manifest(1), pairs=pairs))
    stored = load(store, "reports/run-m.json")
    statuses = {p["pair_id"]: p["status"] for p in stored["pairs"]}
    assert len(stored["pairs"]) == len(statuses) == len(unrun) + 3  # each pair once
    assert statuses[published[0].pair_id] == statuses[published[1].pair_id] == "skipped"
    assert statuses[published[2].pair_id] == "published"
    assert {statuses[p.id] for p in unrun} == {"missing"}
    assert stored["manifest_pairs"] == len(pairs)


def test_outcome_table_reads_back_in_python_string_order() -> None:
    ids = ["b", "a-b", "a_b", "B", "\u00e9t\u00e9", "a", "a.b", "Z9", "a"]
    with OutcomeTable() as table:
        for n, pair_id in enumerate(ids):
            table.add({"pair_id": pair_id, "status": "failed" if n == 2 else "published", "n": n})
        assert [e["pair_id"] for e in table] == sorted(ids)
        assert [e["n"] for e in table if e["pair_id"] == "a"] == [5, 8]  # both kept, in order
        assert "a_b" in table and "c" not in table
        assert table.counts() == {"published": 8, "skipped": 0, "failed": 1}


def test_finalize_exports_every_item_to_stac_geoparquet(tmp_path: Path) -> None:
    import rustac

    store = open_store(tmp_path / "catalog")
    results = publish_unregistered(store, tmp_path, n=3)
    result = finalize(store, geoparquet=True)
    assert result.geoparquet_href == store.href_for(f"{COLLECTION}/items.parquet")
    back = rustac.read_sync(str(tmp_path / "catalog" / COLLECTION / "items.parquet"))
    assert sorted(f["id"] for f in back["features"]) == sorted(r.pair_id for r in results)
    for feature in back["features"]:  # outside the tree, hrefs must stand on their own
        assert all(a["href"].startswith("/") for a in feature["assets"].values())
        assert feature["properties"]["grid:code"] == "MGRS-31SDV"
    collection = load(store, collection_key(COLLECTION))
    assert collection["assets"]["geoparquet"]["href"] == "./items.parquet"
    assert_valid(collection)


@pytest.mark.integration
def test_finalize_bulk_loads_pgstac(pgstac_api: Any, tmp_path: Path) -> None:
    import requests

    store = open_store(tmp_path / "catalog")
    results = publish_unregistered(store, tmp_path, n=3)
    pgstac_api.clear()
    result = finalize(store, pgstac=pgstac_api.dsn)
    assert result.pgstac_items == 3
    answer = requests.get(f"{pgstac_api.url}/collections/{COLLECTION}/items", timeout=30)
    assert answer.status_code == 200, answer.text
    served = answer.json()["features"]
    assert sorted(f["id"] for f in served) == sorted(r.pair_id for r in results)
    assert {f["properties"]["grid:code"] for f in served} == {"MGRS-31SDV"}
    again = finalize(store, pgstac=pgstac_api.dsn)  # upsert: a second load changes nothing
    assert again.pgstac_items == 3
    answer = requests.get(f"{pgstac_api.url}/collections/{COLLECTION}/items", timeout=30)
    assert len(answer.json()["features"]) == 3
    pgstac_api.clear()
