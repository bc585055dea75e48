"""Finishing a run of many work units: the run report gathered in bounded memory.

Writes ``--outcomes`` recorded outcomes (``reports/<run>/pairs/<pair>.json``, as workers
record them: 90 % published, 8 % skipped, 2 % failed with an error line) into a local
store, then, in a fresh interpreter each, finishes the run (``finish_run(store,
run_id=...)``: gather, resolve, report; the collection is empty, so finalize costs
nothing) for all of them and for a tenth of them. It prints

- ``report_outcomes=``: outcomes gathered into the report;
- ``report_peak_rss_mb=``: peak resident memory (``VmHWM``) of that process, and of the
  tenth-size run;
- ``report_rss_ratio_10x=``: the two peaks' ratio (1.0: memory does not grow with the run);
- ``report_seconds=`` and ``report_mb=``: wall time and size of the stored report.

Usage: python benchmarks/bench_run_report.py [--outcomes N] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FINISH = """
import sys, json
from stac_coh.io.storage import open_store
from stac_coh.pipeline.run import finish_run
end = finish_run(open_store(sys.argv[1]), run_id=sys.argv[2])
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(json.dumps({"counts": end.report["counts"], "rss": int(line.split()[1]) / 1024}))
"""


def write_outcomes(root: Path, run_id: str, n: int) -> None:
    """``n`` outcome records shaped like the workers' (direct file writes, for speed)."""
    folder = root / "reports" / run_id / "pairs"
    folder.mkdir(parents=True)
    for k in range(n):
        pair_id = f"S1A-S1C_R{1 + k % 175:03d}D_20250103_20250115_VV_33UXP_{k:08x}"
        status = "failed" if k % 50 == 0 else "skipped" if k % 12 == 0 else "published"
        entry = {
            "pair_id": pair_id,
            "status": status,
            "seconds": 31.4,
            "item": f"sentinel-1-coherence/{pair_id}/{pair_id}.json",
        }
        if status == "failed":
            error = "TransientReadError: s3://bucket/x.tif: 503 Slow Down"
            entry.update(error=error, transient=True)
        (folder / f"{pair_id}.json").write_text(json.dumps(entry))


def finish(root: Path, run_id: str) -> tuple[dict, float]:
    """Finish the run in a fresh interpreter: its answer and the wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", FINISH, str(root), run_id], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=200_000, help="Outcomes of the big run.")
    parser.add_argument("--work", type=Path, default=None, help="Scratch folder (default: temp).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-", dir=args.work) as tmp:
        rows = []
        for n in (args.outcomes // 10, args.outcomes):
            root = Path(tmp) / f"run-{n}"
            write_outcomes(root, "bench", n)
            answer, seconds = finish(root, "bench")
            size = (root / "reports" / "bench.json").stat().st_size / 1e6
            rows.append((n, answer["rss"], seconds, size, answer["counts"]))
    print("| outcomes | peak RSS MB | seconds | report MB | counts |")
    print("|---|---|---|---|---|")
    for n, rss, seconds, size, counts in rows:
        print(f"| {n:,} | {rss:.0f} | {seconds:.1f} | {size:.1f} | {counts} |")
    (_, small_rss, *_), (big_n, big_rss, big_s, big_mb, _) = rows
    print(f"report_outcomes={big_n}")
    print(f"report_peak_rss_mb={big_rss:.0f} (tenth-size run: {small_rss:.0f})")
    print(f"report_rss_ratio_10x={big_rss / small_rss:.3f}")
    print(f"report_seconds={big_s:.1f}")
    print(f"report_mb={big_mb:.1f}")


if __name__ == "__main__":
    main()
