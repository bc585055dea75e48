"""The CloudFormation template: linters, properties that matter, and a stack in moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml

from stac_coh.batch import FINALIZE_COMMAND, WORKER_COMMAND, BatchTargets, submit_run
from stac_coh.batch.deadline import ENV_TIME_LIMIT
from stac_coh.batch.exits import EXIT_BAD_INPUT, EXIT_BUG, EXIT_DEVICE, EXIT_RETRY
from tests.batch_rules import RetryRules
from tests.fake_manifest import fake_manifest
from tests.services import IN_CI, VENV_BIN, MotoServer, unavailable

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "stac-coh.yaml"
CHECKOV_VENV = ROOT / ".venv-checkov"
CHECKOV_VERSION = "3.3.30"  # pinned: new checkov releases add checks
_CHECKOV_ARGS = ("--skip-download", "--output", "json")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """The template parsed with cfn-lint's decoder (intrinsics become Ref/Fn::... dicts)."""
    return cfn_yaml.load(str(TEMPLATE))


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _props(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][name]["Properties"]


# --------------------------------------------------------------------------------------
# linters


def test_cfn_lint_passes() -> None:
    done = subprocess.run(
        [str(VENV_BIN / "cfn-lint"), *map(str, sorted((ROOT / "infra").glob("*.yaml")))],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov in its own venv (its pins clash with moto's boto3); created on first use."""
    exe = CHECKOV_VENV / "bin" / "checkov"
    if exe.exists():
        return exe
    try:
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True)
        subprocess.run(
            [
                str(CHECKOV_VENV / "bin" / "pip"),
                "install",
                "--quiet",
                f"checkov=={CHECKOV_VERSION}",
            ],
            check=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        if IN_CI:
            pytest.fail(f"cannot install checkov into {CHECKOV_VENV}: {exc}", pytrace=False)
        unavailable(f"cannot install checkov into {CHECKOV_VENV}: {exc}")
    return exe


def test_checkov_passes(checkov: Path) -> None:
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}
    done = subprocess.run(
        [str(checkov), "-d", str(ROOT / "infra"), "--framework", "cloudformation", *_CHECKOV_ARGS],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    report = json.loads(done.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert done.returncode == 0
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 20  # it really checked the resources


def test_every_checkov_skip_is_justified(template: dict[str, Any]) -> None:
    skips = [
        (name, skip)
        for name, res in template["Resources"].items()
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "expected the documented skips (access logging, log group KMS)"
    for name, skip in skips:
        assert skip["id"].startswith("CKV"), name
        assert len(skip.get("comment", "")) > 40, f"{name} skips {skip['id']} without a reason"


# --------------------------------------------------------------------------------------
# properties on the parsed template


def test_parameters_cover_the_deployment_choices(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    expected = {
        "SubnetIds",
        "SecurityGroupIds",
        "GpuInstanceTypes",
        "GpuSpotMaxVcpus",
        "SpotBidPercentage",
        "ImageUri",
        "BucketName",
        "BucketVersioning",
        "CorsAllowedOrigins",
        "LogRetentionDays",
    }
    assert expected <= set(params)
    assert {"g5", "g6", "g4dn"} <= set(params["GpuInstanceTypes"]["Default"].split(","))


def test_bucket_is_encrypted_private_and_tls_only(template: dict[str, Any]) -> None:
    [name] = _resources(template, "AWS::S3::Bucket")
    assert template["Resources"][name]["DeletionPolicy"] == "Retain"  # the catalog outlives compute
    bucket = _props(template, name)
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    block = bucket["PublicAccessBlockConfiguration"]
    assert all(
        block[k] is True
        for k in (
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        )
    )
    assert bucket["VersioningConfiguration"]["Status"] == {"Ref": "BucketVersioning"}
    [cors] = bucket["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedOrigins"] == {"Ref": "CorsAllowedOrigins"}
    assert set(cors["AllowedMethods"]) == {"GET", "HEAD"}
    assert "Content-Range" in cors["ExposedHeaders"]  # COG range reads from a browser

    [policy] = _resources(template, "AWS::S3::BucketPolicy").values()
    deny = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s["Condition"].get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert len(deny) == 1
    assert {"Fn::GetAtt": ["OutputBucket", "Arn"]} in deny[0]["Resource"]
    assert {"Fn::Sub": "${OutputBucket.Arn}/*"} in deny[0]["Resource"]


def test_bucket_aborts_multipart_uploads_that_killed_workers_leave(
    template: dict[str, Any],
) -> None:
    [name] = _resources(template, "AWS::S3::Bucket")
    rules = _props(template, name)["LifecycleConfiguration"]["Rules"]
    aborts = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert aborts and aborts[0]["Status"] == "Enabled"
    assert "Prefix" not in aborts[0] and "Filter" not in aborts[0]  # the whole bucket
    assert 1 <= aborts[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] <= 7


def test_worker_knows_its_attempts_so_the_last_one_lets_finalize_run(
    template: dict[str, Any],
) -> None:
    props = _props(template, "WorkerJobDefinition")
    env = {e["Name"]: e["Value"] for e in props["ContainerProperties"]["Environment"]}
    assert env["STAC_COH_MAX_ATTEMPTS"] == props["RetryStrategy"]["Attempts"]
    assert env["STAC_COH_LOG_JSON"] == "true"


def test_worker_needs_one_gpu_and_finalize_none(template: dict[str, Any]) -> None:
    worker = _props(template, "WorkerJobDefinition")["ContainerProperties"]
    needs = {r["Type"]: r["Value"] for r in worker["ResourceRequirements"]}
    assert needs["GPU"] == "1"
    assert {"VCPU", "MEMORY"} <= set(needs)
    assert worker["Command"] == list(WORKER_COMMAND)
    finalize = _props(template, "FinalizeJobDefinition")["ContainerProperties"]
    assert "GPU" not in {r["Type"] for r in finalize["ResourceRequirements"]}
    assert finalize["Command"] == list(FINALIZE_COMMAND)
    for name in ("WorkerJobDefinition", "FinalizeJobDefinition"):
        props = _props(template, name)
        assert props["Timeout"]["AttemptDurationSeconds"]
        logs = props["ContainerProperties"]["LogConfiguration"]
        assert logs["Options"]["awslogs-group"] == {"Ref": "LogGroup"}
        assert props["ContainerProperties"]["JobRoleArn"] == {"Fn::GetAtt": ["JobRole", "Arn"]}


def test_retry_strategy_retries_spot_transient_gpu_and_kills_but_not_bad_input(
    template: dict[str, Any],
) -> None:
    retry = _props(template, "WorkerJobDefinition")["RetryStrategy"]
    assert retry["Attempts"] == {"Ref": "WorkerAttempts"}
    assert template["Parameters"]["WorkerAttempts"]["Default"] >= 3  # kills set aside on 3rd
    assert len(retry["EvaluateOnExit"]) <= 5  # AWS's limit
    rules = RetryRules.of(template, "WorkerJobDefinition")
    assert rules.action(OnStatusReason="Host EC2 (instance i-0abc) terminated.") == "RETRY"
    assert rules.action(OnReason="CannotPullContainerError: pull rate exceeded") == "RETRY"
    exited = "Essential container in task exited"
    assert rules.action(OnExitCode=str(EXIT_RETRY), OnStatusReason=exited) == "RETRY"
    assert rules.action(OnExitCode=str(EXIT_DEVICE), OnStatusReason=exited) == "RETRY"
    assert rules.action(OnExitCode="137", OnReason="OutOfMemoryError: Container killed") == (
        "RETRY"
    )
    assert rules.action(OnExitCode="139", OnStatusReason=exited) == "RETRY"  # segfault
    assert rules.action(OnExitCode=str(EXIT_BAD_INPUT), OnStatusReason=exited) == "EXIT"
    assert rules.action(OnExitCode=str(EXIT_BUG), OnStatusReason=exited) == "EXIT"
    assert not rules.retries(EXIT_RETRY, attempt=1, timed_out=True)  # Batch's own rule
    assert not rules.retries(EXIT_RETRY, attempt=rules.attempts)

    finalize = RetryRules.of(template, "FinalizeJobDefinition")
    assert finalize.action(OnExitCode=str(EXIT_RETRY)) == "RETRY"
    assert finalize.action(OnExitCode="137", OnReason="OutOfMemoryError: killed") == "EXIT"


def test_worker_stops_before_the_time_limit_batch_would_not_retry(
    template: dict[str, Any],
) -> None:
    props = _props(template, "WorkerJobDefinition")
    env = {e["Name"]: e["Value"] for e in props["ContainerProperties"]["Environment"]}
    assert env[ENV_TIME_LIMIT] == props["Timeout"]["AttemptDurationSeconds"]


def test_spot_instances_drain_so_workers_get_sigterm(template: dict[str, Any]) -> None:
    data = _props(template, "InstanceLaunchTemplate")["LaunchTemplateData"]
    user_data = data["UserData"]["Fn::Base64"]
    assert user_data.startswith("MIME-Version: 1.0\nContent-Type: multipart/mixed")
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in user_data
    assert "/etc/ecs/ecs.config" in user_data
    spot = _props(template, "GpuSpotComputeEnvironment")["ComputeResources"]
    assert spot["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "InstanceLaunchTemplate"}


def test_queues_cancel_jobs_that_cannot_be_placed(template: dict[str, Any]) -> None:
    for queue in ("GpuJobQueue", "FinalizeJobQueue"):
        actions = _props(template, queue)["JobStateTimeLimitActions"]
        reasons = {a["Reason"] for a in actions}
        assert reasons == {
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        }
        assert all(a["State"] == "RUNNABLE" and a["Action"] == "CANCEL" for a in actions)


def test_finalize_can_run_the_slim_cpu_image(template: dict[str, Any]) -> None:
    image = _props(template, "FinalizeJobDefinition")["ContainerProperties"]["Image"]
    assert image == {
        "Fn::If": ["HasFinalizeImage", {"Ref": "FinalizeImageUri"}, {"Ref": "ImageUri"}]
    }
    assert template["Parameters"]["FinalizeImageUri"]["Default"] == ""


def test_submitter_writes_only_run_records(template: dict[str, Any]) -> None:
    statements = _props(template, "SubmitterPolicy")["PolicyDocument"]["Statement"]
    writes = [s for s in statements if set(_listify(s["Action"])) & {"s3:PutObject"}]
    assert len(writes) == 1
    assert writes[0]["Resource"] == [
        {"Fn::Sub": "${OutputBucket.Arn}/runs/*"},
        {"Fn::Sub": "${OutputBucket.Arn}/*/runs/*"},
    ]
    s3_actions = {a for s in statements for a in _listify(s["Action"]) if a.startswith("s3:")}
    assert s3_actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject"}  # no delete
    [listing] = [s for s in statements if "s3:ListBucket" in _listify(s["Action"])]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["reports/*", "*/reports/*"]


def test_gpu_queue_tries_spot_first_then_on_demand(template: dict[str, Any]) -> None:
    order = sorted(
        _props(template, "GpuJobQueue")["ComputeEnvironmentOrder"], key=lambda o: o["Order"]
    )
    kinds = []
    for entry in order:
        env = _props(template, entry["ComputeEnvironment"]["Ref"])["ComputeResources"]
        kinds.append(env["Type"])
        assert env["InstanceTypes"] == {"Ref": "GpuInstanceTypes"}
        assert env["MinvCpus"] == 0  # scale to zero between runs
        assert env["Ec2Configuration"][0]["ImageType"].endswith("_NVIDIA")
    assert kinds == ["SPOT", "EC2"]
    spot = _props(template, order[0]["ComputeEnvironment"]["Ref"])["ComputeResources"]
    assert spot["BidPercentage"] == {"Ref": "SpotBidPercentage"}


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement of inline role policies and managed policies (Fn::If unwrapped)."""
    docs = []
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::IAM::Role":
            docs += [(name, p["PolicyDocument"]) for p in res["Properties"].get("Policies", [])]
        elif res["Type"] == "AWS::IAM::ManagedPolicy":
            docs.append((name, res["Properties"]["PolicyDocument"]))
    for name, doc in docs:
        for stmt in doc["Statement"]:
            if "Fn::If" in stmt:
                yield from ((name, s) for s in stmt["Fn::If"][1:] if "Effect" in s)
            else:
                yield name, stmt


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_iam_is_bucket_scoped_and_never_wildcard_for_s3(template: dict[str, Any]) -> None:
    statements = list(_statements(template))
    assert statements
    s3_allowed = False
    for name, stmt in statements:
        actions = _listify(stmt["Action"])
        resources = _listify(stmt["Resource"])
        assert "*" not in actions and "s3:*" not in actions, name
        if any(a.startswith("s3:") for a in actions):
            s3_allowed = True
            assert "*" not in resources, f"{name}: S3 actions on Resource '*'"
            for res in resources:
                text = json.dumps(res)
                assert "OutputBucket" in text or "InputObjectArns" in text, f"{name}: {text}"
        if "*" in resources:  # only actions AWS offers no resource-level permission for
            assert all(a in {"batch:DescribeJobs", "batch:ListJobs"} for a in actions), name
    assert s3_allowed
    job_role = _props(template, "JobRole")["AssumeRolePolicyDocument"]["Statement"][0]
    assert job_role["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}


def test_instances_need_imdsv2_and_encrypted_disks(template: dict[str, Any]) -> None:
    data = _props(template, "InstanceLaunchTemplate")["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert all(m["Ebs"]["Encrypted"] is True for m in data["BlockDeviceMappings"])


def test_log_group_has_retention(template: dict[str, Any]) -> None:
    [group] = _resources(template, "AWS::Logs::LogGroup").values()
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_outputs_name_what_submit_needs(template: dict[str, Any]) -> None:
    assert {
        "GpuJobQueueArn",
        "FinalizeJobQueueArn",
        "WorkerJobDefinitionArn",
        "FinalizeJobDefinitionArn",
        "BucketName",
    } <= set(template["Outputs"])


# --------------------------------------------------------------------------------------
# the stack in moto (a wiring smoke test: moto drops some resources, see SERVICES.md)


@pytest.mark.integration
def test_stack_creates_in_moto_and_takes_a_run(moto_server: MotoServer) -> None:
    kw = {
        "endpoint_url": moto_server.endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    ec2, cfn = boto3.client("ec2", **kw), boto3.client("cloudformation", **kw)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"sg-{vpc}", Description="jobs", VpcId=vpc)
    name = f"stac-coh-{uuid.uuid4().hex[:8]}"
    params = {
        "SubnetIds": subnet,
        "SecurityGroupIds": group["GroupId"],
        "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/stac-coh:test",
        "BucketName": f"{name}-out",
        # moto does not split the defaults of list parameters, so pass them all.
        "GpuInstanceTypes": "g5,g6,g4dn",
        "CpuInstanceTypes": "m6i,c6i",
        "CorsAllowedOrigins": "https://radiantearth.github.io",
        "InputObjectArns": "",
    }
    cfn.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    batch, s3 = boto3.client("batch", **kw), boto3.client("s3", **kw)
    [queue] = batch.describe_job_queues(jobQueues=[outputs["GpuJobQueueArn"]])["jobQueues"]
    envs = [
        o["computeEnvironment"]
        for o in sorted(queue["computeEnvironmentOrder"], key=lambda o: o["order"])
    ]
    described = {
        e["computeEnvironmentArn"]: e
        for e in batch.describe_compute_environments(computeEnvironments=envs)[
            "computeEnvironments"
        ]
    }
    assert [described[e]["computeResources"]["type"] for e in envs] == ["SPOT", "EC2"]
    [worker] = batch.describe_job_definitions(jobDefinitions=[outputs["WorkerJobDefinitionArn"]])[
        "jobDefinitions"
    ]
    assert {"type": "GPU", "value": "1"} in worker["containerProperties"]["resourceRequirements"]
    assert worker["retryStrategy"]["evaluateOnExit"][0]["onStatusReason"] == "Host EC2*"

    targets = BatchTargets(
        outputs["GpuJobQueueArn"],
        outputs["WorkerJobDefinitionArn"],
        outputs["FinalizeJobDefinitionArn"],
        outputs["FinalizeJobQueueArn"],
    )
    out = f"s3://{outputs['BucketName']}/catalog"
    record = submit_run(
        fake_manifest(5), out=out, targets=targets, pairs_per_job=2, batch=batch, s3=s3
    )
    jobs = batch.describe_jobs(jobs=list(record.job_ids))["jobs"]
    assert {j["jobQueue"] for j in jobs} == {
        outputs["GpuJobQueueArn"],
        outputs["FinalizeJobQueueArn"],
    }
