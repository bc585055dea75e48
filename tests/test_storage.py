"""The output store: conditional writes, atomic appearance, listing, on disk and on moto S3."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from stac_coh.errors import ConflictError, InputError, ObjectNotFoundError
from stac_coh.io.storage import LocalStore, S3Store, Store, open_store, read_json_objects
from stac_coh.io.storage.s3 import _retry_conflicts

FORK = multiprocessing.get_context("fork")


def make_bucket() -> str:
    """A fresh bucket on the S3 endpoint of the environment (moto via aws_env)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each test runs on a local directory and on an S3 prefix in moto_server."""
    if request.param == "local":
        return open_store(tmp_path / "out")
    request.getfixturevalue("aws_env")
    return open_store(f"s3://{make_bucket()}/catalog/v1")


def test_put_get_list_delete_roundtrip(store: Store) -> None:
    etag = store.put("a/b/one.json", b'{"n": 1}', content_type="application/json")
    store.put("a/two.txt", b"two")
    store.put("c.txt", b"three")
    got = store.get("a/b/one.json")
    assert got.data == b'{"n": 1}'
    assert got.etag == etag
    assert store.exists("a/two.txt")
    assert not store.exists("a/missing.txt")
    assert store.list("a/") == ["a/b/one.json", "a/two.txt"]
    assert store.list() == ["a/b/one.json", "a/two.txt", "c.txt"]
    store.delete("a/two.txt")
    assert store.list("a/") == ["a/b/one.json"]
    store.delete("a/two.txt")  # deleting again is fine


def test_iter_keys_streams_what_list_sorts(store: Store) -> None:
    for key in ("runs/x/pairs/b.json", "runs/x/pairs/a.json", "runs/x/failed/a.json", "top.txt"):
        store.put(key, b"{}")
    keys = store.iter_keys("runs/x/pairs/")
    assert not isinstance(keys, list)  # a generator: pages are read as they are consumed
    assert (
        sorted(keys)
        == store.list("runs/x/pairs/")
        == ["runs/x/pairs/a.json", "runs/x/pairs/b.json"]
    )
    assert list(store.iter_keys("nothing/")) == []


@pytest.mark.integration
def test_s3_store_reads_sixteen_at_once_without_dropping_connections(
    aws_env, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"s3://{make_bucket()}/runs")
    for k in range(64):
        store.put(f"pairs/{k:02d}.json", json.dumps({"k": k}).encode())
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        read = dict(read_json_objects(store, store.iter_keys("pairs/"), readers=16, chunk=64))
    assert sorted(v["k"] for v in read.values()) == list(range(64))
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]  # botocore's 10


def test_get_missing_raises_not_found(store: Store) -> None:
    with pytest.raises(ObjectNotFoundError) as info:
        store.get("nothing/here.json")
    assert isinstance(info.value, FileNotFoundError)
    assert "nothing/here.json" in str(info.value)
    assert store.get_or_none("nothing/here.json") is None


def test_put_new_is_create_only(store: Store) -> None:
    store.put_new("item.json", b"first")
    with pytest.raises(ConflictError):
        store.put_new("item.json", b"second")
    assert store.get("item.json").data == b"first"


def test_put_file_and_put_new_from_file(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "asset.bin"
    source.write_bytes(os.urandom(10_000))
    store.put_file("x/asset.bin", source, content_type="application/octet-stream")
    store.put_new("x/asset2.bin", source)
    assert store.get("x/asset.bin").data == source.read_bytes()
    assert store.get("x/asset2.bin").data == source.read_bytes()
    with pytest.raises(ConflictError):
        store.put_new("x/asset2.bin", source)


def test_put_if_match_is_compare_and_swap(store: Store) -> None:
    first = store.put("coll.json", b"v1")
    second = store.put_if_match("coll.json", b"v2", first)
    assert store.get("coll.json").data == b"v2"
    with pytest.raises(ConflictError):
        store.put_if_match("coll.json", b"v3", first)  # stale
    assert store.get("coll.json").data == b"v2"
    assert store.get("coll.json").etag == second
    with pytest.raises(ConflictError):
        store.put_if_match("absent.json", b"x", first)


def test_racing_create_only_writers_have_one_winner(store: Store) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        barrier.wait()
        try:
            store.put_new("race.json", str(i).encode())
            winners.append(i)
        except ConflictError:
            pass

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert store.get("race.json").data == str(winners[0]).encode()


def _cas_increment(store: Store, key: str, times: int) -> None:
    """Increment a JSON counter ``times`` times with a CAS loop."""
    for _ in range(times):
        while True:
            current = store.get(key)
            value = json.loads(current.data)["n"] + 1
            try:
                store.put_if_match(key, json.dumps({"n": value}).encode(), current.etag)
                break
            except ConflictError:
                continue


def test_compare_and_swap_loses_no_update_across_processes(store: Store) -> None:
    store.put("counter.json", b'{"n": 0}')
    url = store.url
    procs = [
        FORK.Process(target=_cas_increment, args=(open_store(url), "counter.json", 5))
        for _ in range(6)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    assert json.loads(store.get("counter.json").data) == {"n": 30}


def test_local_listing_hides_temp_and_lock_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("a/x.json", b"1")
    store.put_if_match("a/x.json", b"2", store.get("a/x.json").etag)  # leaves a .lock file
    (tmp_path / "a" / ".x.json.123.tmp").write_bytes(b"partial")
    assert store.list() == ["a/x.json"]
    assert (tmp_path / "a" / ".x.json.lock").exists()


def _die_before_link(root: str) -> None:
    """Write an object create-only, but get SIGKILLed once the temp file is complete."""

    def killed(*_args: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    os.link = killed  # type: ignore[assignment]
    LocalStore(Path(root)).put_new("item.json", b"complete")


def test_local_writer_killed_mid_write_leaves_nothing_visible(tmp_path: Path) -> None:
    proc = FORK.Process(target=_die_before_link, args=(str(tmp_path),))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    store = LocalStore(tmp_path)
    assert not store.exists("item.json")
    assert store.list() == []
    store.put_new("item.json", b"rerun")  # the orphan temp file does not block a re-run
    assert store.get("item.json").data == b"rerun"


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for key in ("../x", "/etc/passwd", "a//b", "a/", ""):
        with pytest.raises(InputError):
            store.put(key, b"x")


def test_open_store_parses_urls(tmp_path: Path) -> None:
    s3 = open_store("s3://bucket/some/prefix/", public_base_url="https://cdn.example/p")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert s3.url_for("a/b.json") == "s3://bucket/some/prefix/a/b.json"
    assert s3.href_for("a/b.json") == "https://cdn.example/p/a/b.json"
    assert s3.key_for("s3://bucket/some/prefix/a/b.json") == "a/b.json"
    assert s3.key_for("https://cdn.example/p/a/b.json") == "a/b.json"
    assert s3.key_for("s3://other/a.json") is None
    local = open_store(f"file://{tmp_path}")
    assert isinstance(local, LocalStore)
    assert local.url_for("k.json") == str(tmp_path.resolve() / "k.json")
    assert local.key_for(f"file://{tmp_path.resolve()}/k.json") == "k.json"
    with pytest.raises(InputError):
        open_store("gs://bucket/x")
    with pytest.raises(InputError):
        open_store("s3:///nobucket")


def test_s3_client_is_lazy_configured_and_not_pickled() -> None:
    store = S3Store("bucket", "p")
    assert store._client is None  # nothing built at construction
    restored = pickle.loads(pickle.dumps(store))
    assert restored._client is None
    assert restored.url == "s3://bucket/p"


@pytest.mark.integration
def test_s3_client_retries_throttling_adaptively(aws_env: object) -> None:
    store = S3Store("bucket", max_attempts=7)
    retries = store.client.meta.config.retries
    assert retries["mode"] == "adaptive"
    assert retries["total_max_attempts"] == 7


def test_conditional_conflicts_409_are_retried() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ClientError(
                {
                    "Error": {"Code": "ConditionalRequestConflict", "Message": "in flight"},
                    "ResponseMetadata": {"HTTPStatusCode": 409},
                },
                "PutObject",
            )
        return "done"

    assert _retry_conflicts(flaky, "s3://b/k") == "done"
    assert len(calls) == 3


@pytest.mark.integration
def test_s3_large_create_only_upload_is_multipart_with_condition(
    aws_env: object, tmp_path: Path
) -> None:
    bucket = make_bucket()
    store = S3Store(bucket, "p", multipart_threshold=1024)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(50_000))
    etag = store.put_new("big.bin", big)
    assert etag.strip('"').endswith("-1")  # a multipart ETag: parts were used
    assert store.get("big.bin").data == big.read_bytes()
    with pytest.raises(ConflictError):
        store.put_new("big.bin", big)
    uploads = store.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert uploads == []  # the losing upload was aborted


def _die_before_completing_multipart(bucket: str) -> None:
    """Upload parts of a create-only object, then get SIGKILLed before completing it."""
    store = S3Store(bucket, "p", multipart_threshold=1024)
    upload_parts = store._upload_parts

    def parts_then_die(*args: object) -> object:
        upload_parts(*args)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGKILL)

    store._upload_parts = parts_then_die  # type: ignore[method-assign]
    path = Path(f"/tmp/{bucket}.bin")
    path.write_bytes(b"x" * 5000)
    store.put_new("item.json", path)


@pytest.mark.integration
def test_s3_writer_killed_mid_upload_leaves_nothing_visible(aws_env: object) -> None:
    bucket = make_bucket()
    proc = FORK.Process(target=_die_before_completing_multipart, args=(bucket,))
    proc.start()
    proc.join(60)
    Path(f"/tmp/{bucket}.bin").unlink(missing_ok=True)
    assert proc.exitcode == -signal.SIGKILL
    store = S3Store(bucket, "p")
    assert not store.exists("item.json")
    assert store.list() == []
    store.put_new("item.json", b"rerun")
    assert store.get("item.json").data == b"rerun"
