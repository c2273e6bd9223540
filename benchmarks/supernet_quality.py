"""Does a cheap scorer rank architectures like training from scratch does?

Noise-aware: the truth is the mean test log loss of two from-scratch trainings of each
architecture (``benchmarks.task_truth``: the same >= 40 random NASRec-Full
architectures, cached in ``results/scratch_truth.csv`` and the truth cache; missing
ones are trained here), and every scorer variant is measured on >= 3 independently
trained supernets (seeds 0, 1, 2 ...). Supernet checkpoints are cached by their
settings, so scorer variants on the same supernets train nothing again.

Per variant and supernet: Kendall tau with a bootstrap 95% interval, Spearman rho and
top-10 overlap against the truth, the same against each single truth seed, and CPU
seconds: supernet training (once per supernet) and scoring per architecture.

Writes ``results/supernet_ranking.csv`` (one row per variant, supernet seed and
architecture) and ``results/supernet_ranking_summary.csv`` (one row per variant and
supernet seed, plus a ``mean`` row per variant); rows of other variants are kept, so
every variant tried stays reported. (The files of the earlier version of this
benchmark, ``supernet_quality*.csv``, describe the earlier 200k-row task and are kept
as they were.)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks._csv import write_rows
from benchmarks._rank import agreement, kendall_tau
from benchmarks.task_truth import (RESULTS, TRUTH_CSV, bench_archs, bench_data, default_cache, load_truth,
                                   truth_table)
from nasrec import SupernetScorer, SyntheticConfig, TrainConfig, build_supernet, load_checkpoint, train_supernet
from nasrec.scratch import TruthCache, TruthRecipe

__all__ = ["kendall_tau", "main"]


def _supernet(ds, args, seed: int, cache: Path):
    """(supernet, training CPU seconds or nan when loaded, settings): cached by settings."""
    cfg = TrainConfig(steps=args.supernet_steps, batch_size=args.batch_size, lr=args.supernet_lr, seed=seed,
                      initial_accumulator=args.initial_accumulator, paths_per_step=args.paths_per_step)
    tag = f"{ds.content_hash[:12]}-{args.space}-s{cfg.steps}-lr{cfg.lr}-a{cfg.initial_accumulator}-p{cfg.paths_per_step}"
    path = cache / f"bench-supernet-{tag}-seed{seed}.pt"
    if path.is_file():
        try:
            sn, state = load_checkpoint(path)
            if state["meta"]["config"] == asdict(cfg):
                return sn, float("nan"), asdict(cfg)
        except ValueError as e:
            print(f"warning: {e}; training it again", file=sys.stderr)
    sn = build_supernet(ds.schema, args.space, seed)
    c0 = time.process_time()
    train_supernet(sn, ds.split("train"), cfg, quiet=not sys.stderr.isatty(), checkpoint=path)
    return sn, time.process_time() - c0, asdict(cfg)


def main(argv=None) -> int:
    d, r = SyntheticConfig(), TruthRecipe()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="default", help="name of this scorer variant in the result files")
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--supernets", type=int, default=3, help="independently trained supernets (seeds 0..N-1)")
    ap.add_argument("--rows", type=int, default=d.rows)
    ap.add_argument("--max-cardinality", type=int, default=d.max_cardinality)
    ap.add_argument("--space", default="full", choices=("full",), help="the truth architectures' space")
    ap.add_argument("--supernet-steps", type=int, default=600)
    ap.add_argument("--supernet-lr", type=float, default=0.03)
    ap.add_argument("--initial-accumulator", type=float, default=0.0)
    ap.add_argument("--paths-per-step", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--finetune-steps", type=int, default=8, help="head fine-tuning steps per architecture")
    ap.add_argument("--finetune-batch", type=int, default=128)
    ap.add_argument("--val-rows", type=int, default=2048, help="validation rows per score")
    ap.add_argument("--truth-steps", type=int, default=r.steps)
    ap.add_argument("--truth-lr", type=float, default=r.lr)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="truth and supernet cache (default $COSEARCH_CACHE)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--stored-truth-only", action="store_true",
                    help="rank only the architectures whose truth is already stored (train none)")
    args = ap.parse_args(argv)
    if args.supernets < 1 or args.archs < 2:
        ap.error("need --supernets >= 1 and --archs >= 2")
    torch.set_num_threads(args.threads)
    cache = args.cache or default_cache()
    ds = bench_data(SyntheticConfig(rows=args.rows, max_cardinality=args.max_cardinality))
    specs = bench_archs(args.archs, 0)
    recipe = TruthRecipe(steps=args.truth_steps, batch_size=r.batch_size, lr=args.truth_lr)
    val = ds.split("val", args.val_rows)
    scored = []
    for seed in range(args.supernets):
        sn, train_cpu, cfg = _supernet(ds, args, seed, cache)
        scorer = SupernetScorer(sn, ds.split("train"), val, finetune_steps=args.finetune_steps,
                                batch_size=args.finetune_batch, seed=seed)
        c0 = time.process_time()
        scores = np.array([scorer.evaluate(s)["logloss"] for s in specs])
        scored.append((seed, scores, train_cpu, (time.process_time() - c0) / len(specs), cfg))
    stored = load_truth(args.results / TRUTH_CSV.name)
    if args.stored_truth_only:
        truth = pd.DataFrame([row for row in stored.values() if row["data"] == ds.content_hash
                              and row["steps"] == recipe.steps and row["lr"] == recipe.lr])
    else:
        truth = truth_table(specs, ds, recipe, (0, 1), cache=TruthCache(cache), stored=stored, threads=args.threads)
    wide = truth.pivot_table(index="model", columns="seed", values="test_logloss").dropna()
    have = [i for i, s in enumerate(specs) if f"arch:{s.hash}" in wide.index]
    if len(have) < 2:
        raise SystemExit(f"only {len(have)} architectures have truth for both seeds; run benchmarks.task_truth")
    specs = [specs[i] for i in have]
    t0, t1 = (np.array([wide.loc[f"arch:{s.hash}", k] for s in specs]) for k in (0, 1))
    t_mean = (t0 + t1) / 2
    rows, summary = [], []
    for seed, scores, train_cpu, score_cpu, cfg in scored:
        scores = scores[have]
        rng = np.random.default_rng([seed, 7])
        ag = agreement(scores, t_mean, rng)
        summary.append({"variant": args.variant, "supernet_seed": seed, **ag,
                        "kendall_vs_seed0": kendall_tau(scores, t0), "kendall_vs_seed1": kendall_tau(scores, t1),
                        "truth_seed0_vs_seed1": kendall_tau(t0, t1),
                        "supernet_train_cpu_s": train_cpu, "score_cpu_s_per_arch": score_cpu,
                        "score_median": float(np.median(scores)), "score_min": float(scores.min()),
                        "finetune_steps": args.finetune_steps, "finetune_batch": args.finetune_batch,
                        "val_rows": args.val_rows, **{f"supernet_{k}": v for k, v in cfg.items() if k != "seed"},
                        "truth_steps": recipe.steps, "truth_lr": recipe.lr, "threads": args.threads,
                        "cores": os.cpu_count(), "data": ds.content_hash[:16]})
        for s, sc, a, b in zip(specs, scores, t0, t1):
            rows.append({"variant": args.variant, "supernet_seed": seed, "hash": s.hash[:16], "score": sc,
                         "truth_mean": (a + b) / 2, "truth_seed0": a, "truth_seed1": b, "data": ds.content_hash[:16]})
        print(f"supernet {seed}: Kendall {ag['kendall_tau']:.3f} [{ag['kendall_lo']:.3f}, {ag['kendall_hi']:.3f}], "
              f"Spearman {ag['spearman']:.3f}, top-10 {ag['top10_overlap']} ({len(specs)} architectures)",
              file=sys.stderr, flush=True)
    s = pd.DataFrame(summary)
    mean = {"variant": args.variant, "supernet_seed": "mean",
            **{k: float(s[k].mean()) for k in ("kendall_tau", "kendall_lo", "kendall_hi", "spearman", "top10_overlap",
                                             "kendall_vs_seed0", "kendall_vs_seed1", "truth_seed0_vs_seed1",
                                             "supernet_train_cpu_s", "score_cpu_s_per_arch")},
            "kendall_sd_over_supernets": float(s["kendall_tau"].std(ddof=1)) if len(s) > 1 else float("nan"),
            "n": len(specs), "data": ds.content_hash[:16]}
    summary.append(mean)
    for name, new in (("supernet_ranking.csv", rows), ("supernet_ranking_summary.csv", summary)):
        path = args.results / name
        old = pd.read_csv(path).to_dict("records") if path.is_file() else []
        old = [o for o in old if o["variant"] != args.variant]
        write_rows(old + new, path)
    print(pd.DataFrame(summary).T.to_string())
    print(f"wrote {args.results / 'supernet_ranking.csv'} and {args.results / 'supernet_ranking_summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
