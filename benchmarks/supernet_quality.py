"""Supernet ranking quality: Kendall tau between supernet-inherited validation log loss
and from-scratch test log loss over random NASRec-Full architectures (target >= 0.5).

Writes benchmarks/results/supernet_quality.csv (one row per architecture) and
benchmarks/results/supernet_quality_summary.csv.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nasrec import (Dataset, NasRecModel, SupernetScorer, SyntheticConfig, TrainConfig,
                    build_supernet, evaluate, generate_synthetic, sample, train_model, train_supernet)
from nasrec._util import atomic_write_text, seeded_torch

RESULTS = Path(__file__).resolve().parent / "results"


def kendall_tau(a, b) -> float:
    """Kendall tau-b of two equal-length sequences (O(n^2), fine for tens of items)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    i, j = np.triu_indices(len(a), 1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n_a, n_b = np.count_nonzero(da), np.count_nonzero(db)
    if n_a == 0 or n_b == 0:
        return float("nan")
    return float((da * db).sum() / np.sqrt(n_a * n_b))


def default_data(rows: int, seed: int, data_dir: Path | None = None) -> Dataset:
    """The default synthetic data set (cached under the temp folder)."""
    cfg = SyntheticConfig(rows=rows, seed=seed)
    base = data_dir or Path(tempfile.gettempdir()) / "nasrec-bench-data"
    path = base / f"synthetic-r{rows}-s{seed}"
    if (path / "meta.json").is_file():
        return Dataset(path)
    return generate_synthetic(cfg, path)


def write_csv(df: pd.DataFrame, name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    atomic_write_text(path, df.to_csv(index=False))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--supernet-steps", type=int, default=600)
    ap.add_argument("--finetune-steps", type=int, default=50)
    ap.add_argument("--scratch-steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--val-rows", type=int, default=10_000)
    ap.add_argument("--space", default="full", choices=("full", "small"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scratch-from", type=Path, default=None,
                    help="reuse from-scratch results of an earlier run (same seed, data, archs)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ds = default_data(args.rows, args.seed)
    train, val, test = ds.split("train"), ds.split("val", args.val_rows), ds.split("test")
    sn = build_supernet(ds.schema, args.space, args.seed)
    hist = train_supernet(sn, train, TrainConfig(steps=args.supernet_steps, batch_size=args.batch_size,
                                                 seed=args.seed), quiet=False)
    t_supernet = time.perf_counter() - t0
    rng = np.random.default_rng([args.seed, 100])
    specs = [sample(rng, sn.space) for _ in range(args.archs)]
    scorer = SupernetScorer(sn, train, val, finetune_steps=args.finetune_steps,
                            batch_size=args.batch_size, seed=args.seed)
    t1 = time.perf_counter()
    scores = [scorer.evaluate(s) for s in specs]
    t_score = time.perf_counter() - t1
    previous = {}
    if args.scratch_from is not None:
        prev = pd.read_csv(args.scratch_from)
        prev = prev[prev["data"] == ds.content_hash[:16]]
        previous = {r["hash"]: r for r in prev.to_dict("records")}
    rows = []
    t2 = time.perf_counter()
    for k, (spec, sc) in enumerate(zip(specs, scores)):
        if spec.hash in previous:
            old = previous[spec.hash]
            te = {"logloss": old["scratch_test_logloss"], "auc": old["scratch_test_auc"]}
            params = old["params"]
        else:
            with seeded_torch(args.seed + k):
                model = NasRecModel(spec, ds.schema)
            train_model(model, train, TrainConfig(steps=args.scratch_steps, batch_size=args.batch_size,
                                                  seed=args.seed))
            te = evaluate(model, test)
            params = sum(p.numel() for p in model.parameters())
        rows.append({"hash": spec.hash, "supernet_val_logloss": sc["logloss"],
                     "supernet_val_auc": sc["auc"], "scratch_test_logloss": te["logloss"],
                     "scratch_test_auc": te["auc"], "params": params,
                     "seed": args.seed, "data": ds.content_hash[:16], "arch": spec.to_json()})
        print(f"{k + 1}/{len(specs)} supernet {sc['logloss']:.4f} scratch {te['logloss']:.4f}",
              file=sys.stderr)
    t_scratch = time.perf_counter() - t2
    df = pd.DataFrame(rows)
    tau = kendall_tau(df["supernet_val_logloss"], df["scratch_test_logloss"])
    summary = pd.DataFrame([{
        "kendall_tau": tau, "archs": len(df), "space": args.space, "rows": args.rows,
        "supernet_steps": args.supernet_steps, "finetune_steps": args.finetune_steps,
        "scratch_steps": args.scratch_steps, "scratch_reused": len(previous) > 0, "batch_size": args.batch_size, "threads": args.threads,
        "supernet_seconds": t_supernet, "score_seconds_per_arch": t_score / len(df),
        "scratch_seconds": t_scratch, "supernet_final_loss": float(np.mean(hist["train_losses"][-50:])),
        "bayes_test_logloss": ds.bayes_logloss["test"], "best_scratch_test_logloss": df["scratch_test_logloss"].min(),
        "seed": args.seed, "data": ds.content_hash[:16]}])
    p1, p2 = write_csv(df, "supernet_quality.csv"), write_csv(summary, "supernet_quality_summary.csv")
    print(summary.T.to_string())
    print(f"wrote {p1} and {p2}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
