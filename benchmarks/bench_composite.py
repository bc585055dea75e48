"""Peak memory of `stac-coh composite` for N and 4N pairs on one tile: it must not grow.

Builds two simulated decay stacks (science/decay_stack.py) on the same 1024 x 1024 px tile,
N and 4N pairs over the six baselines 6..48 d, then composites each in a fresh
subprocess (median, decay fit, COGs, item) and prints the subprocess's peak RSS. Each run
is done twice: with the default median (levels of up to 128 pairs per chunk kept and
sorted, a 251-level histogram beyond) and with the histogram forced, so both regimes
are shown. Stacks are cached under --workdir.

    nice -n 10 .venv/bin/python benchmarks/bench_composite.py --pairs-per-baseline 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BASELINES = (6, 12, 18, 24, 36, 48)

CHILD = """
import json, sys, time

def status(field):
    # VmHWM/VmRSS of this process only: ru_maxrss would carry the parent's peak over exec.
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)

import stac_coh.composite.stack as stack
from stac_coh.composite import (
    CompositeRequest, open_pair_source, plan_composites, plan_periods, run_unit
)
imported = status("VmRSS")
root, force_histogram = sys.argv[1], sys.argv[2] == "1"
if force_histogram:
    stack.SORT_MAX_PAIRS = 0
source = open_pair_source(root, "sentinel-1-coherence")
request = CompositeRequest(
    periods=plan_periods(start="2026-01-01", end="2026-12-31"), overwrite=True
)
start = time.perf_counter()
plan = plan_composites(source.pairs(request.start, request.stop), request)
(unit,) = plan.units
result = run_unit(unit, request, source.store, source)
print(json.dumps({
    "pairs": unit.n_pairs,
    "seconds": round(time.perf_counter() - start, 1),
    "peak_rss_mb": status("VmHWM"),
    "rss_after_imports_mb": imported,
    "fitted": result.fitted,
}))
"""


def build(root: Path, per_baseline: int, size: int) -> None:
    """A stack with ``per_baseline`` pairs of each baseline (cached)."""
    from stac_coh.science.decay_stack import DecayStackSpec, write_stack_catalog

    marker = root / "done.json"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    n_dates = per_baseline + max(BASELINES) // 6
    spec = DecayStackSpec(
        size=size, n_dates=n_dates, max_pairs_per_baseline=per_baseline, noise=0.03
    )
    started = time.perf_counter()
    stack = write_stack_catalog(root, seed=11, spec=spec)
    marker.write_text(json.dumps(stack.pairs_per_baseline))
    print(f"built {root.name}: {stack.pairs_per_baseline} in {time.perf_counter() - started:.0f} s")


def measure(root: Path, force_histogram: bool) -> dict[str, object]:
    """Composite the stack in a fresh interpreter; its own peak RSS and time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), "1" if force_histogram else "0"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Build, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/stac-coh-bench-composite"))
    parser.add_argument("--pairs-per-baseline", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    n = args.pairs_per_baseline
    roots = {k: args.workdir / f"stack_{k}x{n}_{args.size}px" for k in (1, 4)}
    for k, root in roots.items():
        build(root, k * n, args.size)
    print(f"tile {args.size} x {args.size} px, chunk 512 px, baselines {BASELINES} d")
    for label, histogram in (("default median", False), ("histogram median", True)):
        results = {k: measure(root, histogram) for k, root in roots.items()}
        for r in results.values():
            print(
                f"{label}: pairs={r['pairs']} peak_rss_mb={r['peak_rss_mb']} "
                f"rss_after_imports_mb={r['rss_after_imports_mb']} "
                f"seconds={r['seconds']} decay_fit={r['fitted']}"
            )
        ratio = float(results[4]["peak_rss_mb"]) / float(results[1]["peak_rss_mb"])  # type: ignore[arg-type]
        print(f"{label}: rss_ratio_4x_pairs={ratio:.3f}")


if __name__ == "__main__":
    main()
