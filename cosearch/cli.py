"""The ``cosearch`` command; the only cosearch module that talks to the terminal.

    cosearch run [--config FILE] [--budget N] [--quick] [--quiet] [--out DIR] [--seed N]
    cosearch resume DIR
    cosearch plot DIR
    cosearch query ARCH.json|MODEL.pt|BASELINE --hardware NAME|PATH [--json]
    cosearch retrain DIR --top K
    cosearch calibrate --out FILE.toml [--threads N] [--runtime eager|compiled] [--base PRESET]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit status 2 (see main)
        raise _UsageError(message)


def _default_cache() -> Path:
    env = os.environ.get("COSEARCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cosearch"


def _parser() -> _Parser:
    ap = _Parser(prog="cosearch", description="Co-search of NASRec recommender models and "
                 "processing-in-memory hardware: Pareto fronts of log loss, latency and energy.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="the whole pipeline: data, supernet, co-search, report")
    p.add_argument("--config", type=Path, help="TOML file overriding the defaults")
    p.add_argument("--budget", type=int, help="evaluations (overrides the config)")
    p.add_argument("--quick", action="store_true", help="small preset: a minute or two")
    p.add_argument("--out", type=Path, default=Path("cosearch-run"), help="results directory")
    p.add_argument("--seed", type=int, help="random seed (overrides the config)")
    p.add_argument("--cache", type=Path, default=None,
                   help="data/supernet cache (default $COSEARCH_CACHE or ~/.cache/cosearch)")
    p.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("resume", help="continue an interrupted run")
    p.add_argument("dir", type=Path)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("plot", help="redraw the plots of a run")
    p.add_argument("dir", type=Path)

    p = sub.add_parser("query", help="latency and energy of one model on one hardware")
    p.add_argument("arch", help="architecture JSON file, model file (.pt, from `nasrec train --save-model` or "
                   "`nasrec prune`), or a baseline name (dlrm, deepfm, dcnv2, autoint, xdeepfm)")
    p.add_argument("--hardware", required=True, help="pimsim preset name or hardware TOML file")
    p.add_argument("--data", type=Path, help="prepared data folder for the table sizes "
                   "(default: the default synthetic data set)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    p.add_argument("--table-rows-scale", type=int, default=1, metavar="N",
                   help="cost the tables with N times the data's rows (a larger deployment)")
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--json", action="store_true", help="print the full report as JSON")

    p = sub.add_parser("calibrate", help="measure this machine's CPU and write a hardware file whose [host] "
                       "predicts its torch inference latency")
    p.add_argument("--out", type=Path, required=True, help="hardware file to write (.toml, written atomically)")
    p.add_argument("--threads", type=_int_arg, default=None,
                   help="torch threads to measure with (default: the CPUs this process may use)")
    p.add_argument("--runtime", default="eager", choices=("eager", "compiled"),
                   help="eager PyTorch, or a compiled graph (torch.compile, else TorchScript)")
    p.add_argument("--base", default=None, help="preset or hardware file whose [host] is replaced "
                   "(default cpu-server: DRAM, mapping and energy figures come from it)")
    p.add_argument("--backend", default="auto", choices=("auto", "inductor", "torchscript"),
                   help="compiler for --runtime compiled (default auto: inductor where it works)")
    p.add_argument("--sample-seconds", type=float, default=0.25, metavar="S",
                   help="seconds per measurement; each number is a median of repeats within it (default 0.25)")
    p.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("retrain", help="retrain the best front members from scratch and test them")
    p.add_argument("dir", type=Path)
    p.add_argument("--top", type=int, required=True)
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default: the run's [verify] recipe)")
    p.add_argument("--quiet", action="store_true")
    return ap


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _interactive(quiet: bool) -> bool:
    return not quiet and sys.stdout.isatty() and sys.stderr.isatty()


class _Progress:
    """A tqdm line over evaluations: generation, evaluations, hypervolume, front size."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def stage(self, name: str) -> None:
        if self.enabled:
            print(f"cosearch: {name}", file=sys.stderr, flush=True)

    def generation(self, info) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=info.budget, desc="co-search", unit="eval", leave=True)
        self.bar.update(info.evaluations - self.bar.n)
        self.bar.set_postfix_str(f"gen {info.generation}, hv {info.hypervolume:.4f}, front {info.front_size}, "
                                 f"feasible {info.feasible}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run(args) -> int:
    from cosearch.config import DEFAULT, QUICK, load_config
    from cosearch.pipeline import run_pipeline
    cfg = QUICK if args.quick else DEFAULT
    if args.config is not None:
        cfg = load_config(args.config, cfg)
    if args.budget is not None:
        if args.budget < 1:
            raise ValueError(f"--budget must be >= 1, got {args.budget}")
        cfg = replace(cfg, search=replace(cfg.search, budget=args.budget,
                                          population=min(cfg.search.population, args.budget),
                                          sample_size=min(cfg.search.sample_size, cfg.search.population, args.budget)))
    if args.seed is not None:
        cfg = replace(cfg, seed=args.seed)
    return _execute(lambda **kw: run_pipeline(cfg, args.out, args.cache or _default_cache(), **kw),
                    args.out, args.quiet)


def _execute(fn, out: Path, quiet: bool) -> int:
    prog = _Progress(_interactive(quiet))
    try:
        result = fn(quiet=not prog.enabled, on_stage=prog.stage, on_generation=prog.generation)
    finally:
        prog.close()
    hv = result.hv_history[-1][1] if result.hv_history else 0.0
    print(f"cosearch: {len(result.keys)} evaluations, front of {int(result.front.sum())}, "
          f"hypervolume {hv:.4f}; results in {out}/ (summary.md, results.csv, front.csv, plots)")
    return 0


def _resume(args) -> int:
    from cosearch.pipeline import resume_pipeline
    return _execute(lambda **kw: resume_pipeline(args.dir, **kw), args.dir, args.quiet)


def _plot(args) -> int:
    from cosearch.plots import plot_run
    paths = plot_run(args.dir)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _query(args) -> int:
    import pimsim
    from cosearch.config import DEFAULT
    from cosearch.pipeline import ensure_dataset, table_spec
    from cosearch.profile import Precision, TableSpec, arch_workload, module_workload
    from nasrec.baselines import BASELINES, build_baseline
    from nasrec.data import Dataset
    from nasrec.space import load_arch
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    hardware = pimsim.load_hardware(args.hardware)  # a bad or missing file fails before any profiling
    path = Path(args.arch)
    if path.suffix == ".pt":  # a model file of `nasrec train --save-model` / `nasrec prune`
        from nasrec.modelio import load_model
        model, state = load_model(path)
        schema = state["schema"]
        tables = replace(table_spec(Dataset(args.data), args.table_rows_scale) if args.data
                         else TableSpec(rows_scale=args.table_rows_scale), precision=Precision(args.precision))
        w = module_workload(model, _random_inputs(schema, args.batch_size), schema, tables=tables, name=path.stem)
    else:
        ds = Dataset(args.data) if args.data else ensure_dataset(DEFAULT, args.cache or _default_cache())
        tables = replace(table_spec(ds, args.table_rows_scale), precision=Precision(args.precision))
        if args.arch in BASELINES:
            w = module_workload(build_baseline(args.arch, ds.schema, 0), _random_inputs(ds.schema, args.batch_size),
                                ds.schema, tables=tables, name=args.arch)
        elif path.is_file():
            w = arch_workload(load_arch(path), ds.schema, batch_size=args.batch_size, tables=tables, name=path.stem)
        else:
            raise ValueError(f"{args.arch}: neither an architecture/model file nor a baseline "
                             f"({', '.join(sorted(BASELINES))})")
    rep = pimsim.query(w, hardware, seed=0)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=1, default=str))
        return 0
    print(f"{w.name} on {args.hardware} (batch {w.batch_size}, {args.precision} embeddings): "
          f"latency {rep.latency_s * 1e3:.4f} ms, {rep.throughput_samples_per_s:.0f} samples/s, "
          f"energy {rep.energy_per_sample_j * 1e6:.4f} uJ/sample, bound by {rep.bound_by}")
    print(f"  dense FLOPs per batch: {w.dense_flops:.4g}; area {rep.area_mm2:.3g} mm^2; peak power {rep.peak_power_w:.3g} W")
    total = sum(rep.energy_breakdown_pj.values()) or 1.0
    print("  energy by action:  " + ", ".join(f"{k} {v / total:.1%}" for k, v in
                                              sorted(rep.energy_breakdown_pj.items(), key=lambda kv: -kv[1]) if v))
    total = sum(rep.energy_by_part_pj.values()) or 1.0
    print("  energy by part:    " + ", ".join(f"{k} {v / total:.1%}" for k, v in
                                              sorted(rep.energy_by_part_pj.items(), key=lambda kv: -kv[1]) if v))
    print("  time by stage:     " + ", ".join(f"{k} {v * 1e3:.4f} ms" for k, v in rep.stages.items() if v))
    return 0


def _random_inputs(schema, batch: int):
    """A batch of random (dense, ids) for profiling; shapes are what matter."""
    import torch
    g = torch.Generator().manual_seed(0)
    dense = torch.rand(batch, schema.n_dense, generator=g)
    ids = torch.cat([torch.randint(0, c, (batch, p), generator=g) for c, p in zip(schema.cardinalities, schema.lookups)],
                    1)
    return dense, ids


def _retrain(args) -> int:
    from cosearch.pipeline import retrain
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    rows = retrain(args.dir, args.top, steps=args.steps, quiet=not _interactive(args.quiet))
    for r in rows:
        print(f"{r['arch_hash']} on {r['hardware']}: search log loss {r['search_logloss']:.5f}, "
              f"test log loss {r['test_logloss']:.5f} (AUC {r['test_auc']:.4f}), latency {r['latency_s'] * 1e3:.4f} ms")
    print(f"wrote {args.dir / 'retrain.csv'}")
    return 0


def _calibrate(args) -> int:
    from cosearch.calibrate import DEFAULT_BASE, CalibrationSettings, available_cpus, calibrate, write_calibration
    out = args.out
    if out.suffix != ".toml":
        raise ValueError(f"--out {out}: a hardware file must end in .toml")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: folder {out.parent} does not exist")
    threads = available_cpus() if args.threads is None else args.threads
    settings = CalibrationSettings(threads=threads, runtime=args.runtime, base=args.base or DEFAULT_BASE,
                                   backend=args.backend, sample_s=args.sample_seconds)
    import pimsim
    if pimsim.load_hardware(settings.base).host is None:  # before a minute of measuring
        raise ValueError(f"--base {settings.base}: has no [host] section to replace")
    show = _interactive(args.quiet)
    stage = (lambda s: print(f"cosearch calibrate: {s}", file=sys.stderr, flush=True)) if show else None
    cal = calibrate(settings, on_stage=stage)
    write_calibration(cal, out)
    h = cal.host
    plural = "s" if settings.threads > 1 else ""
    print(f"wrote {out} ({cal.backend}, {settings.threads} thread{plural}, {cal.seconds:.1f} s): "
          f"fp32 {h['peak_fp32_gflops']:.1f} GFLOP/s, memory {h['mem_gbps']:.1f} GB/s, "
          f"cache {h['cache_bytes'] >> 20} MiB at {h['act_cache_gbps']:.1f} GB/s, "
          f"{h['kernel_overhead_ns'] / 1e3:.2f} us per kernel; "
          + (f"energy {h['pj_per_flop_fp32']:.1f} pJ per fp32 FLOP, idle {h['static_w']:.1f} W (RAPL)"
             if cal.raw.get("energy_measured") else f"energy not measured ({cal.raw.get('energy_counters')})"))
    return 0


_COMMANDS = {"run": _run, "resume": _resume, "plot": _plot, "query": _query, "retrain": _retrain,
             "calibrate": _calibrate}


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except _UsageError as e:
        print(f"cosearch: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"cosearch: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
