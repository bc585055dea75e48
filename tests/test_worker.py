"""`stac-coh worker`: array children as parallel processes on moto S3, kills, finalize, exit codes.

The inputs are one recorded PC ``sentinel-1-rtc`` slice coarsened to 2.5 km pixels and
repeated every 12 days (17 dates, 16 consecutive pairs cut by the MGRS tiles into work
units of up to 40x40 px; the first 16 units are used), its COGs in a moto
bucket behind ``s3://`` hrefs; the weights are a tiny base-8 ResUNet.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pystac
import pytest
from typer.testing import CliRunner

from stac_coh.batch import BatchTargets, RunRecord, SubmittedJob, run_key
from stac_coh.batch.logs import configure_json_logging, log_event, sanitize
from stac_coh.batch.worker import (
    EXIT_BAD_INPUT,
    EXIT_BUG,
    EXIT_OK,
    EXIT_RETRY,
    exit_code_for_error,
    gdal_overrides,
    share_exit_code,
)
from stac_coh.cli import app
from stac_coh.errors import (
    InputError,
    StorageError,
    TransientReadError,
    TransientStorageError,
)
from stac_coh.io.stac_io import StoreStacIO
from stac_coh.io.storage import Store, open_store
from stac_coh.pipeline.records import outcome_key, read_failed_pairs, record_outcome
from stac_coh.pipeline.runner import PairOutcome
from stac_coh.publish.collection import collection_key, is_item_key, item_key
from stac_coh.search.manifest import Manifest, SourceSpec
from stac_coh.search.pairing import find_pairs
from stac_coh.search.query import SearchQuery
from stac_coh.search.shards import write_sharded_manifest
from tests.run_scene import REFERENCE_SLICES, tiny_weights
from tests.s3_proxy import S3Proxy
from tests.services import MotoServer
from tests.stac_data import PC_RTC, item, scaled, shifted_in_time, write_item_cog

COLLECTION = "sentinel-1-coherence"
AREA = (15.0, 33.0, 16.8, 34.5)
"""Across both slices of the pass and six MGRS tiles."""
SECRET = "worker-test-secret-9d41c7e2"
TOKEN = "worker-test-session-token-5be0aa19"
SIGNED_QUERY = "?sv=2024-05-04&se=2030-01-01&sig=c2VjcmV0LXNhcw%3D&X-Amz-Signature=deadbeef99"


@dataclass(frozen=True)
class Inputs:
    """The 16-unit manifest (inputs on moto S3) and the weights."""

    manifest: Manifest
    bucket: str
    weights: Path


def _s3(moto: MotoServer) -> Any:
    env = moto.env()
    return boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Inputs:
    root = tmp_path_factory.mktemp("worker")
    s3 = _s3(moto_server)
    bucket = f"rtc-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    first = scaled(item(PC_RTC, REFERENCE_SLICES[0]), 250)
    items = [first] + [shifted_in_time(first, 12 * k, f"d{k:02d}") for k in range(1, 17)]
    for n, it in enumerate(items):
        path = write_item_cog(it, root / f"{n}.tif", seed=0.37 * n)
        key = f"cogs/{it['id']}.tif"
        s3.upload_file(str(path), bucket, key)
        it["assets"]["vv"]["href"] = f"s3://{bucket}/{key}"
    query = SearchQuery.build(bbox=AREA, start="2024-04-01", end="2024-12-31", baselines="12")
    result = find_pairs(items, query)
    assert len(result.pass_pairs) == 16
    # Work units: each pair cut by the MGRS tiles of the area; the first 16 units span
    # several pairs and tiles.
    pairs = result.pairs[:16]
    assert len({p.tile for p in pairs}) > 2 and len({p.reference.datetime for p in pairs}) > 2
    manifest = Manifest(
        SourceSpec("local", "catalog", "sentinel-1-rtc"),
        query.to_dict(),
        pairs,
        {str(it["id"]): it for it in items},
    )
    return Inputs(manifest, bucket, tiny_weights(root / "tiny.safetensors"))


@dataclass(frozen=True)
class Run:
    """One run's output prefix, run id and the environment submit would give its jobs."""

    out: str
    run_id: str
    env: dict[str, str]
    store: Store


def new_run(
    inputs: Inputs, moto: MotoServer, manifest: Manifest | None = None, pairs_per_job: int = 2
) -> Run:
    """Write the manifest as `submit` does; the jobs' environment."""
    s3 = _s3(moto)
    bucket = f"out-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    out, run_id = f"s3://{bucket}/coh", f"r{uuid.uuid4().hex[:8]}"
    store = open_store(out, s3_client=s3)
    chosen = manifest or inputs.manifest
    uri = write_sharded_manifest(
        store,
        run_key(run_id, "manifest.json"),
        source=chosen.source,
        query=chosen.query,
        units=chosen.pairs,
        items=chosen.items,
    ).uri
    env = {
        **os.environ,
        **moto.env(),
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": TOKEN,
        "STAC_COH_MANIFEST": uri,
        "STAC_COH_OUT": out,
        "STAC_COH_RUN_ID": run_id,
        "STAC_COH_PAIRS_PER_JOB": str(pairs_per_job),
        "STAC_COH_INDEX_OFFSET": "0",
        "STAC_COH_WEIGHTS": str(inputs.weights),
        "STAC_COH_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
        "GDAL_NUM_THREADS": "1",
    }
    env.pop("AWS_BATCH_JOB_ARRAY_INDEX", None)
    return Run(out, run_id, env, store)


def start(run: Run, stage: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`python -m stac_coh worker STAGE` in a fresh process, stderr to ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "stac_coh", "worker", stage],
            env={**run.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )


def run_worker(run: Run, stage: str, log: Path, **env: str) -> int:
    """Run a worker stage to its end; its exit code."""
    proc = start(run, stage, log, **env)
    return proc.wait(timeout=300)


def events(log: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a worker log (each line must be one JSON object)."""
    lines = log.read_text().split("\n")[:-1]  # the part after the last newline may be partial
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(log: Path, proc: subprocess.Popen[bytes], event: str, after: int = 0) -> None:
    """Block until the ``after``-th-plus-one line with ``event`` appears in the log."""
    deadline = time.monotonic() + 180
    while sum(e["event"] == event for e in events(log)) <= after:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {event} in {log.read_text()}"
        time.sleep(0.05)


def outcome(run: Run, pair_id: str) -> dict[str, Any]:
    """The outcome a worker recorded for a pair."""
    return json.loads(run.store.get(outcome_key(run.run_id, pair_id)).data)


def assert_clean(log: Path) -> None:
    """Every line is JSON; no signature, SAS token or credential leaked."""
    text = log.read_text()
    assert events(log)
    for leak in ("X-Amz-Signature", "sig=", "deadbeef99", SECRET, TOKEN):
        assert leak not in text, f"{leak!r} leaked into {log}"


def catalog_items(store: Store) -> list[str]:
    """Item ids reachable from the root catalog, read back with pystac."""
    catalog = pystac.Catalog.from_file(store.url_for("catalog.json"), stac_io=StoreStacIO(store))
    return [it.id for it in catalog.get_items(recursive=True)]


# --------------------------------------------------------------------------------------
# eight children in parallel, one killed and retried, then finalize


@pytest.mark.integration
def test_children_in_parallel_then_finalize_publish_every_pair_once(
    inputs: Inputs, aws_env: MotoServer, tmp_path: Path
) -> None:
    run = new_run(inputs, aws_env)
    pairs = [p.id for p in inputs.manifest.pairs]
    logs = [tmp_path / f"child{i}.log" for i in range(8)]
    with S3Proxy(aws_env.endpoint, delay=0.4).running() as slow:
        # Child 3 reads its inputs slowly, so it is surely mid-pair when killed.
        procs = [
            start(
                run,
                "process",
                logs[i],
                AWS_BATCH_JOB_ARRAY_INDEX=str(i),
                **({"AWS_S3_ENDPOINT": slow.address} if i == 3 else {}),
            )
            for i in range(8)
        ]
        wait_for(logs[3], procs[3], "pair.start")
        while slow.requests == 0:
            assert procs[3].poll() is None, logs[3].read_text()
            time.sleep(0.05)
        procs[3].send_signal(signal.SIGKILL)
        assert procs[3].wait(timeout=30) == -signal.SIGKILL
        assert not run.store.exists(item_key(COLLECTION, pairs[6]))
        # AWS Batch retries the killed child (reading at full speed) while the others run.
        procs[3] = start(run, "process", logs[3], AWS_BATCH_JOB_ARRAY_INDEX="3")
        codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0] * 8, [logs[i].read_text() for i in range(8)]
    for i, log in enumerate(logs):
        assert_clean(log)
        done = {e["pair_id"]: e["status"] for e in events(log) if e["event"] == "pair.done"}
        assert done == {pairs[2 * i]: "published", pairs[2 * i + 1]: "published"}
        assert all(e["run_id"] == run.run_id and e["child"] == i for e in events(log))
    assert not run.store.exists(collection_key(COLLECTION))  # left to finalize

    final_log = tmp_path / "finalize.log"
    assert run_worker(run, "finalize", final_log) == 0, final_log.read_text()
    assert_clean(final_log)
    ids = catalog_items(run.store)
    assert sorted(ids) == sorted(pairs)  # every pair, each exactly once
    keys = [k for k in run.store.list(f"{COLLECTION}/") if is_item_key(COLLECTION, k)]
    assert len(keys) == 16
    report = json.loads(run.store.get(f"reports/{run.run_id}.json").data)
    assert report["counts"]["published"] == 16
    assert report["manifest_pairs"] == 16
    assert report["catalog"]["items"] == 16


@pytest.mark.integration
def test_sigterm_interrupts_the_pair_records_it_and_exits_75(
    inputs: Inputs, aws_env: MotoServer, tmp_path: Path
) -> None:
    manifest = replace(inputs.manifest, pairs=inputs.manifest.pairs[:2])
    run = new_run(inputs, aws_env, manifest)
    log = tmp_path / "child.log"
    with S3Proxy(aws_env.endpoint, delay=0.4).running() as slow:
        proc = start(run, "process", log, AWS_S3_ENDPOINT=slow.address)
        wait_for(log, proc, "pair.start")
        while slow.requests == 0:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == EXIT_RETRY, log.read_text()
    assert_clean(log)
    first, second = (p.id for p in manifest.pairs)
    assert outcome(run, first)["status"] == "interrupted"
    assert not run.store.exists(outcome_key(run.run_id, second))  # never started
    stops = [e for e in events(log) if e["event"] == "worker.stop"]
    assert stops and stops[0]["signal"] == "SIGTERM"
    assert events(log)[-1]["event"] == "worker.done"
    assert events(log)[-1]["exit_code"] == EXIT_RETRY


# --------------------------------------------------------------------------------------
# exit codes


def _one_pair_with_href(inputs: Inputs, href: str) -> Manifest:
    """The first pair alone, its reference image at ``href``."""
    pair = inputs.manifest.pairs[0]
    items = json.loads(json.dumps(inputs.manifest.items))
    items[pair.reference.item_ids[0]]["assets"]["vv"]["href"] = href
    return replace(inputs.manifest, pairs=(pair,), items=items)


@pytest.mark.integration
def test_permanent_failure_is_recorded_and_exits_0(
    inputs: Inputs, aws_env: MotoServer, tmp_path: Path
) -> None:
    s3 = _s3(aws_env)
    s3.put_object(Bucket=inputs.bucket, Key="cogs/corrupt.tif", Body=b"II*\x00 not a GeoTIFF")
    manifest = _one_pair_with_href(inputs, f"s3://{inputs.bucket}/cogs/corrupt.tif")
    run = new_run(inputs, aws_env, manifest, pairs_per_job=1)
    log = tmp_path / "child.log"
    assert run_worker(run, "process", log) == EXIT_OK, log.read_text()
    assert_clean(log)
    pair_id = manifest.pairs[0].id
    recorded = outcome(run, pair_id)
    assert recorded["status"] == "failed" and recorded["transient"] is False
    assert "corrupt.tif" in recorded["error"]
    failed, total = read_failed_pairs(run.store, run.run_id)
    assert total == 1 and failed[0].pair_id == pair_id and not failed[0].transient
    assert not run.store.exists(item_key(COLLECTION, pair_id))

    # `stac-coh status` lists the failed pair beside the (here unknown) jobs.
    record = RunRecord(
        run.run_id,
        run.out,
        run.env["STAC_COH_MANIFEST"],
        1,
        1,
        BatchTargets("queue", "worker", "finalize"),
        (SubmittedJob("no-such-job", "w", 0, 1),),
        "no-such-finalize-job",
    )
    run.store.put(run_key(run.run_id, "run.json"), json.dumps(record.to_dict()).encode())
    shown = CliRunner().invoke(app, ["status", run.run_id, "--out", run.out])
    assert shown.exit_code == 0, shown.output
    assert f"failed pair {pair_id} (permanent)" in shown.output
    assert "recorded outcome: 1 of 1" in shown.output


@pytest.mark.integration
def test_transient_failure_exits_75(inputs: Inputs, aws_env: MotoServer, tmp_path: Path) -> None:
    with S3Proxy(aws_env.endpoint, throttle=True).running() as throttled:
        manifest = _one_pair_with_href(inputs, f"{throttled.url}/cogs/ref.tif{SIGNED_QUERY}")
        run = new_run(inputs, aws_env, manifest, pairs_per_job=1)
        log = tmp_path / "child.log"
        attempts = {"AWS_BATCH_JOB_ATTEMPT": "2", "STAC_COH_MAX_ATTEMPTS": "3"}
        code = run_worker(run, "process", log, GDAL_HTTP_MAX_RETRY="0", **attempts)
        assert throttled.requests > 0
    assert code == EXIT_RETRY, log.read_text()
    assert_clean(log)  # the signed href's query never reaches the log
    recorded = outcome(run, manifest.pairs[0].id)
    assert recorded["status"] == "failed" and recorded["transient"] is True
    assert "503" in recorded["error"] and "sig=" not in recorded["error"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo the worker's logging set-up after an in-process run."""
    root, ours = logging.getLogger(), logging.getLogger("stac_coh")
    saved = (root.handlers[:], root.level, ours.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    ours.setLevel(saved[2])
    logging.captureWarnings(False)


@pytest.mark.integration
@pytest.mark.parametrize("case", ["missing manifest", "invalid manifest", "index out of range"])
def test_unusable_input_exits_2(
    inputs: Inputs,
    aws_env: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
    case: str,
) -> None:
    run = new_run(inputs, aws_env)
    run.store.put(run_key(run.run_id, "bad.json"), b'{"schema_version": "stac-coh/manifest/1"')
    bad = run.store.url_for(run_key(run.run_id, "bad.json"))
    cases = {
        "missing manifest": {"STAC_COH_MANIFEST": f"{run.out}/runs/nope/manifest.json"},
        "invalid manifest": {"STAC_COH_MANIFEST": bad},
        "index out of range": {"AWS_BATCH_JOB_ARRAY_INDEX": "8"},  # 16 pairs = children 0..7
    }
    job_env = {k: v for k, v in run.env.items() if k.startswith(("STAC_COH_", "AWS_"))}
    for key, value in {**job_env, **cases[case]}.items():
        monkeypatch.setenv(key, value)
    done = CliRunner().invoke(app, ["worker", "process"])
    assert done.exit_code == EXIT_BAD_INPUT, done.output
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines[-1]["event"] == "worker.error" and lines[-1]["exit_code"] == EXIT_BAD_INPUT
    assert lines[-1]["level"] == "error" and "Traceback" not in done.stderr
    for leak in ("X-Amz-Signature", "sig=", SECRET, TOKEN):
        assert leak not in done.stderr


# --------------------------------------------------------------------------------------
# pieces, without services


def test_exit_code_contract() -> None:
    ok = PairOutcome("a", "published")
    skipped = PairOutcome("b", "skipped")
    permanent = PairOutcome("c", "failed", error="corrupt", transient=False)
    transient = PairOutcome("d", "failed", error="503", transient=True)
    interrupted = PairOutcome("e", "interrupted")
    assert share_exit_code([ok, skipped], pairs=2, stopped=False) == EXIT_OK
    assert share_exit_code([ok, permanent], pairs=2, stopped=False) == EXIT_OK
    assert share_exit_code([ok, transient], pairs=2, stopped=False) == EXIT_RETRY
    assert share_exit_code([ok, transient], pairs=2, stopped=False, last_attempt=True) == 0
    assert share_exit_code([ok], pairs=2, stopped=True) == EXIT_RETRY
    assert share_exit_code([ok, interrupted], pairs=2, stopped=True) == EXIT_RETRY
    assert share_exit_code([ok, ok], pairs=2, stopped=True) == EXIT_OK  # nothing left to do
    assert exit_code_for_error(InputError("bad")) == EXIT_BAD_INPUT
    assert exit_code_for_error(TransientStorageError("S3 down")) == EXIT_RETRY
    # A permission error or a missing bucket never heals: not retried.
    assert exit_code_for_error(StorageError("AccessDenied")) == EXIT_BAD_INPUT
    assert exit_code_for_error(TransientReadError("503")) == EXIT_RETRY
    assert exit_code_for_error(ConnectionError("reset")) == EXIT_RETRY
    assert exit_code_for_error(ZeroDivisionError()) == EXIT_BUG


def test_sanitize_strips_signed_urls_and_secrets() -> None:
    presigned = (
        "GET https://b.s3.amazonaws.com/k.tif?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIA%2F&X-Amz-Signature=0123abcd failed"
    )
    assert sanitize(presigned) == "GET https://b.s3.amazonaws.com/k.tif failed"
    sas = "'/vsicurl/https://a.blob.core.windows.net/c/x.tif?st=1&se=2&sig=abc%3D' not found"
    assert sanitize(sas) == "'/vsicurl/https://a.blob.core.windows.net/c/x.tif' not found"
    assert sanitize("bare sig=abc&X-Amz-Signature=ff") == "bare sig=***&X-Amz-Signature=***"
    assert sanitize("AWS_SECRET_ACCESS_KEY=abc123 ok") == "AWS_SECRET_ACCESS_KEY=*** ok"
    assert sanitize(f"token {SECRET} used", [SECRET, "short"]) == "token *** used"
    assert sanitize("s3://bucket/key.tif and short words") == "s3://bucket/key.tif and short words"


def test_json_lines_carry_context_and_fields_without_secrets(restore_logging: None) -> None:
    stream = io.StringIO()
    formatter = configure_json_logging(secrets=[SECRET], stream=stream)
    formatter.context.update(run_id="r1", child=4)
    log = logging.getLogger("stac_coh.worker")
    log_event(log, "pair.done", "done", pair_id="p", status="published", seconds=1.5)
    log.warning("reading https://h/x.tif?sig=%s failed", SECRET)
    logging.getLogger("botocore").info("not shown: other libraries log warnings only")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["event"] == "pair.done" and lines[0]["status"] == "published"
    assert lines[0]["run_id"] == "r1" and lines[0]["child"] == 4 and lines[0]["seconds"] == 1.5
    assert {"time", "level", "message", "logger"} <= set(lines[0])
    assert lines[1]["message"] == "reading https://h/x.tif failed"
    assert SECRET not in stream.getvalue()


def test_gdal_overrides_come_from_the_environment() -> None:
    env = {"GDAL_HTTP_MAX_RETRY": "0", "CPL_DEBUG": "ON", "VSI_CACHE": "FALSE", "HOME": "/x"}
    assert gdal_overrides(env) == {
        "GDAL_HTTP_MAX_RETRY": 0,
        "CPL_DEBUG": "ON",
        "VSI_CACHE": "FALSE",
    }


def test_skipped_on_retry_keeps_the_published_outcome(tmp_path: Path) -> None:
    store = open_store(tmp_path / "out")
    record_outcome(
        store, "r1", {"pair_id": "p", "status": "failed", "error": "x", "transient": True}
    )
    assert read_failed_pairs(store, "r1")[1] == 1
    record_outcome(store, "r1", {"pair_id": "p", "status": "published"})
    record_outcome(store, "r1", {"pair_id": "p", "status": "skipped"})
    assert json.loads(store.get(outcome_key("r1", "p")).data)["status"] == "published"
    assert read_failed_pairs(store, "r1") == ([], 0)


def test_worker_help_teaches() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["worker", "--help"])
    assert top.exit_code == 0
    assert "75" in top.output and "Examples" in top.output and "finalize" in top.output
    for stage in ("process", "finalize"):
        shown = runner.invoke(app, ["worker", stage, "--help"])
        assert shown.exit_code == 0 and "Examples" in shown.output
        assert "STAC_COH_OUT" in shown.output and "STAC_COH_RUN_ID" in shown.output
    assert "AWS_BATCH_JOB_ARRAY_INDEX" in runner.invoke(app, ["worker", "process", "-h"]).output
