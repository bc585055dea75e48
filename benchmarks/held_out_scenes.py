"""The held-out study scene by scene: how certain its numbers are, and where the error sits.

A leave-one-setting-out study (``benchmarks/eval_held_out.py``) tests each setting on a
handful of scenes, so its RMSE and bias carry the luck of those scenes. This reads the
study's per-scene rows (all valid pixels) and prints per setting a scene bootstrap: the
5-95 % range of the pooled RMSE and bias over scene sets drawn with replacement.

It also says how much of the error sits in scenes whose misregistration hides the
coherence. A sub-pixel shift decorrelates the two dates' speckle by a factor that follows
from the speckle model alone (``SpeckleModel.shift_correlation``): a coherence gamma then
reads as ``gamma * sqrt(factor)`` to anything that estimates it from the local intensity
correlation, and within one parcel a network cannot tell that loss from low coherence.

    .venv/bin/python benchmarks/held_out_scenes.py --study runs/eval-held-out

No network runs here; it takes a second.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from stac_coh.science.speckle import SpeckleModel


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--study", type=Path, default=Path("runs/eval-held-out"), help="eval_held_out.py --out"
    )
    parser.add_argument(
        "--hidden",
        type=float,
        default=0.5,
        help="Call a scene's coherence hidden when its shift correlation is below this.",
    )
    parser.add_argument("--draws", type=int, default=5000, help="Bootstrap draws.")
    return parser.parse_args()


def scene_rows(study: Path, setting: str, scenes: list[dict]) -> list[dict]:
    """The study's per-scene rows of one setting with each scene's shift correlation."""
    index = json.loads((study / "sets" / setting / "index.json").read_text())
    records = {s["id"]: s for s in index["scenes"]}
    total = sum(s["n"] * s["rmse"] ** 2 for s in scenes)
    rows = []
    for scene in scenes:
        record = records[scene["id"]]
        speckle = record["domain"]["speckle"]
        shift = tuple(record["misregistration"])
        correlation = SpeckleModel.from_record(speckle).shift_correlation(shift)
        rows.append(
            {
                **scene,
                "psf": speckle["psf"],
                "legacy": bool(speckle.get("legacy")),
                "pixel_correlation": speckle["pixel_correlation"],
                "shift_px": math.hypot(*shift),
                "shift_correlation": correlation,
                "share": scene["n"] * scene["rmse"] ** 2 / total if total else 0.0,
            }
        )
    return rows


def pooled_rmse(rows: list[dict]) -> float:
    """RMSE over all pixels of ``rows`` (NaN for none)."""
    n = sum(r["n"] for r in rows)
    return math.sqrt(sum(r["n"] * r["rmse"] ** 2 for r in rows) / n) if n else math.nan


def scene_table(rows: list[dict]) -> list[str]:
    """Markdown table, one line per scene."""
    lines = [
        "| setting | scene | decoupled | impulse response | pixel corr. | shift px | shift "
        "corr. | 0.97 reads as | RMSE | bias | share of the setting's squared error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        psf = r["psf"] + (" (first simulator)" if r["legacy"] else "")
        lines.append(
            f"| {r['setting']} | {r['id']} | {'yes' if r['decoupled'] else 'no'} | {psf} | "
            f"{r['pixel_correlation']:.2f} | {r['shift_px']:.2f} | {r['shift_correlation']:.2f}"
            f" | {0.97 * math.sqrt(max(r['shift_correlation'], 0.0)):.2f} | {r['rmse']:.3f} | "
            f"{r['bias']:+.3f} | {100 * r['share']:.0f} % |"
        )
    return lines


def setting_table(by_setting: dict[str, list[dict]], hidden: float) -> list[str]:
    """Markdown table, one line per setting: with and without its hidden-coherence scenes."""
    lines = [
        f"| setting | RMSE (all scenes) | scenes with shift corr. < {hidden} | their share of "
        "the squared error | RMSE of the other scenes |",
        "|---|---|---|---|---|",
    ]
    for setting, rows in by_setting.items():
        bad = [r for r in rows if r["shift_correlation"] < hidden]
        rest = [r for r in rows if r["shift_correlation"] >= hidden]
        names = ", ".join(r["id"] for r in bad) or "none"
        lines.append(
            f"| {setting} | {pooled_rmse(rows):.3f} | {names} | "
            f"{100 * sum(r['share'] for r in bad):.0f} % | {pooled_rmse(rest):.3f} |"
        )
    return lines


def bootstrap(rows: list[dict], draws: int, seed: int = 0) -> dict[str, tuple[float, float]]:
    """5-95 % ranges of pooled RMSE and bias over scene sets drawn with replacement."""
    rng = np.random.default_rng(seed)
    n = np.array([r["n"] for r in rows], dtype=float)
    sq = n * np.array([r["rmse"] for r in rows]) ** 2
    err = n * np.array([r["bias"] for r in rows])
    picks = rng.integers(0, len(rows), size=(draws, len(rows)))
    weight = n[picks].sum(axis=1)
    rmse = np.sqrt(sq[picks].sum(axis=1) / weight)
    bias = err[picks].sum(axis=1) / weight
    return {
        "rmse": tuple(float(v) for v in np.percentile(rmse, [5, 95])),
        "bias": tuple(float(v) for v in np.percentile(bias, [5, 95])),
    }


def bootstrap_table(by_setting: dict[str, list[dict]], draws: int) -> list[str]:
    """Markdown table, one line per setting: pooled RMSE and bias with their ranges."""
    lines = [
        "| setting | scenes | RMSE | 5-95 % over scene sets | bias | 5-95 % over scene sets |",
        "|---|---|---|---|---|---|",
    ]
    for setting, rows in by_setting.items():
        ranges = bootstrap(rows, draws)
        n = sum(r["n"] for r in rows)
        bias = sum(r["n"] * r["bias"] for r in rows) / n
        lines.append(
            f"| {setting} | {len(rows)} | {pooled_rmse(rows):.3f} | "
            f"{ranges['rmse'][0]:.3f}-{ranges['rmse'][1]:.3f} | {bias:+.3f} | "
            f"{ranges['bias'][0]:+.3f} to {ranges['bias'][1]:+.3f} |"
        )
    return lines


def main() -> None:
    """Print the three tables for the study."""
    args = parse_args()
    summary = json.loads((args.study / "summary.json").read_text())
    by_setting = {
        name: [{**r, "setting": name} for r in scene_rows(args.study, name, row["scenes"])]
        for name, row in summary["settings"].items()
    }
    print("\n".join(bootstrap_table(by_setting, args.draws)))
    print()
    print("\n".join(scene_table([r for rows in by_setting.values() for r in rows])))
    print()
    print("\n".join(setting_table(by_setting, args.hidden)))


if __name__ == "__main__":
    main()
