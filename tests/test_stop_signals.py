"""SIGTERM and Ctrl-C stop a command cleanly: no scratch file is left, the exit code says why.

`kill` (and every scheduler) sends SIGTERM; it must unwind like Ctrl-C. Each test holds the
command at a known point - an HTTP read of its input that the test server does not answer
yet - so the signal always lands mid-work, whatever the machine's load.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from stac_coh.model.card import ModelCard
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weights import save_weights
from tests.held_server import holding_server, scratch_left, wait_until


def _range_start(scope: dict) -> int | None:
    """Start of the HTTP Range a request asks for, if any."""
    for name, value in scope.get("headers", []):
        if name == b"range" and value.startswith(b"bytes="):
            return int(value[6:].split(b"-")[0] or 0)
    return None


def _write(path: Path, seed: int, size: int = 1024) -> Path:
    """An uncompressed, tiled float32 raster: its pixels come in range reads after the header."""
    data = np.random.default_rng(seed).exponential(0.1, (size, size)).astype(np.float32)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32633",
        "transform": from_origin(500_000.0, 4_600_000.0, 10.0, 10.0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
    return path


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_predict_stopped_mid_read_leaves_nothing_behind(tmp_path: Path, stop: signal.Signals):
    torch.manual_seed(0)
    weights = save_weights(ResUNet(base=4).eval(), ModelCard(name="t"), tmp_path / "w.safetensors")
    remote, out_dir, tmp = tmp_path / "remote", tmp_path / "out", tmp_path / "tmp"
    for folder in (remote, out_dir, tmp):
        folder.mkdir()
    t1 = _write(tmp_path / "t1.tif", seed=1)
    t2 = _write(remote / "t2.tif", seed=2)
    with rasterio.open(t2) as ds:  # predict checks one pixel at open: let that tile through
        first_tile_end = int(ds.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1)) + int(
            ds.get_tag_item("BLOCK_SIZE_0_0", "TIFF", bidx=1)
        )

    def held(scope: dict) -> bool:
        start = _range_start(scope)
        return scope["path"] == "/t2.tif" and start is not None and start >= first_tile_end

    with holding_server(remote, held) as (url, hold):
        out = out_dir / "coh.tif"
        cmd = [sys.executable, "-m", "stac_coh", "predict", str(t1), f"{url}/t2.tif"]
        cmd += ["-o", str(out), "--uncertainty", str(out_dir / "sigma.tif")]
        cmd += ["--weights", str(weights), "--tile", "256"]
        env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        # Reading T2's pixels (held) with the scratch rasters already open.
        assert wait_until(lambda: hold.arrived.is_set() or proc.poll() is not None, 300)
        assert proc.poll() is None, proc.communicate()
        assert scratch_left(out_dir, tmp), "the test should stop predict mid-work"
        proc.send_signal(stop)
        hold.release.set()
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + stop, stdout + stderr
    assert "Traceback" not in stderr
    assert scratch_left(out_dir, tmp) == []
    assert sorted(p.name for p in out_dir.iterdir()) == []
