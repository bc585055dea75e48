"""Leave-one-setting-out evaluation: accuracy and uncertainty on settings training never saw.

For every held-out setting S of ``stac_coh.science.settings`` some run ``runs/loso-*`` was
trained without S (``stac-coh train --exclude S,...``; to save CPU one run may leave out
several settings at once, which is stricter than leaving out one). Here each model's uncertainty is
recalibrated on the calibration setting (the ``terrain`` landscape generator, which no
model trains on) and then tested on scenes of S only, all carrying calibration gains
(+-6 dB common, +-1.5 dB relative, +-3 dB ramps). For reference the same scenes are
predicted by the bundled weights (``--main``; they saw every setting but ``terrain``), by
the round-1 weights (one speckle regime, published preprocessing) and by the best
Siegert window (chosen on the test scenes themselves, which favours it).

    .venv/bin/python benchmarks/eval_held_out.py --out runs/eval-held-out

Predictions are whole-scene forward passes (reflect-padded, as in training validation),
with the card's test-time views. Per scene it also reports RMSE and bias over all valid
pixels, and how much of the error is one bias over a whole scene (and how that bias follows
the scene's common gain). Writes ``summary.json`` and ``table.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import torch

from stac_coh.infer.estimators import siegert_coherence
from stac_coh.model.weight_sources import bundled_weights
from stac_coh.model.weights import load_weights
from stac_coh.science.calibrate import (
    Components,
    collect_components,
    coverage,
    fit_uncertainty,
    spearman,
)
from stac_coh.science.datasets import load_pair, read_dataset
from stac_coh.science.randomize import simulate_randomized
from stac_coh.science.settings import SETTINGS, calibration_randomization, held_out_randomization

TEST_SEED = 20_000  # setting i uses TEST_SEED + 1000 i; training used seeds 0..239
# 10 scenes of 224 px per set (~500,000 pixels), 3 of them decoupled (see Randomization).
CALIBRATION_SEED = 30_000
SIEGERT_WINDOWS = (5, 7, 9, 11, 15)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("runs/eval-held-out"), help="Folder for tables/JSON."
    )
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="Folder holding loso-<setting>/ runs."
    )
    parser.add_argument(
        "--main", default=str(bundled_weights()), help="Weights of the 'bundled' column."
    )
    parser.add_argument(
        "--round1",
        default="runs/init-round1.safetensors",
        help="First-round weights (git show fc14cfb:stac_coh/data/weights/...).",
    )
    parser.add_argument("--scenes", type=int, default=10, help="Test scenes per setting.")
    parser.add_argument("--size", type=int, default=224, help="Test scene size in pixels.")
    parser.add_argument("--views", type=int, default=2, help="Test-time views (1-4).")
    parser.add_argument("--threads", type=int, default=2, help="Torch threads.")
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help="Comma-separated held-out settings."
    )
    parser.add_argument(
        "--only-references", action="store_true", help="Cache round-1 and Siegert rows only."
    )
    return parser.parse_args()


def ensure_sets(args: argparse.Namespace) -> dict[str, Path]:
    """Simulate the calibration set and one test set per setting (kept between runs)."""
    sets = {"calibration": args.out / "sets" / "calibration"}
    if not (sets["calibration"] / "index.json").exists():
        simulate_randomized(
            sets["calibration"],
            scenes=args.scenes,
            size=args.size,
            seed=CALIBRATION_SEED,
            randomization=calibration_randomization(),
        )
    for i, name in enumerate(SETTINGS):
        sets[name] = args.out / "sets" / name
        if not (sets[name] / "index.json").exists():
            simulate_randomized(
                sets[name],
                scenes=args.scenes,
                size=args.size,
                seed=TEST_SEED + 1000 * i,
                randomization=held_out_randomization(name),
            )
    return sets


def metrics(comp: Components, sigma: np.ndarray) -> dict[str, float]:
    """RMSE, bias, share within one sigma and Spearman(sigma, |error|)."""
    err = comp.mean - comp.truth
    which = np.clip((comp.truth * 5).astype(int), 0, 4)  # bins of true coherence, 0.2 wide
    return {
        "n": int(err.size),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "within_1_sigma": coverage(sigma, err),
        "spearman_sigma_abs_error": spearman(sigma, np.abs(err)),
        "bins": [
            {
                "n": int((which == b).sum()),
                "rmse": float(np.sqrt(np.mean(err[which == b] ** 2)))
                if (which == b).any()
                else None,
                "bias": float(np.mean(err[which == b])) if (which == b).any() else None,
            }
            for b in range(5)
        ],
    }


def calibrated(path: str, calibration: Path, views: int) -> tuple:
    """Weights with their uncertainty recalibrated on the calibration set."""
    model, card = load_weights(path)
    entries = read_dataset(calibration)
    comp = collect_components(model, card, entries, views=views, seed=1)
    mapping = fit_uncertainty(comp, card.uncertainty, views)
    return model, replace(card, uncertainty=mapping)


def evaluate(model, card, sim: Path, views: int) -> tuple[dict, Components, list[dict]]:
    """Metrics of recalibrated weights on a test set, pooled and by scene kind, and per
    scene (one forward pass per scene serves both)."""
    entries = read_dataset(sim)
    rows: dict[str, dict] = {}

    def keep(entry, mean: np.ndarray, truth: np.ndarray) -> None:
        rows[entry.id] = scene_row(entry, mean, truth)

    parts = {
        kind: collect_components(model, card, subset, views=views, seed=2, on_scene=keep)
        for kind, subset in scene_kinds(entries).items()
    }
    comp = joined(parts.values())
    result = metrics(comp, comp.sigma(card.uncertainty))
    for kind, part in parts.items():
        result[kind] = {
            k: v for k, v in metrics(part, part.sigma(card.uncertainty)).items() if k != "bins"
        }
    return result, comp, [rows[e.id] for e in entries]


def joined(parts: Iterable[Components]) -> Components:
    """One sample of several, in order."""
    parts = list(parts)
    return Components(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Components))
    )


def scene_kinds(entries: list) -> dict[str, list]:
    """Scenes whose coherence follows their land cover, and the decoupled ones."""
    decoupled = [e for e in entries if e.extra.get("domain", {}).get("decoupled")]
    coupled = [e for e in entries if e not in decoupled]
    return {k: v for k, v in (("coupled", coupled), ("decoupled", decoupled)) if v}


def scene_row(entry, mean: np.ndarray, truth: np.ndarray) -> dict:
    """Whole-scene RMSE and bias of one test scene, with what the scene drew."""
    good = np.isfinite(mean) & np.isfinite(truth)
    err = mean[good] - truth[good]
    domain = entry.extra.get("domain", {})
    return {
        "id": entry.id,
        "n": int(err.size),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "decoupled": bool(domain.get("decoupled", False)),
        "gain_db": float(domain.get("gain_db", 0.0)),
    }


def scene_bias(rows: list[dict]) -> dict[str, float]:
    """How much of the squared error is one bias over a whole scene, and whether gain drives it."""
    n, rmse, bias, gain = (np.array([r[k] for r in rows]) for k in ("n", "rmse", "bias", "gain_db"))
    spread = len(set(gain)) > 1  # a slope needs more than one gain
    return {
        "scenes": len(rows),
        "share_of_squared_error": float((n * bias**2).sum() / (n * rmse**2).sum()),
        "scene_rmse_min": float(rmse.min()),
        "scene_rmse_max": float(rmse.max()),
        "bias_per_db_common_gain": float(np.polyfit(gain, bias, 1)[0]) if spread else math.nan,
        "bias_gain_correlation": float(np.corrcoef(gain, bias)[0, 1]) if spread else math.nan,
    }


def best_siegert(sim: Path) -> dict[str, float]:
    """The Siegert window with the lowest pooled RMSE on the set."""
    truths, preds = [], {w: [] for w in SIEGERT_WINDOWS}
    for entry in read_dataset(sim):
        t1, t2, y = load_pair(entry, "coherence")
        truths.append(y.ravel())
        for w in SIEGERT_WINDOWS:
            preds[w].append(siegert_coherence(t1, t2, w)[0].ravel())
    truth = np.concatenate(truths)
    best = {"rmse": math.inf}
    for w, parts in preds.items():
        p = np.concatenate(parts)
        good = np.isfinite(p) & np.isfinite(truth)
        rmse = float(np.sqrt(np.mean((p[good] - truth[good]) ** 2)))
        if rmse < best["rmse"]:
            best = {"rmse": rmse, "bias": float(np.mean(p[good] - truth[good])), "window": w}
    return best


def held_out_runs(root: Path) -> dict[str, Path]:
    """Setting name -> finished run that left it out."""
    found = {}
    for config_path in sorted(root.glob("loso-*/config.json")):
        run = config_path.parent
        if (run / "model.safetensors").exists():
            for name in json.loads(config_path.read_text()).get("exclude", "").split(","):
                if name:
                    found[name] = run
    return found


def table(summary: dict) -> str:
    """Markdown table of the study."""
    lines = [
        "| held-out setting | trained without it | RMSE | bias | within 1 sigma | Spearman "
        "| RMSE coupled / decoupled scenes "
        "| bundled (saw it): RMSE / bias | round 1: RMSE / bias | best Siegert RMSE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["settings"].items():
        h, m, r, s = row["held_out"], row["bundled"], row["round1"], row["siegert"]
        lines.append(
            f"| {name} ({SETTINGS[name].description}) | {row['run']}: {row['steps']} steps "
            f"| {h['rmse']:.3f} | {h['bias']:+.3f} | {100 * h['within_1_sigma']:.0f} % "
            f"| {h['spearman_sigma_abs_error']:.2f} | {kinds(h)} "
            f"| {m['rmse']:.3f} / {m['bias']:+.3f} "
            f"| {r['rmse']:.3f} / {r['bias']:+.3f} | {s['rmse']:.3f} (w={s['window']}) |"
        )
    p = summary["pooled_held_out"]
    lines.append(
        f"| **pooled held-out** | | {p['rmse']:.3f} | {p['bias']:+.3f} "
        f"| {100 * p['within_1_sigma']:.0f} % | {p['spearman_sigma_abs_error']:.2f} | | | | |"
    )
    b = summary["scene_bias"]
    lines += [
        "",
        f"Per scene ({b['scenes']} held-out scenes, all pixels): RMSE "
        f"{b['scene_rmse_min']:.3f}-{b['scene_rmse_max']:.3f}; a bias common to the whole "
        f"scene is {100 * b['share_of_squared_error']:.0f} % of the squared error; the scene "
        f"bias moves {b['bias_per_db_common_gain']:+.4f} per dB of common gain "
        f"(correlation {b['bias_gain_correlation']:+.2f}).",
        "",
        *bin_tables(summary),
    ]
    return "\n".join(lines) + "\n"


def kinds(row: dict) -> str:
    """'coupled / decoupled' RMSE cell (a dash where a set has no scene of a kind)."""
    return " / ".join(
        f"{row[k]['rmse']:.3f}" if k in row else "-" for k in ("coupled", "decoupled")
    )


def bin_tables(summary: dict) -> list[str]:
    """One small table per setting: RMSE / bias by bin of true coherence."""
    out = []
    for name, row in summary["settings"].items():
        out += [
            f"**{name}** (held-out run {row['run']}): RMSE / bias by true coherence",
            "",
            "| weights | 0-0.2 | 0.2-0.4 | 0.4-0.6 | 0.6-0.8 | 0.8-1 |",
            "|---|---|---|---|---|---|",
        ]
        for key, label in (
            ("held_out", "without the setting"),
            ("bundled", "bundled (saw it)"),
            ("round1", "round 1"),
        ):
            cells = [
                f"{b['rmse']:.3f} / {b['bias']:+.3f}" if b["rmse"] is not None else "-"
                for b in row[key]["bins"]
            ]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def cached(path: Path, compute):
    """JSON result at ``path``, computed once (runs are long; reruns reuse them)."""
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def reference_rows(key: str, path: str, sets: dict[str, Path], names, args) -> dict:
    """Calibration and per-setting metrics of one reference weights file (cached by checksum)."""
    sha = load_weights(path)[1].sha256[:12]

    def compute() -> dict:
        model, card = calibrated(path, sets["calibration"], args.views)
        rows = {n: evaluate(model, card, sets[n], args.views)[0] for n in names}
        return {"calibration": asdict(card.uncertainty), "settings": rows}

    return cached(args.out / "cache" / f"{key}-{sha}-v{args.views}.json", compute)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    sets = ensure_sets(args)
    names = [n for n in args.settings.split(",") if n]
    siegert = {
        n: cached(args.out / "cache" / f"siegert-{n}.json", lambda n=n: best_siegert(sets[n]))
        for n in names
    }
    references = {"round1": reference_rows("round1", args.round1, sets, names, args)}
    if args.only_references:
        return
    references["bundled"] = reference_rows("bundled", args.main, sets, names, args)
    summary: dict = {"settings": {}, "calibration": {}}
    for key, ref in references.items():
        summary["calibration"][key] = ref["calibration"]
    pooled = []
    runs = held_out_runs(args.runs)
    loaded: dict[Path, tuple] = {}
    for name in names:
        run = runs.get(name)
        if run is None:
            print(f"skip {name}: no finished run in {args.runs}/loso-* leaves it out")
            continue
        if run not in loaded:
            loaded[run] = calibrated(
                str(run / "model.safetensors"), sets["calibration"], args.views
            )
        model, card = loaded[run]
        held, comp, scenes = evaluate(model, card, sets[name], args.views)
        pooled.append((comp, comp.sigma(card.uncertainty)))
        config = json.loads((run / "config.json").read_text())
        summary["calibration"][run.name] = asdict(card.uncertainty)
        summary["settings"][name] = {
            "run": run.name,
            "excluded": config["exclude"],
            "steps": config["steps"],
            "held_out": held,
            **{key: ref["settings"][name] for key, ref in references.items()},
            "siegert": siegert[name],
            "scenes": scenes,
        }
        print(name, json.dumps(summary["settings"][name]))
    if pooled:
        comp = joined(c for c, _ in pooled)
        summary["pooled_held_out"] = metrics(comp, np.concatenate([s for _, s in pooled]))
        summary["scene_bias"] = scene_bias(
            [r for row in summary["settings"].values() for r in row["scenes"]]
        )
        (args.out / "table.md").write_text(table(summary))
    summary["seconds"] = time.time() - started
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print((args.out / "table.md").read_text() if pooled else "no held-out runs yet")


if __name__ == "__main__":
    main()
