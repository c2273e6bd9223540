"""The ``pimsim`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tomllib
from pathlib import Path

from ._pages import small_pages
from .config import Hardware, Scheduler
from .presets import list_presets, load_hardware
from .workload import (EmbeddingTable, EmbeddingWorkload, IndexDistribution, Placement,
                       batch_from_indices)

DEFAULT_NMP = "recnmp"
# DeepRecSys RM1-like tables (REFERENCE.md: 8 tables x 4M rows, dim 32, 80 lookups per table)
DEFAULT_TABLES, DEFAULT_ROWS, DEFAULT_DIM, DEFAULT_POOLING = 8, 4_000_000, 32, 80
DEFAULT_BATCH = 64


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pimsim", description="Latency and energy of recommender inference on "
                "DRAM and processing-in-memory hardware.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    sub.add_parser("presets", help="list the hardware presets")

    t = sub.add_parser("trace", help="simulate a trace: text '<hex address> <READ|WRITE> <cycle>' lines, "
                       "or binary .npz (arrays address, op, cycle)")
    t.add_argument("file", help="trace file; *.npz is read as binary, any other name as text")
    t.add_argument("--hardware", default="ddr4-2400", help="preset name or TOML file (default ddr4-2400)")
    t.add_argument("--scheduler", choices=[s.value for s in Scheduler], help="override the preset's scheduler")
    t.add_argument("--json", action="store_true", help="print one JSON object")

    c = sub.add_parser("convert", help="convert a trace between text and binary .npz (formats by extension)")
    c.add_argument("source", help="trace to read (*.npz: binary, else text)")
    c.add_argument("target", help="trace to write (*.npz: binary, else text); written atomically")

    e = sub.add_parser("embed", help="one batch of pooled embedding lookups: host against near-memory units")
    e.add_argument("--workload", help="TOML workload file (overrides the table flags)")
    e.add_argument("--indices", help=".npz of per-table indices/offsets (FBGEMM convention); "
                   "table shapes come from the other flags or --workload")
    e.add_argument("--tables", type=_positive_int, default=DEFAULT_TABLES)
    e.add_argument("--rows", type=_positive_int, default=DEFAULT_ROWS, help="rows per table")
    e.add_argument("--dim", type=_positive_int, default=DEFAULT_DIM, help="elements per vector")
    e.add_argument("--bytes-per-element", type=_positive_int, default=4)
    e.add_argument("--pooling", type=_positive_int, default=DEFAULT_POOLING, help="lookups per sample per table")
    e.add_argument("--batch", type=_positive_int, default=DEFAULT_BATCH, help="samples per batch")
    e.add_argument("--distribution", choices=[d.value for d in IndexDistribution], default="uniform")
    e.add_argument("--alpha", type=_positive_float, default=1.05, help="Zipf exponent")
    e.add_argument("--placement", choices=[x.value for x in Placement], default="contiguous")
    e.add_argument("--nmp", default=DEFAULT_NMP, help=f"near-memory preset or TOML file (default {DEFAULT_NMP})")
    e.add_argument("--host", help="host-side hardware (default: the --nmp memory with its units removed)")
    e.add_argument("--seed", type=int, default=0, help="seed of the index generator (default 0)")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    q = sub.add_parser("query", help="latency and energy of one whole inference batch (embeddings + dense layers)")
    q.add_argument("--workload", default="dlrm", help="built-in (rm1, rm2, rm3, dlrm) or a TOML/JSON "
                   "workload file (default dlrm)")
    q.add_argument("--hardware", default="cpu-server", help="preset name or TOML file (default cpu-server)")
    q.add_argument("--batch", type=_positive_int, help="batch size of a built-in workload (default 256)")
    q.add_argument("--seed", type=int, default=0, help="seed of the embedding index generator (default 0)")
    q.add_argument("--layers", action="store_true", help="also print every step of the batch")
    q.add_argument("--json", action="store_true", help="print one JSON object")

    for command in (t, e, q):
        command.add_argument("--threads", type=_positive_int,
                             help="independent controllers (channels, near-memory ranks) run at once "
                                  "(default: $PIMSIM_THREADS, else one per usable core for large "
                                  "inputs, else 1); results do not depend on it")

    s = sub.add_parser("sweep", help="sweep one or two hardware knobs; write a CSV and a PNG plot")
    s.add_argument("--workload", default="dlrm", help="built-in or workload file (default dlrm)")
    s.add_argument("--hardware", default="recnmp", help="base preset or TOML file (default recnmp)")
    s.add_argument("--knob", required=True, type=_knob, metavar="SECTION.KEY=V1,V2,...",
                   help="first knob and its values, e.g. org.ranks=1,2,4,8")
    s.add_argument("--knob2", type=_knob, metavar="SECTION.KEY=V1,V2,...", help="optional second knob")
    s.add_argument("--batch", type=_positive_int, help="batch size of a built-in workload (default 256)")
    s.add_argument("--seed", type=int, default=0, help="seed of the embedding index generator (default 0)")
    s.add_argument("--out", default="sweep", help="output prefix: writes PREFIX.csv and PREFIX.png (default sweep)")
    return p


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _knob(text: str) -> tuple[str, list]:
    key, sep, values = text.partition("=")
    if not sep or "." not in key or not values:
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=V1,V2,..., got {text!r}")
    parsed = [_value(v.strip()) for v in values.split(",") if v.strip()]
    if not parsed:
        raise argparse.ArgumentTypeError(f"no values in {text!r}")
    return key.strip(), parsed


def _with_scheduler(hw: Hardware, scheduler: str | None) -> Hardware:
    if scheduler is None:
        return hw
    return dataclasses.replace(hw, controller=dataclasses.replace(hw.controller, scheduler=scheduler))


def _cmd_presets(out) -> int:
    presets = list_presets()
    width = max(len(k) for k in presets)
    for name, desc in presets.items():
        print(f"{name:<{width}}  {desc}", file=out)
    return 0


def _cmd_trace(args, out) -> int:
    from .sim import simulate_trace
    from .trace import read_trace

    hw = _with_scheduler(load_hardware(args.hardware), args.scheduler)
    report = simulate_trace(read_trace(args.file), hw, threads=args.threads)
    if args.json:
        print(json.dumps(report.to_dict()), file=out)
        return 0
    d = report.to_dict()
    print(f"{args.file} on {hw.name} ({d['scheduler']}): {d['requests']} requests", file=out)
    print(f"  cycles {d['cycles']}  ({d['seconds'] * 1e6:.3f} us)  bandwidth {d['bandwidth_gbps']:.2f} GB/s", file=out)
    print(f"  ACT {d['activations']}  RD {d['reads']}  WR {d['writes']}  REF {d['refreshes']}  "
          f"row hits {d['row_hits']}  coalesced {d['coalesced']}  forwarded {d['forwarded']}", file=out)
    print(f"  read latency mean {d['mean_read_latency_cycles']:.1f} cycles, p99 {d['p99_read_latency_cycles']:.0f}", file=out)
    print(f"  energy {d['energy_pj'] / 1e6:.3f} uJ: " + ", ".join(
        f"{k} {v / 1e6:.3f}" for k, v in d["energy_breakdown_pj"].items()), file=out)
    return 0


def _cmd_convert(args, out) -> int:
    from .trace import read_trace, write_trace

    trace = read_trace(args.source)
    write_trace(trace, args.target)
    print(f"{len(trace)} requests: {args.target}", file=out)
    return 0


def workload_from_toml(path: str) -> EmbeddingWorkload:
    """The embedding part of a workload file: ``batch_size``, ``placement``, ``[[tables]]``."""
    from .dense import workload_from_dict

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read workload {path!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    if not data.get("tables"):
        raise ValueError(f"{path}: needs at least one [[tables]] entry")
    data.setdefault("batch_size", DEFAULT_BATCH)
    return workload_from_dict(data, str(path)).embeddings


def _cmd_embed(args, out) -> int:
    from .embedding import simulate
    from .trace import read_indices_npz

    if args.workload:
        workload = workload_from_toml(args.workload)
    else:
        table = EmbeddingTable(rows=args.rows, dim=args.dim, bytes_per_element=args.bytes_per_element,
                               pooling=args.pooling, distribution=args.distribution, zipf_alpha=args.alpha)
        workload = EmbeddingWorkload((table,) * args.tables, batch_size=args.batch, placement=args.placement)
    nmp = load_hardware(args.nmp)
    if nmp.nmp is None:
        raise ValueError(f"--nmp {args.nmp!r} has no near-memory units; pick one of the nmp presets")
    host = load_hardware(args.host) if args.host else dataclasses.replace(
        nmp, name=f"{nmp.name} (units off)", nmp=None)
    if args.indices:
        pairs = read_indices_npz(args.indices)
        if len(pairs) != len(workload.tables):
            raise ValueError(f"{args.indices}: {len(pairs)} tables of indices, the workload has {len(workload.tables)}")
        target = batch_from_indices(workload.tables, pairs, workload.placement)
    else:
        target = workload
    reports = [simulate(target, host, seed=args.seed, threads=args.threads),
               simulate(target, nmp, seed=args.seed, threads=args.threads)]
    if args.json:
        print(json.dumps({"host": reports[0].to_dict(), "nmp": reports[1].to_dict(),
                          "speedup": reports[0].latency_s / reports[1].latency_s,
                          "energy_ratio": reports[0].energy_j / reports[1].energy_j}), file=out)
        return 0
    b = reports[0]
    print(f"batch {b.batch_size}, {len(workload.tables)} tables, {b.lookups} lookups, "
          f"{b.dram_bursts} bursts, seed {b.seed}", file=out)
    rows = [("hardware", lambda r: r.hardware), ("mode", lambda r: r.mode),
            ("latency (us)", lambda r: f"{r.latency_s * 1e6:.2f}"),
            ("samples/s", lambda r: f"{r.throughput_samples_per_s:,.0f}"),
            ("energy/sample (uJ)", lambda r: f"{r.energy_per_sample_j * 1e6:.3f}"),
            ("bound by", lambda r: r.bound_by),
            ("channel bytes", lambda r: f"{r.channel_bytes:,}"),
            ("row-hit rate", lambda r: f"{r.row_hit_rate:.3f}"),
            ("host cache hit rate", lambda r: f"{r.host_cache_hit_rate:.3f}"),
            ("unit cache hit rate", lambda r: f"{r.cache_hit_rate:.3f}")]
    rows += [(f"  {k} (uJ)", lambda r, k=k: f"{r.energy_breakdown_pj[k] / 1e6:.2f}")
             for k in b.energy_breakdown_pj]
    w0 = max(len(name) for name, _ in rows)
    cells = [[fn(r) for r in reports] for _, fn in rows]
    w1 = max(len(c[0]) for c in cells)
    for (name, _), c in zip(rows, cells):
        print(f"{name:<{w0}}  {c[0]:>{w1}}  {c[1]}", file=out)
    print(f"near-memory speedup {reports[0].latency_s / reports[1].latency_s:.2f}x, "
          f"energy {reports[0].energy_j / reports[1].energy_j:.2f}x lower", file=out)
    return 0


def _cmd_query(args, out) -> int:
    from .dense import load_workload
    from .inference import query

    workload = load_workload(args.workload, args.batch)
    report = query(workload, args.hardware, seed=args.seed, threads=args.threads)
    if args.json:
        print(json.dumps(report.to_dict()), file=out)
        return 0
    r = report
    print(f"{workload.name or args.workload} on {r.hardware}: batch {r.batch_size}, {len(workload.tables)} tables, "
          f"{len(workload.dense)} dense layers ({r.dense_flops / r.batch_size / 1e6:.3f} MFLOP/sample), seed {r.seed}",
          file=out)
    print(f"  latency {r.latency_s * 1e6:.2f} us   throughput {r.throughput_samples_per_s:,.0f} samples/s   "
          f"bound by {r.bound_by}", file=out)
    print(f"  energy {r.energy_per_sample_j * 1e6:.3f} uJ/sample ({r.energy_j * 1e6:.2f} uJ per batch)", file=out)
    print("  busy per batch: " + ", ".join(f"{k} {v * 1e6:.2f} us" for k, v in r.stages.items() if v), file=out)
    total = sum(r.energy_breakdown_pj.values()) or 1.0
    print("  energy by action: " + ", ".join(f"{k} {v / total:.1%}" for k, v in
                                             sorted(r.energy_breakdown_pj.items(), key=lambda kv: -kv[1]) if v), file=out)
    print("  energy by part: " + ", ".join(f"{k} {v / total:.1%}" for k, v in
                                           sorted(r.energy_by_part_pj.items(), key=lambda kv: -kv[1]) if v), file=out)
    if r.area_mm2 or r.peak_power_w:
        print(f"  PIM parts: {r.area_mm2:.1f} mm^2, peak {r.peak_power_w:.1f} W", file=out)
    if r.fallbacks:
        print(f"  {r.fallbacks} layer(s) ran on the host because their mapped place cannot run them", file=out)
    if args.layers:
        for step in r.layers:
            print(f"    {step.name:<28} {step.op:<12} {step.place:<15} {step.time_s * 1e6:10.2f} us "
                  f"{step.energy_pj / 1e6:10.3f} uJ{'  (fallback)' if step.fallback else ''}", file=out)
    return 0


def _cmd_sweep(args, out) -> int:
    from .dense import load_workload
    from .inference import query
    from .presets import with_overrides

    workload = load_workload(args.workload, args.batch)
    base = load_hardware(args.hardware)
    (k1, v1) = args.knob
    (k2, v2) = args.knob2 if args.knob2 else (None, [None])
    rows = []
    for a in v1:
        for b in v2:
            overrides = {k1: a} if k2 is None else {k1: a, k2: b}
            report = query(workload, with_overrides(base, overrides), seed=args.seed)
            row = {k1: a} if k2 is None else {k1: a, k2: b}
            row.update(report.to_row())
            rows.append(row)
    csv_path, png_path = Path(f"{args.out}.csv"), Path(f"{args.out}.png")
    _write_csv_atomic(csv_path, rows)
    _plot_sweep(png_path, rows, k1, k2, f"{workload.name or args.workload} on {base.name}")
    print(f"{len(rows)} configurations: {csv_path}, {png_path}", file=out)
    return 0


def _write_csv_atomic(path: Path, rows: list[dict]) -> None:
    import csv
    import os
    import tempfile

    keys = list(dict.fromkeys(k for row in rows for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _plot_sweep(path: Path, rows: list[dict], k1: str, k2: str | None, title: str) -> None:
    import os
    import tempfile

    try:
        import matplotlib
    except ImportError:
        raise ValueError("the sweep's plot needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    groups = {}
    for row in rows:
        groups.setdefault(row.get(k2) if k2 else None, []).append(row)
    for label, group in groups.items():
        xs = [str(r[k1]) for r in group]
        name = f"{k2}={label}" if k2 else None
        axes[0].plot(xs, [r["latency_s"] * 1e6 for r in group], marker="o", label=name)
        axes[1].plot(xs, [r["energy_per_sample_j"] * 1e6 for r in group], marker="o", label=name)
    axes[0].set_ylabel("latency per batch (us)")
    axes[1].set_ylabel("energy per sample (uJ)")
    for ax in axes:
        ax.set_xlabel(k1)
        ax.grid(alpha=0.3)
        if k2:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for bad input)."""
    with small_pages():  # long traces: see pimsim._pages
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = _build_parser()
    out, err = sys.stdout, sys.stderr
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(out)
            return 0
        if args.command == "presets":
            return _cmd_presets(out)
        if args.command == "trace":
            return _cmd_trace(args, out)
        if args.command == "convert":
            return _cmd_convert(args, out)
        if args.command == "query":
            return _cmd_query(args, out)
        if args.command == "sweep":
            return _cmd_sweep(args, out)
        return _cmd_embed(args, out)
    except _UsageError as exc:
        print(str(exc), file=err)
        return 2
    except SystemExit as exc:  # --help and --version end here
        return int(exc.code or 0)
    except (ValueError, OSError) as exc:
        print(f"pimsim: error: {exc}", file=err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
