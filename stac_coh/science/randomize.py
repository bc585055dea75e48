"""Domain randomisation: every simulated scene draws its own sensor, processing and world.

:class:`Randomization` holds the ranges; :func:`draw_spec` draws one scene's
:class:`~stac_coh.science.sim.SceneSpec` from them (looks 1.5-8 with Gaussian, sinc or
independent speckle, 1.5-3 samples per resolution cell, spatially correlated pixels or
not; sub-pixel shifts 0-0.5 px, many scenes unshifted; baselines 6-48 days; coherence
decoupled from brightness in some scenes; texture strength and length; nodata edges that
differ by tens of pixels; a landscape generator; optionally calibration gains and ramps).
:func:`describe_spec` records what was drawn in the dataset index, so evaluation can split
results by setting and training can leave settings out (:mod:`stac_coh.science.settings`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stac_coh.errors import InputError
from stac_coh.science.sim import SceneSpec, random_shift
from stac_coh.science.sim_files import write_scenes
from stac_coh.science.speckle import SpeckleModel, speckle_for_looks

__all__ = ["Randomization", "describe_spec", "draw_spec", "simulate_randomized"]

SceneFilter = Callable[[dict[str, Any]], bool]
"""Keeps a scene given its :func:`describe_spec` record."""


@dataclass(frozen=True)
class Randomization:
    """Ranges each scene draws from (defaults: what the bundled weights were trained on)."""

    enl: tuple[float, float] = (1.5, 8.0)
    """Equivalent number of looks, drawn log-uniformly."""
    psfs: tuple[str, ...] = ("gaussian", "sinc", "independent")
    """Impulse responses."""
    oversample: tuple[int, ...] = (2, 3, 4)
    """SLC samples per output pixel."""
    samples_per_cell: tuple[float, float] = (1.5, 3.0)
    """Samples per resolution cell (correlated speckle)."""
    legacy_share: float = 0.15
    """Share of scenes with the first simulator's speckle (ENL ~4.5, GRD-like)."""
    max_shift: float = 0.5
    """Largest misregistration of t2 (pixels)."""
    unshifted_share: float = 0.4
    """Share of scenes without misregistration."""
    generators: tuple[str, ...] = ("parcels", "fields")
    """Landscape generators."""
    baselines: tuple[float, ...] = (6.0, 12.0, 12.0, 18.0, 24.0, 36.0, 48.0)
    """Temporal baselines in days (12 listed twice: the common case)."""
    decoupled_share: float = 0.3
    """Share of scenes whose coherence ignores class and brightness."""
    texture_scale: tuple[float, float] = (0.3, 2.0)
    """Texture strength factor."""
    texture_px: tuple[float, float] = (0.8, 4.0)
    """Texture correlation length (pixels)."""
    nodata_shift_px: float = 40.0
    """Largest offset between the dates' swath edges."""
    gain_db: float = 0.0
    """Common calibration gain drawn in +-this (dB); training leaves it to the sampler."""
    relative_gain_db: float = 0.0
    """Relative gain of t2 drawn in +-this (dB)."""
    ramp_db: float = 0.0
    """Incidence ramp across the scene drawn in +-this (dB)."""
    stratify_decoupled: bool = False
    """Decouple exactly scenes whose seed ends in 1, 4 or 7 (30 %), not at random: test sets
    of a few scenes then all hold the same share of these hardest scenes."""
    keep: SceneFilter | None = field(default=None, compare=False)
    """Only scenes whose record passes are kept (redrawn otherwise); for held-out sets."""


def _draw_speckle(rng: np.random.Generator, r: Randomization) -> SpeckleModel | None:
    """A speckle model, or None for the first simulator's."""
    if rng.random() < r.legacy_share:
        return None
    lo, hi = np.log(r.enl[0]), np.log(r.enl[1])
    for _ in range(100):
        enl = float(np.exp(rng.uniform(lo, hi)))
        psf = str(rng.choice(list(r.psfs)))
        oversample = int(rng.choice(list(r.oversample)))
        model = speckle_for_looks(
            rng, enl, psf=psf, oversample=oversample, samples_per_cell=r.samples_per_cell
        )
        if model is not None:
            return model
    raise InputError(f"No speckle model reaches ENL {r.enl} with {r.psfs} x {r.oversample}.")


def _draw_once(rng: np.random.Generator, size: int, r: Randomization) -> SceneSpec:
    """One draw of every randomised choice."""
    speckle = _draw_speckle(rng, r)
    shift = (0.0, 0.0)
    if rng.random() >= r.unshifted_share:
        shift = random_shift(rng, r.max_shift)

    def sym(limit: float) -> float:
        return float(rng.uniform(-limit, limit)) if limit else 0.0

    return SceneSpec(
        size=size,
        misregistration=shift,
        speckle=speckle,
        generator=str(rng.choice(list(r.generators))),
        baseline_days=float(rng.choice(list(r.baselines))),
        decoupled=bool(rng.random() < r.decoupled_share),
        texture_scale=float(np.exp(rng.uniform(*np.log(r.texture_scale)))),
        texture_px=float(rng.uniform(*r.texture_px)),
        nodata_shift_px=r.nodata_shift_px,
        nodata_holes=True,
        gain_db=sym(r.gain_db),
        relative_gain_db=sym(r.relative_gain_db),
        ramp_db=sym(r.ramp_db),
        ramp_angle=float(rng.uniform(0.0, 2.0 * np.pi)),
    )


def draw_spec(seed: int, size: int, randomization: Randomization | None = None) -> SceneSpec:
    """The randomised spec of scene ``seed`` (independent of the scene's own random draws)."""
    r = randomization or Randomization()
    rng = np.random.default_rng([seed, 23])
    for _ in range(1000):
        spec = _draw_once(rng, size, r)
        if r.stratify_decoupled:
            spec = replace(spec, decoupled=seed % 10 in (1, 4, 7))
        if r.keep is None or r.keep(describe_spec(spec)):
            return spec
    raise InputError(f"Scene {seed}: no draw in 1000 passes the setting's filter.")


LEGACY = SpeckleModel(3, "gaussian", (0.766, 0.766), 1.0, (3.0, 3.0))
"""The first simulator's speckle in :class:`SpeckleModel` terms (for the record only)."""


def describe_spec(spec: SceneSpec) -> dict[str, Any]:
    """JSON-ready record of a scene's randomised choices (stored in ``index.json``)."""
    speckle = spec.speckle or LEGACY
    return {
        "generator": spec.generator,
        "speckle": {**speckle.describe(), "legacy": spec.speckle is None},
        "shift_px": round(float(np.hypot(*spec.misregistration)), 3),
        "baseline_days": spec.baseline_days,
        "decoupled": spec.decoupled,
        "texture_scale": round(spec.texture_scale, 3),
        "texture_px": round(spec.texture_px, 3),
        "gain_db": round(spec.gain_db, 3),
        "relative_gain_db": round(spec.relative_gain_db, 3),
        "ramp_db": round(spec.ramp_db, 3),
    }


def simulate_randomized(
    outdir: str | Path,
    *,
    scenes: int,
    size: int = 256,
    seed: int = 0,
    randomization: Randomization | None = None,
    on_scene: Callable[[int], None] | None = None,
) -> Path:
    """Write randomised scenes (seeds ``seed..``) like ``simulate_dataset``, records included."""
    if scenes < 1 or size < 16:
        raise InputError(f"need at least 1 scene of at least 16 px, got {scenes} x {size}.")
    return write_scenes(
        outdir,
        range(seed, seed + scenes),
        lambda scene_seed: draw_spec(scene_seed, size, randomization),
        description=(
            f"stac-coh domain-randomised simulated pairs: {scenes} scenes of {size}x{size} px, "
            f"seeds {seed}..{seed + scenes - 1}."
        ),
        extra_for=lambda spec: {"domain": describe_spec(spec)},
        on_scene=on_scene,
    )


def with_calibration(r: Randomization, gain: float, relative: float, ramp: float) -> Randomization:
    """The same ranges plus calibration gains and ramps (for test sets)."""
    return replace(r, gain_db=gain, relative_gain_db=relative, ramp_db=ramp)
