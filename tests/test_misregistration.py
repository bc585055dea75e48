"""A pair's misregistration, measured from its structure (``stac_coh.model.misregistration``).

The simulator can now shift the whole second date, as a geolocation error does; the guard
must find such a shift, read an aligned pair as aligned, stay silent where nothing lines
up, and flag a shift that will read as lost coherence.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from stac_coh.errors import InputDomainWarning
from stac_coh.load.file_pair import ArrayPairReader
from stac_coh.model.card import ModelCard, TrainingDomain
from stac_coh.model.domain import (
    MISREGISTRATION_LIMIT_PX,
    assess_reader,
    check_domain,
    estimate_domain,
)
from stac_coh.model.misregistration import ShiftAccumulator, estimate_misregistration
from stac_coh.science.sim import SceneSpec, simulate_scene
from stac_coh.science.speckle import SpeckleModel

SPEC = SceneSpec(size=256, nodata_border=False)
INDEPENDENT = SpeckleModel(3, "independent", (1.5, 1.5), 1.0, (3.0, 3.0))
WIDE = TrainingDomain(looks=(0.5, 50.0), level_db=(-40.0, 10.0), relative_gain_db=(-9.0, 9.0))


def shifted(shift: tuple[float, float], *, scene: bool = True, seed: int = 7):
    """A simulated pair whose second date is shifted by ``shift`` px."""
    return simulate_scene(seed, replace(SPEC, misregistration=shift, shift_scene=scene))


def test_a_whole_date_shift_moves_parcels_and_texture_too():
    aligned, moved = shifted((0.0, 0.0)), shifted((0.0, 1.0))
    assert np.array_equal(aligned.t1, moved.t1)  # the first date and the label stay
    assert np.array_equal(aligned.coherence, moved.coherence)
    # One whole pixel: t2 now shows at column c what it showed at c + 1 (last column aside).
    assert np.allclose(moved.t2[:, :-2], aligned.t2[:, 1:-1], rtol=1e-4, atol=1e-9)
    speckle_only = shifted((0.0, 1.0), scene=False)
    assert not np.allclose(speckle_only.t2[:, :-2], aligned.t2[:, 1:-1], rtol=0.05)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.0, 0.4), (-0.3, 0.0), (0.25, -0.35)])
def test_the_guard_finds_a_whole_date_shift(shift):
    scene = shifted(shift)
    dy, dx = estimate_misregistration(scene.t1, scene.t2)
    assert dy == pytest.approx(shift[0], abs=0.12)
    assert dx == pytest.approx(shift[1], abs=0.12)


@pytest.mark.parametrize("shift", [(0.0, 0.4), (-0.3, 0.2)])
def test_aligned_speckle_does_not_pull_the_estimate_to_zero(shift):
    # Independent pixels: the speckle's share that stays aligned correlates at lag 0 only.
    # Unsmoothed, the estimate read 0.30 of 0.4 px here; smoothed, it reads the shift.
    spec = replace(SPEC, speckle=INDEPENDENT, misregistration=shift, shift_scene=True)
    assert INDEPENDENT.pixel_correlation() < 0.05
    scene = simulate_scene(8, spec)
    dy, dx = estimate_misregistration(scene.t1, scene.t2)
    assert dy == pytest.approx(shift[0], abs=0.05)
    assert dx == pytest.approx(shift[1], abs=0.05)


def test_windows_add_up_to_the_whole_scene():
    scene = shifted((0.2, -0.3))
    whole = estimate_misregistration(scene.t1, scene.t2)
    parts = ShiftAccumulator()
    for rows in (slice(0, 132), slice(124, 256)):  # overlapping, like tiles with halos
        for cols in (slice(0, 128), slice(128, 256)):
            parts.add(scene.t1[rows, cols], scene.t2[rows, cols])
    assert parts.estimate() == pytest.approx(whole, abs=0.05)


def test_nothing_lines_up_in_independent_noise():
    rng = np.random.default_rng(0)
    t1, t2 = (rng.gamma(2.0, 0.025, (192, 192)).astype(np.float32) for _ in range(2))
    assert all(math.isnan(v) for v in estimate_misregistration(t1, t2))
    check = check_domain(estimate_domain(t1, t2), WIDE)
    assert check.ok
    assert check.properties()["coh:input_misregistration_px"] is None
    assert all(math.isnan(v) for v in estimate_misregistration(t1[:30, :30], t2[:30, :30]))


def test_nodata_does_not_fake_a_shift():
    scene = shifted((0.0, 0.0))
    t2 = scene.t2.copy()
    t2[:, :40] = np.nan  # the second date's swath edge 40 px further in
    t2[150:, 100:] = np.nan
    assert math.hypot(*estimate_misregistration(scene.t1, t2)) < 0.1


def test_a_large_shift_is_flagged_and_recorded():
    scene = shifted((0.0, 0.5))
    check = check_domain(estimate_domain(scene.t1, scene.t2), WIDE)
    assert not check.ok
    assert any("misregistration" in line for line in check.outside)
    props = check.properties()
    assert props["coh:input_misregistration_px"] > MISREGISTRATION_LIMIT_PX
    assert props["coh:input_in_training_domain"] is False
    json.dumps(props)
    aligned = shifted((0.0, 0.05))
    assert check_domain(estimate_domain(aligned.t1, aligned.t2), WIDE).ok


def test_the_reader_guard_warns_of_a_shifted_pair():
    card = ModelCard(name="wide", training_domain=WIDE)
    scene = shifted((0.45, 0.0))
    with pytest.warns(InputDomainWarning, match="misregistration"):
        check = assess_reader(ArrayPairReader(scene.t1, scene.t2), card)
    assert check.estimate.misregistration[0] == pytest.approx(0.45, abs=0.1)
    aligned = shifted((0.0, 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputDomainWarning)
        assert assess_reader(ArrayPairReader(aligned.t1, aligned.t2), card).ok


@pytest.mark.parametrize(
    ("script", "size", "expected"),
    [
        ("misregistration_guard.py", "160", ("whole-date shift, all", "speckle shifted alone")),
        ("misregistration_cost.py", "96", ("whole date shifted", "guard flag")),
    ],
)
def test_the_benchmarks_run_and_summarise(script, size, expected):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / script
    done = subprocess.run(
        [sys.executable, str(path), "--scenes", "1", "--size", size],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert all(text in done.stdout for text in expected)
