"""`stac-coh worker`: array children as parallel processes on moto S3, kills, finalize, exit codes.

The inputs (``tests/worker_runs.py``) are one recorded PC ``sentinel-1-rtc`` slice coarsened
to 2.5 km pixels and repeated every 12 days, its COGs in a moto bucket behind ``s3://``
hrefs; the first 16 work units (12-day pairs cut by the MGRS tiles) are used; the weights
are a tiny base-8 ResUNet.
"""

from __future__ import annotations

import io
import json
import logging
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

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
from stac_coh.io.storage import open_store
from stac_coh.pipeline.records import outcome_key, read_failed_pairs, record_outcome
from stac_coh.pipeline.runner import PairOutcome
from stac_coh.publish.collection import collection_key, is_item_key, item_key
from stac_coh.search.manifest import Manifest
from tests.s3_proxy import Hold, S3Proxy
from tests.services import MotoServer
from tests.worker_runs import (
    COLLECTION,
    SECRET,
    TOKEN,
    Inputs,
    assert_clean,
    catalog_items,
    events,
    make_inputs,
    new_run,
    outcome,
    run_worker,
    s3_client,
    start,
    wait_held,
)

SIGNED_QUERY = "?sv=2024-05-04&se=2030-01-01&sig=c2VjcmV0LXNhcw%3D&X-Amz-Signature=deadbeef99"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Inputs:
    inputs = make_inputs(tmp_path_factory.mktemp("worker"), moto_server, 16)
    pairs = inputs.manifest.pairs
    assert len({p.tile for p in pairs}) > 2 and len({p.reference.datetime for p in pairs}) > 2
    return inputs


# --------------------------------------------------------------------------------------
# eight children in parallel, one killed and retried, then finalize


@pytest.mark.integration
def test_children_in_parallel_then_finalize_publish_every_pair_once(
    inputs: Inputs, aws_env: MotoServer, tmp_path: Path
) -> None:
    run = new_run(inputs, aws_env)
    pairs = [p.id for p in inputs.manifest.pairs]
    logs = [tmp_path / f"child{i}.log" for i in range(8)]
    # Child 3's first input read is held by the proxy, so it is surely mid-pair when killed.
    hold = Hold(methods=("GET",), path=r"/cogs/")
    with S3Proxy(aws_env.endpoint, holds=[hold]).running() as slow:
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
        wait_held(hold, procs[3], logs[3])
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
    # The first input read is held until the SIGTERM was sent, then completes: the signal
    # lands mid-pair, whatever the load.
    hold = Hold(methods=("GET",), path=r"/cogs/", forward=True)
    with S3Proxy(aws_env.endpoint, holds=[hold]).running() as slow:
        proc = start(run, "process", log, AWS_S3_ENDPOINT=slow.address)
        wait_held(hold, proc, log)
        proc.send_signal(signal.SIGTERM)
        slow.release()
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
    s3 = s3_client(aws_env)
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
