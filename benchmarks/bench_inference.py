"""Inference benchmark: tiling, memory, conv efficiency, reduced precision, end to end.

Synthetic inputs (seeded speckled backscatter, float32 GeoTIFFs written in row chunks) of
SIZE x SIZE and 2*SIZE x 2*SIZE pixels go through ``predict_to_cogs`` from files, exactly as
``stac-coh predict`` runs, with a randomly initialised full-width ResUNet (base 32; speed
does not depend on the weight values). Every measurement runs in a fresh subprocess so
peak RSS values are independent. Printed:

* a table: size, mode, tile, tiles, seconds, megapixels/s, GFLOP/s executed, peak RSS;
* ``fast_vs_reference_speedup``: reference seconds / fast seconds on the same SIZE input;
* ``rss_ratio_4x_area``: peak RSS of fast mode on the 2*SIZE scene / on the SIZE scene;
* ``conv_efficiency``: FLOP/s fast mode achieves end to end (reading, COG writing and
  every FLOP it executes, halos included, counted by ``torch.utils.flop_counter``) divided
  by the FLOP/s of one conv2d of the model's biggest layer at its shape in the largest
  fast tile. Two candidates are timed - the layer with the most FLOPs and the layer with
  the most weights - and the faster one is the denominator (the conservative choice).

These tiling figures run in fp32 (``--precision fp32``), as they always have, so they
stay comparable between runs and with the fp32 conv2d peak.

Then, on one simulated scene (``--scene-size``, default 2048 x 2048) with the bundled
weights (see ``_precision_e2e.py``):

* ``reduced_precision_speedup``: forward passes of the network alone in fp32 / in the
  precision ``auto`` picks on this machine (bf16 on a CPU with AVX512-BF16 or AMX);
* ``reduced_precision_mean_abs_diff``, ``_p999_abs_diff``, ``_max_abs_diff``: |coherence
  (auto) - coherence (fp32)| over the scene's valid pixels, before uint8 quantisation;
* ``end_to_end_ratio``: pixel rate of ``predict`` end to end (files in, COG out, auto
  precision) / pixel rate of the network's forward passes alone (same scene, precision);
* ``end_to_end_forward_share``: the forward passes' share of the end-to-end wall time,
  measured inside that one run (robust to load changing between processes, which moves
  ``end_to_end_ratio`` on a shared machine);
* a table of where the end-to-end wall time goes.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_inference.py        # everything, ~15 min
    .venv/bin/python benchmarks/bench_inference.py --size 1024 --skip-reference
    .venv/bin/python benchmarks/bench_inference.py --skip-tiling --repeat 3 \
        --scene-dir /tmp/bench-scene                                # precision + end to end
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _precision_e2e

HERE = Path(__file__).resolve()


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def write_inputs(directory: Path, size: int, seed: int = 0) -> tuple[Path, Path]:
    """Two speckled scenes of ``size`` x ``size`` on a UTM grid, written 256 rows at a time."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    paths = directory / f"t1_{size}.tif", directory / f"t2_{size}.tif"
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32633",
        "transform": from_origin(500000.0, 4600000.0, 10.0, 10.0),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
    }
    with rasterio.open(paths[0], "w", **profile) as a, rasterio.open(paths[1], "w", **profile) as b:
        for row in range(0, size, 256):
            rows = min(256, size - row)
            yy, xx = np.mgrid[row : row + rows, 0:size]
            field = 0.08 + 0.06 * np.sin(xx / 150.0) * np.cos(yy / 210.0)
            window = rasterio.windows.Window(0, row, size, rows)
            a.write(
                (field * rng.exponential(1.0, field.shape)).astype(np.float32), 1, window=window
            )
            b.write(
                (field * rng.exponential(1.0, field.shape)).astype(np.float32), 1, window=window
            )
    return paths


def _model():
    import torch

    from stac_coh.model.resunet import ResUNet

    torch.manual_seed(0)
    return ResUNet().eval()


def _flops(net, shape: tuple[int, int]) -> int:
    """FLOPs of one forward pass at ``shape``, counted on the meta device (no compute)."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(net).to("meta")
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        meta(torch.empty(1, 2, *shape, device="meta"))
    return int(counter.get_total_flops())


def child_predict(args: argparse.Namespace) -> dict[str, object]:
    """One prediction from files; returns timings, executed FLOPs and peak RSS."""
    import torch

    from stac_coh.infer.engine import (
        DEFAULT_REFERENCE_BLOCK,
        DEFAULT_TILE,
        NetworkPredictor,
        plan_units,
        predict_to_cogs,
        reuse_freed_memory,
    )
    from stac_coh.infer.tiling import PatchBlock
    from stac_coh.load.file_pair import RasterPairReader
    from stac_coh.model.card import ModelCard

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.no_reuse_memory:
        reuse_freed_memory()  # as `stac-coh predict` does
    predictor = NetworkPredictor(
        _model(), ModelCard(name="random-bench"), device="cpu", precision="fp32"
    )
    tile = args.tile or (DEFAULT_TILE if args.mode == "fast" else DEFAULT_REFERENCE_BLOCK)
    with RasterPairReader(args.t1, args.t2) as reader:
        started = time.perf_counter()
        summary = predict_to_cogs(
            reader, predictor, args.out, mode=args.mode, tile=tile, batch_size=args.batch_size
        )
        seconds = time.perf_counter() - started
        grid = reader.grid
    units = plan_units(grid.height, grid.width, predictor, mode=args.mode, tile=tile)
    shapes: dict[tuple[int, int], int] = {}
    for unit in units:
        if isinstance(unit, PatchBlock):
            shapes[(unit.patch, unit.patch)] = shapes.get((unit.patch,) * 2, 0) + len(unit.patches)
        else:
            shapes[unit.read_shape] = shapes.get(unit.read_shape, 0) + 1
    flops = sum(n * _flops(predictor.model, shape) for shape, n in shapes.items())
    return {
        "mode": args.mode,
        "size": f"{grid.width}x{grid.height}",
        "pixels": grid.width * grid.height,
        "tile": tile,
        "patches": sum(n for shape, n in shapes.items()) if args.mode == "reference" else 0,
        "tiles": summary.tiles,
        "seconds": seconds,
        "flops": flops,
        "largest_read": max(shapes, key=lambda s: s[0] * s[1]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def child_conv(args: argparse.Namespace) -> dict[str, object]:
    """Time conv2d alone at the shapes of the model's biggest layers in the largest tile."""
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from stac_coh.infer.engine import reuse_freed_memory
    from stac_coh.model.fused import InferenceResUNet

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.no_reuse_memory:
        reuse_freed_memory()  # no page-fault cost for the conv either: a fair peak
    net = InferenceResUNet(_model())
    shapes: dict[str, tuple[int, ...]] = {}
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(
                lambda _m, inputs, _o, name=name: shapes.__setitem__(name, tuple(inputs[0].shape))
            )
    meta = net.to("meta")
    height, width = args.read
    with FlopCounterMode(meta, display=False) as counter, torch.inference_mode():
        meta(torch.empty(1, 2, height, width, device="meta"))
    per_module = {
        name: sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if name.removeprefix("InferenceResUNet.") in shapes
    }
    convs = dict(meta.named_modules())
    top = max(per_module.values())
    # Several layers tie for the most FLOPs (each U-Net level does about the same work).
    candidates = [
        ("most FLOPs", name.removeprefix("InferenceResUNet."))
        for name, flops in sorted(per_module.items())
        if flops >= 0.99 * top
    ]
    candidates.append(("most weights", max(shapes, key=lambda n: convs[n].weight.numel())))
    results = []
    for role, name in candidates:
        spec = convs[name]
        conv = nn.Conv2d(
            spec.in_channels, spec.out_channels, spec.kernel_size, padding=spec.padding
        ).eval()
        conv = conv.to(memory_format=torch.channels_last)
        x = torch.rand(shapes[name]).contiguous(memory_format=torch.channels_last)
        with FlopCounterMode(display=False) as c2, torch.inference_mode():
            conv(x)
        times = []
        with torch.inference_mode():
            conv(x)
            for _ in range(args.repeats):
                t = time.perf_counter()
                conv(x)
                times.append(time.perf_counter() - t)
        flops = c2.get_total_flops()
        results.append(
            {
                "role": role,
                "layer": name,
                "shape": f"{spec.in_channels}->{spec.out_channels} {spec.kernel_size[0]}x"
                f"{spec.kernel_size[1]} on {'x'.join(map(str, shapes[name]))}",
                "flop_per_s": flops / min(times),
            }
        )
    return {"convs": results, "threads": torch.get_num_threads()}


def _spawn(*argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(HERE), *argv], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"benchmark child {argv} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _common(args: argparse.Namespace) -> list[str]:
    out = []
    if args.threads:
        out += ["--threads", str(args.threads)]
    if args.batch_size:
        out += ["--batch-size", str(args.batch_size)]
    if args.no_reuse_memory:
        out += ["--no-reuse-memory"]
    return out


def main() -> None:
    """Parse arguments; run as the parent (orchestrates) or as one measurement child."""

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="edge of the smaller scene")
    parser.add_argument("--tile", type=int, default=None, help="fast tile (default 1024)")
    parser.add_argument("--block", type=int, default=None, help="reference block (4096)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--repeats", type=int, default=5, help="conv2d timings (best of)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument(
        "--skip-tiling", action="store_true", help="only the precision and end-to-end figures"
    )
    parser.add_argument(
        "--skip-precision", action="store_true", help="only the tiling, memory, conv figures"
    )
    parser.add_argument(
        "--no-reuse-memory", action="store_true", help="skip reuse_freed_memory() (glibc)"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", choices=["predict", "conv", "network", "e2e"], default=None)
    parser.add_argument("--mode", default="fast")
    parser.add_argument("--t1")
    parser.add_argument("--t2")
    parser.add_argument("--out")
    parser.add_argument("--read", type=int, nargs=2)
    _precision_e2e.add_arguments(parser)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    children = {
        "predict": child_predict,
        "conv": child_conv,
        "network": _precision_e2e.child_network,
        "e2e": _precision_e2e.child_e2e,
    }
    if args.child:
        print(json.dumps(children[args.child](args)))
        return
    print(f"cpu: {_cpu_name()}, {os.cpu_count()} cores; bf16 flags: {_precision_e2e.cpu_flags()}")
    print(f"load average at start: {_load()}")
    if not args.skip_tiling:
        run(args)
    if not args.skip_precision:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            figures = _precision_e2e.run(args, Path(tmp), _spawn)
        _precision_e2e.report(figures)
    print(f"load average at end: {_load()}")


def run(args: argparse.Namespace) -> None:
    """The parent: write inputs, spawn one child per measurement, print the results."""
    load_before = _load()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        directory = Path(tmp)
        rows = []
        for size, modes in (
            (args.size, ["fast"] + ([] if args.skip_reference else ["reference"])),
            (2 * args.size, ["fast"]),
        ):
            t1, t2 = write_inputs(directory, size)
            for mode in modes:
                out = directory / f"{mode}_{size}.tif"
                tile = args.tile if mode == "fast" else args.block
                sized = ["--tile", str(tile)] if tile else []
                rows.append(
                    _spawn(
                        "--child",
                        "predict",
                        "--mode",
                        mode,
                        "--t1",
                        str(t1),
                        "--t2",
                        str(t2),
                        "--out",
                        str(out),
                        *sized,
                        *_common(args),
                    )
                )
                out.unlink()
        fast_small = rows[0]
        read = fast_small["largest_read"]
        conv = _spawn(
            "--child",
            "conv",
            "--read",
            str(read[0]),
            str(read[1]),
            "--repeats",
            str(args.repeats),
            *_common(args),
        )
    _report(rows, conv, load_before, args)


def _report(rows: list[dict], conv: dict, load_before: str, args: argparse.Namespace) -> None:
    print(f"cpu: {_cpu_name()}, {os.cpu_count()} cores, torch threads {rows[0]['threads']}")
    print(f"load average before: {load_before}; after: {_load()}")
    header = f"{'size':>11} {'mode':>9} {'tile':>5} {'tiles':>5} {'seconds':>8} {'MP/s':>7}"
    print(header + f" {'GFLOP/s':>8} {'peak RSS MB':>12}")
    for r in rows:
        mp_s = r["pixels"] / r["seconds"] / 1e6
        gflops = r["flops"] / r["seconds"] / 1e9
        print(
            f"{r['size']:>11} {r['mode']:>9} {r['tile']:>5} {r['tiles']:>5} "
            f"{r['seconds']:>8.1f} {mp_s:>7.3f} {gflops:>8.1f} {r['peak_rss_mb']:>12.0f}"
        )
    for r in rows:
        if r["mode"] == "reference":
            print(f"reference {r['size']}: {r['patches']} patches of 128 x 128 (published count)")
    for c in conv["convs"]:
        print(
            f"conv2d ({c['role']}: {c['layer']}) {c['shape']}: {c['flop_per_s'] / 1e9:.1f} GFLOP/s"
        )
    fast = rows[0]
    big = rows[-1]
    if not args.skip_reference:
        reference = rows[1]
        print(f"fast_vs_reference_speedup={reference['seconds'] / fast['seconds']:.2f}")
    print(f"rss_ratio_4x_area={big['peak_rss_mb'] / fast['peak_rss_mb']:.3f}")
    peak = max(c["flop_per_s"] for c in conv["convs"])
    print(f"conv_efficiency={fast['flops'] / fast['seconds'] / peak:.3f}")


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
