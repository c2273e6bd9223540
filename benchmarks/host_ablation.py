"""Which host-model settings earn their place: re-predict a host validation run with
settings turned off, against the same measurements.

Reads a ``host_validation`` CSV (its measured latencies and the calibration file of
each row), predicts every point again with each variant's ``[host]`` overrides applied
to that file, and summarises each variant as ``host_validation`` does (median and worst
relative error, Spearman over all points and per batch and thread count), for both
thread counts together and for each. Nothing is timed again, so the variants differ in
the model alone. The default variants turn off the settings issue 15 added last: the
attention blocks and the allocator's first-touch threshold.

``--calibration-dir DIR`` predicts with the file of the same name in DIR instead of each
row's own (a calibration with a setting added since, against the same measurements).

    python -m benchmarks.host_ablation CSV [--variant NAME:KEY=VALUE[,KEY=VALUE...] ...]
        [--calibration-dir DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from benchmarks._csv import write_rows
from benchmarks._rank import spearman

DEFAULT_VARIANTS = {
    "as calibrated": {},
    "no first_touch_min_bytes": {"first_touch_min_bytes": 0},
    "no attention blocks": {"attention_block_rows": 0},
    "neither": {"first_touch_min_bytes": 0, "attention_block_rows": 0},
}


def _parse_variant(text: str, host_keys: set[str]) -> tuple[str, dict]:
    name, sep, body = text.partition(":")
    if not sep or not name or not body:
        raise ValueError(f"--variant must be NAME:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    changes = {}
    for item in body.split(","):
        key, eq, value = item.partition("=")
        if not eq or key not in host_keys:
            raise ValueError(f"--variant {name!r}: unknown [host] setting {key!r}")
        try:
            changes[key] = int(value)
        except ValueError:
            try:
                changes[key] = float(value)
            except ValueError:
                raise ValueError(f"--variant {name!r}: {key} must be a number, got {value!r}") from None
    return name, changes


def summarize_variants(points: list[dict], variants: dict) -> list[dict]:
    """Per variant and thread count (and both together): errors and rank agreement of
    ``points`` (dicts with measured_s, threads, batch, model and one predicted latency per
    variant name)."""
    out = []
    for name in variants:
        for threads in ("both",) + tuple(sorted({p["threads"] for p in points})):
            ps = [p for p in points if threads == "both" or p["threads"] == threads]
            ratio = np.array([p[name] / p["measured_s"] for p in ps])
            worst = np.maximum(ratio, 1 / ratio)
            w = ps[int(np.argmax(worst))]
            groups = {}
            for p in ps:
                groups.setdefault((p["threads"], p["batch"]), []).append(p)
            per = [spearman([p[name] for p in g], [p["measured_s"] for p in g]) for g in groups.values() if len(g) >= 3]
            out.append({"variant": name, "threads": threads, "points": len(ps),
                        "median_rel_error": float(np.median(np.abs(ratio - 1))), "worst_ratio": float(worst.max()),
                        "worst_point": f"{w['model']} b{w['batch']} t{w['threads']}",
                        "spearman_all": spearman([p[name] for p in ps], [p["measured_s"] for p in ps]),
                        "spearman_per_batch_mean": float(np.mean(per)), "spearman_per_batch_min": float(np.min(per))})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path, help="a host_validation CSV")
    ap.add_argument("--variant", action="append", default=None,
                    help="NAME:KEY=VALUE[,KEY=VALUE...] of [host] overrides (default: the issue 15 settings off)")
    ap.add_argument("--calibration-dir", type=Path, default=None,
                    help="predict with the calibration file of the same name in this folder instead")
    ap.add_argument("--out", type=Path, default=None, help="output CSV (default: beside the input, _ablation.csv)")
    args = ap.parse_args(argv)

    import csv

    import pimsim
    from pimsim.config import Host
    try:
        variants = dict(DEFAULT_VARIANTS) if not args.variant else dict(
            _parse_variant(v, {f.name for f in fields(Host)}) for v in args.variant)
        with args.csv.open(encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("error", "") == "" and r.get("measured_s") not in ("", "nan")]
        if not rows:
            raise ValueError(f"{args.csv}: no measured rows")
        missing = {"model", "batch", "threads", "calibration", "measured_s", "seed"} - set(rows[0])
        if missing:
            raise ValueError(f"{args.csv}: not a host_validation CSV (missing {', '.join(sorted(missing))})")
        hardware = {}
        for r in rows:
            if r["calibration"] not in hardware:
                cal = r["calibration"]
                if args.calibration_dir is not None:
                    cal = args.calibration_dir / Path(cal).name
                    if not cal.is_file():
                        raise ValueError(f"--calibration-dir {args.calibration_dir}: no {Path(r['calibration']).name}")
                base = pimsim.load_hardware(str(cal))
                hardware[r["calibration"]] = {name: replace(base, host=replace(base.host, **changes))
                                              for name, changes in variants.items()}
    except OSError as e:
        print(f"host_ablation: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"host_ablation: {e}", file=sys.stderr)
        return 2

    from benchmarks.host_validation import _build, _models, _workload
    from benchmarks.task_truth import default_data
    from cosearch.pipeline import table_spec
    seed = int(rows[0]["seed"])
    ds = default_data(rows=None, seed=seed)
    schema, tables = ds.schema, table_spec(ds)
    n_random = sum(1 for r in {r["model"] for r in rows} if r.startswith("random-"))
    specs = {name: spec for name, _, spec in _models(n_random, seed, quick=False)}
    workloads, points = {}, []
    for r in rows:
        name, batch = r["model"], int(r["batch"])
        if name not in specs:
            print(f"host_ablation: {args.csv}: unknown model {name!r}", file=sys.stderr)
            return 2
        if (name, batch) not in workloads:
            model = _build(name, specs[name], schema)
            workloads[(name, batch)] = _workload(name, specs[name], model, schema, batch, tables, seed)
        p = {"model": name, "batch": batch, "threads": int(r["threads"]), "measured_s": float(r["measured_s"])}
        for v, hw in hardware[r["calibration"]].items():
            p[v] = pimsim.query(workloads[(name, batch)], hw, seed=0).latency_s
        points.append(p)
    summary = summarize_variants(points, variants)
    for s in summary:
        print(f"{s['variant']:28s} threads {s['threads']!s:4s} median {s['median_rel_error']:.1%} worst "
              f"{s['worst_ratio']:.2f}x ({s['worst_point']}) Spearman {s['spearman_all']:.3f} per-batch "
              f"{s['spearman_per_batch_mean']:.3f} (min {s['spearman_per_batch_min']:.3f})")
    out = write_rows(summary, args.out or args.csv.with_name(args.csv.stem + "_ablation.csv"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
