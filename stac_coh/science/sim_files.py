"""Simulated scenes on disk: the folder ``stac-coh simulate`` writes and ``stac-coh train`` reads.

Layout: ``OUTDIR/{t1,t2,coherence,boxcar,landcover}/scene_<seed>.tif`` plus ``index.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stac_coh.errors import InputError
from stac_coh.science.datasets import DatasetEntry, write_geotiff, write_index
from stac_coh.science.sim import SceneSpec, SimulatedScene, random_shift, simulate_scene

__all__ = ["simulate_dataset", "write_scene"]


def simulate_dataset(
    outdir: str | Path,
    *,
    scenes: int = 4,
    size: int = 256,
    seed: int = 0,
    misregistration: float = 0.0,
    nodata_border: bool = True,
    on_scene: Callable[[int], None] | None = None,
) -> Path:
    """Write ``scenes`` pairs (seeds ``seed .. seed+scenes-1``) as GeoTIFFs plus ``index.json``.

    Layout: ``OUTDIR/{t1,t2,coherence,boxcar,landcover}/scene_<seed>.tif``; the index is the
    training-data layout that ``stac-coh train`` reads. ``misregistration`` is the largest
    shift of t2 in pixels; each scene draws its own from its seed.
    """
    if scenes < 1 or size < 16:
        raise InputError(f"need at least 1 scene of at least 16 px, got {scenes} x {size}.")
    out = Path(outdir)
    entries = []
    for k in range(scenes):
        scene_seed = seed + k
        shift = random_shift(np.random.default_rng([scene_seed, 1]), misregistration)
        spec = SceneSpec(size=size, misregistration=shift, nodata_border=nodata_border)
        scene = simulate_scene(scene_seed, spec)
        entries.append(write_scene(scene, out, f"scene_{scene_seed:05d}"))
        if on_scene is not None:
            on_scene(k)
    return write_index(
        out,
        [
            DatasetEntry(
                id=e["id"],
                t1=e["t1"],
                t2=e["t2"],
                labels={"coherence": e["coherence"], "boxcar": e["boxcar"]},
                landcover=e["landcover"],
                extra={"seed": e["seed"], "misregistration": e["misregistration"]},
            )
            for e in entries
        ],
        description=(
            f"stac-coh simulated Sentinel-1-like pairs: {scenes} scenes of {size}x{size} px, "
            f"seeds {seed}..{seed + scenes - 1}, misregistration up to {misregistration} px."
        ),
    )


def write_scene(scene: SimulatedScene, outdir: Path, name: str) -> dict[str, Any]:
    """Write one scene's rasters; return their paths relative to ``outdir``."""
    rasters: dict[str, tuple[npt.NDArray[Any], float, str]] = {
        "t1": (scene.t1, np.nan, "sigma0 VV linear, earlier date"),
        "t2": (scene.t2, np.nan, "sigma0 VV linear, later date"),
        "coherence": (scene.coherence, np.nan, "true coherence"),
        "boxcar": (scene.boxcar, np.nan, "boxcar coherence from the SLCs"),
        "landcover": (scene.landcover, 0, "land cover (1 water 2 urban 3 bare 4 forest 5 crops)"),
    }
    entry: dict[str, Any] = {
        "id": name,
        "seed": scene.seed,
        "misregistration": list(scene.misregistration),
    }
    for kind, (array, nodata, description) in rasters.items():
        rel = f"{kind}/{name}.tif"
        write_geotiff(outdir / rel, array, scene.crs, scene.transform, nodata, description)
        entry[kind] = rel
    return entry
