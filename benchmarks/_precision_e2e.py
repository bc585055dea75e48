"""Reduced precision and end-to-end measurements of ``bench_inference.py`` (one scene).

The scene is simulated (``stac_coh.science.sim``, 1024 x 1024 pieces side by side, seeds
0, 1, ...) and written as two float32 GeoTIFFs (tiled 512, DEFLATE with the floating-point
predictor, NaN nodata), the way Sentinel-1 RTC COGs come. The network is the bundled
weights (the published base-32 layout). Every measurement runs in a fresh process:

* ``network``: the predictor on the scene's fast-mode tiles, read into memory first; the
  time is the model's forward passes alone (``NetworkPredictor.timings['forward']``), the
  coherence mosaic is saved for the precision comparison;
* ``e2e``: ``predict_to_cogs`` from the files, as ``stac-coh predict T1 T2 -o OUT`` runs it
  (coherence only, uint8, default tile), from opening the inputs to the COG in place.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_arguments", "child_e2e", "child_network", "cpu_flags", "report", "run"]

PIECE = 1024
"""Edge of one simulated piece of the scene (the simulator needs ~2 GB for 1024)."""

STAGES = [
    ("read", "read-ahead", "reading inputs (GDAL)"),
    ("prepare", "read-ahead", "network: preprocessing"),
    ("wait for input", "main", "waiting for input"),
    ("network: preprocess", "main", "network: preprocessing"),
    ("network: to device", "main", "network: batch to device"),
    ("network: forward", "main", "network: forward pass"),
    ("network: postprocess", "main", "network: to numpy, sigma"),
    ("clip and mask", "main", "clip and nodata mask"),
    ("wait for writer", "main", "waiting for the writer"),
    ("write", "write-behind", "encode, write, statistics"),
    ("render", "write-behind", "renders"),
    ("drain writer", "main", "writer finishing last tiles"),
    ("cog", "main", "COG conversion (overviews)"),
]
"""(timing key, thread, description) in the order of the end-to-end table."""

MAIN_STAGES = {
    "wait for input",
    "network",
    "clip and mask",
    "wait for writer",
    "drain writer",
    "cog",
}
"""Stages on the main thread; their sum plus 'other' is the wall time."""


def load_avg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def write_simulated_scene(directory: Path, size: int) -> tuple[Path, Path]:
    """Two simulated images of ``size`` x ``size`` (reused when already written)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from stac_coh.science.sim import SceneSpec, simulate_scene

    paths = directory / f"sim_t1_{size}.tif", directory / f"sim_t2_{size}.tif"
    if all(p.exists() for p in paths):
        return paths
    piece = min(PIECE, size)
    pieces = -(-size // piece)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32610",
        "transform": from_origin(500000.0, 4200000.0, 10.0, 10.0),
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "DEFLATE",
        "predictor": 3,
    }
    partial = [p.with_suffix(".partial.tif") for p in paths]
    with (
        rasterio.open(partial[0], "w", **profile) as a,
        rasterio.open(partial[1], "w", **profile) as b,
    ):
        for i in range(pieces):
            for j in range(pieces):
                scene = simulate_scene(i * pieces + j, SceneSpec(size=piece))
                h, w = min(piece, size - i * piece), min(piece, size - j * piece)
                window = Window(j * piece, i * piece, w, h)
                a.write(scene.t1[:h, :w], 1, window=window)
                b.write(scene.t2[:h, :w], 1, window=window)
    for src, dst in zip(partial, paths, strict=True):
        src.replace(dst)
    return paths


def _setup(args: argparse.Namespace):
    import torch

    from stac_coh.infer.engine import reuse_freed_memory

    if args.threads:
        torch.set_num_threads(args.threads)
    reuse_freed_memory()  # as `stac-coh predict` does
    return torch


def child_network(args: argparse.Namespace) -> dict[str, object]:
    """The network alone on the scene's tiles (in memory); saves the coherence mosaic."""
    torch = _setup(args)
    from stac_coh.infer.engine import NetworkPredictor, plan_units
    from stac_coh.load.file_pair import RasterPairReader
    from stac_coh.model.preprocess import valid_mask
    from stac_coh.model.weights import load_weights

    model, card = load_weights(None)
    predictor = NetworkPredictor(model, card, device=args.device, precision=args.precision)
    with RasterPairReader(args.t1, args.t2) as reader:
        grid = reader.grid
        units = plan_units(grid.height, grid.width, predictor, tile=args.tile)
        tiles = [
            (u, reader.read(u.read_row_off, u.read_col_off, u.read_height, u.read_width))
            for u in units
        ]
    coherence = np.full(grid.shape, np.nan, dtype=np.float32)
    started = time.perf_counter()
    per_tile = []
    for unit, data in tiles:
        before = predictor.timings["forward"]
        values = predictor(data[None])[0, 0]
        per_tile.append(round(predictor.timings["forward"] - before, 3))
        core = unit.crop(values).copy()
        core[~valid_mask(*unit.crop(data))] = np.nan  # nodata in either input, as stored
        coherence[
            unit.row_off : unit.row_off + unit.height, unit.col_off : unit.col_off + unit.width
        ] = core
    calls = time.perf_counter() - started
    np.save(args.out, coherence)
    return {
        "precision": predictor.precision.name,
        "pixels": grid.width * grid.height,
        "tiles": len(units),
        "forward_s": predictor.timings["forward"],
        "forward_per_tile_s": per_tile,
        "predictor_s": calls,
        "threads": torch.get_num_threads(),
    }


def child_e2e(args: argparse.Namespace) -> dict[str, object]:
    """``predict_to_cogs`` from the files, as ``stac-coh predict`` runs it."""
    torch = _setup(args)
    from stac_coh.infer.engine import NetworkPredictor, predict_to_cogs
    from stac_coh.io.gdal_env import gdal_env, gdal_options
    from stac_coh.load.file_pair import RasterPairReader
    from stac_coh.model.weights import load_weights

    started = time.perf_counter()
    model, card = load_weights(None)
    predictor = NetworkPredictor(model, card, device=args.device, precision=args.precision)
    loading = time.perf_counter() - started
    options = gdal_options()
    with gdal_env(options):
        started = time.perf_counter()
        with RasterPairReader(args.t1, args.t2) as reader:
            summary = predict_to_cogs(
                reader, predictor, args.out, tile=args.tile, gdal_options=options
            )
        seconds = time.perf_counter() - started
    return {
        "precision": predictor.precision.name,
        "pixels": summary.total_pixels,
        "tiles": summary.tiles,
        "seconds": seconds,
        "loading_s": loading,
        "timings": dict(summary.timings),
        "threads": torch.get_num_threads(),
    }


def run(
    args: argparse.Namespace, directory: Path, spawn: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """Write (or reuse) the scene, run the children, return the figures."""
    scene_dir = args.scene_dir or directory
    scene_dir.mkdir(parents=True, exist_ok=True)
    t1, t2 = write_simulated_scene(scene_dir, args.scene_size)
    common = ["--t1", str(t1), "--t2", str(t2), "--device", args.device]
    if args.threads:
        common += ["--threads", str(args.threads)]
    if args.tile:
        common += ["--tile", str(args.tile)]
    runs: dict[str, list[dict[str, object]]] = {"fp32": [], "auto": [], "e2e": []}
    for _ in range(args.repeat):
        for name, child, precision in (
            ("fp32", "network", "fp32"),
            ("auto", "network", "auto"),
            ("e2e", "e2e", "auto"),
        ):
            out = directory / (f"{name}.npy" if child == "network" else "e2e.tif")
            before = load_avg()
            result = spawn("--child", child, "--precision", precision, "--out", str(out), *common)
            result["load"] = f"{before} -> {load_avg()}"
            result["out"] = str(out)
            runs[name].append(result)
    fp32 = min(runs["fp32"], key=lambda r: r["forward_s"])
    auto = min(runs["auto"], key=lambda r: r["forward_s"])
    e2e = min(runs["e2e"], key=lambda r: r["seconds"])
    compared = {}
    for precision in args.compare:  # error only: e.g. fp16, the GPU choice, emulated here
        out = directory / f"compare_{precision}.npy"
        result = spawn("--child", "network", "--precision", precision, "--out", str(out), *common)
        compared[precision] = {**_diff(fp32["out"], str(out)), "seconds": result["forward_s"]}
    return {
        "scene": f"{args.scene_size}x{args.scene_size}",
        "runs": runs,
        "fp32": fp32,
        "auto": auto,
        "e2e": e2e,
        "diff": _diff(fp32["out"], auto["out"]),
        "compared": compared,
    }


def _diff(reference: str, other: str) -> dict[str, float]:
    """|other - reference| over pixels valid in both: mean, 99.9th percentile, max."""
    a, b = np.load(reference), np.load(other)
    both = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(a[both] - b[both]).astype(np.float64)
    return {
        "mean": float(diff.mean()),
        "p999": float(np.quantile(diff, 0.999)),
        "max": float(diff.max()),
        "pixels": int(diff.size),
    }


def report(figures: dict[str, Any]) -> None:
    """Print the precision and end-to-end figures and the end-to-end time table."""
    fp32, auto, e2e, diff = (figures[k] for k in ("fp32", "auto", "e2e", "diff"))
    pixels = fp32["pixels"]
    print(
        f"\nsimulated scene {figures['scene']}, bundled weights, fast mode, "
        f"{auto['tiles']} tiles, torch threads {auto['threads']}, "
        f"best of {len(figures['runs']['e2e'])} run(s) each"
    )
    for name, rows in figures["runs"].items():
        for r in rows:
            secs = r.get("forward_s", r.get("seconds"))
            tiles = f" tiles {r['forward_per_tile_s']}" if "forward_per_tile_s" in r else ""
            print(f"  {name:>5} ({r['precision']}): {secs:7.2f} s{tiles}   load {r['load']}")
    print(
        f"network only (forward passes): fp32 {fp32['forward_s']:.2f} s "
        f"({pixels / fp32['forward_s'] / 1e6:.3f} MP/s), {auto['precision']} "
        f"{auto['forward_s']:.2f} s ({pixels / auto['forward_s'] / 1e6:.3f} MP/s)"
    )
    print(f"reduced_precision={auto['precision']}")
    print(f"reduced_precision_speedup={fp32['forward_s'] / auto['forward_s']:.2f}")
    print(f"reduced_precision_mean_abs_diff={diff['mean']:.5f}")
    print(f"reduced_precision_p999_abs_diff={diff['p999']:.4f}")
    print(f"reduced_precision_max_abs_diff={diff['max']:.4f}")
    for name, d in figures.get("compared", {}).items():
        print(
            f"{name} vs fp32 (error only; {d['seconds']:.1f} s here): mean {d['mean']:.5f}, "
            f"p99.9 {d['p999']:.4f}, max {d['max']:.4f} over {d['pixels']:,} pixels"
        )
    network_rate = pixels / auto["forward_s"]
    e2e_rate = e2e["pixels"] / e2e["seconds"]
    print(
        f"end to end ({e2e['precision']}): {e2e['seconds']:.2f} s "
        f"({e2e_rate / 1e6:.3f} MP/s); loading the weights before it: {e2e['loading_s']:.2f} s"
    )
    print(f"end_to_end_ratio={e2e_rate / network_rate:.3f}")
    # Within the one end-to-end process, so load changes between processes cancel out.
    share = e2e["timings"].get("network: forward", 0.0) / e2e["seconds"]
    print(f"end_to_end_forward_share={share:.3f}")
    print(end_to_end_table(e2e["timings"], e2e["seconds"]))


def end_to_end_table(timings: dict[str, float], wall: float) -> str:
    """Where the end-to-end wall time goes (a markdown table)."""
    lines = ["| stage | thread | seconds | % of wall |", "|---|---|---|---|"]
    for key, thread, text in STAGES:
        if key not in timings:
            continue
        share = f"{100 * timings[key] / wall:.1f}" if thread == "main" else "(overlapped)"
        lines.append(f"| {text} | {thread} | {timings[key]:.2f} | {share} |")
    main = sum(v for k, v in timings.items() if k in MAIN_STAGES)
    other = max(wall - main, 0.0)
    lines.append(
        f"| other (planning, opening, bookkeeping) | main | {other:.2f} | "
        f"{100 * other / wall:.1f} |"
    )
    lines.append(f"| **total wall** | | **{wall:.2f}** | 100 |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of this part of the benchmark."""
    parser.add_argument(
        "--scene-size", type=int, default=2048, help="simulated scene edge (>= 2048 for the ratio)"
    )
    parser.add_argument(
        "--scene-dir", type=Path, default=None, help="keep (and reuse) the simulated scene here"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement (best)")
    parser.add_argument(
        "--compare",
        nargs="*",
        default=["fp16"],
        choices=["fp16", "bf16"],
        help="also state the error of these precisions against fp32 (default fp16)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")


def cpu_flags() -> str:
    """The bf16-relevant CPU flags, as /proc/cpuinfo lists them."""
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        return "unknown"
    wanted = [f for f in ("avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16") if f in flags]
    return ", ".join(wanted) or "none of avx512_bf16/amx_bf16"
