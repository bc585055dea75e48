"""How much of the held-out error the pixels allow: estimators told the truth they lack.

The held-out study (``benchmarks/eval_held_out.py``) leaves RMSE above 0.13 on every
setting. Is that the network, or the scenes? Here two estimators are told what no
estimator gets from a real pair, each scene's true parcels (regenerated from the
scene's seed and checked against its land-cover map) and, for the second, its true
looks, and estimate one coherence per parcel from the intensities alone
(``stac_coh.infer.estimators.region_coherence``):

- **Siegert per parcel**: ``sqrt(rho)`` over the parcel; common texture reads as coherence;
- **texture-corrected**: the parcel's intensity moments with the true looks separate the
  texture both dates share from the coherence (unbiased, noisier).

Printed beside the held-out run's own score from the study's ``summary.json`` (RMSE and
bias over its sampled pixels; the oracles over every valid pixel).

    .venv/bin/python benchmarks/held_out_oracles.py --study runs/eval-held-out

No network runs here; about 20 s per setting of ten 224-px scenes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import rasterio

from stac_coh.infer.estimators import region_coherence
from stac_coh.science.landscapes import make_landscape
from stac_coh.science.randomize import draw_spec
from stac_coh.science.settings import held_out_randomization


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--study", type=Path, default=Path("runs/eval-held-out"), help="eval_held_out.py --out"
    )
    parser.add_argument(
        "--settings", default="", help="Comma-separated settings (default: every one studied)."
    )
    return parser.parse_args()


def read(path: Path) -> np.ndarray:
    """Band 1 as float64."""
    with rasterio.open(path) as ds:
        return ds.read(1).astype(np.float64)


def true_parcels(setting: str, record: dict, landcover: np.ndarray, valid: np.ndarray):
    """The scene's parcel ids, regenerated from its seed as the simulator drew them."""
    seed = int(record["seed"])
    spec = draw_spec(seed, landcover.shape[0], held_out_randomization(setting))
    rng = np.random.default_rng(seed)  # the simulator's first draw is the landscape
    land = make_landscape(spec.generator, landcover.shape, spec.zone_px, spec.parcel_px, rng)
    if not np.array_equal(land.landcover[valid], landcover[valid].astype(np.uint8)):
        raise SystemExit(
            f"{record['id']} of {setting}: the regenerated landscape is not the scene's; "
            "the simulator changed since the set was made (simulate the sets again)."
        )
    return land.parcels


def scene_errors(setting: str, folder: Path, record: dict) -> tuple[np.ndarray, np.ndarray]:
    """Errors of the two oracles over the scene's valid pixels."""
    t1, t2 = read(folder / record["t1"]), read(folder / record["t2"])
    truth = read(folder / record["labels"]["coherence"])
    valid = np.isfinite(t1) & np.isfinite(t2) & np.isfinite(truth)
    parcels = true_parcels(setting, record, read(folder / record["landcover"]), valid)
    looks = float(record["domain"]["speckle"]["enl"])
    siegert, corrected = np.full(t1.shape, np.nan), np.full(t1.shape, np.nan)
    for parcel in np.unique(parcels[valid]):
        inside = valid & (parcels == parcel)
        siegert[inside] = region_coherence(t1[inside], t2[inside])[0]
        corrected[inside] = region_coherence(t1[inside], t2[inside], looks)[0]
    good = valid & np.isfinite(siegert) & np.isfinite(corrected)
    return siegert[good] - truth[good], corrected[good] - truth[good]


def score(errors: list[np.ndarray]) -> str:
    """``RMSE / bias`` of pooled errors."""
    e = np.concatenate(errors) if errors else np.array([math.nan])
    return f"{np.sqrt(np.mean(e**2)):.3f} / {np.mean(e):+.3f}"


def setting_row(study: Path, setting: str, held: dict) -> str:
    """One table row: the network, then the two oracles (all scenes; coupled / decoupled)."""
    folder = study / "sets" / setting
    index = json.loads((folder / "index.json").read_text())
    by_kind: dict[str, tuple[list, list]] = {"coupled": ([], []), "decoupled": ([], [])}
    for record in index["scenes"]:
        kind = "decoupled" if record["domain"].get("decoupled") else "coupled"
        errors = scene_errors(setting, folder, record)
        for bucket, error in zip(by_kind[kind], errors, strict=True):
            bucket.append(error)
    cells = [f"{held['rmse']:.3f} / {held['bias']:+.3f}"]
    for which in (1, 0):  # texture-corrected, then Siegert
        every = by_kind["coupled"][which] + by_kind["decoupled"][which]
        parts = " ; ".join(score(by_kind[k][which]) for k in ("coupled", "decoupled"))
        cells.append(f"{score(every)} ({parts})")
    return f"| {setting} | {len(index['scenes'])} | " + " | ".join(cells) + " |"


def main() -> None:
    args = parse_args()
    summary = json.loads((args.study / "summary.json").read_text())
    names = [n for n in args.settings.split(",") if n] or list(summary["settings"])
    print(
        "| held-out setting | scenes | held-out run: RMSE / bias | told parcels and looks "
        "(texture-corrected): all (coupled ; decoupled) | told parcels (Siegert) |"
    )
    print("|---|---|---|---|---|")
    for name in names:
        print(setting_row(args.study, name, summary["settings"][name]["held_out"]), flush=True)


if __name__ == "__main__":
    main()
