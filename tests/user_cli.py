"""The command line as a user runs it: a fresh process, a clean environment, real files.

Tests of what a new user runs into (issue #12) go through :func:`cli`, never through
``CliRunner``: exit codes, stderr and the files left behind are what a user sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.transform import from_origin

UTM = "EPSG:32633"

_DROPPED_PREFIXES = ("AWS_", "PC_SDK_", "STAC_COH_", "GDAL_", "CPL_")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user without credentials or stac-coh settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    env.update(
        {
            # No credentials anywhere: not in files, not from an instance metadata service.
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
            "COLUMNS": "200",  # rich tables: fewer wrapped lines in assertions
        }
    )
    env.update(extra)
    return env


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``stac-coh ARGS`` in a fresh process (``python -m stac_coh``, as the script does)."""
    return subprocess.run(
        [sys.executable, "-m", "stac_coh", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        timeout=timeout,
    )


def error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The one ``Error:`` line of a failed command, after checking its exit code."""
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    nodata: float | None = None,
    origin: tuple[float, float] = (500000.0, 4600000.0),
    res: float = 20.0,
    crs: str = UTM,
    transform: Affine | None = None,
    dtype: str | None = "float32",
    **profile: Any,
) -> Path:
    """A one-band GeoTIFF (float32 unless ``dtype`` says otherwise; None keeps the data's).

    The grid is ``origin`` and square ``res`` pixels in ``crs``, unless ``transform`` is given.
    """
    data = data if dtype is None else data.astype(dtype)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=transform or from_origin(*origin, res, res),
        nodata=nodata,
        **profile,
    ) as ds:
        ds.write(data, 1)
    return path


def linear_pair(folder: Path, shape: tuple[int, int] = (96, 80)) -> tuple[Path, Path]:
    """Two small rasters of linear backscatter (sigma0 ~0.1), same grid."""
    rng = np.random.default_rng(0)
    t1 = write_raster(folder / "t1.tif", 0.1 * rng.exponential(1.0, shape))
    t2 = write_raster(folder / "t2.tif", 0.1 * rng.exponential(1.0, shape))
    return t1, t2
