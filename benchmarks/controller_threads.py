"""Independent controllers on threads: wall time of one call at 1 thread and at N.

Cases: ``simulate_trace`` of random 64 B reads on a multi-channel preset (each channel
is a controller), and ``simulate`` / ``query`` of a large embedding batch (host
channels; near-memory ranks). Each case runs at ``threads=1`` and at ``--threads N``
(default: this machine's usable cores), alternating run by run after a warm-up; the
results must be identical. Reports medians and the ratio, with the core count.

    python -m benchmarks.controller_threads [--repeats 5] [--threads N] [--sizes 2000000 10000000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._csv import write_rows

RESULTS = Path(__file__).resolve().parent / "results"


def _cases(sizes: list[int], seed: int):
    """(name, preset, requests or lookups, run(threads) -> comparable result)."""
    from pimsim import EmbeddingTable, EmbeddingWorkload, Trace, load_hardware, query, simulate, simulate_trace

    for preset in ("cpu-server", "gpu-a100"):
        hw = load_hardware(preset)
        for n in sizes:
            rng = np.random.default_rng(seed)
            tr = Trace(rng.integers(0, hw.org.capacity_bytes // 64, n) * 64, np.zeros(n, bool), np.zeros(n, np.int64))

            def run(threads, tr=tr, hw=hw):
                r = simulate_trace(tr, hw, threads=threads)
                return r.to_dict(), r.completion_cycles

            yield f"trace_random_64B_{n}", preset, n, run
    # 8 tables x 80 lookups x 2048 samples of 128 B vectors: 2.6M bursts (an MLPerf-like batch)
    wl = EmbeddingWorkload((EmbeddingTable(rows=4_000_000, dim=32, pooling=80, distribution="zipf"),) * 8,
                           batch_size=2048)
    lookups = 8 * 80 * 2048
    for preset in ("cpu-server", "recnmp"):
        yield "embedding_zipf_8x80x2048", preset, lookups, lambda t, p=preset: simulate(wl, p, seed=seed,
                                                                                          threads=t).to_dict()
    yield "query_rm2", "recnmp", None, lambda t: query("rm2", "recnmp", seed=seed, threads=t).to_dict()


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def main(argv: list[str] | None = None) -> int:
    from pimsim.sim import _usable_cores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=_usable_cores())
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000_000, 10_000_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "controller_threads.csv"))
    args = ap.parse_args(argv)
    if args.threads < 2 or args.repeats < 1 or any(n < 1 for n in args.sizes):
        print(f"error: need --threads >= 2 (got {args.threads}), --repeats >= 1 (got {args.repeats}) "
              f"and positive --sizes (got {args.sizes})", file=sys.stderr)
        return 2
    rows = []
    for name, preset, size, run in _cases(args.sizes, args.seed):
        ref = run(1)  # warm-up: compile, page in
        if not _same(ref, run(args.threads)):
            print(f"error: {name} on {preset}: threads={args.threads} differs from threads=1", file=sys.stderr)
            return 1
        times = {1: [], args.threads: []}
        for _ in range(args.repeats):
            for t in times:
                t0 = time.perf_counter()
                run(t)
                times[t].append(time.perf_counter() - t0)
        one, many = statistics.median(times[1]), statistics.median(times[args.threads])
        row = {"case": name, "hardware": preset, "requests_or_lookups": size, "threads": args.threads,
               "median_s_1_thread": round(one, 4), "median_s_threads": round(many, 4),
               "speedup": round(one / many, 3), "min_s_1_thread": round(min(times[1]), 4),
               "min_s_threads": round(min(times[args.threads]), 4), "repeats": args.repeats,
               "seed": args.seed, "cores": _usable_cores()}
        rows.append(row)
        print(row, file=sys.stderr)
    print(f"wrote {write_rows(rows, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
