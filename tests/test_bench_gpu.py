"""The GPU benchmark script: argument handling and a tiny dry run on the CPU.

The script is written to run on a GPU (``--device cuda``); here it runs the same code path
with tiny sizes on a CPU (``--dry``), so a GPU run does not die on a typo. Its numbers are
not checked (no timing assertions), only that every part ran and reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_gpu  # noqa: E402

from stac_coh.infer.precision import cpu_has_native_bf16  # noqa: E402


def test_defaults_cover_every_precision_and_a_full_rtc_scene():
    args = bench_gpu.parse_args([])
    assert args.device == "cuda"
    assert args.precisions == ["fp32", "fp16", "bf16", "auto"]
    assert args.batches == [1, 2, 4, 8] and args.scene == [17000, 25000]


@pytest.mark.parametrize("native", [True, False])
def test_a_dry_run_leaves_out_bf16_only_where_the_cpu_emulates_it(native, monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": native})
    args = bench_gpu.parse_args(["--device", "cpu", "--dry"])
    dropped = bench_gpu.drop_emulated_in_dry(args, torch.device("cpu"))
    assert dropped == ([] if native else ["bf16"])
    assert args.precisions == (["fp32", "bf16"] if native else ["fp32"])


def test_dry_mode_shrinks_everything():
    args = bench_gpu.parse_args(["--device", "cpu", "--dry", "--precisions", "fp16", "bf16"])
    assert args.batches == [1, 2] and args.tiles == [256] and args.iterations == 1
    assert args.scene == list(bench_gpu.DRY_SCENE) and args.precisions == ["bf16"]


@pytest.mark.parametrize(
    "argv", [["--batches", "0"], ["--tiles", "8"], ["--precisions", "int8"], ["--scene", "0", "5"]]
)
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_gpu.parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(SystemExit, match="PyTorch sees no CUDA GPU"):
        bench_gpu.check_device("cuda")


@pytest.mark.slow
def test_a_dry_run_on_the_cpu_reports_every_part(tmp_path):
    report = tmp_path / "gpu.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_gpu.py"),
            "--device",
            "cpu",
            "--dry",
            "--json",
            str(report),
            "--scene-dir",
            str(tmp_path / "scene"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(report.read_text())
    assert results["dry"] and "DRY RUN" in done.stdout
    rows = results["network"]
    settings = {(r["precision"], r["layout"], r["batch"]) for r in rows}
    # bf16 only where the CPU executes it: emulated, this dry run would take most of an hour
    precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
    assert results["dropped"] == ([] if cpu_has_native_bf16() else ["bf16"])
    assert {r["precision"] for r in rows} == set(precisions)
    assert len(rows) == len(settings) == len(precisions) * 2 * 2  # x layouts x batches 1, 2
    assert all(not r["oom"] and r["mp_per_s"] > 0 and r["peak_gib"] is None for r in rows)
    scene = results["scene"]
    assert (scene["rows"], scene["cols"]) == bench_gpu.DRY_SCENE
    assert scene["cli"]["summary"].startswith("Wrote ")
    inner = scene["in_process"]
    assert inner["pixels"] == 500 * 700 and inner["timings"]["network: forward"] > 0
    assert "end_to_end_ratio=" in done.stdout and "| **total wall** |" in done.stdout
