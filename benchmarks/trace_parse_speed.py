"""Trace lines read per second: the text parser (and the slow reference reader) against .npz.

Writes an N-line trace of random 64 B reads (hex address, READ, increasing cycle) as text
and as ``.npz`` into a temporary folder, then reports the median of several timed
``pimsim.read_trace`` calls of each (after one untimed call that compiles the parser).
``--reference`` also times the line-by-line Python reader of the tests, once.

    python -m benchmarks.trace_parse_speed [--lines 2000000] [--repeats 5] [--reference]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._csv import write_rows

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", action="store_true", help="also time the slow reference reader once")
    ap.add_argument("--out", default=str(RESULTS / "trace_parse_speed.csv"))
    args = ap.parse_args(argv)
    if args.lines <= 0 or args.repeats <= 0:
        ap.error("--lines and --repeats must be positive")

    from pimsim import Trace, load_hardware, read_trace, write_trace

    rng = np.random.default_rng(args.seed)
    n = args.lines
    lines = load_hardware("ddr4-2400").org.capacity_bytes // 64
    trace = Trace(rng.integers(0, lines, n) * 64, np.zeros(n, bool), np.arange(n, dtype=np.int64))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, name in (("text", "t.trace"), ("npz", "t.npz")):
            path = Path(tmp) / name
            write_trace(trace, path)
            read_trace(path)  # compiles the parser, warms the page cache
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                back = read_trace(path)
                times.append(time.perf_counter() - t0)
            assert len(back) == n
            med = statistics.median(times)
            rows.append({"format": fmt, "reader": "read_trace", "lines": n, "bytes": path.stat().st_size,
                         "median_s": round(med, 4), "mlines_per_s": round(n / med / 1e6, 2),
                         "repeats": args.repeats, "seed": args.seed})
            print(rows[-1], file=sys.stderr)
            if fmt == "text" and args.reference:
                from tests.pimsim.reference_trace import read_trace_reference

                t0 = time.perf_counter()
                read_trace_reference(path)
                ref_s = time.perf_counter() - t0
                rows.append({"format": fmt, "reader": "reference", "lines": n, "bytes": path.stat().st_size,
                             "median_s": round(ref_s, 4), "mlines_per_s": round(n / ref_s / 1e6, 2),
                             "repeats": 1, "seed": args.seed})
                print(rows[-1], file=sys.stderr)
    out = write_rows(rows, args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
