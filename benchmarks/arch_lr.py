"""Do searched architectures gain from the learning-rate choice the baselines got?

The baselines train with a learning rate and schedule chosen on validation at the
truth budget (``nasrec.baselines.TRAINING``, from ``baselines_peer --tune``), while
every architecture trains with the shared truth recipe. This trains the ``--top``
architectures with the lowest stored truth (mean of two seeds, ``scratch_truth.csv`` at
``--truth-lr``) with each ``SCHEDULE:LR`` setting and seed, through the truth cache (so
``cosearch run`` reuses them), and reports validation and test log loss per setting,
the setting each architecture would choose on validation, and the best baseline's
figures beside them.

Writes ``results/arch_lr.csv``.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

import pandas as pd

from benchmarks.task_truth import TRUTH_CSV, default_cache, default_data, load_truth, write_csv
from nasrec.scratch import TRUTH_VERSION, TruthCache, TruthRecipe
from nasrec.space import ArchSpec

__all__ = ["main"]


def _settings(texts: list[str], recipe: TruthRecipe) -> list[TruthRecipe]:
    out = []
    for text in texts:
        schedule, _, lr = text.partition(":")
        try:
            out.append(replace(recipe, schedule=schedule, lr=float(lr)))
        except ValueError as e:
            raise ValueError(f"setting {text!r}: {e}") from None
    return out


def main(argv=None) -> int:
    r = TruthRecipe()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=3, help="architectures, best stored truth first")
    ap.add_argument("--truth-lr", type=float, default=r.lr, help="the stored truth that picks them")
    ap.add_argument("--settings", nargs="+", default=["constant:0.01", "cosine:0.04", "cosine:0.12"],
                    metavar="SCHEDULE:LR", help="the grid the baselines were tuned on")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--jobs", type=int, default=2, help="training processes at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    args = ap.parse_args(argv)
    if args.top < 1:
        ap.error(f"--top must be >= 1, got {args.top}")
    try:
        recipes = _settings(args.settings, replace(r, lr=args.truth_lr))
    except ValueError as e:
        ap.error(str(e))
    ds = default_data()
    stored = pd.DataFrame(load_truth(TRUTH_CSV).values())
    if stored.empty:
        raise SystemExit(f"no stored truth in {TRUTH_CSV}; run benchmarks.task_truth")
    mine = stored[(stored["data"] == ds.content_hash) & (stored["lr"] == args.truth_lr)
                  & (stored["steps"] == r.steps) & (stored["version"] == TRUTH_VERSION) & (stored["clip"] == r.clip)
                  & (stored["lr_fan_in"] == r.lr_fan_in)]
    if mine.empty:
        raise SystemExit(f"no stored truth at lr {args.truth_lr} for the default data set in {TRUTH_CSV}")
    ranked = mine.groupby("model").agg(truth=("test_logloss", "mean"), arch=("arch", "first"))
    ranked = ranked.sort_values("truth").head(args.top)
    specs = [ArchSpec.from_json(a) for a in ranked["arch"]]
    cache = TruthCache(default_cache())
    rows = []
    for recipe, text in zip(recipes, args.settings):
        jobs = [(s, seed) for s in specs for seed in args.seeds]
        got = cache.get_or_train_jobs(jobs, ds, recipe, workers=args.jobs, threads=args.threads)
        for (spec, seed), res in zip(jobs, got):
            rows.append({"arch": spec.hash[:16], "setting": text, "schedule": recipe.schedule, "lr": recipe.lr,
                         "seed": seed, "val_logloss": res["val_logloss"], "test_logloss": res["test_logloss"],
                         "truth_mean": float(ranked.loc[f"arch:{spec.hash}", "truth"]),
                         "truth_lr": args.truth_lr, "steps": recipe.steps, "batch_size": recipe.batch_size,
                         "cpu_seconds": res["cpu_seconds"], "threads": args.threads, "jobs": args.jobs,
                         "cores": os.cpu_count(), "data": ds.content_hash[:16]})
            print(f"{spec.hash[:16]} {text} seed {seed}: val {res['val_logloss']:.4f} "
                  f"test {res['test_logloss']:.4f}", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    mean = df.groupby(["arch", "setting"])["val_logloss"].mean()
    chosen = mean.groupby(level="arch").idxmin().tolist()
    df["chosen"] = [(a, s) in chosen for a, s in zip(df["arch"], df["setting"])]
    path = write_csv(df, "arch_lr.csv")
    print(df.to_string(index=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
