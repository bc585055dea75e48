"""The worker images, checked without a Docker engine: hadolint and dockerfile-parse."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from stac_coh.batch import WORKER_COMMAND
from tests.services import VENV_BIN

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
PINNED_PYTHON = re.compile(r"python:(\d+)\.(\d+)\.(\d+)-slim-\w+")


@pytest.fixture(scope="module")
def parsed() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE))


def _final_stage(parsed: DockerfileParser) -> list[dict[str, str]]:
    """Instructions after the last FROM."""
    structure = parsed.structure
    last_from = max(i for i, ins in enumerate(structure) if ins["instruction"] == "FROM")
    return structure[last_from:]


def _stage(parsed: DockerfileParser, name: str) -> list[dict[str, str]]:
    """Instructions of the stage ``FROM ... AS name``."""
    structure = parsed.structure
    froms = [i for i, ins in enumerate(structure) if ins["instruction"] == "FROM"]
    for start, end in zip(froms, [*froms[1:], len(structure)], strict=True):
        if structure[start]["value"].split()[-1] == name:
            return structure[start:end]
    raise AssertionError(f"no stage {name}")


def _constraints() -> dict[str, str]:
    """Name -> pinned version of constraints.txt."""
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_hadolint_is_clean() -> None:
    done = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_base_image_is_the_python_the_tests_ran(parsed: DockerfileParser) -> None:
    bases = [image for image in parsed.parent_images if ":" in image]
    assert bases and all(PINNED_PYTHON.fullmatch(image) for image in bases), bases
    [version] = {PINNED_PYTHON.fullmatch(image).groups() for image in bases}  # type: ignore[union-attr]
    import sys

    assert tuple(map(int, version[:2])) == sys.version_info[:2]


def test_every_install_is_pinned_by_the_tested_constraints(parsed: DockerfileParser) -> None:
    pins = _constraints()
    assert pins["torch"] == "2.13.0"  # no local label: the CPU and CUDA builds both fit
    installs = [
        ins["value"]
        for ins in parsed.structure
        if ins["instruction"] == "RUN" and "pip install" in ins["value"]
    ]
    for run in installs:
        for command in run.split("&&"):
            if "pip install" in command and "--no-deps" not in command:
                assert "-c /opt/stac-coh/constraints.txt" in command, command
    assert any('"torch==2.13.0"' in run for run in installs)  # the CUDA build, from PyPI
    assert any('"torch==2.13.0+cpu"' in run for run in installs)


def test_constraints_are_what_the_tests_run_with() -> None:
    """CI installs with constraints.txt (Makefile), so the image gets the tested versions."""
    pins = _constraints()
    installed = {
        (d.metadata["Name"] or "").lower().replace("_", "-"): d.version for d in distributions()
    }
    for name in ("torch", "numpy", "rasterio", "boto3", "botocore", "pystac", "odc-stac"):
        assert installed[name].split("+")[0] == pins[name], name
    makefile = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS ?= constraints.txt" in makefile
    assert makefile.count("-c $(CONSTRAINTS)") == 2  # setup and setup-dev


def test_cpu_target_for_the_finalize_job(parsed: DockerfileParser) -> None:
    cpu = _stage(parsed, "cpu")
    runs = " ".join(ins["value"] for ins in cpu if ins["instruction"] == "RUN")
    assert "download.pytorch.org/whl/cpu" in runs and "torch==2.13.0+cpu" in runs
    [cmd] = [ins["value"] for ins in cpu if ins["instruction"] == "CMD"]
    assert json.loads(cmd) == ["finalize"]
    assert any(ins["instruction"] == "USER" and ins["value"].startswith("10001") for ins in cpu)
    gpu = _stage(parsed, "gpu")
    assert gpu == _final_stage(parsed)  # `docker build .` builds the worker


def test_runs_as_a_non_root_user(parsed: DockerfileParser) -> None:
    users = [ins["value"] for ins in _final_stage(parsed) if ins["instruction"] == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    base = _stage(parsed, "base")  # both targets build on it
    creates = " ".join(ins["value"] for ins in base if ins["instruction"] == "RUN")
    assert f"--uid {user}" in creates or f"useradd {user}" in creates


def test_entrypoint_is_the_worker(parsed: DockerfileParser) -> None:
    final = _final_stage(parsed)
    [entrypoint] = [ins["value"] for ins in final if ins["instruction"] == "ENTRYPOINT"]
    [cmd] = [ins["value"] for ins in final if ins["instruction"] == "CMD"]
    assert json.loads(entrypoint) == ["stac-coh", "worker"]
    assert json.loads(cmd) == list(WORKER_COMMAND)  # what the job definition passes too


def test_gdal_comes_from_wheels_and_layers_stay_small(parsed: DockerfileParser) -> None:
    runs = [ins["value"] for ins in parsed.structure if ins["instruction"] == "RUN"]
    assert not any("apt-get" in run or "apk " in run for run in runs)
    pip_runs = [run for run in runs if "pip install" in run or "pip wheel" in run]
    assert pip_runs
    assert all("--no-cache-dir" in run for run in pip_runs)


def test_dependencies_install_before_the_code(parsed: DockerfileParser) -> None:
    for stage in ("cpu", "gpu"):
        order = [ins["instruction"] + " " + ins["value"] for ins in _stage(parsed, stage)]
        deps = next(i for i, s in enumerate(order) if "-r /opt/stac-coh/requirements.txt" in s)
        code = next(i for i, s in enumerate(order) if "/wheels" in s)
        assert deps < code
        assert not any(s.startswith("COPY stac_coh") for s in order)
    base = [ins["instruction"] + " " + ins["value"] for ins in _stage(parsed, "base")]
    assert any(s.startswith("COPY pyproject.toml constraints.txt") for s in base)


def test_package_and_bundled_weights_are_installed(parsed: DockerfileParser) -> None:
    runs = " ".join(ins["value"] for ins in _final_stage(parsed) if ins["instruction"] == "RUN")
    assert "stac_coh-*.whl" in runs
    assert "'data' / 'weights'" in runs  # the build fails without the bundled weights
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["stac_coh"]
    assert "data/**/*" in package_data


def test_dockerignore_sends_only_the_package() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # allow-list: .venv, .git, tests and data stay out
    assert {"!pyproject.toml", "!constraints.txt", "!README.md", "!LICENSE", "!stac_coh/"} <= set(
        rules
    )


def test_weights_can_be_baked_at_build_time(parsed: DockerfileParser, tmp_path: Path) -> None:
    """The build argument's RUN step, run here by a shell as Docker would run it."""
    final = _final_stage(parsed)
    args = [ins["value"] for ins in final if ins["instruction"] == "ARG"]
    assert 'STAC_COH_BAKE_WEIGHTS=""' in args  # nothing baked unless asked
    user = max(i for i, ins in enumerate(final) if ins["instruction"] == "USER")
    [bake] = [
        (i, ins["value"])
        for i, ins in enumerate(final)
        if ins["instruction"] == "RUN" and "STAC_COH_BAKE_WEIGHTS" in ins["value"]
    ]
    assert bake[0] > user  # the cache belongs to the user the worker runs as
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "STAC_COH_CACHE_DIR": str(tmp_path / "cache")}
    skipped = subprocess.run(["sh", "-c", bake[1]], env=env, capture_output=True, text=True)
    assert skipped.returncode == 0 and skipped.stdout == ""
    env["STAC_COH_BAKE_WEIGHTS"] = "bundled"  # the published ones would need the network
    baked = subprocess.run(["sh", "-c", bake[1]], env=env, capture_output=True, text=True)
    assert baked.returncode == 0, baked.stderr
    assert baked.stdout.strip() == "baked weights: bundled"
