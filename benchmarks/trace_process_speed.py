"""Wall time of ``pimsim trace --json`` as a whole process, start-up included.

Writes an N-line text trace of random 64 B reads (the validate_dram peer's input format),
runs ``python -m pimsim trace FILE --json`` once untimed (it loads or compiles the
numba cache), then times several runs and reports the median. ``--against REV`` also
times git revision REV, checked out into a temporary worktree, alternating run by run
with this checkout on the same file, and checks that both print the same report.
``--numpy-huge-pages`` also times this checkout with ``NUMPY_MADVISE_HUGEPAGE=1``: numpy
then asks for huge pages as it does by default, which ``pimsim`` turns off where the
kernel compacts memory to serve them (``pimsim._pages``).

    python -m benchmarks.trace_process_speed [--lines 2000000] [--repeats 5] [--against REV]
        [--numpy-huge-pages]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._csv import write_rows

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parent.parent


HUGE_PAGES = "this checkout, NUMPY_MADVISE_HUGEPAGE=1"


def _run(root: Path, trace: Path, hardware: str, extra_env: dict | None = None) -> tuple[float, dict]:
    """(wall seconds, parsed report) of one ``pimsim trace`` process on ``root``'s pimsim."""
    env = dict(os.environ, PYTHONPATH=str(root), **(extra_env or {}))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pimsim", "trace", str(trace), "--hardware", hardware, "--json"],
                          cwd=root, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"
        raise RuntimeError(f"pimsim trace failed in {root}: {last}")
    return secs, json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hardware", default="ddr4-2400")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--against", metavar="REV", help="also time this git revision, alternating")
    ap.add_argument("--numpy-huge-pages", action="store_true",
                    help="also time this checkout with NUMPY_MADVISE_HUGEPAGE=1, alternating")
    ap.add_argument("--out", default=str(RESULTS / "trace_process_speed.csv"))
    args = ap.parse_args(argv)
    if args.lines <= 0 or args.repeats <= 0:
        ap.error("--lines and --repeats must be positive")

    from pimsim import Trace, load_hardware, write_trace

    hw = load_hardware(args.hardware)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "random_reads.trace"
        n = args.lines
        write_trace(Trace(rng.integers(0, hw.org.capacity_bytes // 64, n) * 64, np.zeros(n, bool),
                          np.zeros(n, np.int64)), trace)
        roots = {"this checkout": ROOT}
        envs = {"this checkout": {}}
        if args.numpy_huge_pages:
            roots[HUGE_PAGES], envs[HUGE_PAGES] = ROOT, {"NUMPY_MADVISE_HUGEPAGE": "1"}
        if args.against == "this checkout":
            print("error: --against needs a git revision", file=sys.stderr)
            return 2
        if args.against:
            other = Path(folder) / "against"
            add = subprocess.run(["git", "worktree", "add", "--detach", str(other), args.against],
                                 cwd=ROOT, capture_output=True, text=True)
            if add.returncode != 0:
                subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
                why = add.stderr.strip().splitlines()[-1] if add.stderr.strip() else "git worktree add failed"
                print(f"error: --against {args.against!r}: {why}", file=sys.stderr)
                return 2
            roots[args.against], envs[args.against] = other, {}
        try:
            reports = {k: _run(r, trace, args.hardware, envs[k])[1] for k, r in roots.items()}  # warm the caches
            if len({json.dumps(r, sort_keys=True) for r in reports.values()}) > 1:
                print("error: the runs print different reports", file=sys.stderr)
                return 1
            times: dict[str, list[float]] = {k: [] for k in roots}
            order = list(roots)
            for i in range(args.repeats):
                j = i % len(order)
                for k in order[j:] + order[:j]:  # each side goes first in turn
                    times[k].append(_run(roots[k], trace, args.hardware, envs[k])[0])
        finally:
            if args.against:
                gone = subprocess.run(["git", "worktree", "remove", "--force", str(roots[args.against])],
                                      cwd=ROOT, capture_output=True)
                if gone.returncode != 0:
                    subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
    rows = []
    for k in roots:
        med = statistics.median(times[k])
        rows.append({"revision": k, "lines": n, "hardware": args.hardware, "seed": args.seed,
                     "repeats": args.repeats, "median_s": round(med, 3),
                     "min_s": round(min(times[k]), 3), "max_s": round(max(times[k]), 3),
                     "lines_per_s": round(n / med), "cores": os.cpu_count()})
        print(rows[-1], file=sys.stderr)
    if args.against:
        ratio = statistics.median(times[args.against]) / statistics.median(times["this checkout"])
        print(f"{args.against} over this checkout: {ratio:.2f}x", file=sys.stderr)
    if args.numpy_huge_pages:
        ratio = statistics.median(times[HUGE_PAGES]) / statistics.median(times["this checkout"])
        print(f"numpy's huge pages over this checkout: {ratio:.2f}x", file=sys.stderr)
    out = write_rows(rows, args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
