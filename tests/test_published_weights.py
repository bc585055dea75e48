"""``--weights auto``: the published weights, fetched once, applied as their config says.

The "published" repository here is served by a local Hub (tests/hub_server.py) to the real
huggingface_hub client, so the cache it writes has the real layout: a base-8 ResUNet as a
legacy Keras H5, a ``config.yaml`` whose preprocessing, tiling and output channel differ
from the defaults, and a model card with a license. Runs then go offline
(``HF_HUB_OFFLINE=1``, set for every test by conftest) and must find everything there;
the Batch test counts the Hub downloads of a whole run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stac_coh.cli._process_options import ProcessingChoices
from stac_coh.constants import ENV_WEIGHTS
from stac_coh.errors import WeightsError
from stac_coh.infer.network import NetworkPredictor
from stac_coh.model.card import Tiling
from stac_coh.model.hub import PUBLISHED_REPO
from stac_coh.model.preprocess import Preprocessing
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weight_sources import bundled_weights
from stac_coh.model.weights import describe_weights, import_keras, load_weights, model_tensors
from stac_coh.settings import Settings
from tests.hub_server import HubRepo, serve_hub
from tests.keras_files import randomise_, write_legacy
from tests.run_scene import RunScene, build_scene, stac_coh
from tests.services import MotoServer
from tests.stac_validation import validation_errors
from tests.test_batch_submit import make_batch_setup

COMMIT = "5eb1c0ffee5eb1c0ffee5eb1c0ffee5eb1c0ffee"
CONFIG = """\
framework: tensorflow
weights_filename: model.weights.h5
architecture: {name: resunet, input_shape: [128, 128, 2], output_channels: 2}
preprocessing:
  db_min: -25
  db_max: 5
  channel_order: [t2, t1]
  input_scale: linear_sigma0_from_gee
  model_scale: db_clipped_normalized
tiling: {patch_size: 128, stride: 64, batch_size: 4, aggregation: kaiser}
output: {name: coherence, range: [0, 1], channel: 1}
"""
README = "---\nlicense: apache-2.0\ntags: [sar, insar]\n---\n# Beyond Backscatter (test copy)\n"
COLLECTION = "sentinel-1-coherence"


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    model = randomise_(ResUNet(base=8), seed=1).eval()
    return write_legacy(model, tmp_path_factory.mktemp("keras") / "model.weights.h5")


@pytest.fixture(scope="module")
def published(keras_file: Path) -> HubRepo:
    files = {"model.weights.h5": keras_file.read_bytes(), "config.yaml": CONFIG.encode()}
    return HubRepo(PUBLISHED_REPO, COMMIT, {**files, "README.md": README.encode()})


def hub_download(hub_env: dict[str, str], cache_root: Path) -> None:
    """Fill ``cache_root/huggingface`` with the real client, as any first download does."""
    code = (
        "from huggingface_hub import snapshot_download; "
        f"snapshot_download({PUBLISHED_REPO!r}, cache_dir={str(cache_root / 'huggingface')!r})"
    )
    env = {**os.environ, **hub_env}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory, published: HubRepo) -> Path:
    """A stac-coh cache holding a Hub snapshot of the published repository (no conversion)."""
    root = tmp_path_factory.mktemp("cache")
    with serve_hub(published) as hub:
        hub_download(hub.env(), root)
    snapshot = root / "huggingface" / f"models--{PUBLISHED_REPO.replace('/', '--')}"
    assert (snapshot / "refs" / "main").read_text() == COMMIT
    return root


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> RunScene:
    return build_scene(tmp_path_factory.mktemp("scene"))


def offline_env(cache: Path) -> dict[str, str]:
    """A user's environment: no --weights, no STAC_COH_WEIGHTS, the Hub out of reach."""
    env = {k: v for k, v in os.environ.items() if k != "STAC_COH_WEIGHTS"}
    env |= {"HF_HUB_OFFLINE": "1", "STAC_COH_CACHE_DIR": str(cache), "STAC_COH_DEVICE": "cpu"}
    return env | {"OMP_NUM_THREADS": "1"}


# --------------------------------------------------------------------------------------
# the config drives inference


def _scaled(linear: np.ndarray, db_min: float, db_max: float) -> np.ndarray:
    """The published preprocessing, written out here independently of stac_coh.model.preprocess."""
    db = 10 * np.log10(np.maximum(linear, 0) + np.finfo(np.float32).eps)
    return ((np.clip(db, db_min, db_max) - db_min) / (db_max - db_min)).astype(np.float32)


def test_auto_converts_the_cached_snapshot_and_the_config_drives_predictions(
    hub_cache: Path, keras_file: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"  # a copy of the snapshot, nothing converted yet
    shutil.copytree(hub_cache / "huggingface", cache / "huggingface", symlinks=True)
    model, card = load_weights("auto", cache_dir=cache)
    assert card.name == "beyond-backscatter-grd-gee"
    assert card.preprocessing == Preprocessing(-25.0, 5.0, ("t2", "t1"))
    assert card.tiling == Tiling(128, 64, 4, "kaiser", 5.0)
    prov = card.provenance
    assert (prov.repository, prov.revision, prov.license) == (PUBLISHED_REPO, COMMIT, "apache-2.0")
    assert prov.source == f"hf://{PUBLISHED_REPO}/model.weights.h5"
    assert set(prov.files) == {"model.weights.h5", "config.yaml", "README.md"}
    assert "heads were swapped" in prov.notes
    converted = describe_weights("auto", cache_dir=cache)
    assert converted.format == "safetensors" and "converted" in converted.path.parts

    raw, raw_card = import_keras(
        keras_file
    )  # the file alone: default preprocessing, heads as stored
    rng = np.random.default_rng(0)
    t1, t2 = rng.uniform(0.0005, 2.0, (2, 48, 64)).astype(np.float32)
    batch = np.stack([np.stack([t1, t2])])
    ours = NetworkPredictor(model, card, device="cpu", precision="fp32")(batch)[0]
    x = np.stack([_scaled(t2, -25, 5), _scaled(t1, -25, 5)])[None]  # channel order [t2, t1]
    with torch.no_grad():
        by_hand = raw(torch.from_numpy(x)).numpy()[0]
    np.testing.assert_allclose(ours[0], by_hand[1], atol=1e-4)  # coherence from channel 1
    np.testing.assert_allclose(ours[1], by_hand[0], atol=1e-4)  # the other head: uncertainty
    defaults = NetworkPredictor(raw, raw_card, device="cpu", precision="fp32")(batch)[0]
    assert np.abs(defaults[0] - ours[0]).max() > 0.01  # the config really changed the maps


def test_a_repository_whose_config_cannot_be_honoured_is_refused(
    tmp_path: Path, keras_file: Path
) -> None:
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "model.weights.h5").write_bytes(keras_file.read_bytes())
    (folder / "config.yaml").write_text(CONFIG.replace("stride: 64", "stride: 64, blend: 3"))
    with pytest.raises(WeightsError, match=r"'tiling\.blend'.*does not know"):
        load_weights(folder, cache_dir=tmp_path / "cache")
    (folder / "config.yaml").write_text(CONFIG.replace("[128, 128, 2]", "[128, 128, 4]"))
    with pytest.raises(WeightsError, match="4 channels"):
        load_weights(folder, cache_dir=tmp_path / "cache")
    (folder / "config.yaml").write_text(CONFIG)
    (folder / "stats.json").write_text('{"db_min": -20}')
    with pytest.raises(WeightsError, match="contradicts itself"):
        load_weights(folder, cache_dir=tmp_path / "cache")
    (folder / "stats.json").unlink()
    _model, card = load_weights(folder, cache_dir=tmp_path / "cache")  # a hand download
    assert card.preprocessing.db_min == -25.0 and card.provenance.revision == ""


def test_demo_keeps_the_bundled_weights_when_the_published_ones_are_cached(
    hub_cache: Path,
) -> None:
    settings = Settings(cache_dir=hub_cache)
    choices = {k: None for k in ("weights", "device", "tile", "batch_size")}
    fixed = {"estimator": "resunet", "mode": "fast", "dtype": "uint8", "uncertainty": True}
    fixed |= {"loader": "odc", "overwrite": False, "collection_id": COLLECTION}
    demo = ProcessingChoices(**choices, **fixed, source_kind="simulated")  # type: ignore[arg-type]
    real = ProcessingChoices(**choices, **fixed)  # type: ignore[arg-type]
    assert demo.resolve_weights(settings) == bundled_weights()
    assert "converted" in real.resolve_weights(settings).parts


# --------------------------------------------------------------------------------------
# the command line, as a user runs it


def test_offline_without_a_cache_is_one_line_that_says_what_to_do(
    scene: RunScene, tmp_path: Path
) -> None:
    env = offline_env(tmp_path / "empty-cache")
    done = stac_coh("search-and-run", *scene.search_args(), "--out", str(tmp_path / "o"), env=env)
    assert done.returncode == WeightsError.exit_code, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: The published weights (hf://FPSica/beyond-backscatter-grd-gee)")
    assert "`stac-coh weights download`" in line and "stac-coh weights import-keras" in line
    info = stac_coh("weights", "info", env=env)  # what a run would use: the same line
    assert info.stderr.strip() == line


def test_search_and_run_without_weights_uses_and_names_the_published_ones(
    scene: RunScene, hub_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = stac_coh(
        "search-and-run", *scene.search_args(), "--out", str(out), env=offline_env(hub_cache)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SIMULATED" not in done.stderr  # no demo-weights warning
    card = describe_weights("auto", cache_dir=hub_cache).card
    items = [json.loads(p.read_text()) for p in (out / COLLECTION).glob("*/*.json")]
    assert len(items) == 2
    for item in items:
        props = item["properties"]
        assert props["coh:weights_name"] == "beyond-backscatter-grd-gee"
        assert props["coh:weights_repository"] == PUBLISHED_REPO
        assert props["coh:weights_revision"] == COMMIT
        assert props["coh:weights_license"] == "apache-2.0"
        assert props["coh:weights_sha256"] == card.sha256
        assert props["coh:weights_source"] == f"hf://{PUBLISHED_REPO}/model.weights.h5"
        assert validation_errors(item) == []
    models = [p for p in (out / "models").glob("*/*.json") if p.stem == p.parent.name]
    [model_item] = [json.loads(p.read_text()) for p in models]
    assert model_item["properties"]["license"] == "apache-2.0"
    assert model_item["properties"]["coh:weights_revision"] == COMMIT
    href = model_item["assets"]["weights"]["href"]
    assert href == f"https://huggingface.co/{PUBLISHED_REPO}/resolve/{COMMIT}/model.weights.h5"


def test_weights_download_fetches_converts_and_reports_the_revision(
    published: HubRepo, tmp_path: Path
) -> None:
    with serve_hub(published) as hub:
        env = {**offline_env(tmp_path / "cache"), **hub.env()}
        done = stac_coh("weights", "download", env=env)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.is_file() and path.suffix == ".safetensors"
    assert f"revision {COMMIT}" in done.stderr and "license apache-2.0" in done.stderr
    assert hub.downloads("model.weights.h5") == 1
    # Later runs are offline and use it as it is.
    again = describe_weights("auto", cache_dir=tmp_path / "cache")
    assert again.path == path
    assert set(model_tensors(load_weights(path)[0])) == set(model_tensors(ResUNet(base=8)))


# --------------------------------------------------------------------------------------
# AWS Batch: `stac-coh submit` runs as a user would (a fresh process, an empty cache, the
# local Hub reached by the real client); every array child then runs as AWS Batch starts
# it: `stac-coh worker process` with the job's environment as moto's Batch recorded it,
# AWS_BATCH_JOB_ARRAY_INDEX, an empty cache of its own, and the Hub still reachable, so a
# child that asked it anything would be counted.


@pytest.mark.integration
def test_one_hub_download_per_run_and_the_workers_read_the_s3_copy(
    published: HubRepo, scene: RunScene, moto_server: MotoServer, tmp_path: Path
) -> None:
    setup = make_batch_setup(moto_server)
    out = setup.out()
    aws = setup.env(moto_server)
    with serve_hub(published) as hub:
        env = {**offline_env(tmp_path / "submit-cache"), **aws, **hub.env()}
        args = ["submit", *scene.search_args(), "--out", out, "--pairs-per-job", "1", "--json"]
        done = subprocess.run(
            [sys.executable, "-m", "stac_coh", *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        assert hub.downloads("model.weights.h5") == 1
        asked = len(hub.requests)

        [job] = record["jobs"]
        assert record["children"] == job["size"] == 2
        described = setup.batch.describe_jobs(jobs=[job["job_id"]])["jobs"][0]
        job_env = {e["name"]: e["value"] for e in described["container"]["environment"]}
        run_prefix = f"{out}/runs/{record['run_id']}/weights/"
        assert job_env[ENV_WEIGHTS] == run_prefix + "beyond-backscatter-grd-gee.safetensors"

        children = []
        for index in range(record["children"]):
            child_env = {**offline_env(tmp_path / f"child{index}"), **aws, **hub.env()}
            child_env |= {**job_env, "AWS_BATCH_JOB_ARRAY_INDEX": str(index)}
            with (tmp_path / f"child{index}.log").open("wb") as log:
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "stac_coh", "worker", "process"],
                        env=child_env,
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                    )
                )
        codes = [child.wait(timeout=600) for child in children]
        logs = [(tmp_path / f"child{i}.log").read_text() for i in range(len(children))]
        assert codes == [0] * len(children), logs
        assert len(hub.requests) == asked  # no child asked the Hub anything
    assert hub.downloads("model.weights.h5") == 1
    for index in range(len(children)):
        cache = tmp_path / f"child{index}"
        assert list((cache / "s3").rglob("*.safetensors")), logs[index]
        assert not (cache / "huggingface").exists() and not (cache / "converted").exists()
        events = [json.loads(line) for line in logs[index].splitlines() if line.strip()]
        [predictor] = [e for e in events if e["event"] == "worker.predictor"]
        assert "beyond-backscatter-grd-gee" in predictor["message"]

    bucket, _, prefix = out.removeprefix("s3://").partition("/")
    listed = setup.s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{COLLECTION}/")
    keys = [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".json")]
    items = [json.loads(setup.s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys]
    items = [i for i in items if i.get("type") == "Feature"]
    assert len(items) == 2
    for item in items:
        assert item["properties"]["coh:weights_revision"] == COMMIT
        assert item["properties"]["coh:weights_license"] == "apache-2.0"


@pytest.mark.integration
def test_a_missing_s3_copy_is_a_weights_error(aws_env: MotoServer, tmp_path: Path) -> None:
    import uuid

    import boto3

    bucket = f"weights-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(f"s3://{bucket}/runs/r/weights/gone.safetensors", cache_dir=tmp_path)
