"""Test log loss of each hand-crafted baseline and of the best sampled architecture on
the default synthetic data, each as the gap to the exact Bayes log loss.

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
from nasrec import (BASELINES, ArchSpec, NasRecModel, TrainConfig, build_baseline, evaluate, sample,
                    train_model)
from nasrec._util import seeded_torch


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
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=None, help="default: the default data set's")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=0.12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=sorted(BASELINES) + ["nasrec"])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = default_data(args.rows, args.seed)
    train, test = ds.split("train"), ds.split("test")
    bayes = ds.bayes_logloss["test"]
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    rows = []
    for name in args.models:
        if name == "nasrec":
            spec, how = _best_arch(args.seed)
            with seeded_torch(args.seed):
                model = NasRecModel(spec, ds.schema)
            label = f"nasrec ({how} {spec.hash[:8]})"
        else:
            model, label = build_baseline(name, ds.schema, args.seed), name
        h = train_model(model, train, cfg)
        r = evaluate(model, test)
        rows.append({"model": label, "test_logloss": r["logloss"], "test_auc": r["auc"],
                     "gap_to_bayes": r["logloss"] - bayes, "bayes_logloss": bayes,
                     "samples_per_second": h["samples_per_second"],
                     "params": sum(p.numel() for p in model.parameters()), "steps": args.steps,
                     "batch_size": args.batch_size, "seed": args.seed, "data": r["data"]})
        print(f"{label}: test log loss {r['logloss']:.5f} (gap {r['logloss'] - bayes:+.5f})", file=sys.stderr)
    df = pd.DataFrame(rows)
    path = write_csv(df, "baselines.csv")
    print(df.drop(columns=["data"]).to_string(index=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
