"""Accuracy of the bundled weights on simulated scenes whose seeds training never saw.

Reproduces the numbers of issue 8's "done when": pooled RMSE against the TRUE coherence of
the bundled ResUNet vs the best Siegert window (3..15) and vs the backscatter-only lookup
(fitted on the training scenes), the same against the boxcar SLC labels, per land-cover
class, and on a misregistered pair. Predictions go through ``stac_coh.infer.engine`` (the same
tiling engine as ``stac-coh predict``) and are written as GeoTIFFs so ``stac-coh evaluate``
can be re-run on them; tables, JSON and PNGs land in ``--out``.

    .venv/bin/python benchmarks/eval_bundled_weights.py --out runs/eval-bundled

Baseline windows are chosen on the test scenes themselves, which favours the baselines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from stac_coh.infer.engine import NetworkPredictor, predict_array
from stac_coh.infer.estimators import BackscatterLookup, siegert_coherence
from stac_coh.model.weights import load_weights
from stac_coh.science.datasets import load_pair, read_dataset, write_geotiff
from stac_coh.science.evaluate import evaluate_paths, render_tables, write_json, write_png
from stac_coh.science.sim import SceneSpec, simulate_scene
from stac_coh.science.sim_files import simulate_dataset, write_scene

SIEGERT_WINDOWS = (3, 5, 7, 9, 11, 15)
LOOKUP_SMOOTHING = (1, 3, 5, 9)
TEST_SEED = 10_000  # training used seeds 0..63
MISREG_SEED = 10_100
MISREG_SHIFT = (0.0, 0.3)  # pixels (rows, cols)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/eval-bundled"))
    parser.add_argument("--weights", default=None, help="Weights to test; default bundled.")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--train-data", type=Path, default=Path("runs/sim-train"))
    parser.add_argument("--train-scenes", type=int, default=16, help="Scenes to fit lookups.")
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def training_scenes(path: Path, count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The first ``count`` training scenes (re-simulated exactly if the folder is missing)."""
    if not (path / "index.json").exists():
        simulate_dataset(path, scenes=count, size=512, seed=0, misregistration=0.4)
    out = []
    for entry in read_dataset(path)[:count]:
        t1, t2, y = load_pair(entry, "coherence")
        out.append((t1, t2, y))
    return out


def write_predictions(sim_dir: Path, pred_dir: Path, predictors: dict) -> None:
    """Run every predictor on every scene of ``sim_dir``; GeoTIFFs under pred_dir/<name>/."""
    for entry in read_dataset(sim_dir):
        t1, t2, _ = load_pair(entry, None)
        with __import__("rasterio").open(entry.t1) as ds:
            crs, transform = ds.crs.to_string(), tuple(ds.transform)[:6]
        for name, predict in predictors.items():
            values = predict(t1, t2)
            write_geotiff(pred_dir / name / f"{entry.id}.tif", values, crs, transform, np.nan)


def evaluate_set(
    label: str, sim_dir: Path, pred_dir: Path, names: list[str], out: Path, console: Console
) -> dict:
    """``stac-coh evaluate pred_dir/<first> sim_dir/<label> --baseline ...`` in-process."""
    report = evaluate_paths(
        pred_dir / names[0],
        sim_dir / label,
        baselines=[pred_dir / n for n in names[1:]],
        classes=sim_dir / "landcover",
    )
    stem = out / f"{sim_dir.name}_vs_{label}"
    write_json(report, stem.with_suffix(".json"))
    # The plot shows the network against the best window of each baseline.
    best = [names[0]]
    for family in ("siegert", "backscatter"):
        candidates = [n for n in names if n.startswith(family)]
        best.append(min(candidates, key=lambda n: report.overall[n].rmse))
    focused = evaluate_paths(
        pred_dir / best[0],
        sim_dir / label,
        baselines=[pred_dir / n for n in best[1:]],
        classes=sim_dir / "landcover",
    )
    write_png(focused, stem.with_suffix(".png"))
    console.rule(f"{sim_dir.name}: predictions vs {label}")
    for table in render_tables(report):
        console.print(table)
    return {name: m.rmse for name, m in report.overall.items()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=120)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    test_dir = out / "sim-test"
    simulate_dataset(test_dir, scenes=args.scenes, size=args.size, seed=TEST_SEED)
    misreg_dir = out / "sim-misreg"
    spec = SceneSpec(size=args.size, misregistration=MISREG_SHIFT)
    entry = write_scene(simulate_scene(MISREG_SEED, spec), misreg_dir, f"scene_{MISREG_SEED}")
    from stac_coh.science.datasets import DatasetEntry, write_index

    write_index(
        misreg_dir,
        [
            DatasetEntry(
                id=entry["id"],
                t1=entry["t1"],
                t2=entry["t2"],
                labels={"coherence": entry["coherence"], "boxcar": entry["boxcar"]},
                landcover=entry["landcover"],
            )
        ],
    )

    model, card = load_weights(args.weights)
    network = NetworkPredictor(model, card, device="cpu", precision="fp32")
    predictors = {
        "resunet": lambda a, b: predict_array(a, b, network)[0],
        **{
            f"siegert{w}": (lambda a, b, w=w: siegert_coherence(a, b, w)[0])
            for w in SIEGERT_WINDOWS
        },
    }
    fitted = training_scenes(args.train_data, args.train_scenes)
    for s in LOOKUP_SMOOTHING:
        lookup = BackscatterLookup.fit(fitted, smooth=s)
        lookup.save(out / f"backscatter_lookup_{s}.json")
        predictors[f"backscatter{s}"] = lookup.predict
    pred_dirs = {d: out / "pred" / d.name for d in (test_dir, misreg_dir)}
    for sim_dir, pred_dir in pred_dirs.items():
        write_predictions(sim_dir, pred_dir, predictors)

    names = list(predictors)
    summary: dict = {"weights": card.name, "sha256": card.sha256, "sets": {}}
    for sim_dir, pred_dir in pred_dirs.items():
        for label in ("coherence", "boxcar"):
            rmse = evaluate_set(label, sim_dir, pred_dir, names, out, console)
            summary["sets"][f"{sim_dir.name}_vs_{label}"] = rmse

    main_rmse = summary["sets"]["sim-test_vs_coherence"]
    net = main_rmse["resunet"]
    best_siegert = min((main_rmse[f"siegert{w}"], w) for w in SIEGERT_WINDOWS)
    best_lookup = min((main_rmse[f"backscatter{s}"], s) for s in LOOKUP_SMOOTHING)
    checks = {
        "a_half_of_best_siegert": net <= 0.5 * best_siegert[0],
        "b_below_backscatter_only": net < best_lookup[0],
        "c_at_most_0.13": net <= 0.13,
    }
    summary.update(
        resunet_rmse=net,
        best_siegert={"rmse": best_siegert[0], "window": best_siegert[1]},
        best_backscatter={"rmse": best_lookup[0], "smooth": best_lookup[1]},
        checks=checks,
        seconds=time.time() - started,
        test_seeds=[TEST_SEED, TEST_SEED + args.scenes - 1],
        misregistered={"seed": MISREG_SEED, "shift_px": MISREG_SHIFT},
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    console.rule("summary (pooled RMSE vs true coherence, unseen seeds)")
    console.print(
        f"resunet {net:.4f} | best Siegert (w={best_siegert[1]}) {best_siegert[0]:.4f} | "
        f"best backscatter-only (smooth {best_lookup[1]}) {best_lookup[0]:.4f}"
    )
    console.print(checks)
    console.print(f"outputs: {out}")


if __name__ == "__main__":
    main()
