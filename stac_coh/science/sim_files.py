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

__all__ = ["simulate_dataset", "write_scene", "write_scenes"]


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

    def spec_for(scene_seed: int) -> SceneSpec:
        shift = random_shift(np.random.default_rng([scene_seed, 1]), misregistration)
        return SceneSpec(size=size, misregistration=shift, nodata_border=nodata_border)

    return write_scenes(
        outdir,
        range(seed, seed + scenes),
        spec_for,
        description=(
            f"stac-coh simulated Sentinel-1-like pairs: {scenes} scenes of {size}x{size} px, "
            f"seeds {seed}..{seed + scenes - 1}, misregistration up to {misregistration} px."
        ),
        on_scene=on_scene,
    )


def write_scenes(
    outdir: str | Path,
    seeds: range,
    spec_for: Callable[[int], SceneSpec],
    *,
    description: str,
    extra_for: Callable[[SceneSpec], dict[str, Any]] | None = None,
    on_scene: Callable[[int], None] | None = None,
) -> Path:
    """Simulate one scene per seed with ``spec_for(seed)``, write it, then the index.

    Each index entry records the seed, the drawn shift and ``extra_for(spec)``;
    ``on_scene(k)`` is called after the k-th scene.
    """
    out = Path(outdir)
    entries = []
    for k, scene_seed in enumerate(seeds):
        spec = spec_for(scene_seed)
        written = write_scene(simulate_scene(scene_seed, spec), out, f"scene_{scene_seed:05d}")
        extra = {"seed": scene_seed, "misregistration": written["misregistration"]}
        entries.append(
            DatasetEntry(
                id=written["id"],
                t1=written["t1"],
                t2=written["t2"],
                labels={"coherence": written["coherence"], "boxcar": written["boxcar"]},
                landcover=written["landcover"],
                extra={**extra, **(extra_for(spec) if extra_for else {})},
            )
        )
        if on_scene is not None:
            on_scene(k)
    return write_index(out, entries, description=description)


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
