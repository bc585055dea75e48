"""Two failure mechanisms of issue 16, measured: a common gain and one-date nodata edges.

On in-domain simulated scenes (the first simulator, seeds 10000..; unseen in training) each
weights file predicts the pair as it is, with a gain common to both dates (-6..+6 dB), and
with a swath edge cut 40 px deep into the later date only. Reports RMSE and mean
prediction per gain, and the RMSE within 8 px of the one-date edge against the same pixels
without the cut. Predictions go through ``stac_coh.infer.engine`` (what ``stac-coh predict``
runs), so the card's preprocessing and test-time views apply.

    .venv/bin/python benchmarks/eval_gain_nodata.py --weights runs/init-round1.safetensors \
        --weights stac_coh/data/weights/stac-coh-sim-demo.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from stac_coh.infer.engine import NetworkPredictor, predict_array
from stac_coh.model.weights import load_weights
from stac_coh.science.sim import SceneSpec, simulate_scene

GAINS_DB = (-6.0, -3.0, 0.0, 3.0, 6.0)
SEED = 10_000
EDGE = 40  # px cut into t2 from the left
NEAR = 8  # px next to the edge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", required=True)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/eval-gain-nodata.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scenes = [
        simulate_scene(SEED + k, SceneSpec(size=args.size, nodata_border=False))
        for k in range(args.scenes)
    ]
    results = {}
    for path in args.weights:
        model, card = load_weights(path)
        predictor = NetworkPredictor(model, card)
        row: dict = {"name": card.name, "gain": {}}
        base_means = []
        for gain_db in GAINS_DB:
            g = np.float32(10 ** (gain_db / 10))
            preds = [predict_array(s.t1 * g, s.t2 * g, predictor)[0] for s in scenes]
            err = np.concatenate(
                [(p - s.coherence).ravel() for p, s in zip(preds, scenes, strict=True)]
            )
            mean = float(np.nanmean(np.concatenate([p.ravel() for p in preds])))
            row["gain"][gain_db] = {"rmse": float(np.sqrt(np.nanmean(err**2))), "mean": mean}
            if gain_db == 0.0:
                base_means = preds
        near_cut, near_full = [], []
        for scene, full in zip(scenes, base_means, strict=True):
            t2 = scene.t2.copy()
            t2[:, :EDGE] = np.nan
            cut = predict_array(scene.t1, t2, predictor)[0]
            band = (slice(None), slice(EDGE, EDGE + NEAR))
            near_cut.append((cut[band] - scene.coherence[band]).ravel())
            near_full.append((full[band] - scene.coherence[band]).ravel())
        row["edge_rmse_one_date_cut"] = float(np.sqrt(np.nanmean(np.concatenate(near_cut) ** 2)))
        row["edge_rmse_same_pixels_uncut"] = float(
            np.sqrt(np.nanmean(np.concatenate(near_full) ** 2))
        )
        results[path] = row
        print(json.dumps({path: row}))
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
