"""Do the supernet's paths learn at all? A diagnosis of issue 14's ranking failure.

Trains one supernet per variant (the co-search's recipe: 600 steps of 512 rows, Adagrad
lr 0.03, no full-path warm-up, NASRec's published embedding) on the default task and
measures, over the 40 truth architectures of ``benchmarks.supernet_quality``:

- the training loss (mean of the first and of the last 100 steps; the constant
  predictor scores about 0.564 on this task);
- the standard deviation of each architecture's logits in the supernet, before any head
  fitting, over 1,024 validation rows (``logit_std_*``; ``logit_std_init_median``: the
  same at initialisation): near 0, the path outputs a constant and any score is the
  head's fit to the click rate;
- Kendall tau (bootstrap 95% interval), Spearman and top-10 overlap of the default
  supernet score (``cosearch.scoring.InheritedScorer``, 8 head steps) against the
  mean of the two from-scratch seeds (stored truth only);
- CPU seconds of supernet training.

Variants (``--variants``, comma-separated):

- ``random``: NASRec's sampling, one random architecture per step (the default);
- ``random-lr0.01``: the same at lr 0.01;
- ``random-bayes``: the same, trained on the synthetic task's true click
  probabilities instead of 0/1 labels (a perfect teacher: tells whether label noise or
  the missing distillation is what stops the paths);
- ``random-paths4``: four random architectures per step, operators spread fairly
  (FairNAS), each on a quarter of the batch;
- ``random-frozen-head``: the head's weights stay at their random initialisation (only
  its bias trains), so it cannot shrink towards the constant predictor and every path
  must learn to feed one fixed direction;
- ``fixed``: the first truth architecture at every step (one path: does the supernet's
  machinery train at all?);
- ``fixed-last``: random blocks, but the last block always the first truth
  architecture's;
- ``pool8``: eight fixed random architectures (not among the 40), one per step;
- ``random-logged``: ``random`` drawn through a sampler that records each step's
  architecture (the same distribution, another random stream), and writes every step's
  loss beside its architecture's last block and operator counts to
  ``results/supernet_paths_steps.csv``: which paths blow the training up.

Writes ``results/supernet_paths.csv`` (one row per variant, seed and step count; other
rows kept).

    python3 -m benchmarks.supernet_paths [--variants random,fixed] [--seed 0]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks._csv import write_rows
from benchmarks._rank import agreement
from benchmarks.supernet_quality import truth_arrays
from benchmarks.task_truth import RESULTS, bench_archs, bench_data, default_cache
from cosearch.scoring import InheritedScorer
from nasrec import SyntheticConfig, TrainConfig, build_supernet, train_supernet
from nasrec.model import NETWORK_REVISION
from nasrec.scratch import TruthRecipe
from nasrec.space import sample

__all__ = ["VARIANTS", "main"]

VARIANTS = ("random", "random-lr0.01", "random-bayes", "random-paths4", "random-frozen-head", "fixed",
            "fixed-last", "pool8", "random-logged")
#: Generator seed of the pool8 architectures (``bench_archs``; the truth uses seed 0).
POOL_SEED = 77
LOGIT_ROWS = 1024


def _setup(variant: str, specs, train, lr: float):
    """(training split, lr, paths per step, sampler or None) of ``variant``."""
    if variant == "random":
        return train, lr, 1, None
    if variant == "random-lr0.01":
        return train, 0.01, 1, None
    if variant == "random-bayes":
        if train.prob is None:
            raise ValueError("random-bayes needs a synthetic data set (true click probabilities)")
        return dataclasses.replace(train, label=train.prob.astype(np.float32)), lr, 1, None
    if variant == "random-paths4":
        return train, lr, 4, None
    if variant == "random-frozen-head":  # the head is frozen in run_variant
        return train, lr, 1, None
    if variant == "fixed":
        def fixed(rng):
            return specs[0]
        return train, lr, 1, fixed
    if variant == "fixed-last":
        last = specs[0].blocks[-1]

        def fixed_last(rng):
            s = sample(rng, specs[0].search_space)
            return dataclasses.replace(s, blocks=s.blocks[:-1] + (last,))
        return train, lr, 1, fixed_last
    if variant == "random-logged":
        space = specs[0].search_space

        def logged(rng):
            spec = sample(rng, space)
            logged.drawn.append(spec)
            return spec
        logged.drawn = []
        return train, lr, 1, logged
    if variant == "pool8":
        pool = bench_archs(8, POOL_SEED)

        def pool8(rng):
            return pool[int(rng.integers(len(pool)))]
        return train, lr, 1, pool8
    raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")


def run_variant(variant: str, ds, specs, truth_mean, *, seed: int, steps: int, lr: float,
                results: Path = RESULTS) -> dict:
    train, lr, paths, sampler = _setup(variant, specs, ds.split("train"), lr)
    cfg = TrainConfig(steps=steps, batch_size=512, lr=lr, seed=seed, full_path_fraction=0.0,
                      paths_per_step=paths)
    sn = build_supernet(ds.schema, "full", seed)
    if variant == "random-frozen-head":
        sn.head.weight.requires_grad_(False)
    val = ds.split("val", 2048)
    n = min(LOGIT_ROWS, len(val))
    dense = torch.from_numpy(val.dense[:n])
    ids = torch.from_numpy(val.sparse[:n].astype(np.int64))

    def logit_std() -> np.ndarray:
        sn.eval()
        with torch.no_grad():
            return np.array([float(sn(dense, ids, s).std()) for s in specs])
    std0 = logit_std()
    c0 = time.process_time()
    hist = train_supernet(sn, train, cfg, quiet=not sys.stderr.isatty(), sampler=sampler)
    train_cpu = time.process_time() - c0
    losses = np.asarray(hist["train_losses"])
    std = logit_std()
    scorer = InheritedScorer(sn, ds.split("train"), val, finetune_steps=8, batch_size=128, seed=seed)
    scores = scorer.score(specs)
    ag = agreement(scores, truth_mean, np.random.default_rng([seed, 7]))
    if variant == "random-logged":
        _write_steps(sampler.drawn, losses, seed, ds.content_hash[:16], results)
    k = min(100, len(losses))
    return {"variant": variant, "seed": seed, "steps": steps, "lr": lr, "paths_per_step": paths,
            "loss_first100": float(losses[:k].mean()), "loss_last100": float(losses[-k:].mean()),
            "logit_std_median": float(np.median(std)), "logit_std_min": float(std.min()),
            "logit_std_max": float(std.max()), "logit_std_init_median": float(np.median(std0)), **ag, "score_median": float(np.median(scores)),
            "train_cpu_s": train_cpu, "threads": torch.get_num_threads(), "cores": os.cpu_count(),
            "network": NETWORK_REVISION, "data": ds.content_hash[:16]}


def _write_steps(drawn, losses, seed: int, data: str, results: Path = RESULTS) -> Path:
    """One row per training step: its loss and what its architecture's last block and
    live blocks hold."""
    rows = []
    for step, (spec, loss) in enumerate(zip(drawn, losses)):
        live = [b for b, on in zip(spec.blocks, spec.live_blocks()) if on]
        last = spec.blocks[-1]
        rows.append({"seed": seed, "step": step, "loss": float(loss), "last_dense_op": last.dense_op,
                     "last_sparse_op": last.sparse_op, "last_width": last.dense_width,
                     "last_tokens": last.sparse_tokens, "last_interact": last.dense_sparse_interact,
                     "last_fm": last.deep_fm, "live_blocks": len(live),
                     **{f"live_{op}": sum(b.dense_op == op or b.sparse_op == op for b in live)
                        for op in (*spec.search_space.dense_ops, *spec.search_space.sparse_ops)},
                     "data": data})
    return write_rows(rows, results / "supernet_paths_steps.csv")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks.supernet_paths", description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    ap.add_argument("--seed", type=int, default=0, help="supernet seed (weights and sampling)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        print(f"error: unknown variant {bad[0] if bad else args.variants!r}; known: {', '.join(VARIANTS)}",
              file=sys.stderr)
        return 2
    if args.steps < 1 or args.archs < 3 or args.threads < 1:
        print("error: need --steps >= 1, --archs >= 3 and --threads >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    ds = bench_data(SyntheticConfig())
    specs, t0, t1 = truth_arrays(bench_archs(args.archs, 0), ds, TruthRecipe(), default_cache(),
                                 results=args.results, stored_only=True)
    path = args.results / "supernet_paths.csv"
    for v in variants:
        row = run_variant(v, ds, specs, (t0 + t1) / 2, seed=args.seed, steps=args.steps, lr=args.lr,
                          results=args.results)
        print(f"{v}: loss {row['loss_first100']:.4f} -> {row['loss_last100']:.4f}, logit std median "
              f"{row['logit_std_init_median']:.4f} at init -> {row['logit_std_median']:.4f} [{row['logit_std_min']:.4f}, {row['logit_std_max']:.4f}], "
              f"Kendall {row['kendall_tau']:.3f} [{row['kendall_lo']:.3f}, {row['kendall_hi']:.3f}], "
              f"top-10 {row['top10_overlap']}, {row['train_cpu_s']:.0f} CPU-s", flush=True)
        old = pd.read_csv(path, dtype={"data": str}).to_dict("records") if path.is_file() else []
        old = [o for o in old if not (o["variant"] == v and o["seed"] == args.seed and o["steps"] == args.steps
                                      and o["data"] == row["data"])]
        write_rows(old + [row], path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
