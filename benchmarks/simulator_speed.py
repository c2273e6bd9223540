"""Simulated requests per second of pimsim's DRAM engine on one core.

For 1M- and 10M-request traces (random 64 B gathers, a sequential stream, Zipf
embedding gathers), under FR-FCFS and FCFS, reports the median of several runs of
(a) ``simulate_trace`` end to end and (b) the numba kernel alone. JIT compile time
is measured apart, in a fresh process with an empty numba cache.

    python -m benchmarks.simulator_speed [--sizes 1000000 10000000] [--repeats 3]
        [--against REV]

``--against REV`` also times the kernel of git revision REV (its ``pimsim/_engine.py``)
on the same inputs, alternating with this checkout's run by run, checks that both give
the same cycles, and records the ratio: a side-by-side measurement of a kernel change.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._csv import write_rows

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parent.parent

_COMPILE_SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
from pimsim import Trace, simulate_trace, load_hardware
t1 = time.perf_counter()
import dataclasses
hw = load_hardware("ddr4-2400")
for s in ("frfcfs", "fcfs"):
    h = dataclasses.replace(hw, controller=dataclasses.replace(hw.controller, scheduler=s))
    simulate_trace(Trace(np.arange(10) * 64, np.zeros(10, bool), np.zeros(10, np.int64)), h)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def compile_seconds() -> tuple[float, float]:
    """(import seconds, first-call seconds) in a fresh process with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET], capture_output=True, text=True,
                             env=env, check=True).stdout.split()
    return float(out[0]), float(out[1])


def engine_at(rev: str, folder: str):
    """The kernel module ``pimsim/_engine.py`` of git revision ``rev``, imported from a
    copy in ``folder`` (numba caches its compiled code there)."""
    src = subprocess.run(["git", "show", f"{rev}:pimsim/_engine.py"], cwd=ROOT, capture_output=True, text=True)
    if src.returncode != 0:
        raise ValueError(f"--against {rev!r}: {src.stderr.strip().splitlines()[-1] if src.stderr.strip() else 'git show failed'}")
    path = Path(folder) / "_engine_against.py"
    path.write_text(src.stdout, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("_engine_against", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from pimsim import _engine as E
    for name in ("N_PARAMS", "N_COUNTS"):
        if getattr(module, name, None) != getattr(E, name):
            raise ValueError(f"--against {rev!r}: its kernel's {name} differs from this checkout's; "
                             f"the two cannot run on the same parameters")
    return module


def _time_kernel(engine, bank, row, is_write, arrival, prev, p) -> tuple[float, list[np.ndarray]]:
    """(seconds, [accept cycles, completion cycles, kinds, counts]) of one kernel run."""
    m = len(bank)
    outs = [np.zeros(m, np.int64) for _ in range(3)]
    counts = np.zeros(engine.N_COUNTS, np.int64)
    recs = [np.zeros(m + m // 4 + 1024, np.int64) for _ in range(3)]
    t0 = time.perf_counter()
    engine._simulate(bank, row, is_write, arrival, prev, p, *outs, counts, *recs)
    return time.perf_counter() - t0, outs + [counts]


def traces(hw, n: int, rng: np.random.Generator):
    from pimsim import EmbeddingTable, EmbeddingWorkload, Trace, sample_batch
    from pimsim.workload import batch_addresses

    lines = hw.org.capacity_bytes // 64
    z = np.zeros(n, np.int64)
    r = np.zeros(n, bool)
    yield "random_64B", Trace(rng.integers(0, lines, n) * 64, r, z)
    yield "sequential", Trace(np.arange(n, dtype=np.int64) * 64, r, z)
    wl = EmbeddingWorkload((EmbeddingTable(rows=4_000_000, dim=32, pooling=80, distribution="zipf"),) * 8,
                           batch_size=max(1, n // (8 * 80 * 2)))
    addr = batch_addresses(sample_batch(wl, rng), hw.org).addresses[:n]
    yield "zipf_gather_128B", Trace(addr, np.zeros(len(addr), bool), np.zeros(len(addr), np.int64))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--schedulers", nargs="+", default=["fcfs", "frfcfs"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--against", metavar="REV", help="also time the kernel of this git revision, alternating")
    ap.add_argument("--out", default=str(RESULTS / "simulator_speed.csv"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        try:
            other = engine_at(args.against, folder) if args.against else None
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return _run(args, other)


def _run(args, other) -> int:
    from pimsim import _engine as E
    from pimsim import Trace, load_hardware, simulate_trace
    from pimsim.mapping import controller_fields
    from pimsim.sim import engine_params, prev_same_line

    imp_s, first_call_s = compile_seconds()
    print(f"import {imp_s:.2f} s, JIT compile (first calls, both schedulers) {first_call_s:.2f} s", file=sys.stderr)
    base = load_hardware("ddr4-2400")
    rows = []
    for n in args.sizes:
        rng = np.random.default_rng(args.seed)
        for name, tr in traces(base, n, rng):
            _, bank, dram_row, line = controller_fields(tr.addresses, base.org)
            prev = prev_same_line(line)
            for sched in args.schedulers:
                hw = dataclasses.replace(base, controller=dataclasses.replace(base.controller, scheduler=sched))
                simulate_trace(Trace(tr.addresses[:10], tr.is_write[:10], tr.arrival_cycles[:10]), hw)  # warm
                p = engine_params(hw, ranks=base.org.ranks, banks_per_bus=base.org.ranks * base.org.banks)
                args_k = (bank, dram_row, tr.is_write, tr.arrival_cycles, prev, p)
                if other is not None:
                    _time_kernel(other, *(a[:10] for a in args_k[:5]), p)  # compile apart
                ends, kern, kern_other = [], [], []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    rep = simulate_trace(tr, hw)
                    ends.append(time.perf_counter() - t0)
                    secs, done = _time_kernel(E, *args_k)
                    kern.append(secs)
                    if other is not None:
                        secs, done_other = _time_kernel(other, *args_k)
                        kern_other.append(secs)
                        if not all(np.array_equal(x, y) for x, y in zip(done, done_other)):
                            print(f"error: {args.against} and this checkout disagree on {name} ({sched})", file=sys.stderr)
                            return 1
                row = {"trace": name, "requests": len(tr), "scheduler": sched, "seed": args.seed,
                       "end_to_end_median_s": round(statistics.median(ends), 4),
                       "kernel_median_s": round(statistics.median(kern), 4),
                       "end_to_end_mreq_per_s": round(len(tr) / statistics.median(ends) / 1e6, 3),
                       "kernel_mreq_per_s": round(len(tr) / statistics.median(kern) / 1e6, 3),
                       "simulated_cycles": rep.cycles, "repeats": args.repeats,
                       "jit_compile_s": round(first_call_s, 2), "cores": 1}
                if other is not None:
                    row["against"] = args.against
                    row["against_kernel_median_s"] = round(statistics.median(kern_other), 4)
                    row["kernel_speedup"] = round(statistics.median(kern_other) / statistics.median(kern), 3)
                rows.append(row)
                print(row, file=sys.stderr)
    out = write_rows(rows, args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
