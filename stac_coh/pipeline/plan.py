"""The plan of a run before it runs: pairs, pixels, and a time estimate for this device.

The estimate comes from timing the predictor on one probe tile here and now, scaled by the
pixels the tiling will actually feed it (halos included); reading and publishing are not
included, and the report says so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stac_coh.infer.engine import TilePredictor, plan_units
from stac_coh.infer.tiling import PatchBlock, TileWindow, round_up
from stac_coh.pipeline.runner import ProcessOptions
from stac_coh.search.manifest import Pair

__all__ = ["PairPlan", "RunPlan", "plan_run", "processed_pixels"]

PROBE_CORE = 256
"""Core edge of the probe tile (its halo is added); small enough to take ~1 s on a CPU."""


@dataclass(frozen=True)
class PairPlan:
    """One pair of the plan."""

    pair_id: str
    """The pair."""
    pixels: int
    """Output pixels (grid width x height)."""
    processed_pixels: int
    """Pixels the predictor sees, halos and overlaps included."""
    seconds: float
    """Estimated inference time on this device."""


@dataclass(frozen=True)
class RunPlan:
    """The whole plan."""

    pairs: tuple[PairPlan, ...]
    """Per pair."""
    megapixels_per_second: float
    """Measured throughput of the predictor on the probe tile."""
    device: str
    """Where it was measured."""

    @property
    def seconds(self) -> float:
        """Estimated inference time of all pairs."""
        return sum(p.seconds for p in self.pairs)

    @property
    def pixels(self) -> int:
        """Output pixels of all pairs."""
        return sum(p.pixels for p in self.pairs)


def processed_pixels(units: Sequence[TileWindow] | Sequence[PatchBlock]) -> int:
    """Pixels fed to the predictor for these work units."""
    total = 0
    for unit in units:
        if isinstance(unit, PatchBlock):
            total += len(unit.row_starts) * len(unit.col_starts) * unit.patch**2
        else:
            total += unit.read_height * unit.read_width
    return total


def measure_throughput(predictor: TilePredictor, *, repeats: int = 2) -> float:
    """Megapixels per second of ``predictor`` on one probe tile (best of ``repeats``)."""
    edge = round_up(PROBE_CORE + 2 * predictor.halo, max(predictor.multiple, 1))
    rng = np.random.default_rng(0)
    probe = rng.gamma(4.5, 0.05 / 4.5, size=(1, 2, edge, edge)).astype(np.float32)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predictor(probe)
        best = min(best, time.perf_counter() - started)
    return edge * edge / 1e6 / max(best, 1e-9)


def plan_run(
    pairs: Sequence[Pair], predictor: TilePredictor, options: ProcessOptions, *, device: str
) -> RunPlan:
    """Count pixels per pair and estimate inference time from a probe on this device."""
    rate = measure_throughput(predictor)
    plans = []
    for pair in pairs:
        units = plan_units(
            pair.grid.height, pair.grid.width, predictor, mode=options.mode, tile=options.tile
        )
        fed = processed_pixels(units)
        plans.append(PairPlan(pair.id, pair.grid.width * pair.grid.height, fed, fed / 1e6 / rate))
    return RunPlan(tuple(plans), rate, device)
