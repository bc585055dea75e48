"""What a sub-pixel misregistration costs a network's coherence, and whether the guard sees it.

Each domain-randomised simulated scene (training ranges) is predicted three times by the
same weights: aligned; with the second date's speckle shifted (the simulator's default,
used in training); and with the whole second date shifted (``SceneSpec.shift_scene``: power,
texture, parcel edges and speckle, as a geolocation error does). The shift has a random
direction and a length uniform in 0.3-0.5 px, above the guard's 0.25 px limit. Errors are
against the true coherence; the guard's reading comes from the whole-date pair.

    .venv/bin/python benchmarks/misregistration_cost.py --scenes 24 --size 224

One torch thread; ~3 s per scene on a 2-core machine.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace

import numpy as np
import torch

from stac_coh.infer.engine import NetworkPredictor
from stac_coh.infer.units import predict_array
from stac_coh.model.domain import MISREGISTRATION_LIMIT_PX
from stac_coh.model.misregistration import estimate_misregistration
from stac_coh.model.weights import load_weights
from stac_coh.science.randomize import LEGACY, draw_spec
from stac_coh.science.sim import SceneSpec, simulate_scene

KINDS = ("aligned", "speckle shifted", "whole date shifted")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=24, help="Randomised scenes to simulate.")
    parser.add_argument("--seed", type=int, default=60000, help="First scene seed.")
    parser.add_argument("--size", type=int, default=224, help="Scene edge in pixels.")
    parser.add_argument("--weights", default="bundled", help="Weights to test (default bundled).")
    return parser.parse_args()


def variants(seed: int, spec: SceneSpec) -> tuple[tuple[float, float], list[SceneSpec]]:
    """The scene's shift and its three specs (aligned, speckle shifted, whole date)."""
    rng = np.random.default_rng([seed, 7])
    length, angle = rng.uniform(0.3, 0.5), rng.uniform(0.0, 2.0 * np.pi)
    shift = (float(length * np.sin(angle)), float(length * np.cos(angle)))
    return shift, [
        replace(spec, misregistration=(0.0, 0.0)),
        replace(spec, misregistration=shift),
        replace(spec, misregistration=shift, shift_scene=True),
    ]


def errors(predictor: NetworkPredictor, seed: int, spec: SceneSpec) -> tuple[np.ndarray, float]:
    """Prediction minus true coherence over valid pixels, and the guard's shift length."""
    scene = simulate_scene(seed, spec)
    mean = predict_array(scene.t1, scene.t2, predictor)[0]
    good = np.isfinite(mean) & np.isfinite(scene.coherence)
    return mean[good] - scene.coherence[good], math.hypot(
        *estimate_misregistration(scene.t1, scene.t2)
    )


def score(values: list[np.ndarray]) -> str:
    """RMSE / bias of pooled errors."""
    e = np.concatenate(values)
    return f"{math.sqrt(float(np.mean(e**2))):.3f} / {float(np.mean(e)):+.3f}"


def main() -> None:
    """Simulate, predict and print a row per scene and the pooled scores."""
    args = parse_args()
    torch.set_num_threads(1)
    model, card = load_weights(args.weights)
    predictor = NetworkPredictor(model, card)
    pooled: dict[tuple[str, str], list[np.ndarray]] = {}
    flagged = 0
    print(
        "| seed | psf | pixel correlation | shift (px) | shift correlation | guard reads (px) "
        + "".join(f"| {kind}: RMSE / bias " for kind in KINDS)
        + "|"
    )
    print("|---" * (6 + len(KINDS)) + "|")
    for i in range(args.scenes):
        seed = args.seed + i
        spec = draw_spec(seed, args.size)
        shift, specs = variants(seed, spec)
        speckle = spec.speckle or LEGACY
        group = "independent" if speckle.pixel_correlation() < 0.2 else "correlated"
        cells, reading = [], math.nan
        for kind, variant in zip(KINDS, specs, strict=True):
            e, reading = errors(predictor, seed, variant)
            for key in ((kind, "all"), (kind, group)):
                pooled.setdefault(key, []).append(e)
            cells.append(score([e]))
        flagged += reading > MISREGISTRATION_LIMIT_PX
        print(
            f"| {seed} | {speckle.psf} | {speckle.pixel_correlation():.2f} "
            f"| {math.hypot(*shift):.2f} | {speckle.shift_correlation(shift):.2f} "
            f"| {reading:.2f} | " + " | ".join(cells) + " |"
        )
    print()
    print(f"weights: {card.name} ({args.weights}); RMSE / bias against the true coherence")
    for group in ("all", "independent", "correlated"):
        if (KINDS[0], group) in pooled:
            count = len(pooled[(KINDS[0], group)])
            line = "; ".join(f"{kind} {score(pooled[(kind, group)])}" for kind in KINDS)
            print(f"{group} pixels ({count} scenes): {line}")
    print(f"guard flag (> {MISREGISTRATION_LIMIT_PX:g} px) on {flagged} of {args.scenes} shifts")


if __name__ == "__main__":
    main()
