"""Many publishers at once, and publishers killed mid-write: no item lost, none duplicated."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import stac_coh.publish.pair
from stac_coh.io.storage import Store, open_store
from stac_coh.publish.collection import collection_key, item_key
from stac_coh.publish.finalize import finalize
from stac_coh.publish.pair import publish_pair
from stac_coh.publish.raster_info import sha256_multihash
from tests.publishing import (
    input_items,
    listed_item_hrefs,
    make_pair,
    model_card,
    write_pair_rasters,
)
from tests.stac_validation import assert_valid

FORK = multiprocessing.get_context("fork")  # children inherit imports: fast on 2 cores
COLLECTION = "sentinel-1-coherence"
DISTINCT = 12
PUBLISHERS = 16  # 12 distinct pairs + 4 published twice at the same moment


def _inputs(folder: Path, index: int) -> tuple[Path, Path]:
    pair = make_pair(index)
    return folder / f"{pair.id}_coh.tif", folder / f"{pair.id}_unc.tif"


def _publish(url: str, index: int, folder: str, barrier: Any, queue: Any) -> None:
    """One publisher process: wait for the others, then publish pair ``index``."""
    store = open_store(url)  # its own client, built lazily in this process
    pair = make_pair(index)
    coh, unc = _inputs(Path(folder), index)
    barrier.wait(timeout=120)
    result = publish_pair(
        pair, coh, unc, store, model_card=model_card(), manifest_items=input_items(pair)
    )
    queue.put((result.pair_id, result.status, result.registered))


def collection_item_hrefs(store: Store) -> list[str]:
    """Items listed through the collection's tile sub-catalogs (duplicates kept)."""
    if not store.exists(collection_key(COLLECTION)):
        return []
    return listed_item_hrefs(store, COLLECTION)


def assert_extent_covers(store: Store, item_ids: set[str]) -> None:
    collection = json.loads(store.get(collection_key(COLLECTION)).data)
    west, south, east, north = collection["extent"]["spatial"]["bbox"][0]
    start, end = collection["extent"]["temporal"]["interval"][0]
    for item_id in item_ids:
        item = json.loads(store.get(item_key(COLLECTION, item_id)).data)
        w, s, e, n = item["bbox"]
        assert west <= w and south <= s and east >= e and north >= n, item_id
        props = item["properties"]
        assert start <= props["start_datetime"] and end >= props["end_datetime"]


def test_sixteen_parallel_publishers_list_each_item_once(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for index in range(DISTINCT):
        write_pair_rasters(folder, make_pair(index), seed=index)
    indices = list(range(DISTINCT)) + list(range(PUBLISHERS - DISTINCT))
    barrier, queue = FORK.Barrier(PUBLISHERS), FORK.Queue()
    procs = [
        FORK.Process(target=_publish, args=(store.url, i, str(folder), barrier, queue))
        for i in indices
    ]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(60)
    assert [p.exitcode for p in procs] == [0] * PUBLISHERS
    ids = {make_pair(i).id for i in range(DISTINCT)}
    published = [pid for pid, status, _ in outcomes if status == "published"]
    assert sorted(published) == sorted(ids)  # each pair published exactly once
    assert sum(status == "skipped" for _, status, _ in outcomes) == PUBLISHERS - DISTINCT
    assert all(registered for _, _, registered in outcomes)
    hrefs = collection_item_hrefs(store)
    assert sorted(hrefs) == sorted(f"./{i}/{i}.json" for i in ids)  # once each, none lost
    assert_extent_covers(store, ids)
    assert_valid(json.loads(store.get(collection_key(COLLECTION)).data))
    catalog = json.loads(store.get("catalog.json").data)
    assert [link["rel"] for link in catalog["links"]].count("child") == 1
    assert_valid(catalog)
    result = finalize(store)  # a rebuild from the items agrees with the live updates
    assert result.items == DISTINCT
    assert sorted(collection_item_hrefs(store)) == sorted(hrefs)


def _publish_and_die(url: str, index: int, folder: str, point: str) -> None:
    """Publish pair ``index`` but SIGKILL this process at ``point``."""
    store = open_store(url)
    pair = make_pair(index)
    target = item_key(COLLECTION, pair.id)

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before_item":
        put_new = store.put_new

        def put_new_or_die(key: str, *args: Any, **kwargs: Any) -> str:
            if key == target:
                die()
            return put_new(key, *args, **kwargs)

        store.put_new = put_new_or_die  # type: ignore[method-assign]
    elif point == "during_item_write":  # local: the complete temp file exists, not the item
        link = os.link

        def link_or_die(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if str(dst).endswith(f"{pair.id}.json"):
                die()
            link(src, dst, *args, **kwargs)

        os.link = link_or_die  # type: ignore[assignment]
    elif point == "before_register":
        stac_coh.publish.pair.register_item = lambda *a, **k: die()  # type: ignore[assignment]
    coh, unc = _inputs(Path(folder), index)
    publish_pair(pair, coh, unc, store, model_card=model_card(), manifest_items=input_items(pair))


def _run_killed(store: Store, folder: Path, index: int, point: str) -> None:
    proc = FORK.Process(target=_publish_and_die, args=(store.url, index, str(folder), point))
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL


def _publish_now(store: Store, folder: Path, index: int) -> Any:
    pair = make_pair(index)
    coh, unc = _inputs(folder, index)
    return publish_pair(
        pair, coh, unc, store, model_card=model_card(), manifest_items=input_items(pair)
    )


def test_publisher_killed_before_the_item_write(store: Store, tmp_path: Path) -> None:
    check_killed_then_rerun(store, tmp_path, "before_item")


def test_publisher_killed_during_the_item_write(tmp_path: Path) -> None:
    # Local only: an S3 PUT is atomic server-side (the multipart case is in test_storage).
    check_killed_then_rerun(open_store(tmp_path / "catalog"), tmp_path, "during_item_write")


def check_killed_then_rerun(store: Store, tmp_path: Path, point: str) -> None:
    """Kill a publisher at ``point``: nothing half-done is visible; a re-run completes it."""
    folder = tmp_path / "in"
    for index in (0, 1):
        write_pair_rasters(folder, make_pair(index), seed=index)
    _publish_now(store, folder, 0)
    victim = make_pair(1)
    _run_killed(store, folder, 1, point)
    assert not store.exists(item_key(COLLECTION, victim.id))  # no half item visible
    orphans = store.list(f"{COLLECTION}/{victim.id}/")
    assert orphans and all(not k.endswith(".json") for k in orphans)  # assets only
    assert f"./{victim.id}/{victim.id}.json" not in collection_item_hrefs(store)
    assert finalize(store).items == 1  # orphans are not items
    rerun = _publish_now(store, folder, 1)
    assert rerun.status == "published"
    assert_valid(rerun.item)
    for name, asset in rerun.item["assets"].items():  # the orphans were replaced
        key = f"{COLLECTION}/{victim.id}/{asset['href'][2:]}"
        local = tmp_path / "check"
        local.write_bytes(store.get(key).data)
        assert asset["file:checksum"] == sha256_multihash(local), name
    hrefs = collection_item_hrefs(store)
    assert hrefs.count(f"./{victim.id}/{victim.id}.json") == 1
    assert len(hrefs) == 2


def test_publisher_killed_before_registering_is_folded_in_by_rerun(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    for index in (0, 1):
        write_pair_rasters(folder, make_pair(index), seed=index)
    _publish_now(store, folder, 0)
    victim = make_pair(1)
    _run_killed(store, folder, 1, "before_register")
    assert store.exists(item_key(COLLECTION, victim.id))  # the pair is done...
    assert len(collection_item_hrefs(store)) == 1  # ...but not listed yet
    rerun = _publish_now(store, folder, 1)
    assert (rerun.status, rerun.registered) == ("skipped", True)
    assert sorted(collection_item_hrefs(store)) == sorted(
        f"./{p.id}/{p.id}.json" for p in (make_pair(0), victim)
    )
