"""Predicted against measured host inference latency on this CPU (issue 15, item 3).

Models: the five baselines (``nasrec.baselines``), the six published NASRec
architectures (``/work/shared/nasrec-configs``, or ``$NASREC_CONFIGS``) and random
NASRec-Full ones (``benchmarks.task_truth.bench_archs``: seeded, the same list as the
other benchmarks), on the default synthetic data set's schema. For every runtime
(eager PyTorch; a compiled graph by the backend its calibration file names), thread
count and batch size:

- measured: torch inference latency, ``torch.inference_mode``, random inputs of the
  data's shape, after warm-up, median of ``--repeats`` (>= 20) timed runs;
- measured energy, where RAPL counters can be read (``cosearch.rapl``): package and
  DRAM joules per inference over at least a second of repeated runs, idle power
  included, against pimsim's ``energy_j`` (whose ``static_w`` is the calibration's
  idle power); elsewhere the energy columns are empty and the summary says why;
- predicted: ``pimsim.query`` on the model's profile (baselines: cosearch's hook
  profiler; NASRec: its analytic profiler, as ``cosearch query`` does) with the
  calibration file of that runtime and thread count (``cosearch calibrate``; missing
  files are measured first and written to ``--calibrations``).

Writes ``host_validation.csv`` (one row per model, batch, threads and runtime),
``host_validation_summary.csv`` (per runtime: median and worst relative error, Spearman
over every point, mean Spearman of the model order per batch size and thread count) and
``host_validation.png`` (predicted against measured, log-log) under
``benchmarks/results``. Run it on an idle machine: every timing is wall time.
``--rounds R`` measures each thread count's grid R times over, one pass after the other,
and keeps each point's fastest pass: a virtual machine's speed can drift for seconds at
a time (issue 15: 1.5x on a 2-vCPU VM, GEMM rate and model latency moving together), so
passes minutes apart see different phases. A compiled model is compiled again each pass.

    python -m benchmarks.host_validation [--quick] [--runtimes eager compiled] [--threads 1 2]
        [--batches 1 64 256 1024] [--random 6] [--repeats 20] [--rounds 1] [--calibrations DIR]
        [--out PREFIX]

``--quick`` smoke-tests the whole path in a few minutes: two baselines, one published
and one random architecture, batches 1 and 64, one thread, 5 repeats, short
calibrations in a temporary folder, results under ``host_validation_quick*``.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

from benchmarks._csv import save_figure, write_rows
from benchmarks._rank import spearman

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE_NAMES = ("dlrm", "deepfm", "dcnv2", "autoint", "xdeepfm")
BATCHES = (1, 64, 256, 1024)
THREADS = (1, 2)
RUNTIMES = ("eager", "compiled")


def _models(n_random: int, seed: int, quick: bool):
    """[(name, kind, spec or None)]: baselines by name, published and random ArchSpecs."""
    from benchmarks.task_truth import bench_archs, published_configs_dir
    from nasrec.space import load_arch
    out = [(b, "baseline", None) for b in (("dlrm", "autoint") if quick else BASELINE_NAMES)]
    configs = published_configs_dir()
    if configs is None:
        print("host_validation: no nasrec-configs folder (set NASREC_CONFIGS); published architectures left out",
              file=sys.stderr)
    else:
        paths = sorted(configs.glob("*.json"))
        if not paths:
            raise ValueError(f"no architecture JSON files in {configs} (NASREC_CONFIGS)")
        if quick:
            paths = [p for p in paths if "criteo" in p.name and "xlarge" in p.name][:1] or paths[:1]
        out += [(p.stem, "published", load_arch(p)) for p in paths]
    out += [(f"random-{i}-{s.hash[:8]}", "random", s) for i, s in enumerate(bench_archs(n_random, seed))]
    return out


def _inputs(schema, batch: int, seed: int):
    import torch
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(batch, schema.n_dense, generator=g)
    ids = torch.cat([torch.randint(0, c, (batch, p), generator=g)
                     for c, p in zip(schema.cardinalities, schema.lookups)], 1)
    return dense, ids


def _build(name: str, spec, schema):
    from nasrec import NasRecModel, build_baseline
    from nasrec.util import seeded_torch
    if spec is None:
        return build_baseline(name, schema, 0).eval()
    with seeded_torch(0):
        return NasRecModel(spec, schema).eval()


def _workload(name: str, spec, model, schema, batch: int, tables, seed: int):
    from cosearch.profile import arch_workload, module_workload
    if spec is None:
        return module_workload(model, _inputs(schema, batch, seed), schema, tables=tables, name=name)
    return arch_workload(spec, schema, batch_size=batch, tables=tables, name=name)


def _time(fn, inputs, repeats: int, warmup: int) -> tuple[float, float, float]:
    """(median, 10th and 90th percentile) seconds of ``fn(*inputs)`` after ``warmup`` calls."""
    import torch
    with torch.inference_mode():
        for _ in range(warmup):
            fn(*inputs)
        gc.collect()
        was = gc.isenabled()
        gc.disable()  # a collection inside a timed run is not the model's time
        times = []
        try:
            for _ in range(repeats):
                t = time.perf_counter()
                fn(*inputs)
                times.append(time.perf_counter() - t)
        finally:
            if was:
                gc.enable()
    q = np.quantile(times, [0.1, 0.9])
    return statistics.median(times), float(q[0]), float(q[1])


def _measure(row: dict, runtime: str, backend: str, model, inputs, repeats: int, warmup: int, meter) -> None:
    """One round of ``row``'s point: compile where the runtime does, time ``repeats`` runs,
    and fold the round's median into the row. ``measured_s`` is the fastest round's
    median: this VM's speed drifts by up to 1.5x in phases of seconds (issue 15), and a
    slow phase only adds time; ``round_medians_s`` keeps every round's median."""
    import torch
    from cosearch.calibrate import compile_model
    try:
        if runtime == "eager":
            fn, compile_s = model, 0.0
        else:
            if backend == "inductor":
                import torch._dynamo
                torch._dynamo.reset()  # one model at a time; no recompile limits
            t0 = time.perf_counter()
            fn = compile_model(model, inputs, backend)
            with torch.inference_mode():
                fn(*inputs)  # compiles
            compile_s = time.perf_counter() - t0
        med, p10, p90 = _time(fn, inputs, repeats, warmup)
    except Exception as e:  # a model a compiler cannot take is a row, not the end  # noqa: BLE001
        msg = (str(e).strip().splitlines() or [""])[0][:200]
        row.update({"measured_s": float("nan"), "measured_p10_s": float("nan"), "measured_p90_s": float("nan"),
                    "compile_s": float("nan"), "error": f"{type(e).__name__}: {msg}"})
        return
    medians = [float(x) for x in row["round_medians_s"].split()] + [med]
    row["round_medians_s"] = " ".join(f"{x:.6g}" for x in medians)
    row["rounds"] = len(medians)
    if med <= row.get("measured_s", float("inf")):
        row.update({"measured_s": med, "measured_p10_s": p10, "measured_p90_s": p90})
    row.update({"compile_s": compile_s, "error": ""})
    if meter is not None:
        with torch.inference_mode():
            j, _, calls = meter.joules(lambda: fn(*inputs), 1.0)
        row["measured_j"] = (j["package"] + j["dram"]) / calls


def _calibration(runtime: str, threads: int, folder: Path, sample_s: float, backend: str, quiet: bool) -> Path:
    """The calibration file of (runtime, threads) in ``folder``, measured if missing."""
    from cosearch.calibrate import CalibrationSettings, calibrate, write_calibration
    path = folder / f"{runtime}-{threads}t.toml"
    if not path.is_file():
        if not quiet:
            print(f"host_validation: calibrating {runtime}, {threads} thread(s) -> {path}", file=sys.stderr)
        folder.mkdir(parents=True, exist_ok=True)
        write_calibration(calibrate(CalibrationSettings(threads=threads, runtime=runtime, backend=backend,
                                                        sample_s=sample_s)), path)
    return path


def summarize(rows: list[dict]) -> list[dict]:
    """Per runtime: median and worst relative error, worst ratio, Spearman over every
    point, and the mean over (batch, threads) groups of the Spearman of the model order."""
    out = []
    for runtime in sorted({r["runtime"] for r in rows}):
        rs = [r for r in rows if r["runtime"] == runtime and np.isfinite(r["measured_s"])
              and np.isfinite(r["predicted_s"])]
        if not rs:
            continue
        err = np.array([abs(r["predicted_s"] / r["measured_s"] - 1) for r in rs])
        ratio = np.array([max(r["predicted_s"] / r["measured_s"], r["measured_s"] / r["predicted_s"]) for r in rs])
        groups = {}
        for r in rs:
            groups.setdefault((r["batch"], r["threads"]), []).append(r)
        per_group = [spearman([r["predicted_s"] for r in g], [r["measured_s"] for r in g])
                     for g in groups.values() if len(g) >= 3]
        per_group = [s for s in per_group if np.isfinite(s)]
        worst = rs[int(np.argmax(ratio))]
        es = [r for r in rs if np.isfinite(r.get("measured_j", float("nan")))]
        energy = {"energy_points": len(es), "energy_median_rel_error": float("nan"),
                  "energy_worst_ratio": float("nan"), "energy_spearman_all": float("nan")}
        if es:
            e_ratio = np.array([r["predicted_j"] / r["measured_j"] for r in es])
            energy.update({"energy_median_rel_error": float(np.median(np.abs(e_ratio - 1))),
                           "energy_worst_ratio": float(np.max(np.maximum(e_ratio, 1 / e_ratio))),
                           "energy_spearman_all": spearman([r["predicted_j"] for r in es],
                                                           [r["measured_j"] for r in es])})
        out.append({"runtime": runtime, "backend": rs[0]["backend"], "points": len(rs),
                    "models": len({r["model"] for r in rs}), "median_rel_error": float(np.median(err)),
                    "worst_rel_error": float(err.max()), "worst_ratio": float(ratio.max()),
                    "worst_point": f"{worst['model']} b{worst['batch']} t{worst['threads']}",
                    "spearman_all": spearman([r["predicted_s"] for r in rs], [r["measured_s"] for r in rs]),
                    "spearman_per_batch_mean": float(np.mean(per_group)) if per_group else float("nan"),
                    "spearman_per_batch_min": float(np.min(per_group)) if per_group else float("nan"),
                    "groups": len(per_group), **energy})
    return out


def plot(rows: list[dict], out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 6))
    markers = {1: "o", 64: "s", 256: "^", 1024: "D"}
    colors = {"eager": "tab:blue", "compiled": "tab:red"}
    pts = [r for r in rows if np.isfinite(r["measured_s"]) and np.isfinite(r["predicted_s"])]
    for r in pts:
        ax.scatter(r["measured_s"] * 1e3, r["predicted_s"] * 1e3, s=22, alpha=0.75,
                   marker=markers.get(r["batch"], "x"), color=colors.get(r["runtime"], "grey"),
                   facecolors="none" if r["threads"] > 1 else None)
    if pts:
        lo = min(min(r["measured_s"], r["predicted_s"]) for r in pts) * 1e3 / 1.5
        hi = max(max(r["measured_s"], r["predicted_s"]) for r in pts) * 1e3 * 1.5
        xs = np.array([lo, hi])
        ax.plot(xs, xs, "k-", lw=0.8, label="predicted = measured")
        ax.plot(xs, 2 * xs, "k:", lw=0.8, label="2x")
        ax.plot(xs, xs / 2, "k:", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    for rt, c in colors.items():
        ax.scatter([], [], color=c, label=rt)
    for b, m in markers.items():
        ax.scatter([], [], marker=m, color="grey", label=f"batch {b}")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="grey", label="2 threads (hollow)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured torch inference latency (ms)")
    ax.set_ylabel("pimsim predicted host latency (ms)")
    ax.set_title("Host model against measured inference, this CPU")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save_figure(fig, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small smoke test (see above)")
    ap.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=None)
    ap.add_argument("--threads", nargs="+", type=int, default=None)
    ap.add_argument("--batches", nargs="+", type=int, default=None)
    ap.add_argument("--random", type=int, default=None, help="random NASRec-Full architectures (default 6)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per point (default 20)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="passes over each thread count's grid; a point keeps its fastest pass's median (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibrations", type=Path, default=None,
                    help="folder of calibration files {runtime}-{threads}t.toml (default "
                         "benchmarks/results/host_calibration; --quick: a temporary folder)")
    ap.add_argument("--backend", default="auto", choices=("auto", "inductor", "torchscript"),
                    help="compiler for calibrations made here (the file's own backend is used for timing)")
    ap.add_argument("--out", default=None, help="output prefix (default benchmarks/results/host_validation"
                                                "[_quick])")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    q = args.quick
    runtimes = args.runtimes or list(RUNTIMES)
    threads = args.threads or ([1] if q else list(THREADS))
    batches = args.batches or ([1, 64] if q else list(BATCHES))
    repeats = args.repeats or (5 if q else 20)
    rounds = args.rounds
    n_random = args.random if args.random is not None else (1 if q else 6)
    for name, values in (("--threads", threads), ("--batches", batches), ("--repeats", [repeats]), ("--rounds", [rounds]),
                         ("--random", [n_random + 1]), ("--warmup", [args.warmup + 1])):
        if any(v < 1 for v in values):
            print(f"host_validation: {name} must be positive, got {values}", file=sys.stderr)
            return 2
    out = Path(args.out) if args.out else RESULTS / ("host_validation_quick" if q else "host_validation")
    cal_dir = args.calibrations or (Path(tempfile.mkdtemp(prefix="host-calibration-")) if q
                                    else RESULTS / "host_calibration")
    sample_s = 0.05 if q else 0.25

    import torch
    import pimsim
    from benchmarks.task_truth import default_data
    from cosearch.pipeline import table_spec
    from cosearch.rapl import rapl_meter
    meter, energy_where = rapl_meter()
    if not args.quiet:
        print(f"host_validation: energy {'measured, ' if meter else 'not measured: '}{energy_where}", file=sys.stderr)
    ds = default_data(rows=20_000 if q else None, seed=args.seed)
    schema, tables = ds.schema, table_spec(ds)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    skipped = [t for t in threads if t > cpus]
    if skipped:
        print(f"host_validation: this machine has {cpus} CPUs; threads {skipped} left out", file=sys.stderr)
        threads = [t for t in threads if t <= cpus]
    try:
        models = _models(n_random, args.seed, q)
    except ValueError as e:
        print(f"host_validation: {e}", file=sys.stderr)
        return 2
    show = not args.quiet and sys.stderr.isatty()
    rows: list[dict] = []
    total = len(runtimes) * len(threads) * len(batches) * len(models) * rounds
    bar = None
    if show:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="host validation", unit="point")
    previous = torch.get_num_threads()
    try:
        for runtime in runtimes:
            for t in threads:
                cal = _calibration(runtime, t, cal_dir, sample_s, args.backend, args.quiet)
                record = tomllib.loads(cal.read_text(encoding="utf-8")).get("calibration", {})
                backend = record.get("backend", "eager" if runtime == "eager" else "inductor")
                hw = pimsim.load_hardware(str(cal))
                torch.set_num_threads(t)
                group: dict[tuple[int, str], dict] = {}
                for rnd in range(rounds):
                    for batch in batches:
                        for name, kind, spec in models:
                            row = group.get((batch, name))
                            first = row is None
                            model = _build(name, spec, schema)
                            inputs = _inputs(schema, batch, args.seed)
                            if first:
                                row = {"runtime": runtime, "backend": backend, "threads": t, "batch": batch,
                                       "model": name, "kind": kind, "arch_hash": spec.hash[:16] if spec is not None else "",
                                       "calibration": str(cal), "seed": args.seed, "repeats": repeats, "rounds": 0,
                                       "round_medians_s": ""}
                                w = _workload(name, spec, model, schema, batch, tables, args.seed)
                                t0 = time.perf_counter()
                                rep = pimsim.query(w, hw, seed=0)
                                row.update({"predicted_s": rep.latency_s, "predicted_j": rep.energy_j,
                                            "measured_j": float("nan"), "predict_wall_s": time.perf_counter() - t0,
                                            "dense_flops": w.dense_flops, "layers": len(w.dense)})
                                group[(batch, name)] = row
                                rows.append(row)
                            elif row["error"]:
                                continue  # a model a compiler could not take once is not retried
                            _measure(row, runtime, backend, model, inputs, repeats, args.warmup,
                                     meter if first else None)
                            row["rel_error"] = row["predicted_s"] / row["measured_s"] - 1
                            if bar is not None:
                                bar.update(1)
                            elif not args.quiet:
                                print(f"{runtime:8s} t{t} b{batch:<5d} {name:42s} round {rnd + 1}/{rounds} "
                                      f"measured {row['measured_s'] * 1e3:9.3f} ms  "
                                      f"predicted {row['predicted_s'] * 1e3:9.3f} ms  {row['error']}", flush=True)
                write_rows(rows, out.with_name(out.name + ".csv"))  # kept as it goes: a long run may be cut short
    finally:
        torch.set_num_threads(previous)
        if bar is not None:
            bar.close()
    summary = summarize(rows)
    write_rows(rows, out.with_name(out.name + ".csv"))
    if summary:
        write_rows(summary, out.with_name(out.name + "_summary.csv"))
    png = plot(rows, out.with_name(out.name + ".png"))
    if meter is None:
        print(f"energy not compared: {energy_where}")
    for s in summary:
        if s["energy_points"]:
            print(f"{s['runtime']} energy: {s['energy_points']} points; relative error median "
                  f"{s['energy_median_rel_error']:.1%}, worst ratio {s['energy_worst_ratio']:.2f}x; Spearman "
                  f"{s['energy_spearman_all']:.3f}")
        print(f"{s['runtime']} ({s['backend']}): {s['points']} points, {s['models']} models; relative error median "
              f"{s['median_rel_error']:.1%}, worst {s['worst_rel_error']:.1%} (ratio {s['worst_ratio']:.2f}x, "
              f"{s['worst_point']}); Spearman {s['spearman_all']:.3f} over all points, "
              f"{s['spearman_per_batch_mean']:.3f} mean per batch and thread count "
              f"(min {s['spearman_per_batch_min']:.3f})")
    print(f"wrote {out.with_name(out.name + '.csv')}, {out.with_name(out.name + '_summary.csv')}, {png}; "
          f"calibrations in {cal_dir}")
    failed = [r for r in rows if r["error"]]
    if failed:
        print(f"host_validation: {len(failed)} point(s) could not be measured (see the error column)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
