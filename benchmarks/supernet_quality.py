"""Supernet ranking quality: Kendall tau between supernet-inherited validation log loss
and from-scratch test log loss over random NASRec-Full architectures (target >= 0.5).

Writes benchmarks/results/supernet_quality.csv (one row per architecture and seed)
and benchmarks/results/supernet_quality_summary.csv (one row per seed; a rerun with
the same seed replaces that seed's rows). With ``--scratch-seeds 2`` every
architecture is also trained from scratch with a second initialisation and data
order, and the Kendall tau between the two from-scratch runs is reported: the
ceiling that the noise of the from-scratch "truth" puts on any one-shot score.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nasrec import (ArchSpec, Dataset, NasRecModel, SupernetScorer, SyntheticConfig, TrainConfig,
                    build_supernet, evaluate, generate_synthetic, load_checkpoint, sample, train_model, train_supernet)
from benchmarks._csv import write_rows
from nasrec._util import resolve_device, seeded_torch

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
    return write_rows(df.to_dict("records"), RESULTS / name)


def _merge_by_seed(rows: list[dict], name: str, seed: int, space: str) -> Path:
    """Write ``rows`` to ``name``, keeping the rows of other (seed, space) pairs already
    there (rows written before the space was recorded are NASRec-Full's)."""
    path = RESULTS / name
    old = []
    if path.is_file():
        with path.open(newline="") as f:
            old = [r for r in csv.DictReader(f)
                   if (str(r.get("seed")), r.get("space") or "full") != (str(seed), space)]
    return write_rows(old + rows, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--supernet-steps", type=int, default=600)
    ap.add_argument("--finetune-steps", type=int, default=50)
    ap.add_argument("--scratch-steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--val-rows", type=int, default=10_000)
    ap.add_argument("--supernet-lr", type=float, default=0.12, help="Adagrad lr of supernet training")
    ap.add_argument("--initial-accumulator", type=float, default=0.0,
                    help="Adagrad initial accumulator of supernet training (NASRec: 0)")
    ap.add_argument("--paths-per-step", type=int, default=1,
                    help="supernet subnets per step, operators spread fairly (NASRec: 1)")
    ap.add_argument("--scratch-lr", type=float, default=0.12, help="Adagrad lr of from-scratch training")
    ap.add_argument("--scratch-seeds", type=int, default=1,
                    help="from-scratch runs per architecture (>= 2 also measures their own rank agreement)")
    ap.add_argument("--space", default="full", choices=("full", "small"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (cuda if available)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="supernet checkpoint: loaded if it exists (no training), else written after training")
    ap.add_argument("--tag", default="", help="suffix of the result files (keeps the default run's files)")
    ap.add_argument("--scratch-from", type=Path, default=None,
                    help="reuse from-scratch results of an earlier run (same seed, data, archs)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    ds = default_data(args.rows, args.seed)
    train, val, test = ds.split("train"), ds.split("val", args.val_rows), ds.split("test")
    loaded = args.checkpoint is not None and args.checkpoint.is_file()
    if loaded:
        sn, state = load_checkpoint(args.checkpoint, device)
        if sn.space.name != args.space:
            raise SystemExit(f"{args.checkpoint} holds a {sn.space.name} supernet, not {args.space}")
        trained = state["meta"]["config"]  # what the summary records: the settings it was trained with
        hist = {"train_losses": [float("nan")]}  # trained by an earlier run: no loss or time here
    else:
        sn = build_supernet(ds.schema, args.space, args.seed, device)
        cfg = TrainConfig(steps=args.supernet_steps, batch_size=args.batch_size, lr=args.supernet_lr,
                          seed=args.seed, initial_accumulator=args.initial_accumulator,
                          paths_per_step=args.paths_per_step)
        trained = asdict(cfg)
        hist = train_supernet(sn, train, cfg, quiet=False, checkpoint=args.checkpoint)
    t_supernet = float("nan") if loaded else time.perf_counter() - t0
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
        if "space" in prev:
            prev = prev[prev["space"].fillna("full") == args.space]
        # keyed by the current hash of the stored architecture (older files may hold
        # hashes from before ArchSpec.hash ignored unread inputs)
        previous = {ArchSpec.from_json(r["arch"]).hash: r for r in prev.to_dict("records")}
    rows = []
    t2 = time.perf_counter()
    for k, (spec, sc) in enumerate(zip(specs, scores)):
        runs, start, params = [], 0, None
        if spec.hash in previous:  # stored from-scratch runs are reused, further seeds are trained
            old = previous[spec.hash]
            runs.append({"logloss": old["scratch_test_logloss"], "auc": old["scratch_test_auc"]})
            for r in range(1, args.scratch_seeds):
                if pd.notna(old.get(f"scratch_test_logloss_run{r}", float("nan"))):
                    runs.append({"logloss": old[f"scratch_test_logloss_run{r}"], "auc": float("nan")})
            params, start = old["params"], len(runs)
        for r in range(start, args.scratch_seeds):
            s_seed = args.seed + 1000 * r
            with seeded_torch(s_seed + k):
                model = NasRecModel(spec, ds.schema).to(device)
            train_model(model, train, TrainConfig(steps=args.scratch_steps, batch_size=args.batch_size,
                                                  lr=args.scratch_lr, seed=s_seed))
            runs.append(evaluate(model, test))
            params = sum(p.numel() for p in model.parameters())
        te = runs[0]
        extra = {f"scratch_test_logloss_run{r}": x["logloss"] for r, x in enumerate(runs)}
        rows.append({"hash": spec.hash, "supernet_val_logloss": sc["logloss"],
                     "supernet_val_auc": sc["auc"], "scratch_test_logloss": te["logloss"],
                     "scratch_test_auc": te["auc"], **extra, "params": params,
                     "seed": args.seed, "space": args.space, "data": ds.content_hash[:16],
                     "arch": spec.to_json()})
        print(f"{k + 1}/{len(specs)} supernet {sc['logloss']:.4f} scratch {te['logloss']:.4f}",
              file=sys.stderr)
    t_scratch = time.perf_counter() - t2
    df = pd.DataFrame(rows)
    tau = kendall_tau(df["supernet_val_logloss"], df["scratch_test_logloss"])
    tau_scratch = (kendall_tau(df["scratch_test_logloss_run0"], df["scratch_test_logloss_run1"])
                   if "scratch_test_logloss_run1" in df else float("nan"))
    summary = pd.DataFrame([{
        "kendall_tau": tau, "kendall_tau_scratch_vs_scratch": tau_scratch,
        "archs": len(df), "space": args.space, "rows": args.rows,
        "supernet_lr": trained["lr"], "initial_accumulator": trained.get("initial_accumulator", 0.0),
        "paths_per_step": trained.get("paths_per_step", 1),
        "scratch_lr": args.scratch_lr,
        "val_rows": len(val), "scratch_seeds": args.scratch_seeds, "device": str(device),
        "supernet_steps": trained["steps"], "finetune_steps": args.finetune_steps,
        "scratch_steps": args.scratch_steps, "scratch_reused": len(previous) > 0, "batch_size": args.batch_size, "threads": args.threads,
        "supernet_seconds": t_supernet, "score_seconds_per_arch": t_score / len(df),
        "scratch_seconds": t_scratch, "supernet_final_loss": float(np.mean(hist["train_losses"][-50:])),
        "bayes_test_logloss": ds.bayes_logloss["test"], "best_scratch_test_logloss": df["scratch_test_logloss"].min(),
        "seed": args.seed, "data": ds.content_hash[:16]}])
    suffix = f"_{args.tag}" if args.tag else ""
    p1 = _merge_by_seed(df.to_dict("records"), f"supernet_quality{suffix}.csv", args.seed, args.space)
    p2 = _merge_by_seed(summary.to_dict("records"), f"supernet_quality_summary{suffix}.csv", args.seed, args.space)
    print(summary.T.to_string())
    print(f"wrote {p1} and {p2}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
