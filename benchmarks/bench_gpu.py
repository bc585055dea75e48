"""GPU benchmark: network MP/s per precision, batch and tile, peak GPU memory, a full scene.

Run where a GPU is (``--device cuda``); prints markdown tables for docs/inference.md and
writes everything to ``--json``:

1. the machine: GPU name, compute capability, what ``--precision auto`` picks, versions;
2. the network alone (bundled weights, the published base-32 layout; speed does not
   depend on the weight values) on device-resident inputs of one fast-mode read window:
   output megapixels/s (core pixels, halo excluded) and peak GPU memory for every
   precision x batch size x tile edge x memory layout asked for (OOM is reported, not
   fatal);
3. end to end on a full Sentinel-1 RTC-sized scene pair (``--scene``, default 25000 x
   17000 px, float32 GeoTIFFs tiled 512, DEFLATE with the floating-point predictor, NaN
   nodata beyond a slanted swath edge, the way RTC COGs come): ``stac-coh predict`` as a
   subprocess (process start, weights, reading, network, COG writing: what a user waits
   for), then the same prediction in process with the per-stage table. The target is
   under 60 s on one H100-class GPU.

``--dry`` runs every part tiny (a 700 x 500 scene, one iteration) so the script itself can
be tested on a CPU: ``python benchmarks/bench_gpu.py --device cpu --dry``. Its numbers mean
nothing.

Usage::

    python benchmarks/bench_gpu.py --device cuda --json gpu.json
    python benchmarks/bench_gpu.py --device cuda --precisions bf16 fp16 --batches 1 2 4 8 \\
        --tiles 1024 2048 4096 --skip-scene
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _precision_e2e

TARGET_S = 60.0
"""End-to-end target for a full scene pair on one H100-class GPU."""

DRY_SCENE = (500, 700)
"""(rows, cols) of the scene in ``--dry`` mode."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "fp16", "bf16", "auto"],
        choices=["fp32", "fp16", "bf16", "auto"],
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument(
        "--tiles", nargs="+", type=int, default=[1024, 2048], help="fast-mode core tile edges"
    )
    parser.add_argument(
        "--layouts",
        nargs="+",
        default=["channels_last", "nchw"],
        choices=["channels_last", "nchw"],
    )
    parser.add_argument("--iterations", type=int, default=10, help="timed batches per setting")
    parser.add_argument(
        "--scene", nargs=2, type=int, default=[17000, 25000], metavar=("ROWS", "COLS")
    )
    parser.add_argument("--scene-precision", default="auto", help="precision of the scene run")
    parser.add_argument(
        "--weights",
        default="bundled",
        help="weights of every part (default bundled: offline; same layout as the published)",
    )
    parser.add_argument("--scene-tile", type=int, default=None, help="tile of the scene run")
    parser.add_argument("--scene-batch", type=int, default=None, help="batch of the scene run")
    parser.add_argument(
        "--scene-dir", type=Path, default=None, help="keep (and reuse) the scene files here"
    )
    parser.add_argument("--skip-network", action="store_true")
    parser.add_argument("--skip-scene", action="store_true")
    parser.add_argument("--dry", action="store_true", help="tiny sizes: test the script on CPU")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.batches) or any(t < 16 for t in args.tiles):
        parser.error("--batches must be >= 1 and --tiles >= 16")
    if min(args.scene) < 1:
        parser.error("--scene needs positive ROWS and COLS")
    if args.dry:
        args.batches, args.tiles, args.iterations = [1, 2], [256], 1
        args.scene = list(DRY_SCENE)
        args.precisions = [p for p in args.precisions if p in ("fp32", "bf16")] or ["fp32"]
    return args


def drop_emulated_in_dry(args: argparse.Namespace, device: Any) -> list[str]:
    """In ``--dry`` on a CPU without bf16 instructions, leave bf16 out; return what was dropped.

    oneDNN emulates bf16 there about 100x slower than fp32 (a 2 x 256 px batch: 150 s
    against 1.5 s on a 2-core AMD EPYC), so a dry run with it would take most of an hour.
    """
    from stac_coh.infer.precision import cpu_has_native_bf16

    if not args.dry or device.type != "cpu" or cpu_has_native_bf16():
        return []
    dropped = [p for p in args.precisions if p == "bf16"]
    args.precisions = [p for p in args.precisions if p != "bf16"] or ["fp32"]
    return dropped


def check_device(name: str) -> Any:
    """The torch device, or exit 2 with a sentence when it is not there."""
    import torch

    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "error: --device cuda, but PyTorch sees no CUDA GPU "
            f"(torch {torch.__version__}); run on a GPU machine or use --device cpu --dry."
        )
    if device.type not in ("cuda", "cpu"):
        raise SystemExit(f"error: --device must be cuda[:N] or cpu, not {name!r}.")
    return device


def describe(device: Any) -> dict[str, Any]:
    """Machine, versions and the precision ``auto`` picks."""
    import torch

    from stac_coh.infer.precision import choose_precision

    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "auto_precision": choose_precision("auto", device).name,
        "auto_reason": choose_precision("auto", device).reason,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            name=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        info["name"] = platform.processor() or "cpu"
    return info


def _model(weights: str) -> Any:
    from stac_coh.model.weights import load_weights

    return load_weights(weights)


def network_rows(args: argparse.Namespace, device: Any) -> list[dict[str, Any]]:
    """MP/s and peak memory of the forward pass for every setting asked for."""
    import warnings

    import torch

    from stac_coh.errors import PrecisionWarning
    from stac_coh.infer.engine import NetworkPredictor

    model, card = _model(args.weights)
    rows = []
    for precision in args.precisions:
        for layout in args.layouts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PrecisionWarning)
                predictor = NetworkPredictor(
                    model,
                    card,
                    device=device,
                    precision=precision,
                    channels_last=layout == "channels_last",
                )
            for tile in args.tiles:
                read = tile + 2 * predictor.halo
                for batch in args.batches:
                    row = {
                        "precision": precision,
                        "runs_as": predictor.precision.name,
                        "layout": layout,
                        "tile": tile,
                        "read": read,
                        "batch": batch,
                    }
                    row.update(_time_forward(predictor, device, batch, read, tile, args))
                    rows.append(row)
                    print(_network_line(row), flush=True)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    return rows


def _time_forward(
    predictor: Any, device: Any, batch: int, read: int, tile: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Warm up twice, then time ``args.iterations`` forward passes of one batch."""
    import torch

    # the weights' own input width: the wide-masked preprocessing adds a valid-mask channel
    channels = predictor.card.architecture.input_channels
    x = torch.rand(batch, channels, read, read, device=device)
    if predictor.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with torch.inference_mode():
            for _ in range(1 if args.dry else 2):
                with predictor.autocast():
                    predictor.model(x)
            if cuda:
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            for _ in range(args.iterations):
                with predictor.autocast():
                    predictor.model(x)
            if cuda:
                torch.cuda.synchronize(device)
            seconds = (time.perf_counter() - started) / args.iterations
    except torch.OutOfMemoryError:
        return {"oom": True}
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    return {
        "oom": False,
        "seconds_per_batch": seconds,
        "mp_per_s": batch * tile * tile / seconds / 1e6,
        "peak_gib": peak,
    }


def _network_line(row: dict[str, Any]) -> str:
    """One markdown table row."""
    head = (
        f"| {row['precision']} ({row['runs_as']}) | {row['layout']} | {row['tile']} "
        f"({row['read']}) | {row['batch']} |"
    )
    if row["oom"]:
        return head + " OOM | - |"
    peak = f"{row['peak_gib']:.1f}" if row["peak_gib"] is not None else "-"
    return head + f" {row['mp_per_s']:.1f} | {peak} |"


def write_scene(directory: Path, rows: int, cols: int) -> tuple[Path, Path]:
    """Two speckled float32 scenes like Sentinel-1 RTC COGs (reused when already there)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    paths = directory / f"rtc_t1_{rows}x{cols}.tif", directory / f"rtc_t2_{rows}x{cols}.tif"
    if all(p.exists() for p in paths):
        return paths
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32631",
        "transform": from_origin(300000.0, 5000000.0, 10.0, 10.0),
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "DEFLATE",
        "predictor": 3,
        "bigtiff": "IF_SAFER",
    }
    rng = np.random.default_rng(0)
    partial = [p.with_suffix(".partial.tif") for p in paths]
    with (
        rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"),
        rasterio.open(partial[0], "w", **profile) as a,
        rasterio.open(partial[1], "w", **profile) as b,
    ):
        for row in range(0, rows, 512):
            n = min(512, rows - row)
            yy, xx = np.mgrid[row : row + n, 0:cols].astype(np.float32)
            field = 0.08 + 0.06 * np.sin(xx / 150.0) * np.cos(yy / 210.0)
            edge = xx < 0.12 * cols + 0.05 * yy  # a slanted swath edge: nodata left of it
            window = Window(0, row, cols, n)
            for ds in (a, b):
                data = (field * rng.exponential(1.0, field.shape)).astype(np.float32)
                data[edge] = np.nan
                ds.write(data, 1, window=window)
    for src, dst in zip(partial, paths, strict=True):
        src.replace(dst)
    return paths


def scene_cli(args: argparse.Namespace, t1: Path, t2: Path, out: Path) -> dict[str, Any]:
    """``stac-coh predict`` as a user runs it, timed from process start to exit."""
    command = [
        sys.executable,
        "-m",
        "stac_coh",
        "predict",
        str(t1),
        str(t2),
        "-o",
        str(out),
        "--device",
        args.device,
        "--precision",
        args.scene_precision,
        "--weights",
        args.weights,
        "--overwrite",
    ]
    if args.scene_tile:
        command += ["--tile", str(args.scene_tile)]
    if args.scene_batch:
        command += ["--batch-size", str(args.scene_batch)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"stac-coh predict failed ({done.returncode}):\n{done.stderr}")
    return {"seconds": seconds, "summary": done.stdout.strip().splitlines()[-1]}


def scene_in_process(
    args: argparse.Namespace, device: Any, t1: Path, t2: Path, out: Path
) -> dict[str, Any]:
    """The same prediction in process, with the per-stage table and peak GPU memory."""
    import torch

    from stac_coh.cli.predict_command import CUDA_FAST_BATCH
    from stac_coh.infer.engine import NetworkPredictor, predict_to_cogs, reuse_freed_memory
    from stac_coh.io.gdal_env import gdal_env, gdal_options
    from stac_coh.load.file_pair import RasterPairReader

    reuse_freed_memory()
    model, card = _model(args.weights)
    predictor = NetworkPredictor(model, card, device=device, precision=args.scene_precision)
    batch = args.scene_batch or (CUDA_FAST_BATCH if device.type == "cuda" else None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    options = gdal_options()
    with gdal_env(options):
        started = time.perf_counter()
        with RasterPairReader(t1, t2) as reader:
            summary = predict_to_cogs(
                reader,
                predictor,
                out,
                tile=args.scene_tile,
                batch_size=batch,
                gdal_options=options,
            )
        seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    forward = summary.timings.get("network: forward", float("nan"))
    return {
        "precision": predictor.precision.name,
        "seconds": seconds,
        "pixels": summary.total_pixels,
        "tiles": summary.tiles,
        "batch": batch or 1,
        "peak_gib": peak,
        "timings": dict(summary.timings),
        "end_to_end_ratio": forward / seconds,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the parts asked for; print tables; return (and optionally write) the results."""
    args = parse_args(argv)
    device = check_device(args.device)
    dropped = drop_emulated_in_dry(args, device)
    results: dict[str, Any] = {"machine": describe(device), "dry": args.dry, "dropped": dropped}
    machine = results["machine"]
    print(f"# GPU benchmark{' (DRY RUN: tiny sizes, numbers mean nothing)' if args.dry else ''}")
    print(json.dumps(machine))
    if dropped:
        print(f"left out {', '.join(dropped)}: this CPU emulates it (no bf16 instructions)")
    if not args.skip_network:
        print("\n| precision (runs as) | layout | tile (read) | batch | MP/s | peak GiB |")
        print("|---|---|---|---|---|---|")
        results["network"] = network_rows(args, device)
    if not args.skip_scene:
        rows, cols = args.scene
        if args.scene_dir:
            args.scene_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.scene_dir) as tmp:
            scene_dir = args.scene_dir or Path(tmp)
            started = time.perf_counter()
            t1, t2 = write_scene(scene_dir, rows, cols)
            print(f"\nscene {rows} x {cols} ready in {time.perf_counter() - started:.0f} s")
            out = Path(tmp) / "coherence.tif"
            cli = scene_cli(args, t1, t2, out)
            inner = scene_in_process(args, device, t1, t2, out.with_name("inner.tif"))
        results["scene"] = {"rows": rows, "cols": cols, "cli": cli, "in_process": inner}
        mp = rows * cols / 1e6
        verdict = "meets" if cli["seconds"] < TARGET_S else "misses"
        print(
            f"stac-coh predict, {rows} x {cols} ({mp:.0f} MP), {inner['precision']}: "
            f"{cli['seconds']:.1f} s end to end ({mp / cli['seconds']:.1f} MP/s), "
            f"{verdict} the {TARGET_S:.0f} s target"
        )
        print(f"  {cli['summary']}")
        peak = f"{inner['peak_gib']:.1f} GiB" if inner["peak_gib"] is not None else "n/a"
        print(
            f"in process: {inner['seconds']:.1f} s, {inner['tiles']} tiles, batch "
            f"{inner['batch']}, peak GPU memory {peak}, "
            f"end_to_end_ratio={inner['end_to_end_ratio']:.3f}"
        )
        print(_precision_e2e.end_to_end_table(inner["timings"], inner["seconds"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
