"""The leave-one-setting-out study scripts, end to end on tiny sets.

``benchmarks/eval_held_out.py`` produces the table in ``docs/training.md``; a rerun after
hours of training must not die on a detail. Here it simulates its own test and
calibration sets (two scenes of 64 px each), finds a held-out run by its recorded
``--exclude`` and writes the summary and table with its per-scene breakdown. The run's
weights are the bundled ones: only the plumbing is under test here, not the numbers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stac_coh.model.weight_sources import bundled_weights

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = bundled_weights()


def _held_out_run(runs: Path, name: str, exclude: str) -> None:
    run = runs / name
    run.mkdir(parents=True)
    shutil.copy(BUNDLED, run / "model.safetensors")
    shutil.copy(f"{BUNDLED}.card.json", run / "model.safetensors.card.json")
    (run / "config.json").write_text(json.dumps({"exclude": exclude, "steps": 7}))


def test_study_finds_the_run_that_left_a_setting_out_and_splits_by_scene_kind(tmp_path):
    runs = tmp_path / "runs"
    _held_out_run(runs, "loso-looks-6-8", "looks-6-8")
    (runs / "loso-unfinished").mkdir()  # no weights yet: ignored
    (runs / "loso-unfinished" / "config.json").write_text('{"exclude": "psf-sinc"}')
    out = tmp_path / "study"
    bundled = str(BUNDLED)
    argv = [sys.executable, str(ROOT / "benchmarks" / "eval_held_out.py"), "--out", str(out)]
    argv += ["--runs", str(runs), "--main", bundled, "--round1", bundled, "--views", "1"]
    argv += ["--scenes", "2", "--size", "64", "--threads", "1"]
    argv += ["--settings", "looks-6-8,psf-sinc"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skip psf-sinc: no finished run" in done.stdout

    summary = json.loads((out / "summary.json").read_text())
    row = summary["settings"]["looks-6-8"]
    assert row["run"] == "loso-looks-6-8" and row["steps"] == 7
    held = row["held_out"]
    # seeds 21000 and 21001 of the looks-6-8 set: one scene follows land cover, one not
    assert held["coupled"]["n"] > 0 and held["decoupled"]["n"] > 0
    assert held["coupled"]["n"] + held["decoupled"]["n"] == held["n"]
    assert 0.0 < held["rmse"] < 1.0 and row["siegert"]["window"] > 0
    # 64-px scenes hold fewer valid pixels than the 20,000 sampled per scene, so the
    # whole-scene pass sees the same pixels as the pooled metrics
    scenes = row["scenes"]
    assert [s["decoupled"] for s in scenes] == [False, True]
    n = np.array([s["n"] for s in scenes])
    assert n.sum() == held["n"]
    mse = np.array([s["rmse"] for s in scenes]) ** 2
    assert np.sqrt((n * mse).sum() / n.sum()) == pytest.approx(held["rmse"], rel=1e-6)
    share = summary["scene_bias"]["share_of_squared_error"]
    bias = np.array([s["bias"] for s in scenes])
    assert share == pytest.approx((n * bias**2).sum() / (n * mse).sum())
    table = (out / "table.md").read_text()
    assert f"Per scene (2 held-out scenes, all pixels): RMSE {mse.min() ** 0.5:.3f}" in table
    line = next(x for x in table.splitlines() if x.startswith("| looks-6-8"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "loso-looks-6-8: 7 steps"
    assert cells[6] == f"{held['coupled']['rmse']:.3f} / {held['decoupled']['rmse']:.3f}"
    assert "psf-sinc" not in table

    script = ROOT / "benchmarks" / "held_out_scenes.py"
    argv = [sys.executable, str(script), "--study", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    per_scene = [x for x in lines if x.startswith("| looks-6-8 | scene_")]
    assert [x.split("|")[2].strip() for x in per_scene] == [s["id"] for s in scenes]
    assert all(0.0 < float(x.split("|")[7]) <= 1.0 for x in per_scene)  # shift correlation
    assert any(x.startswith(f"| looks-6-8 | {held['rmse']:.3f} |") for x in lines)
    boot = next(x for x in lines if x.startswith("| looks-6-8 | 2 |")).split("|")
    low, high = (float(v) for v in boot[4].split("-"))
    assert low <= float(boot[3]) <= high and low <= mse.min() ** 0.5 + 1e-3  # one scene twice

    # the oracles regenerate each scene's parcels from its seed: they must match the scene
    script = ROOT / "benchmarks" / "held_out_oracles.py"
    done = subprocess.run(
        [sys.executable, str(script), "--study", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    oracle = next(x for x in done.stdout.splitlines() if x.startswith("| looks-6-8 | 2 |"))
    cells = [c.strip() for c in oracle.split("|")[1:-1]]
    assert cells[2] == f"{held['rmse']:.3f} / {held['bias']:+.3f}"
    for cell in cells[3:]:
        rmse, bias = (float(v) for v in cell.split(" (")[0].split(" / "))
        assert 0.0 < rmse < 1.0 and abs(bias) <= rmse
