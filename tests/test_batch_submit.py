"""`submit` and `status` against moto_server's S3 and docker-less Batch (separate process)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from stac_coh.batch import (
    ENV_INDEX_OFFSET,
    ENV_MANIFEST,
    ENV_OUT,
    ENV_PAIRS_PER_JOB,
    ENV_RUN_ID,
    BatchTargets,
    RunRecord,
    run_status,
    submit_run,
)
from stac_coh.cli import app
from stac_coh.errors import BatchError, ConflictError, InputError
from stac_coh.search.manifest import Manifest
from stac_coh.search.manifest_io import read_manifest
from stac_coh.search.shards import SHARDED_SCHEMA_VERSION
from tests.fake_manifest import fake_manifest
from tests.services import MotoServer, run_moto_server
from tests.stac_data import STAC, VALID_PAIRS

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class BatchSetup:
    """Clients on one moto_server plus a bucket, queues and job definitions there."""

    batch: Any
    s3: Any
    bucket: str
    targets: BatchTargets

    def out(self, prefix: str = "coh") -> str:
        """A fresh catalog root in the bucket."""
        return f"s3://{self.bucket}/{prefix}-{uuid.uuid4().hex[:8]}"

    def env(self, moto: MotoServer) -> dict[str, str]:
        """CLI environment for this setup."""
        return {
            **moto.env(),
            "STAC_COH_JOB_QUEUE": self.targets.job_queue,
            "STAC_COH_JOB_DEFINITION": self.targets.job_definition,
            "STAC_COH_FINALIZE_JOB_QUEUE": self.targets.finalize_queue,
            "STAC_COH_FINALIZE_JOB_DEFINITION": self.targets.finalize_job_definition,
        }


def make_batch_setup(moto: MotoServer) -> BatchSetup:
    """Create what the CloudFormation stack would: queues, job definitions, a bucket."""
    kw = {"endpoint_url": moto.endpoint, "region_name": "us-east-1"}
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    iam = boto3.client("iam", **kw, **creds)
    batch = boto3.client("batch", **kw, **creds)
    s3 = boto3.client("s3", **kw, **creds)
    tag = uuid.uuid4().hex[:8]
    role = iam.create_role(
        RoleName=f"batch-service-{tag}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "batch.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    ce = batch.create_compute_environment(
        computeEnvironmentName=f"ce-{tag}", type="UNMANAGED", state="ENABLED", serviceRole=role
    )["computeEnvironmentArn"]
    queues = [
        batch.create_job_queue(
            jobQueueName=f"{name}-{tag}",
            state="ENABLED",
            priority=10,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        )["jobQueueArn"]
        for name in ("gpu", "cpu")
    ]
    worker = batch.register_job_definition(
        jobDefinitionName=f"worker-{tag}",
        type="container",
        containerProperties={
            "image": "example.invalid/stac-coh:test",
            "command": ["process"],
            "resourceRequirements": [
                {"type": "GPU", "value": "1"},
                {"type": "VCPU", "value": "4"},
                {"type": "MEMORY", "value": "14336"},
            ],
        },
        retryStrategy={
            "attempts": 3,
            "evaluateOnExit": [
                {"onStatusReason": "Host EC2*", "action": "RETRY"},
                {"onExitCode": "75", "action": "RETRY"},
                {"onExitCode": "*", "action": "EXIT"},
            ],
        },
    )["jobDefinitionArn"]
    finalize = batch.register_job_definition(
        jobDefinitionName=f"finalize-{tag}",
        type="container",
        containerProperties={
            "image": "example.invalid/stac-coh:test",
            "command": ["finalize"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "2048"},
            ],
        },
    )["jobDefinitionArn"]
    bucket = f"coh-{tag}"
    s3.create_bucket(Bucket=bucket)
    return BatchSetup(batch, s3, bucket, BatchTargets(queues[0], worker, finalize, queues[1]))


@pytest.fixture(scope="module")
def setup(moto_server: MotoServer) -> BatchSetup:
    """Queues, job definitions and a bucket on the session's moto_server."""
    return make_batch_setup(moto_server)


@pytest.fixture(scope="module")
def failing_setup() -> Iterator[BatchSetup]:
    """The same on a second moto_server where every Batch job fails."""
    with run_moto_server({"MOTO_SIMPLE_BATCH_FAIL_AFTER": "0"}) as moto:
        yield make_batch_setup(moto)


def _describe(setup: BatchSetup, job_id: str) -> dict[str, Any]:
    return setup.batch.describe_jobs(jobs=[job_id])["jobs"][0]


def _env(desc: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in desc["container"]["environment"]}


def _jobs_named(setup: BatchSetup, prefix: str) -> list[dict[str, Any]]:
    """Jobs (not array children, which moto also lists by queue) whose name starts so."""
    found = []
    for queue in {setup.targets.job_queue, setup.targets.finalize_queue}:
        found += setup.batch.list_jobs(
            jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{prefix}*"]}]
        )["jobSummaryList"]
    return [job for job in found if ":" not in job["jobId"]]


def _keys(setup: BatchSetup, out: str) -> list[str]:
    prefix = out.removeprefix(f"s3://{setup.bucket}/")
    answer = setup.s3.list_objects_v2(Bucket=setup.bucket, Prefix=prefix)
    return [o["Key"] for o in answer.get("Contents", [])]


def _submit(setup: BatchSetup, manifest: Manifest, **kw: Any) -> RunRecord:
    args: dict[str, Any] = {"out": setup.out(), "targets": setup.targets, "pairs_per_job": 3}
    args.update(kw)
    return submit_run(manifest, batch=setup.batch, s3=setup.s3, **args)


# --------------------------------------------------------------------------------------
# submit


def test_submit_writes_manifest_array_job_and_dependent_finalize(setup: BatchSetup) -> None:
    manifest = fake_manifest(10)
    out = setup.out()
    record = _submit(setup, manifest, out=out, tags={"project": "test"})

    manifest_key = f"{out.removeprefix(f's3://{setup.bucket}/')}/runs/{record.run_id}/manifest.json"
    stored = setup.s3.get_object(Bucket=setup.bucket, Key=manifest_key)["Body"].read()
    head = json.loads(stored)  # a sharded manifest: children read their units by range
    assert head["schema_version"] == SHARDED_SCHEMA_VERSION and head["units"] == 10
    assert len(stored) < 2000
    again = read_manifest(f"s3://{setup.bucket}/{manifest_key}", s3_client=setup.s3)
    assert [p.id for p in again.pairs] == [p.id for p in manifest.pairs]
    assert again.pairs[7] == manifest.pairs[7]
    assert record.manifest_uri == f"s3://{setup.bucket}/{manifest_key}"

    [job] = record.jobs
    assert (job.size, job.index_offset, record.children) == (4, 0, 4)
    parent = _describe(setup, job.job_id)
    assert parent["arrayProperties"]["size"] == 4
    assert parent["jobQueue"] == setup.targets.job_queue
    assert parent["container"]["command"] == ["process"]
    env = _env(parent)
    assert env[ENV_MANIFEST] == record.manifest_uri
    assert env[ENV_PAIRS_PER_JOB] == "3"
    assert env[ENV_INDEX_OFFSET] == "0"
    assert env[ENV_OUT] == out
    assert env[ENV_RUN_ID] == record.run_id
    assert parent["tags"]["stac-coh:run-id"] == record.run_id
    assert parent["tags"]["project"] == "test"
    children = setup.batch.list_jobs(arrayJobId=job.job_id)["jobSummaryList"]
    assert len(children) == 4

    final = _describe(setup, record.finalize_job_id)
    assert final["dependsOn"] == [{"jobId": job.job_id}]  # no N_TO_N type
    assert final["jobQueue"] == setup.targets.finalize_queue
    assert final["container"]["command"] == ["finalize"]
    assert _env(final)[ENV_MANIFEST] == record.manifest_uri
    assert final["tags"]["stac-coh:stage"] == "finalize"

    run_key = manifest_key.replace("manifest.json", "run.json")
    stored_record = setup.s3.get_object(Bucket=setup.bucket, Key=run_key)["Body"].read()
    assert RunRecord.from_dict(json.loads(stored_record)) == record


def test_single_pair_is_a_plain_job(setup: BatchSetup) -> None:
    record = _submit(setup, fake_manifest(1), pairs_per_job=1)
    [job] = record.jobs
    assert job.size == 1
    desc = _describe(setup, job.job_id)
    assert "arrayProperties" not in desc
    assert setup.batch.list_jobs(arrayJobId=job.job_id)["jobSummaryList"] == []
    assert _describe(setup, record.finalize_job_id)["dependsOn"] == [{"jobId": job.job_id}]


def test_children_beyond_the_array_limit_become_several_array_jobs(setup: BatchSetup) -> None:
    # A low limit exercises the same path as 20,001 children against AWS's 10,000.
    record = _submit(setup, fake_manifest(10), pairs_per_job=1, max_array_size=4)
    assert [(j.size, j.index_offset) for j in record.jobs] == [(4, 0), (3, 4), (3, 7)]
    for job in record.jobs:
        desc = _describe(setup, job.job_id)
        assert desc["arrayProperties"]["size"] == job.size
        assert _env(desc)[ENV_INDEX_OFFSET] == str(job.index_offset)
    final = _describe(setup, record.finalize_job_id)
    assert final["dependsOn"] == [{"jobId": j.job_id} for j in record.jobs]


@pytest.mark.slow
def test_20001_children_submit_three_array_jobs(setup: BatchSetup) -> None:
    record = _submit(setup, fake_manifest(20_001), pairs_per_job=1)
    assert len(record.jobs) == 3
    sizes = [_describe(setup, j.job_id)["arrayProperties"]["size"] for j in record.jobs]
    assert sum(sizes) == 20_001
    assert all(2 <= s <= 10_000 for s in sizes)


@pytest.mark.parametrize("bad", [0, -2])
def test_invalid_pairs_per_job_submits_nothing(setup: BatchSetup, bad: int) -> None:
    out = setup.out()
    with pytest.raises(InputError, match="pairs-per-job"):
        _submit(setup, fake_manifest(3), out=out, pairs_per_job=bad, run_id=f"bad{-bad}")
    assert _keys(setup, out) == []
    assert _jobs_named(setup, f"stac-coh-bad{-bad}-") == []


def test_existing_run_id_is_refused_before_submitting(setup: BatchSetup) -> None:
    out = setup.out()
    _submit(setup, fake_manifest(2), out=out, run_id="twice")
    before = len(_jobs_named(setup, "stac-coh-twice-"))
    with pytest.raises(ConflictError):
        _submit(setup, fake_manifest(2), out=out, run_id="twice")
    assert len(_jobs_named(setup, "stac-coh-twice-")) == before


def test_refused_finalize_terminates_the_submitted_workers(setup: BatchSetup) -> None:
    targets = BatchTargets(
        setup.targets.job_queue, setup.targets.job_definition, "no-such-definition"
    )
    with pytest.raises(BatchError, match="no-such-definition"):
        _submit(setup, fake_manifest(4), targets=targets, run_id="halfway")
    [worker] = _jobs_named(setup, "stac-coh-halfway-")
    assert "submit failed" in _describe(setup, worker["jobId"])["statusReason"]


def test_out_must_be_s3(setup: BatchSetup, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="s3://"):
        _submit(setup, fake_manifest(2), out=str(tmp_path))


# --------------------------------------------------------------------------------------
# status


def test_status_counts_children_by_state(setup: BatchSetup) -> None:
    record = _submit(setup, fake_manifest(10), pairs_per_job=3)
    status = run_status(record.run_id, out=record.out, batch=setup.batch, s3=setup.s3)
    assert status.counts["SUCCEEDED"] == 4
    assert sum(status.counts.values()) == 4
    assert status.finalize_status == "SUCCEEDED"
    assert status.failed == ()
    assert status.finished


def test_status_lists_failed_children_with_reasons(failing_setup: BatchSetup) -> None:
    setup = failing_setup
    record = _submit(setup, fake_manifest(10), pairs_per_job=3)
    parent = record.jobs[0].job_id
    setup.batch.terminate_job(jobId=f"{parent}:1", reason="Host EC2 (instance i-0abc) terminated.")

    status = run_status(record.run_id, out=record.out, batch=setup.batch, s3=setup.s3)
    assert status.counts["FAILED"] == 4
    assert [c.child for c in status.failed] == [0, 1, 2, 3]
    assert [c.pairs for c in status.failed] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert status.failed[1].status_reason.startswith("Host EC2")
    assert status.failed[1].job_id == f"{parent}:1"

    limited = run_status(
        record.run_id, out=record.out, batch=setup.batch, s3=setup.s3, max_failed=2
    )
    assert len(limited.failed) == 2
    assert limited.failed_total == 4


def test_status_of_an_unknown_run_names_it(setup: BatchSetup) -> None:
    with pytest.raises(InputError, match="No run 'nope'"):
        run_status("nope", out=setup.out(), batch=setup.batch, s3=setup.s3)


# --------------------------------------------------------------------------------------
# command line


@pytest.fixture
def cli_env(setup: BatchSetup, aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in setup.env(aws_env).items():
        monkeypatch.setenv(key, value)


def _manifest_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "pairs.json"
    path.write_text(fake_manifest(n).to_json())
    return path


@pytest.mark.usefixtures("cli_env")
def test_cli_dry_run_prints_the_plan_and_submits_nothing(setup: BatchSetup, tmp_path: Path) -> None:
    out = setup.out()
    args = ["submit", "--manifest", str(_manifest_file(tmp_path, 9)), "--out", out]
    result = CliRunner().invoke(
        app, [*args, "--pairs-per-job", "2", "--run-id", "dry", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "5 children of 2 pairs" in result.output
    assert "array of 5" in result.output
    assert _keys(setup, out) == []
    assert _jobs_named(setup, "stac-coh-dry-") == []


@pytest.mark.usefixtures("cli_env")
def test_cli_submit_then_status(setup: BatchSetup, tmp_path: Path) -> None:
    out = setup.out()
    manifest = _manifest_file(tmp_path, 5)
    runner = CliRunner()
    args = ["submit", "--manifest", str(manifest), "--out", out, "--pairs-per-job", "2", "--json"]
    result = runner.invoke(app, [*args, "--weights", "bundled"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["children"] == 3
    assert _describe(setup, record["jobs"][0]["job_id"])["arrayProperties"]["size"] == 3

    result = runner.invoke(app, ["status", record["run_id"], "--out", out])
    assert result.exit_code == 0, result.output
    assert "SUCCEEDED  3" in result.output
    assert "finalize   SUCCEEDED" in result.output


@pytest.mark.usefixtures("cli_env")
def test_cli_submit_runs_the_search_options(setup: BatchSetup) -> None:
    out = setup.out()
    search = ["--source", str(STAC / "planetary-computer"), "--collection", "sentinel-1-rtc"]
    search += ["--bbox", "-180", "-90", "180", "90", "--start", "2014-01-01", "--end", "2027-12-31"]
    result = CliRunner().invoke(
        app,
        ["submit", *search, "--out", out, "--pairs-per-job", "1", "--json", "--weights", "bundled"],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    manifest = read_manifest(record["manifest"], s3_client=setup.s3)
    # Three pairs, each cut into work units by the MGRS tiles its scenes cover.
    assert record["n_pairs"] == record["children"] == len(manifest.pairs) == 3 * 12
    assert len({p.tile for p in manifest.pairs}) == 12
    found = {(p.reference.item_ids[0], p.secondary.item_ids[0]) for p in manifest.pairs}
    assert found == VALID_PAIRS


@pytest.mark.usefixtures("cli_env")
def test_cli_reads_an_s3_manifest_and_refuses_two_inputs(setup: BatchSetup) -> None:
    setup.s3.put_object(Bucket=setup.bucket, Key="in/pairs.json", Body=fake_manifest(7).to_json())
    uri = f"s3://{setup.bucket}/in/pairs.json"
    args = ["submit", "--out", setup.out(), "--pairs-per-job", "3", "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--manifest", uri])
    assert result.exit_code == 0, result.output
    assert "7 pairs, 3 children of 3 pairs" in result.output
    result = CliRunner().invoke(app, [*args, "--manifest", uri, "--start", "2026-01-01"])
    assert isinstance(result.exception, InputError)
    assert "not both" in str(result.exception)


def test_cli_errors_are_one_line(
    setup: BatchSetup, moto_server: MotoServer, tmp_path: Path
) -> None:
    env = {**setup.env(moto_server), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    manifest = _manifest_file(tmp_path, 3)
    cmd = [sys.executable, "-m", "stac_coh.cli", "submit", "--manifest", str(manifest)]
    done = subprocess.run(
        [*cmd, "--out", setup.out(), "--pairs-per-job", "0"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("Error:")
    assert "pairs-per-job" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["submit", "status"])
def test_help_teaches_with_examples(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "Examples" in result.output
    assert f"stac-coh {command}" in result.output
