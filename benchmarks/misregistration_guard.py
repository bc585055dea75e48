"""How well the input-domain guard measures a pair's misregistration, and when it flags it.

Domain-randomised simulated scenes (the training ranges of ``stac_coh.science.randomize``)
get a shift of random direction and a length uniform in 0-0.6 px, applied to the whole
second date (``SceneSpec.shift_scene``: power, texture, parcel edges and speckle, as a
geolocation error does). The guard's estimator (``stac_coh.model.misregistration``) is
compared with the applied shift, and its flag (above ``MISREGISTRATION_LIMIT_PX``) with
the truth. The same scenes with their speckle shifted alone (the simulator's default, what
training and the held-out study use) show what the guard reads there.

    .venv/bin/python benchmarks/misregistration_guard.py --scenes 40 --size 448

No network runs. It prints one row per scene, then the summary.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from stac_coh.model.domain import MISREGISTRATION_LIMIT_PX
from stac_coh.model.misregistration import estimate_misregistration
from stac_coh.science.randomize import LEGACY, draw_spec
from stac_coh.science.sim import random_shift, simulate_scene

MAX_SHIFT = 0.6


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40, help="Randomised scenes to simulate.")
    parser.add_argument("--seed", type=int, default=50000, help="First scene seed.")
    parser.add_argument("--size", type=int, default=448, help="Scene edge in pixels.")
    parser.add_argument("--quiet", action="store_true", help="Print the summary only.")
    return parser.parse_args()


@dataclass(frozen=True)
class Row:
    """One scene: the applied shift and what the guard read, whole-date and speckle-only."""

    seed: int
    psf: str
    pixel_correlation: float
    true: tuple[float, float]
    whole: tuple[float, float]
    speckle_only: tuple[float, float]
    seconds: float

    @property
    def error(self) -> float:
        """Distance between the whole-date estimate and the applied shift (px)."""
        return math.hypot(self.whole[0] - self.true[0], self.whole[1] - self.true[1])


def measure(seed: int, size: int) -> Row:
    """Simulate one scene both ways and estimate its shift."""
    spec = draw_spec(seed, size)
    shift = random_shift(np.random.default_rng([seed, 99]), MAX_SHIFT)
    estimates = []
    seconds = 0.0
    for whole in (True, False):
        scene = simulate_scene(seed, replace(spec, misregistration=shift, shift_scene=whole))
        start = time.perf_counter()
        estimates.append(estimate_misregistration(scene.t1, scene.t2))
        seconds += (time.perf_counter() - start) / 2
    speckle = spec.speckle or LEGACY
    return Row(seed, speckle.psf, speckle.pixel_correlation(), shift, *estimates, seconds=seconds)


def _share(rows: list[Row], flagged: bool) -> str:
    if not rows:
        return "-"
    hits = sum((math.hypot(*r.whole) > MISREGISTRATION_LIMIT_PX) == flagged for r in rows)
    return f"{hits}/{len(rows)}"


def summary(rows: list[Row]) -> list[str]:
    """Summary lines: accuracy by pixel correlation, the flag, speckle-only shifts, cost."""
    measured = [r for r in rows if math.isfinite(r.whole[0])]
    lines = [f"measured {len(measured)} of {len(rows)} scenes (the rest: too little structure)"]
    for label, keep in (
        ("all", lambda r: True),
        ("independent pixels (correlation < 0.2)", lambda r: r.pixel_correlation < 0.2),
        ("correlated pixels (>= 0.2)", lambda r: r.pixel_correlation >= 0.2),
    ):
        errors = np.array([r.error for r in measured if keep(r)])
        if errors.size:
            lines.append(
                f"whole-date shift, {label} ({errors.size}): error median {np.median(errors):.3f}"
                f" px, 90 % within {np.quantile(errors, 0.9):.3f} px, largest {errors.max():.3f}"
            )
    limit = MISREGISTRATION_LIMIT_PX
    big = [r for r in measured if math.hypot(*r.true) > limit + 0.1]
    small = [r for r in measured if math.hypot(*r.true) < limit - 0.1]
    lines.append(
        f"flag (> {limit:g} px): raised on {_share(big, True)} pairs shifted more than "
        f"{limit + 0.1:.2f} px, silent on {_share(small, False)} shifted less than "
        f"{limit - 0.1:.2f} px"
    )
    only = [math.hypot(*r.speckle_only) for r in rows if math.isfinite(r.speckle_only[0])]
    if only:
        lines.append(
            f"speckle shifted alone (structure aligned): reads median {np.median(only):.3f} px,"
            f" largest {max(only):.3f} px"
        )
    lines.append(f"estimate cost: {np.mean([r.seconds for r in rows]):.3f} s per scene")
    return lines


def main() -> None:
    """Simulate, estimate and print."""
    args = parse_args()
    rows = [measure(args.seed + i, args.size) for i in range(args.scenes)]
    if not args.quiet:
        print("| seed | psf | pixel correlation | true shift | whole date | speckle only |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r.seed} | {r.psf} | {r.pixel_correlation:.2f} "
                f"| ({r.true[0]:+.2f}, {r.true[1]:+.2f}) "
                f"| ({r.whole[0]:+.2f}, {r.whole[1]:+.2f}) "
                f"| ({r.speckle_only[0]:+.2f}, {r.speckle_only[1]:+.2f}) |"
            )
        print()
    for line in summary(rows):
        print(line)


if __name__ == "__main__":
    main()
