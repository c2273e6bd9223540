"""Structured pruning on PIM hardware: log loss against latency and energy.

On the default synthetic data, a good NASRec model and DLRM are trained, then
pruned at several ratios with each method (L1 magnitude, learned masks) and
schedule (one-shot, progressive), every step fine-tuned. Each pruned model is
profiled by cosearch's forward profiler (``cosearch.profile.module_workload``)
and costed with ``pimsim.query`` on two PIM presets. A second sweep prunes one
unit kind at a time (neurons, tokens, heads, dot rows, embedding dims) to show
which part of the model pays for itself.

The NASRec model: ``--arch FILE`` (e.g. the best co-searched one), else the
architecture with the lowest from-scratch log loss in
benchmarks/results/supernet_quality.csv, else a random one.

Writes benchmarks/results/pruning.csv and pruning.png. The ratio-0 rows get the
same fine-tuning as the pruned ones, so gaps are not extra training.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks._csv import write_rows
from benchmarks.task_truth import RESULTS, default_data
from nasrec import ArchSpec, NasRecModel, TrainConfig, build_baseline, evaluate, sample, train_model
from nasrec.flops import flops
from nasrec.prune import PruneConfig, count_params, prune, prune_spec, to_prunable
from nasrec.util import seeded_torch


def _best_arch(seed: int, path: Path | None) -> tuple[ArchSpec, str]:
    if path is not None:
        return ArchSpec.from_json(Path(path).read_text()), f"file {path.name}"
    sq = RESULTS / "supernet_quality.csv"
    if sq.is_file():
        df = pd.read_csv(sq)
        row = df.loc[df["scratch_test_logloss"].idxmin()]
        return ArchSpec.from_json(row["arch"]), "best of supernet_quality.csv by scratch log loss"
    return sample(np.random.default_rng(seed)), "random"


def _costs(model, schema, hardware: list[str], batch: int, seed: int) -> dict:
    """Latency and energy per batch on each preset, via cosearch's profiler and pimsim.query."""
    try:
        import pimsim
        from cosearch.profile import module_workload
    except ImportError as e:  # the interface this benchmark is written against
        return {"cost_error": f"cosearch/pimsim unavailable: {e}"}
    device = next(model.parameters()).device
    inputs = (torch.zeros(batch, schema.n_dense, device=device),
              torch.zeros(batch, schema.n_sparse, dtype=torch.int64, device=device))
    w = module_workload(model, inputs, schema)
    out = {"profiled_gemm_flops_per_sample": sum(l.flops for l in w.dense if l.op == "gemm") / batch,
           "embedding_bytes": w.embedding_bytes}
    for hw in hardware:
        r = pimsim.query(w, hw, seed=seed)
        out[f"latency_s_{hw}"] = r.latency_s
        out[f"energy_j_{hw}"] = r.energy_j
        out[f"bound_by_{hw}"] = r.bound_by
    return out


def _row(model, label, spec_hash, cfg: PruneConfig, ratio, test, val, schema, args, bayes, seconds) -> dict:
    te, va = evaluate(model, test), evaluate(model, val)
    r = {"model": label, "arch": spec_hash, "method": cfg.method if ratio > 0 else "none",
         "schedule": cfg.schedule if ratio > 0 else "none", "scope": cfg.scope, "kinds": "+".join(cfg.kinds),
         "ratio": ratio, "val_logloss": va["logloss"], "test_logloss": te["logloss"], "test_auc": te["auc"],
         "gap_to_bayes": te["logloss"] - bayes, "flops_per_sample": flops(model, 1)}
    r.update(count_params(model))
    r.update(_costs(model, schema, args.hardware, args.cost_batch, args.seed))
    r.update(prune_seconds=seconds, finetune_steps=args.finetune_steps, mask_steps=args.mask_steps,
             train_steps=args.train_steps, cost_batch=args.cost_batch, seed=args.seed, data=te["data"])
    return r


def _plot(df: pd.DataFrame, hardware: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(df["model"]))
    metrics = [(f"latency_s_{hw}", f"latency per batch of {int(df['cost_batch'].iloc[0])}, {hw} (ms)", 1e3)
               for hw in hardware] + [(f"energy_j_{hw}", f"energy per batch, {hw} (mJ)", 1e3) for hw in hardware]
    metrics = [m for m in metrics if m[0] in df]
    if not metrics:
        metrics = [("flops_per_sample", "MFLOPs per sample", 1e-6)]
    fig, axes = plt.subplots(len(models), len(metrics), figsize=(4.2 * len(metrics), 3.6 * len(models)),
                             squeeze=False)
    sweep = df[df["kinds"] == "neurons+tokens+heads+rows+emb"] if "kinds" in df else df
    for i, model in enumerate(models):
        d = sweep[sweep["model"] == model]
        base = d[d["ratio"] == 0]
        for j, (col, label, scale) in enumerate(metrics):
            ax = axes[i][j]
            for (method, schedule), g in d[d["ratio"] > 0].groupby(["method", "schedule"]):
                g = pd.concat([base, g]).sort_values("ratio")
                ax.plot(g[col] * scale, g["test_logloss"], marker="o", label=f"{method} {schedule}")
                for _, r in g.iterrows():
                    ax.annotate(f"{r['ratio']:g}", (r[col] * scale, r["test_logloss"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel(label)
            ax.set_ylabel("test log loss")
            ax.set_title(model[:40], fontsize=9)
            ax.grid(alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=None, help="default: the default data set's")
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--finetune-steps", type=int, default=100)
    ap.add_argument("--mask-steps", type=int, default=100)
    ap.add_argument("--progressive-steps", type=int, default=2)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    ap.add_argument("--methods", nargs="+", default=["l1", "mask"])
    ap.add_argument("--schedules", nargs="+", default=["oneshot", "progressive"])
    ap.add_argument("--scope", default="layer")
    ap.add_argument("--part-ratio", type=float, default=0.5,
                    help="ratio of the one-kind-at-a-time sweep (L1, one-shot); 0 skips it")
    ap.add_argument("--models", nargs="+", default=["nasrec", "dlrm"])
    ap.add_argument("--arch", type=Path, default=None, help="NASRec architecture JSON (e.g. best co-searched)")
    ap.add_argument("--hardware", nargs="+", default=["recnmp", "hbm-pim"])
    ap.add_argument("--cost-batch", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "pruning.csv")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = default_data(args.rows, args.seed)
    train, val, test = ds.split("train"), ds.split("val"), ds.split("test")
    bayes = ds.bayes_logloss["test"]
    tc = TrainConfig(steps=args.train_steps, batch_size=args.batch_size, seed=args.seed)
    rows: list[dict] = []
    for name in args.models:
        if name == "nasrec":
            spec, how = _best_arch(args.seed, args.arch)
            with seeded_torch(args.seed):
                trained = NasRecModel(spec, ds.schema)
            label, h = f"nasrec {spec.hash[:8]}", spec.hash
            print(f"nasrec: {how}", file=sys.stderr)
        else:
            trained, label, h = build_baseline(name, ds.schema, args.seed), name, ""
        t0 = time.perf_counter()
        train_model(trained, train, tc)
        trained = to_prunable(trained)
        print(f"{label}: trained in {time.perf_counter() - t0:.0f}s", file=sys.stderr)

        def run(cfg: PruneConfig):
            t = time.perf_counter()
            if cfg.ratio == 0:  # the reference gets the same extra training
                model = to_prunable(trained)
                train_model(model, train, TrainConfig(steps=args.finetune_steps, batch_size=args.batch_size,
                                                      lr=cfg.lr, seed=args.seed * 1000 + 1))
            else:
                model, _ = prune(trained, cfg, train)
            r = _row(model, label, h, cfg, cfg.ratio, test, val, ds.schema, args, bayes, time.perf_counter() - t)
            rows.append(r)
            write_rows(rows, args.out)
            print(f"{label} {r['method']} {r['schedule']} {r['kinds']} r={cfg.ratio:g}: test {r['test_logloss']:.5f} "
                  f"MFLOPs {r['flops_per_sample'] / 1e6:.2f} " +
                  " ".join(f"{hw} {r.get(f'latency_s_{hw}', float('nan')) * 1e6:.1f}us "
                           f"{r.get(f'energy_j_{hw}', float('nan')) * 1e3:.3f}mJ" for hw in args.hardware) +
                  f" ({r['prune_seconds']:.0f}s)", file=sys.stderr)

        common = dict(scope=args.scope, steps=args.progressive_steps, finetune_steps=args.finetune_steps,
                      mask_steps=args.mask_steps, batch_size=args.batch_size, seed=args.seed)
        run(PruneConfig(0.0, **common))
        for method in args.methods:
            for schedule in args.schedules:
                for ratio in args.ratios:
                    run(PruneConfig(ratio, method=method, schedule=schedule, **common))
        if args.part_ratio > 0:
            present = {u.kind for u in prune_spec(trained).groups.values()}
            for kind in [k for k in ("neurons", "tokens", "heads", "rows", "emb") if k in present]:
                run(PruneConfig(args.part_ratio, kinds=(kind,), **common))
    path = write_rows(rows, args.out)
    png = path.with_suffix(".png")
    _plot(pd.DataFrame(rows), args.hardware, png)
    print(f"wrote {path} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
