"""The worker's fault handling piece by piece: exit codes, write-ahead records, orphans,
the self-imposed time limit, GPU faults on the last attempt, --public-url through submit.

The whole run under faults is tests/test_batch_scenario.py.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stac_coh.batch.attempts import Attempts
from stac_coh.batch.deadline import ENV_TIME_LIMIT, arm_deadline, stop_margin
from stac_coh.batch.exits import EXIT_DEVICE, EXIT_OK, EXIT_RETRY
from stac_coh.batch.record import validate_public_url
from stac_coh.batch.submit import submit_run
from stac_coh.batch.worker import share_exit_code
from stac_coh.cli import app
from stac_coh.constants import ENV_PUBLIC_URL
from stac_coh.errors import InputError
from stac_coh.io.storage import open_store
from stac_coh.pipeline.records import STARTED, outcome_key, record_outcome, resolve_started
from stac_coh.pipeline.runner import PairOutcome
from stac_coh.publish.collection import asset_key, item_key
from stac_coh.publish.orphans import find_orphans, sweep_orphans
from tests.batch_rules import RetryRules, load_template
from tests.fake_manifest import fake_manifest
from tests.s3_proxy import Hold, S3Proxy
from tests.services import MotoServer
from tests.test_batch_submit import make_batch_setup
from tests.worker_runs import (
    COLLECTION,
    Inputs,
    assert_clean,
    events,
    make_inputs,
    new_run,
    outcome,
    start,
    wait_for,
    wait_held,
)

# --------------------------------------------------------------------------------------
# pieces, without services


def test_exit_codes_for_gpu_faults_and_last_attempts() -> None:
    ok = PairOutcome("a", "published")
    gpu = PairOutcome("b", "failed", error="cuda", transient=True, fault="device")
    throttled = PairOutcome("c", "failed", error="503", transient=True, fault="transient")
    assert share_exit_code([ok, gpu], pairs=3, stopped=False) == EXIT_DEVICE
    assert share_exit_code([gpu, throttled], pairs=2, stopped=False) == EXIT_DEVICE
    assert share_exit_code([ok, throttled], pairs=2, stopped=False) == EXIT_RETRY
    for stopped in (True, False):  # the last attempt lets the finalize job run
        assert share_exit_code([ok, gpu], pairs=3, stopped=stopped, last_attempt=True) == 0


def test_started_records_account_for_a_kill_at_any_point(tmp_path: Path) -> None:
    store = open_store(tmp_path / "out")
    pairs = fake_manifest(3).pairs
    attempts = Attempts(store, "r1", COLLECTION)
    assert attempts.set_aside(pairs) == []
    for pair in pairs:
        attempts.started(pair)
    assert json.loads(store.get(outcome_key("r1", pairs[0].id)).data)["starts"] == 1
    # pair 0 was published, then the worker died; pair 1 died mid-pair; pair 2 finished
    store.put(item_key(COLLECTION, pairs[0].id), b"{}")
    store.put(item_key(COLLECTION, pairs[2].id), b"{}")
    record_outcome(store, "r1", {"pair_id": pairs[2].id, "status": "published"})
    entries = [json.loads(store.get(outcome_key("r1", p.id)).data) for p in pairs]
    resolved = {e["pair_id"]: e for e in resolve_started(store, entries, COLLECTION)}
    assert resolved[pairs[0].id]["status"] == "published"
    assert resolved[pairs[1].id]["status"] == "interrupted"
    assert resolved[pairs[2].id]["status"] == "published"
    # the retry skips pair 0: it counts as published, not as skipped
    record_outcome(store, "r1", {"pair_id": pairs[0].id, "status": "skipped"})
    assert json.loads(store.get(outcome_key("r1", pairs[0].id)).data)["status"] == "published"
    # a published pair gets no started record on a later attempt
    retry = Attempts(store, "r1", COLLECTION)
    retry.set_aside(pairs)
    retry.started(pairs[2])
    assert json.loads(store.get(outcome_key("r1", pairs[2].id)).data)["status"] == "published"


def test_a_pair_two_attempts_died_on_is_set_aside(tmp_path: Path) -> None:
    store = open_store(tmp_path / "out")
    pairs = fake_manifest(2).pairs
    for _attempt in range(2):  # each attempt starts pair 0 and is killed
        attempts = Attempts(store, "r1", COLLECTION)
        assert attempts.set_aside(pairs) == []
        attempts.started(pairs[0])
    third = Attempts(store, "r1", COLLECTION).set_aside(pairs)
    assert [(o.pair_id, o.status, o.fault) for o in third] == [(pairs[0].id, "failed", "permanent")]
    recorded = json.loads(store.get(outcome_key("r1", pairs[0].id)).data)
    assert recorded["status"] == "failed" and "2 attempts died" in recorded["error"]
    assert store.exists(f"reports/r1/failed/{pairs[0].id}.json")  # `status` lists it


def test_orphans_are_found_and_removed_only_where_asked(tmp_path: Path) -> None:
    store = open_store(tmp_path / "out")
    done, killed, other = (p.id for p in fake_manifest(3).pairs)
    for pair in (done, killed, other):
        store.put(asset_key(COLLECTION, pair, "coherence"), b"cog")
    store.put(item_key(COLLECTION, done), b"{}")
    for listing in ("collection.json", "items.parquet", "tiles/33S/catalog.json", "tiles/x.json"):
        store.put(f"{COLLECTION}/{listing}", b"{}")  # the collection's own files
    assert sorted(o.item_id for o in find_orphans(store, COLLECTION)) == sorted([killed, other])
    report = sweep_orphans(store, COLLECTION, remove=True, only={done, killed})
    assert (report.found, report.files, report.removed) == (2, 2, 1)
    assert not store.exists(asset_key(COLLECTION, killed, "coherence"))
    assert store.exists(asset_key(COLLECTION, other, "coherence"))  # another run's, kept
    assert store.exists(asset_key(COLLECTION, done, "coherence"))
    assert sweep_orphans(store, COLLECTION).found == 1  # reporting removes nothing


def test_time_limit_margin_and_settings() -> None:
    assert stop_margin(7200) == 300
    assert stop_margin(600) == 30
    assert stop_margin(1200) == 60
    assert arm_deadline({}) is None
    with pytest.raises(InputError, match=ENV_TIME_LIMIT):
        arm_deadline({ENV_TIME_LIMIT: "two hours"})


def test_public_url_is_checked_before_anything_is_published() -> None:
    assert validate_public_url("https://d1.cloudfront.net/coh/") == "https://d1.cloudfront.net/coh"
    assert validate_public_url(None) is None and validate_public_url(" ") is None
    for bad in ("s3://bucket/coh", "https://host/coh?sig=1", "cloudfront.net/coh"):
        with pytest.raises(InputError, match="--public-url"):
            validate_public_url(bad)


# --------------------------------------------------------------------------------------
# worker processes on moto


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Inputs:
    return make_inputs(tmp_path_factory.mktemp("faults"), moto_server, 2)


@pytest.mark.integration
def test_no_visible_gpu_is_retried_and_lets_finalize_run_on_the_last_attempt(
    inputs: Inputs, aws_env: MotoServer, tmp_path: Path
) -> None:
    run = new_run(inputs, aws_env, STAC_COH_DEVICE="cuda", STAC_COH_MAX_ATTEMPTS="3")
    rules = RetryRules.of(load_template(), "WorkerJobDefinition")
    codes = []
    for attempt in (1, 2, 3):  # every host Batch picks has a broken GPU
        log = tmp_path / f"attempt{attempt}.log"
        proc = start(run, "process", log, AWS_BATCH_JOB_ATTEMPT=str(attempt))
        codes.append(proc.wait(timeout=600))
        assert_clean(log)
        assert rules.retries(codes[-1], attempt) == (attempt < 3)
    assert codes == [EXIT_DEVICE, EXIT_DEVICE, EXIT_OK]
    for pair in inputs.manifest.pairs:
        recorded = outcome(run, pair.id)
        assert (recorded["status"], recorded["fault"]) == ("failed", "device")
        assert "no CUDA GPU" in recorded["error"]
    line = [e for e in events(tmp_path / "attempt3.log") if e["event"] == "worker.gpu_fault"]
    assert line and line[0]["exit_code"] == EXIT_OK


@pytest.mark.integration
def test_the_worker_stops_itself_before_the_batch_time_limit(
    inputs: Inputs, aws_env: MotoServer, tmp_path: Path
) -> None:
    run = new_run(inputs, aws_env)
    log = tmp_path / "child.log"
    hold = Hold(methods=("GET",), path=r"/cogs/", forward=True)
    with S3Proxy(aws_env.endpoint, holds=[hold]).running() as proxy:
        # 31 s limit - 30 s margin: SIGTERM one second after the worker armed it, while
        # it loads or while its first read is held (so the pair cannot finish first).
        proc = start(run, "process", log, AWS_S3_ENDPOINT=proxy.address, **{ENV_TIME_LIMIT: "31"})
        wait_for(log, proc, "worker.deadline")
        proxy.release()  # a held read completes; then the SIGTERM is handled
        code = proc.wait(timeout=600)
    assert code == EXIT_RETRY, log.read_text()  # Batch retries it, unlike its own timeout
    assert_clean(log)
    for pair in inputs.manifest.pairs:
        recorded = run.store.get_or_none(outcome_key(run.run_id, pair.id))
        status = json.loads(recorded.data)["status"] if recorded else None
        assert status in (None, "interrupted", "published")  # never left "started"
    stops = [e for e in events(log) if e["event"] == "worker.stop"]
    assert stops and stops[0]["signal"] == "SIGTERM"
    assert events(log)[-1]["exit_code"] == EXIT_RETRY


@pytest.mark.integration
def test_a_pair_that_killed_two_attempts_is_set_aside_by_the_third(
    inputs: Inputs, aws_env: MotoServer, tmp_path: Path
) -> None:
    run = new_run(inputs, aws_env)
    first, second = (p.id for p in inputs.manifest.pairs)
    rules = RetryRules.of(load_template(), "WorkerJobDefinition")
    for attempt in (1, 2):  # the container dies on the first pair: exit 137, retried
        log = tmp_path / f"attempt{attempt}.log"
        hold = Hold(path=rf"/{first}/{first}_coherence\.tif$")
        with S3Proxy(aws_env.endpoint, holds=[hold]).running() as proxy:
            proc = start(run, "process", log, AWS_ENDPOINT_URL=proxy.url)
            wait_held(hold, proc, log)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
        assert rules.retries(-signal.SIGKILL, attempt)
        assert outcome(run, first)["starts"] == attempt
    log = tmp_path / "attempt3.log"
    proc = start(run, "process", log, AWS_BATCH_JOB_ATTEMPT="3", STAC_COH_MAX_ATTEMPTS="3")
    assert proc.wait(timeout=600) == EXIT_OK, log.read_text()
    assert_clean(log)
    given_up = outcome(run, first)
    assert (given_up["status"], given_up["fault"]) == ("failed", "permanent")
    assert "2 attempts died" in given_up["error"]
    assert outcome(run, second)["status"] == "published"
    assert outcome(run, first).get("status") != STARTED


@pytest.mark.integration
def test_submit_passes_the_public_url_to_every_job(moto_server: MotoServer) -> None:
    setup = make_batch_setup(moto_server)
    record = submit_run(
        fake_manifest(3),
        out=setup.out(),
        targets=setup.targets,
        pairs_per_job=2,
        batch=setup.batch,
        s3=setup.s3,
        public_url="https://d1.cloudfront.net/coh/",
    )
    assert record.public_url == "https://d1.cloudfront.net/coh"
    for job_id in record.job_ids:
        [job] = setup.batch.describe_jobs(jobs=[job_id])["jobs"]
        env = {e["name"]: e["value"] for e in job["container"]["environment"]}
        assert env[ENV_PUBLIC_URL] == "https://d1.cloudfront.net/coh"
    with pytest.raises(InputError, match="--public-url"):
        submit_run(
            fake_manifest(1),
            out=setup.out(),
            targets=setup.targets,
            pairs_per_job=1,
            batch=setup.batch,
            s3=setup.s3,
            public_url="s3://elsewhere/coh",
        )


def test_cli_submit_refuses_a_bad_public_url_before_searching(tmp_path: Path) -> None:
    manifest = tmp_path / "pairs.json"
    manifest.write_text(fake_manifest(1).to_json())
    result = CliRunner().invoke(
        app,
        [
            "submit",
            "--manifest",
            str(manifest),
            "--out",
            "s3://b/coh",
            "--job-queue",
            "q",
            "--job-definition",
            "w",
            "--finalize-job-definition",
            "f",
            "--public-url",
            "ftp://x/coh",
            "--dry-run",
        ],
    )
    assert isinstance(result.exception, InputError)  # `main` turns it into exit code 2
    assert "--public-url" in str(result.exception)


def test_worker_options_take_the_public_url_and_orphan_removal() -> None:
    runner = CliRunner()
    process = runner.invoke(app, ["worker", "process", "--help"])
    finalize = runner.invoke(app, ["worker", "finalize", "--help"])
    assert "--public-url" in process.output and "STAC_COH_PUBLIC_URL" in process.output
    assert "--remove-orphans" in finalize.output
    assert "STAC_COH_REMOVE_ORPHANS" in finalize.output


def test_cli_finalize_reports_and_removes_orphans(tmp_path: Path) -> None:
    out = tmp_path / "catalog"
    store = open_store(out)
    [pair] = fake_manifest(1).pairs
    store.put(asset_key(COLLECTION, pair.id, "coherence"), b"cog")
    runner = CliRunner()
    shown = runner.invoke(app, ["finalize", str(out), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["orphans"] == {
        "found": 1,
        "files": 1,
        "removed": 0,
        "items": [pair.id],
    }
    removed = runner.invoke(app, ["finalize", str(out), "--remove-orphans"])
    assert removed.exit_code == 0, removed.output
    assert "1 item folders with assets but no item (1 files), 1 removed" in removed.output
    assert not store.exists(asset_key(COLLECTION, pair.id, "coherence"))


@pytest.mark.integration
def test_s3_throttling_before_any_pair_is_retried_except_on_the_last_attempt(
    inputs: Inputs, aws_env: MotoServer, tmp_path: Path
) -> None:
    run = new_run(inputs, aws_env, STAC_COH_MAX_ATTEMPTS="3", AWS_MAX_ATTEMPTS="1")
    with S3Proxy(aws_env.endpoint, throttle=True).running() as throttled:
        for attempt, expected in ((2, EXIT_RETRY), (3, EXIT_OK)):
            log = tmp_path / f"attempt{attempt}.log"
            proc = start(
                run,
                "process",
                log,
                AWS_ENDPOINT_URL=throttled.url,  # the manifest read answers 503 SlowDown
                AWS_BATCH_JOB_ATTEMPT=str(attempt),
            )
            assert proc.wait(timeout=600) == expected, log.read_text()
            assert_clean(log)
            [error] = [e for e in events(log) if e["event"] == "worker.error"]
            assert error["exit_code"] == EXIT_RETRY and "SlowDown" in error["message"]
