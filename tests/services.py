"""Real local services for integration tests: moto_server (S3, Batch) and stac-fastapi-pgstac.

Each service runs as a separate process bound to 127.0.0.1 on a free port, started and
stopped by the test session. Outside CI a service that cannot start skips its tests; with
``CI=true`` it fails loudly (no integration test may silently skip in CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

VENV_BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where every integration test must run."""
    if IN_CI:
        pytest.fail(f"integration service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers below 500, the process dies, or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process serving {url} exited with {proc.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child process, then kill it if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------------------
# moto_server


@dataclass(frozen=True)
class MotoServer:
    """A running moto_server: S3, Batch, CloudFormation, ... over real HTTP."""

    endpoint: str
    """``http://127.0.0.1:PORT``."""
    port: int

    def env(self) -> dict[str, str]:
        """Environment that points boto3 and GDAL at this server with dummy credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_S3_ENDPOINT": f"127.0.0.1:{self.port}",
            "AWS_VIRTUAL_HOSTING": "FALSE",
            "AWS_HTTPS": "NO",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }

    def reset(self) -> None:
        """Forget every bucket, job and stack (moto's reset API)."""
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()
        self.configure_docker_less_batch()

    def configure_docker_less_batch(self) -> None:
        """Switch moto's Batch to docker-less mode (no Docker engine here)."""
        requests.post(
            f"{self.endpoint}/moto-api/config",
            json={"batch": {"use_docker": False}},
            timeout=10,
        ).raise_for_status()


@contextlib.contextmanager
def run_moto_server(env: dict[str, str] | None = None) -> Iterator[MotoServer]:
    """Start moto_server as a separate process (in-process moto makes GDAL hang).

    ``env`` adds server-side settings, e.g. ``MOTO_SIMPLE_BATCH_FAIL_AFTER=0`` (every
    docker-less Batch job fails).
    """
    exe = VENV_BIN / "moto_server"
    if not exe.exists():
        unavailable("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="moto-")) / "moto.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    server = MotoServer(f"http://127.0.0.1:{port}", port)
    try:
        wait_http(f"{server.endpoint}/moto-api/", 30, proc)
        server.configure_docker_less_batch()
    except (RuntimeError, TimeoutError) as exc:
        stop(proc)
        unavailable(f"moto_server did not start: {exc}; log {log}")
    try:
        yield server
    finally:
        stop(proc)


# --------------------------------------------------------------------------------------
# stac-fastapi-pgstac on PostgreSQL/PostGIS


@dataclass(frozen=True)
class PgstacApi:
    """A running stac-fastapi-pgstac with Transactions on, over a throw-away database."""

    url: str
    """API root, e.g. ``http://127.0.0.1:PORT``."""
    dsn: str
    """``postgresql://...`` of the database, for pypgstac."""

    def load(self, collections: list[dict], items: list[dict]) -> None:
        """Upsert collections and items with pypgstac (the way a real deployment loads)."""
        with tempfile.TemporaryDirectory() as tmp:
            for kind, objs in (("collections", collections), ("items", items)):
                if not objs:
                    continue
                path = Path(tmp) / f"{kind}.ndjson"
                path.write_text("".join(json.dumps(o) + "\n" for o in objs))
                subprocess.run(
                    [
                        str(VENV_BIN / "pypgstac"),
                        "load",
                        kind,
                        str(path),
                        "--dsn",
                        self.dsn,
                        "--method",
                        "upsert",
                    ],
                    check=True,
                    capture_output=True,
                )

    def clear(self) -> None:
        """Delete every collection (and so every item) through the Transactions API."""
        for coll in requests.get(f"{self.url}/collections", timeout=10).json()["collections"]:
            requests.delete(f"{self.url}/collections/{coll['id']}", timeout=30)


def _pg_bin() -> Path | None:
    """Directory of the PostgreSQL server binaries, if installed."""
    for version in ("17", "16", "15"):
        path = Path(f"/usr/lib/postgresql/{version}/bin")
        if (path / "postgres").exists():
            return path
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its commands as ``postgres`` when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"]
    return []


@contextlib.contextmanager
def run_pgstac_api() -> Iterator[PgstacApi]:
    """Start PostgreSQL + pgstac + stac-fastapi-pgstac (about 10 s)."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        unavailable(
            "PostgreSQL server not installed "
            "(apt-get install postgresql-15 postgresql-15-postgis-3)"
        )
    if not any(Path("/usr/share/postgresql").glob("*/extension/postgis.control")):
        unavailable("PostGIS not installed (apt-get install postgresql-15-postgis-3)")
    sudo = _as_postgres_user()
    tmp = Path(tempfile.mkdtemp(prefix="pgstac-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    if sudo:
        shutil.chown(tmp, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    api_proc: subprocess.Popen[bytes] | None = None
    try:
        run = lambda *cmd: subprocess.run([*sudo, *cmd], check=True, capture_output=True)  # noqa: E731
        run(str(pg_bin / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres")
        run(
            str(pg_bin / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(tmp / "postgres.log"),
            "-w",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off",
            "start",
        )
        dsn = f"postgresql://postgres:postgres@127.0.0.1:{port}/stac"
        run(str(pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "stac")
        subprocess.run(
            [str(VENV_BIN / "pypgstac"), "migrate", "--dsn", dsn], check=True, capture_output=True
        )
        # numberMatched and typed sorting need these pgstac settings.
        subprocess.run(
            [
                str(pg_bin / "psql"),
                dsn,
                "-c",
                "INSERT INTO pgstac.pgstac_settings (name, value) VALUES ('context', 'on') "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value;",
            ],
            check=True,
            capture_output=True,
        )
        api_port = free_port()
        env = {
            **os.environ,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(port),
            "PGUSER": "postgres",
            "PGPASSWORD": "postgres",
            "PGDATABASE": "stac",
            "POSTGRES_HOST_READER": "127.0.0.1",
            "POSTGRES_HOST_WRITER": "127.0.0.1",
            "POSTGRES_PORT": str(port),
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASS": "postgres",
            "POSTGRES_DBNAME": "stac",
            "ENABLE_TRANSACTIONS_EXTENSIONS": "true",
        }
        api_log = (tmp / "api.log").open("wb")
        api_proc = subprocess.Popen(
            [
                str(VENV_BIN / "uvicorn"),
                "stac_fastapi.pgstac.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
            ],
            env=env,
            stdout=api_log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{api_port}"
        wait_http(f"{url}/_mgmt/ping", 60, api_proc)
    except (subprocess.CalledProcessError, RuntimeError, TimeoutError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        if api_proc is not None:
            stop(api_proc)
        _stop_postgres(pg_bin, data, sudo)
        unavailable(f"stac-fastapi-pgstac did not start: {exc} {detail[-500:]!r}; logs in {tmp}")
    try:
        yield PgstacApi(url, dsn)
    finally:
        stop(api_proc)
        _stop_postgres(pg_bin, data, sudo)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop_postgres(pg_bin: Path, data: Path, sudo: list[str]) -> None:
    """Stop the throw-away PostgreSQL cluster fast."""
    if (data / "postmaster.pid").exists():
        subprocess.run(
            [*sudo, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
