"""Test log loss of each hand-crafted baseline and of the best sampled architecture on
the default synthetic data, each as the gap to the exact Bayes log loss, trained with the
truth recipe (``nasrec.scratch.TruthRecipe``).

The "best sampled architecture" is the one with the lowest supernet score in
benchmarks/results/supernet_quality.csv when that file exists, else a random one.
Writes benchmarks/results/baselines.csv.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import torch

from benchmarks.task_truth import RESULTS, default_data, write_csv
from nasrec import BASELINES, ArchSpec, sample
from nasrec.scratch import TruthRecipe, train_truth, truth_splits


def _best_arch(seed: int) -> tuple[ArchSpec, str]:
    path = RESULTS / "supernet_quality.csv"
    if path.is_file():
        df = pd.read_csv(path)
        if (df["seed"] == seed).any():
            df = df[df["seed"] == seed]
        row = df.loc[df["supernet_val_logloss"].idxmin()]
        return ArchSpec.from_json(row["arch"]), "best-by-supernet"
    return sample(np.random.default_rng(seed)), "random"


def main(argv=None) -> int:
    r = TruthRecipe()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=None, help="default: the default data set's")
    ap.add_argument("--steps", type=int, default=r.steps)
    ap.add_argument("--lr", type=float, default=r.lr, help="shared lr (baselines in nasrec.baselines.TRAINING use theirs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=sorted(BASELINES) + ["nasrec"])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = default_data(args.rows, args.seed)
    splits = truth_splits(ds)
    bayes = ds.bayes_logloss["test"]
    recipe = TruthRecipe(steps=args.steps, batch_size=r.batch_size, lr=args.lr)
    rows = []
    for name in args.models:
        if name == "nasrec":
            spec, how = _best_arch(args.seed)
            model, label = spec, f"nasrec ({how} {spec.hash[:8]})"
        else:
            model, label = name, name
        res, _ = train_truth(model, ds, recipe, args.seed, splits=splits)
        rows.append({"model": label, "test_logloss": res["test_logloss"], "test_auc": res["test_auc"],
                     "gap_to_bayes": res["test_logloss"] - bayes, "bayes_logloss": bayes,
                     "train_seconds": res["train_seconds"], "params": res["params"],
                     "steps": recipe.steps, "lr": res["recipe"]["lr"], "schedule": res["recipe"].get("schedule", "cosine"),
                     "batch_size": recipe.batch_size, "seed": args.seed, "data": ds.content_hash[:16]})
        print(f"{label}: test log loss {res['test_logloss']:.5f} (gap {res['test_logloss'] - bayes:+.5f})",
              file=sys.stderr)
    df = pd.DataFrame(rows)
    path = write_csv(df, "baselines.csv")
    print(df.drop(columns=["data"]).to_string(index=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
