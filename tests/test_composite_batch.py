"""`stac-coh composite --submit` on moto_server: one Batch child per tile, each reads its share."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stac_coh.cli import app
from stac_coh.science.decay_stack import DecayStackSpec, write_stack_catalog
from tests.services import MotoServer
from tests.test_batch_submit import make_batch_setup

pytestmark = pytest.mark.integration


def _upload(s3, folder: Path, bucket: str, prefix: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


def test_submit_plans_one_child_per_tile_and_a_child_makes_its_tile(
    aws_env: MotoServer, tmp_path: Path
):
    setup = make_batch_setup(aws_env)
    local = tmp_path / "catalog"
    for k, x0 in enumerate((600_000.0, 700_000.0)):  # two areas of one UTM zone: two tiles
        spec = DecayStackSpec(
            size=32,
            n_dates=5,
            baselines=(6, 12, 18),
            origin=(x0, 4_150_000.0),
            start=datetime(2026, 6, 1 + k, 14, tzinfo=UTC),
        )
        write_stack_catalog(local, seed=k, spec=spec)
    _upload(setup.s3, local, setup.bucket, "cat")
    catalog = f"s3://{setup.bucket}/cat"
    args = ["composite", "--catalog", catalog, "--year", "2026", "--season", "JJA"]
    submitted = CliRunner().invoke(
        app,
        [*args, "--submit", "--run-id", "20260701T000000Z-abc123"],
        env={
            "STAC_COH_FINALIZE_JOB_QUEUE": setup.targets.finalize_queue,
            "STAC_COH_FINALIZE_JOB_DEFINITION": setup.targets.finalize_job_definition,
        },
        catch_exceptions=False,
    )
    assert submitted.exit_code == 0, submitted.output
    name = "stac-coh-20260701T000000Z-abc123-composite"
    listed = setup.batch.list_jobs(
        jobQueue=setup.targets.finalize_queue, filters=[{"name": "JOB_NAME", "values": [name]}]
    )["jobSummaryList"]
    (listed,) = [j for j in listed if j["jobName"] == name and ":" not in j["jobId"]]
    job = setup.batch.describe_jobs(jobs=[listed["jobId"]])["jobs"][0]
    assert job["arrayProperties"]["size"] == 2
    container = job["container"]
    assert container["command"] == ["composite"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    shares = env["STAC_COH_TILE_SHARES"]
    assert shares == f"{catalog}/runs/20260701T000000Z-abc123/composite/tiles"
    keys = setup.s3.list_objects_v2(Bucket=setup.bucket, Prefix="cat/runs/")["Contents"]
    assert sum(k["Key"].endswith(("000000.json", "000001.json")) for k in keys) == 2

    child = CliRunner().invoke(
        app,
        ["worker", "composite"],
        env={**env, "AWS_BATCH_JOB_ARRAY_INDEX": "1"},
        catch_exceptions=False,
    )
    assert child.exit_code == 0, child.output
    made = [
        k["Key"]
        for k in setup.s3.list_objects_v2(
            Bucket=setup.bucket, Prefix="cat/sentinel-1-coherence-seasonal/"
        )["Contents"]
        if k["Key"].endswith("_median.json")
    ]
    assert len(made) == 1 and "-700000-" in made[0]  # child 1 made tile 1 only
    item = json.loads(setup.s3.get_object(Bucket=setup.bucket, Key=made[0])["Body"].read())
    assert {"rho_inf", "tau", "rmse", "coherence_18d"} <= set(item["assets"])
    derived = [link["href"] for link in item["links"] if link["rel"] == "derived_from"]
    assert len(derived) == 9 and all(h.startswith("../../sentinel-1-coherence/") for h in derived)
