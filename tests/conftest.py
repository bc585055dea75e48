"""Shared fixtures: paths to the shared fixtures, and the real local services."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from stac_coh.io.storage import Store, open_store
from tests.services import MotoServer, PgstacApi, run_moto_server, run_pgstac_api

TESTS = Path(__file__).parent
DATA = TESTS / "data"


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread for the test: the machine's cores are shared with other work."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto_server process for the session (S3, Batch, CloudFormation)."""
    with run_moto_server() as server:
        yield server


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Point boto3 and GDAL at moto_server for one test, with dummy credentials."""
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    return moto_server


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A catalog's store, once as a local folder and once as ``s3://<fresh bucket>/coherence``
    on moto_server (with aws_env set, so GDAL reads it too)."""
    if request.param == "local":
        return open_store(tmp_path / "catalog")
    request.getfixturevalue("aws_env")
    bucket = f"cat-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return open_store(f"s3://{bucket}/coherence")


@pytest.fixture(scope="session")
def pgstac_api() -> Iterator[PgstacApi]:
    """One stac-fastapi-pgstac (Transactions on) for the session."""
    with run_pgstac_api() as api:
        yield api


@pytest.fixture(autouse=True, scope="session")
def _hugging_face_hub_offline() -> Iterator[None]:
    """No test reaches the real Hugging Face Hub (the tests that need one serve their own).

    huggingface_hub reads HF_HUB_OFFLINE once at import, so the constant is patched too;
    processes the tests start inherit the variable.
    """
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """`stac-coh demo` run once for the session, as `make demo` runs it (relative --out).

    Returns the demo folder and the finished process (stdout/stderr for the checks).
    """
    from tests.run_scene import stac_coh

    cwd = tmp_path_factory.mktemp("demo")
    done = stac_coh("demo", timeout=600, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return cwd / "stac-coh-demo", done
