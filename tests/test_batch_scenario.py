"""A Batch run under faults, against moto: children as processes, retries as Batch decides.

Eighteen pairs, nine children of two pairs, all started at once with
``AWS_BATCH_JOB_ARRAY_INDEX``; each child meets one kind of fault at the S3 boundary (a
fault-injecting proxy in front of moto, for GDAL's ``/vsis3/`` reads and boto3's reads and
writes), in its GPU, or from the test (signals). Every child that ends is re-run as AWS
Batch would, per the worker job definition's retry strategy in infra/stac-coh.yaml. The
finalize job runs after the first wave (as ``stac-coh finalize`` may, to check the counts
right after the kills) and twice at the end.

| child | fault | attempt 1 | Batch |
|---|---|---|---|
| 0 | output PUTs throttled twice (503 SlowDown), absorbed by botocore | 0 | done |
| 1 | SIGKILL mid-inference (an input read held) | killed (137) | retry |
| 2 | SIGKILL mid-upload (2nd asset held); then its input is deleted | killed (137) | retry |
| 3 | SIGTERM mid-pair | 75 | retry |
| 4 | input reads 503 SlowDown (GDAL); an item PUT 500 InternalError (boto3) | 75 | retry |
| 5 | CUDA illegal memory access (torch.AcceleratorError, code 700) | 69 | retry |
| 6 | no visible GPU with --device cuda | 69 | retry (elsewhere) |
| 7 | an all-nodata pair and a deleted input | 0 | done |
| 8 | SIGKILL between the item PUT and the outcome record | killed (137) | retry |
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from stac_coh.batch.exits import EXIT_DEVICE, EXIT_OK, EXIT_RETRY
from stac_coh.pipeline.records import outcome_key
from stac_coh.publish.collection import item_key
from stac_coh.search.manifest import Manifest
from tests.batch_rules import RetryRules, load_template
from tests.s3_proxy import Hold, S3Proxy, internal_error, slow_down
from tests.services import MotoServer
from tests.worker_runs import (
    COLLECTION,
    Inputs,
    Run,
    assert_clean,
    catalog_items,
    events,
    make_inputs,
    new_run,
    outcome,
    s3_client,
    start,
    wait_held,
)

N_PAIRS = 18
PUBLIC = "https://coherence.example.org/catalog"


def _variant(inputs: Inputs, manifest: Manifest, pair: int, tag: str, key: str) -> Manifest:
    """Pair ``pair`` reads its reference from a copy of the item, at ``s3://bucket/key``."""
    chosen = manifest.pairs[pair]
    [ref_id] = chosen.reference.item_ids
    copy = json.loads(json.dumps(manifest.items[ref_id]))
    copy["id"] = f"{ref_id}_{tag}"
    copy["assets"]["vv"]["href"] = f"s3://{inputs.bucket}/{key}"
    pairs = list(manifest.pairs)
    pairs[pair] = replace(chosen, reference=replace(chosen.reference, item_ids=(copy["id"],)))
    return replace(manifest, pairs=tuple(pairs), items={**manifest.items, copy["id"]: copy})


def _upload_all_nodata(inputs: Inputs, moto: MotoServer, item_id: str, key: str) -> None:
    """A copy of an input COG with nodata everywhere."""
    source = inputs.cogs / f"{item_id}.tif"
    target = inputs.cogs / f"{item_id}-nodata.tif"
    with rasterio.open(source) as src:
        profile, nodata = src.profile, src.nodata
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(np.full((1, profile["height"], profile["width"]), nodata, np.float32))
    s3_client(moto).upload_file(str(target), inputs.bucket, key)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, moto_server: MotoServer) -> Inputs:
    return make_inputs(tmp_path_factory.mktemp("scenario"), moto_server, N_PAIRS)


class Child:
    """One array child: its attempts, logs and exit codes."""

    def __init__(self, run: Run, index: int, logs: Path) -> None:
        self.run, self.index, self.logs = run, index, logs
        self.codes: list[int] = []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        """The log of the current attempt."""
        return self.attempt_log(len(self.codes) + 1)

    def attempt_log(self, attempt: int) -> Path:
        """The log of an attempt (1, 2, ...)."""
        return self.logs / f"child{self.index}-attempt{attempt}.log"

    def start(self, module: str = "stac_coh", **env: str) -> subprocess.Popen[bytes]:
        """Start the next attempt (Batch's attempt number and index in its environment)."""
        self.proc = start(
            self.run,
            "process",
            self.log,
            module=module,
            AWS_BATCH_JOB_ARRAY_INDEX=str(self.index),
            AWS_BATCH_JOB_ATTEMPT=str(len(self.codes) + 1),
            STAC_COH_MAX_ATTEMPTS="3",
            **env,
        )
        return self.proc

    def wait(self) -> int:
        """Wait for the attempt; record its exit code."""
        assert self.proc is not None
        self.codes.append(self.proc.wait(timeout=600))
        self.proc = None
        return self.codes[-1]


@contextlib.contextmanager
def proxies(endpoint: str, n: int) -> Iterator[list[S3Proxy]]:
    """``n`` fault-injecting proxies in front of moto (rules are set per child)."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(S3Proxy(endpoint).running()) for _ in range(n)]


def _via(proxy: S3Proxy, *, gdal: bool = True, boto3: bool = True) -> dict[str, str]:
    """Environment that sends GDAL's and/or boto3's S3 requests through ``proxy``."""
    env = {}
    if gdal:
        env["AWS_S3_ENDPOINT"] = proxy.address
    if boto3:
        env["AWS_ENDPOINT_URL"] = proxy.url
    return env


def _finalize(run: Run, log: Path, **env: str) -> dict[str, Any]:
    """Run the finalize job to its end; the run report it wrote."""
    proc = start(run, "finalize", log, **env)
    assert proc.wait(timeout=600) == EXIT_OK, log.read_text()
    assert_clean(log)
    return json.loads(run.store.get(f"reports/{run.run_id}.json").data)  # type: ignore[no-any-return]


@pytest.mark.integration
@pytest.mark.slow
def test_faults_at_every_boundary_lose_no_pair(
    inputs: Inputs, aws_env: MotoServer, tmp_path: Path
) -> None:
    rules = RetryRules.of(load_template(), "WorkerJobDefinition")
    manifest = inputs.manifest
    # child 2 (pairs 4, 5): pair 4's input will be deleted between its attempts
    [ref4] = manifest.pairs[4].reference.item_ids
    source = {"Bucket": inputs.bucket, "Key": f"cogs/{ref4}.tif"}
    s3_client(aws_env).copy_object(Bucket=inputs.bucket, Key="cogs/doomed.tif", CopySource=source)
    manifest = _variant(inputs, manifest, 4, "doomed", "cogs/doomed.tif")
    # child 7 (pairs 14, 15): an all-nodata input and one deleted before the run
    nodata_source = manifest.pairs[14].reference.item_ids[0]
    _upload_all_nodata(inputs, aws_env, nodata_source, "cogs/nodata.tif")
    manifest = _variant(inputs, manifest, 14, "nodata", "cogs/nodata.tif")
    manifest = _variant(inputs, manifest, 15, "deleted", "cogs/deleted-before-the-run.tif")
    run = new_run(inputs, aws_env, manifest, STAC_COH_PUBLIC_URL=PUBLIC)
    pairs = [p.id for p in manifest.pairs]
    bad = {pairs[4], pairs[14], pairs[15]}
    good = [p for p in pairs if p not in bad]
    children = [Child(run, i, tmp_path) for i in range(9)]
    reads = r"/cogs/"

    with proxies(aws_env.endpoint, 9) as px:
        px[0].faults = [slow_down(methods=("PUT",), path=r"\.tif$", times=2)]
        hold_read = Hold(methods=("GET",), path=reads)
        px[1].holds = [hold_read]
        hold_upload = Hold(path=rf"/{pairs[4]}/{pairs[4]}_uncertainty\.tif$")
        px[2].holds = [hold_upload]
        hold_term = Hold(methods=("GET",), path=reads, forward=True)
        px[3].holds = [hold_term]
        [ref8] = manifest.pairs[8].reference.item_ids
        # Two 503s: GDAL's first try and its one retry (GDAL_HTTP_MAX_RETRY=1) fail pair 8's
        # read; unit 9 may read the same scene (another tile of the same pair): with GDAL's
        # curl cache off for /vsis3/ it asks again and gets through.
        throttled_input = slow_down(path=rf"/cogs/{ref8}\.tif", times=2)
        failing_put = internal_error(methods=("PUT",), path=rf"/{pairs[9]}/{pairs[9]}\.json$")
        px[4].faults = [throttled_input, failing_put]
        hold_record = Hold(path=rf"/reports/{run.run_id}/pairs/{pairs[16]}\.json$", skip=1)
        px[8].holds = [hold_record]

        children[0].start(**_via(px[0]))
        children[1].start(**_via(px[1], boto3=False))
        children[2].start(**_via(px[2], gdal=False))
        children[3].start(**_via(px[3], boto3=False))
        children[4].start(
            **_via(px[4]),
            GDAL_HTTP_MAX_RETRY="1",
            AWS_MAX_ATTEMPTS="2",
            CPL_VSIL_CURL_NON_CACHED="/vsis3/",
        )
        children[5].start(module="tests.faulty_gpu_worker")
        children[6].start(STAC_COH_DEVICE="cuda")
        children[7].start()
        children[8].start(**_via(px[8], gdal=False))

        for child, hold in ((1, hold_read), (2, hold_upload), (8, hold_record)):
            proc = children[child].proc
            assert proc is not None
            wait_held(hold, proc, children[child].log)
            proc.send_signal(signal.SIGKILL)
            children[child].wait()
        assert run.store.exists(item_key(COLLECTION, pairs[16]))  # killed after the item PUT
        proc3 = children[3].proc
        assert proc3 is not None
        wait_held(hold_term, proc3, children[3].log)
        proc3.send_signal(signal.SIGTERM)
        px[3].release()  # the held read completes; the SIGTERM then interrupts the pair
        for child in children:
            if child.proc is not None:
                child.wait()
        assert px[0].faults[0].served == 2  # throttled output, absorbed by botocore's retries
        assert throttled_input.served > 0 and failing_put.served > 0

    first = [c.codes[0] for c in children]
    killed = -signal.SIGKILL
    assert first == [
        EXIT_OK,
        killed,
        killed,
        EXIT_RETRY,
        EXIT_RETRY,
        EXIT_DEVICE,
        EXIT_DEVICE,
        EXIT_OK,
        killed,
    ], [c.attempt_log(1).read_text()[-3000:] for c in children]

    # What each child recorded before any retry.
    assert outcome(run, pairs[0])["status"] == outcome(run, pairs[1])["status"] == "published"
    assert outcome(run, pairs[2])["status"] == "started"  # died mid-inference
    assert outcome(run, pairs[6])["status"] == "interrupted"  # SIGTERM
    transient = outcome(run, pairs[8])
    assert (transient["status"], transient["fault"]) == ("failed", "transient")
    # GDAL keeps S3's message ("Please reduce your request rate") but not always its code
    assert "s3:SlowDown" in transient["error"] or "reduce your request rate" in transient["error"]
    failed_put = outcome(run, pairs[9])
    assert (failed_put["fault"], failed_put["transient"]) == ("transient", True)
    assert "InternalError" in failed_put["error"]
    gpu = outcome(run, pairs[10])
    assert (gpu["status"], gpu["fault"], gpu["transient"]) == ("failed", "device", True)
    assert not run.store.exists(outcome_key(run.run_id, pairs[11]))  # stopped before it
    assert outcome(run, pairs[12])["fault"] == outcome(run, pairs[13])["fault"] == "device"
    assert "no CUDA GPU" in outcome(run, pairs[12])["error"]
    nodata, deleted = outcome(run, pairs[14]), outcome(run, pairs[15])
    assert (nodata["status"], nodata["fault"]) == ("failed", "permanent")
    assert "nodata" in nodata["error"]
    assert (deleted["fault"], deleted["transient"]) == ("permanent", False)
    assert "CPLE_AWSObjectNotFound" in deleted["error"]
    gpu_log = events(children[5].attempt_log(1))
    assert gpu_log[-1]["event"] == "worker.done" and gpu_log[-1]["exit_code"] == EXIT_DEVICE
    assert any(e["event"] == "worker.gpu_fault" for e in events(children[6].attempt_log(1)))

    # The run report right after the kills counts every pair where it is.
    early = _finalize(run, tmp_path / "finalize-0.log")
    by_pair = {e["pair_id"]: e for e in early["pairs"]}
    assert by_pair[pairs[16]]["status"] == "published"  # item PUT done, outcome not recorded
    assert by_pair[pairs[2]]["status"] == "interrupted"  # killed mid-inference
    assert by_pair[pairs[4]]["status"] == "interrupted"  # killed mid-upload
    assert by_pair[pairs[3]]["status"] == "missing"  # its child died before it
    assert sum(early["counts"].values()) == N_PAIRS
    assert pairs[4] in early["catalog"]["orphans"]["items"]  # its first asset, no item

    # Batch retries what its retry strategy says, once pair 4's input is gone.
    s3_client(aws_env).delete_object(Bucket=inputs.bucket, Key="cogs/doomed.tif")
    retried = [c for c in children if rules.retries(c.codes[-1], attempt=len(c.codes))]
    assert [c.index for c in retried] == [1, 2, 3, 4, 5, 6, 8]
    for child in retried:
        child.start()  # child 6 lands on a host whose GPU works (here: the CPU)
    for child in retried:
        assert child.wait() == EXIT_OK, child.log.read_text()[-3000:]
    assert not [c for c in children if rules.retries(c.codes[-1], attempt=len(c.codes))]
    for child in children:
        for attempt in range(1, len(child.codes) + 1):
            assert_clean(child.attempt_log(attempt))

    # The finalize job, twice: every good pair once, the bad ones named, orphans gone.
    report = _finalize(run, tmp_path / "finalize-1.log", STAC_COH_REMOVE_ORPHANS="true")
    again = _finalize(run, tmp_path / "finalize-2.log")
    assert sorted(catalog_items(run.store)) == sorted(good)
    for final in (report, again):
        assert final["counts"]["published"] == len(good)  # pair 16 too, not "skipped"
        assert final["counts"]["failed"] == 3
        assert {e["pair_id"] for e in final["pairs"] if e["status"] == "failed"} == bad
        assert sum(final["counts"].values()) == N_PAIRS
        assert final["catalog"]["items"] == len(good)
    assert report["catalog"]["orphans"]["found"] == 1
    assert report["catalog"]["orphans"]["removed"] == 1
    assert again["catalog"]["orphans"]["found"] == 0
    assert not [k for k in run.store.list(f"{COLLECTION}/{pairs[4]}/")]
    for pair in good:  # items are create-only: their self links carry the public URL
        data = json.loads(run.store.get(item_key(COLLECTION, pair)).data)
        [self_link] = [link["href"] for link in data["links"] if link["rel"] == "self"]
        assert self_link == f"{PUBLIC}/{item_key(COLLECTION, pair)}"
    collection = json.loads(run.store.get(f"{COLLECTION}/collection.json").data)
    assert [link["href"] for link in collection["links"] if link["rel"] == "self"] == [
        f"{PUBLIC}/{COLLECTION}/collection.json"
    ]
