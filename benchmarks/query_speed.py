"""Wall time of one whole-inference ``pimsim.query`` for a NASRec-sized model, on one core.

The workload: 26 one-hot tables (Criteo-like sizes, dim 16), batch 256, seven
NASRec-like blocks (a fully connected layer and its activation, a dot-product
interaction with its projection, an element-wise merge), about 25 dense steps.
The process is pinned to one core; JIT compilation happens in a warm-up query
before timing. Target (issue 3): at most 20 ms per query after warm-up.

    python -m benchmarks.query_speed [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from benchmarks._csv import replace_rows

RESULTS = Path(__file__).resolve().parent / "results"
PRESETS = ("cpu-server", "gpu-a100", "recnmp", "hbm-pim", "isaac", "recnmp-isaac", "upmem")
# Criteo Kaggle-like long-tailed cardinalities, capped at 1M rows (assumption: shape only)
CARDINALITIES = (1460, 583, 1_000_000, 1_000_000, 305, 24, 12517, 633, 3, 93145, 5683, 1_000_000, 3194, 27,
                 14992, 1_000_000, 10, 5652, 2173, 4, 1_000_000, 18, 15, 286181, 105, 142572)


def nasrec_like(batch: int = 256):
    from pimsim import Elementwise, Gemm, Workload
    from pimsim.workload import EmbeddingTable

    dim, width = 16, 512
    tables = tuple(EmbeddingTable(rows=c, dim=dim, distribution="zipf") for c in CARDINALITIES)
    dense = [Gemm(m=batch, n=width, k=13, name="dense_in", part="fc")]
    k = width
    for b in range(7):
        dense.append(Gemm(m=batch, n=width, k=k, name=f"b{b}.fc", part="fc"))
        dense.append(Elementwise(elements=batch * width, name=f"b{b}.relu", part="fc"))
        dense.append(Gemm(m=27, n=27, k=dim, weights=False, count=batch, name=f"b{b}.dot", part="dot"))
        dense.append(Gemm(m=batch, n=dim * 8, k=27 * 27, name=f"b{b}.proj", part="dot"))
        k = width
    dense.append(Gemm(m=batch, n=1, k=width, name="head", part="head"))
    return Workload(batch_size=batch, tables=tables, dense=tuple(dense), name="nasrec-like")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--label", default="current", help="names the code measured (column 'code'); rows of other "
                                                      "labels in the results file are kept, for side-by-side runs")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be positive, got {args.repeats}")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from pimsim import builtin_workloads, load_hardware, query

    workloads = {"nasrec-like": nasrec_like(), "dlrm": builtin_workloads(256)["dlrm"]}
    rows = []
    for wname, w in workloads.items():
        for preset in PRESETS:
            hw = load_hardware(preset)
            query(w, hw, seed=0)  # JIT and caches
            times = []
            for s in range(args.repeats):
                t0 = time.perf_counter()
                query(w, hw, seed=s + 1)
                times.append(time.perf_counter() - t0)
            rows.append({"workload": wname, "preset": preset, "tables": len(w.tables), "dense_steps": len(w.dense),
                         "batch": w.batch_size, "repeats": args.repeats, "median_ms": statistics.median(times) * 1e3,
                         "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))] * 1e3, "cores": 1,
                         "code": args.label})
            r = rows[-1]
            print(f"{wname:12s} {preset:13s} median {r['median_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f} ms")
    path = args.results / "query_speed.csv"
    replace_rows(rows, path, "code")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
