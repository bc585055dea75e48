"""Run AWS Batch worker children as real processes against moto S3, as Batch would.

Inputs: one recorded PC ``sentinel-1-rtc`` slice coarsened to 2.5 km pixels (67 x 41 px)
and repeated every 12 days, its COGs in a moto bucket behind ``s3://`` hrefs; the work
units are its 12-day pairs cut by the MGRS tiles of the area (as tests/test_worker.py
builds them); the weights are a tiny base-8 ResUNet. The manifest is written sharded, as
``stac-coh submit`` writes it. A child is ``python -m stac_coh worker process`` with the
environment ``submit`` gives it plus ``AWS_BATCH_JOB_ARRAY_INDEX``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pystac

from stac_coh.batch import run_key
from stac_coh.io.stac_io import StoreStacIO
from stac_coh.io.storage import Store, open_store
from stac_coh.pipeline.records import outcome_key
from stac_coh.search.manifest import Manifest, SourceSpec
from stac_coh.search.pairing import find_pairs
from stac_coh.search.query import SearchQuery
from stac_coh.search.shards import write_sharded_manifest
from tests.run_scene import REFERENCE_SLICES, tiny_weights
from tests.services import MotoServer
from tests.stac_data import PC_RTC, item, scaled, shifted_in_time, write_item_cog

COLLECTION = "sentinel-1-coherence"
AREA = (15.0, 33.0, 16.8, 34.5)
"""Across both slices of the pass and six MGRS tiles."""
SECRET = "worker-test-secret-9d41c7e2"
TOKEN = "worker-test-session-token-5be0aa19"
WAIT_S = 600.0
"""Longest wait for a child's log line or exit (the test machine may be very busy)."""


@dataclass(frozen=True)
class Inputs:
    """A manifest of work units (inputs on moto S3) and the weights."""

    manifest: Manifest
    bucket: str
    weights: Path
    cogs: Path
    """Local copies of the input COGs, by item id (``<id>.tif``)."""


def s3_client(moto: MotoServer, endpoint: str | None = None) -> Any:
    """A boto3 S3 client on moto (or on a proxy in front of it)."""
    env = moto.env()
    return boto3.client(
        "s3",
        endpoint_url=endpoint or moto.endpoint,
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def make_inputs(root: Path, moto: MotoServer, n_pairs: int) -> Inputs:
    """The first ``n_pairs`` work units (pairs x tiles) of 12-day dates, COGs on moto."""
    s3 = s3_client(moto)
    bucket = f"rtc-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    first = scaled(item(PC_RTC, REFERENCE_SLICES[0]), 250)
    dates = max(3, n_pairs // 4 + 2)  # several pairs; each is cut into several tile units
    items = [first] + [shifted_in_time(first, 12 * k, f"d{k:02d}") for k in range(1, dates)]
    for n, it in enumerate(items):
        path = write_item_cog(it, root / f"{it['id']}.tif", seed=0.37 * n)
        key = f"cogs/{it['id']}.tif"
        s3.upload_file(str(path), bucket, key)
        it["assets"]["vv"]["href"] = f"s3://{bucket}/{key}"
    query = SearchQuery.build(bbox=AREA, start="2024-04-01", end="2026-12-31", baselines="12")
    pairs = find_pairs(items, query).pairs[:n_pairs]
    assert len(pairs) == n_pairs
    manifest = Manifest(
        SourceSpec("local", "catalog", "sentinel-1-rtc"),
        query.to_dict(),
        pairs,
        {str(it["id"]): it for it in items},
    )
    return Inputs(manifest, bucket, tiny_weights(root / "tiny.safetensors"), root)


@dataclass(frozen=True)
class Run:
    """One run's output prefix, run id and the environment submit would give its jobs."""

    out: str
    run_id: str
    env: dict[str, str]
    store: Store
    bucket: str


def new_run(
    inputs: Inputs,
    moto: MotoServer,
    manifest: Manifest | None = None,
    pairs_per_job: int = 2,
    **extra_env: str,
) -> Run:
    """Write the manifest as `submit` does; the jobs' environment."""
    s3 = s3_client(moto)
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
    for name in ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ATTEMPT", "STAC_COH_MAX_ATTEMPTS"):
        env.pop(name, None)
    return Run(out, run_id, {**env, **extra_env}, store, bucket)


def start(
    run: Run, stage: str, log: Path, *, module: str = "stac_coh", **env: str
) -> subprocess.Popen[bytes]:
    """``python -m MODULE worker STAGE`` in a fresh process, stderr appended to ``log``."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", module, "worker", stage],
            env={**run.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )


def run_worker(run: Run, stage: str, log: Path, **env: str) -> int:
    """Run a worker stage to its end; its exit code."""
    return start(run, stage, log, **env).wait(timeout=WAIT_S)


def events(log: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a worker log (each line must be one JSON object)."""
    lines = log.read_text().split("\n")[:-1]  # the part after the last newline may be partial
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(log: Path, proc: subprocess.Popen[bytes], event: str, after: int = 0) -> None:
    """Block until the ``after``-th-plus-one line with ``event`` appears in the log."""
    deadline = time.monotonic() + WAIT_S
    while sum(e["event"] == event for e in events(log)) <= after:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {event} in {log.read_text()}"
        time.sleep(0.05)


def wait_held(hold: Any, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Block until the proxy holds the request ``hold`` matches (the child stays alive)."""
    deadline = time.monotonic() + WAIT_S
    while not hold.held.wait(0.1):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"nothing held: {log.read_text()}"


def outcome(run: Run, pair_id: str) -> dict[str, Any]:
    """The outcome a worker recorded for a pair."""
    return json.loads(run.store.get(outcome_key(run.run_id, pair_id)).data)  # type: ignore[no-any-return]


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
