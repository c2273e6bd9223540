"""Validate pimsim's DRAM model against a cycle-level C++ simulator (DRAMsim3) on the same traces.

DRAMsim3 is not part of this project and is not fetched at run time: build it yourself
(github.com/umd-memsys/DRAMsim3) with a small driver that reads a text trace, adds at most
one request per cycle in file order once its cycle has come and the controller accepts
it, ticks until every request has returned, and prints one JSON line with ``cycles``
(last completion), ``activations``, ``reads``, ``writes`` and
``mean_read_latency_cycles``. Pass that command with ``--peer``; the config file it is
given is ``--peer-config`` (DRAMsim3's ``DDR4_8Gb_x8_2400.ini``, the source of the
``ddr4-2400`` preset).

Without ``--peer`` the script still writes the traces and pimsim's side of the table.
With ``--peer-csv FILE`` instead, the peer's columns (``peer_*``) are copied from an
earlier run's CSV, row by row by trace name, and the errors are computed against them:
the traces are regenerated from the seed, so a CSV from a run with the same
``--requests``, ``--seed`` and ``--hardware`` holds the peer's figures for exactly these
traces (anything else is refused). This is how pimsim changes are checked on a machine
without DRAMsim3; ``--out`` may name the same file.

    python -m benchmarks.validate_dram --peer /path/run_trace.sh --peer-config DDR4_8Gb_x8_2400
    python -m benchmarks.validate_dram --requests 50000 --peer-csv benchmarks/results/validate_dram.csv
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._csv import write_rows

import numpy as np

from pimsim import EmbeddingTable, EmbeddingWorkload, Trace, load_hardware, sample_batch, simulate_trace, write_trace
from pimsim.workload import batch_addresses

RESULTS = Path(__file__).resolve().parent / "results"


def make_traces(hw, n: int, seed: int) -> dict[str, Trace]:
    """The validation suite: random gathers, Zipf embedding gathers of 64-512 B vectors,
    sequential streams and read/write mixes, saturating and paced."""
    rng = np.random.default_rng(seed)
    o = hw.org
    lines = o.capacity_bytes // o.line_bytes
    zeros = np.zeros(n, np.int64)
    reads = np.zeros(n, bool)
    out = {}
    out["random_64B"] = Trace(rng.integers(0, lines, n) * 64, reads, zeros)
    out["random_64B_paced8"] = Trace(rng.integers(0, lines, n) * 64, reads, np.arange(n) * 8)
    out["sequential"] = Trace(np.arange(n) * 64, reads, zeros)
    out["sequential_paced3"] = Trace(np.arange(n) * 64, reads, np.arange(n) * 3)
    for vec_bytes in (64, 128, 256, 512):
        dim = vec_bytes // 4
        pooling = 20
        batch = max(1, n // (pooling * (vec_bytes // 64) * 8))
        wl = EmbeddingWorkload((EmbeddingTable(rows=2_000_000, dim=dim, pooling=pooling,
                                               distribution="zipf", zipf_alpha=1.05),) * 8, batch_size=batch)
        addr = batch_addresses(sample_batch(wl, rng), o).addresses[:n]
        out[f"zipf_gather_{vec_bytes}B"] = Trace(addr, np.zeros(len(addr), bool), np.zeros(len(addr), np.int64))
    wr = rng.random(n) < 0.33
    out["random_rw_1to2"] = Trace(rng.integers(0, lines, n) * 64, wr, zeros)
    out["sequential_rw_1to2"] = Trace(np.arange(n) * 64, rng.random(n) < 0.33, zeros)
    hot = rng.integers(0, lines, 64)
    mix = np.where(rng.random(n) < 0.5, hot[rng.integers(0, 64, n)], rng.integers(0, lines, n))
    out["hot_rw_paced4"] = Trace(mix * 64, rng.random(n) < 0.33, np.arange(n) * 4)
    return out


def run_peer(peer: str, config: str, trace_path: Path, extra: list[str]) -> tuple[dict | None, float]:
    """The peer's JSON line, or None when it did not finish the trace."""
    t0 = time.perf_counter()
    proc = subprocess.run([peer, config, str(trace_path), *extra], capture_output=True, text=True,
                          check=False, timeout=600)
    wall = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"peer printed nothing on {trace_path}: {proc.stderr.strip()[:500]}")
    result = json.loads(lines[-1])
    if result.get("finished") is False:
        return None, wall
    return result, wall


PEER_COLUMNS = ("peer_finished", "peer_cycles", "peer_activations", "peer_mean_read_latency", "peer_wall_s")


def read_peer_csv(path: str, seed: int, hardware: str, scheduler: str) -> dict[str, dict]:
    """Trace name -> the stored ``peer_*`` figures of an earlier run with the same settings."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ValueError(f"cannot read --peer-csv {path!r}: {exc.strerror}") from None
    if not rows or "peer_cycles" not in rows[0]:
        raise ValueError(f"--peer-csv {path!r} holds no peer_cycles column")
    want = {"seed": str(seed), "hardware": hardware, "scheduler": scheduler}
    out = {}
    for row in rows:
        for key, value in want.items():
            if row.get(key) != value:
                raise ValueError(f"--peer-csv {path!r}: trace {row.get('trace')!r} was run with {key} "
                                 f"{row.get(key)!r}, this run has {value!r}")
        out[row["trace"]] = {k: row.get(k, "") for k in PEER_COLUMNS} | {"requests": row.get("requests")}
    return out


def _peer_from_csv(stored: dict | None, name: str, n: int) -> tuple[dict | None, float]:
    """A stored peer row shaped like run_peer's result: (result or None, wall seconds)."""
    if stored is None:
        raise ValueError(f"--peer-csv holds no row for trace {name!r}")
    if stored["requests"] != str(n):
        raise ValueError(f"--peer-csv: trace {name!r} was run with {stored['requests']} requests, "
                         f"this run has {n} (pass the same --requests)")
    wall = float(stored["peer_wall_s"]) if stored["peer_wall_s"] else float("nan")
    if stored["peer_finished"] != "True":
        return None, wall
    return {"cycles": int(stored["peer_cycles"]), "activations": int(stored["peer_activations"]),
            "mean_read_latency_cycles": float(stored["peer_mean_read_latency"])}, wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="ddr4-2400")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peer", help="command: PEER CONFIG TRACE prints one JSON line")
    ap.add_argument("--peer-csv", help="reuse the peer_* columns of an earlier run's CSV (same requests, "
                                       "seed, hardware, scheduler) instead of running the peer")
    ap.add_argument("--peer-config", default="DDR4_8Gb_x8_2400")
    ap.add_argument("--peer-write-args", nargs="*", default=["--flush-writes"],
                    help="extra peer arguments for traces with writes (flush the write buffer at the end)")
    ap.add_argument("--scheduler", choices=["frfcfs", "fcfs"], default=None)
    ap.add_argument("--out", default=str(RESULTS / "validate_dram.csv"))
    args = ap.parse_args(argv)
    if args.peer and args.peer_csv:
        print("error: give --peer or --peer-csv, not both", file=sys.stderr)
        return 2
    try:
        hw = load_hardware(args.hardware)
        if args.scheduler:
            hw = dataclasses.replace(hw, controller=dataclasses.replace(hw.controller, scheduler=args.scheduler))
        stored = (read_peer_csv(args.peer_csv, args.seed, hw.name, hw.controller.scheduler.value)
                  if args.peer_csv else None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    traces = make_traces(hw, args.requests, args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, tr in traces.items():
            path = Path(tmp) / f"{name}.trace"
            write_trace(tr, path)
            t0 = time.perf_counter()
            ours = simulate_trace(tr, hw)
            ours_wall = time.perf_counter() - t0
            row = {"trace": name, "requests": len(tr), "seed": args.seed, "hardware": hw.name,
                   "scheduler": hw.controller.scheduler.value,
                   "pimsim_cycles": ours.cycles, "pimsim_activations": ours.activations,
                   "pimsim_mean_read_latency": round(ours.mean_read_latency_cycles, 2),
                   "pimsim_wall_s": round(ours_wall, 4)}
            peer = None
            has_writes = bool(tr.is_write.any())
            if args.peer:
                peer, peer_wall = run_peer(args.peer, args.peer_config, path,
                                           args.peer_write_args if has_writes else [])
                row["peer_finished"] = peer is not None
            elif stored is not None:
                try:
                    peer, peer_wall = _peer_from_csv(stored.get(name), name, len(tr))
                except ValueError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                row["peer_finished"] = peer is not None
            if peer is not None:
                # with writes, the end is when the last write's data reached DRAM
                cycles = max(peer["cycles"], peer.get("drain_cycles", 0)) if has_writes else peer["cycles"]
                peer_lat = peer["mean_read_latency_cycles"]
                row.update({"peer_cycles": cycles, "peer_activations": peer["activations"],
                            "peer_mean_read_latency": round(peer_lat, 2),
                            "peer_wall_s": round(peer_wall, 3),
                            "cycles_err_pct": round(100 * (ours.cycles - cycles) / cycles, 2),
                            "acts_err_pct": round(100 * (ours.activations - peer["activations"])
                                                  / max(1, peer["activations"]), 2),
                            "read_latency_err_pct": round(100 * (ours.mean_read_latency_cycles - peer_lat)
                                                          / peer_lat, 2)})
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    out = write_rows(rows, args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
