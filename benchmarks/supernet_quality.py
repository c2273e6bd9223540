"""Does a cheap scorer rank architectures like training from scratch does?

Noise-aware: the truth is the mean test log loss of two from-scratch trainings of each
architecture (``benchmarks.task_truth``: the same >= 40 random NASRec-Full
architectures, cached in ``results/scratch_truth.csv`` and the truth cache; missing
ones are trained here; ``--truth-seeds 0 1 2 3`` makes it the mean of four, and
``--truth-agg median`` the median; rows name it in ``truth``, and ``truth_mean`` holds
it whichever it is), and every scorer variant is measured on >= 3 independently
trained supernets (seeds 0, 1, 2 ...). Supernet checkpoints are cached by their
settings, so scorer variants on the same supernets train nothing again.

Scorers (``--scorer``): ``supernet``, cosearch's ``InheritedScorer`` (head fine-tuned by
Adagrad steps, or ``--head-fit probe``: a linear probe fitted to convergence);
``params``, the standalone model's parameter count (zero-cost); ``gradnorm`` and
``snip``, zero-cost gradient proxies at initialisation (one fit per seed); ``short``, a
from-scratch training of ``--short-steps`` steps (the truth recipe with fewer steps, its
own schedule; validation log loss, never test; one fit per seed, cached like the truth,
its CPU time the training's; training seeds 100, 101, ...); ``features``, a ridge
ranker on ``benchmarks._rank.arch_features`` judged leave-one-out (each architecture is
ranked by a fit that never saw its truth; the labels cost the truth's CPU time).
``--ranker`` adds the same leave-one-out ridge on the features plus the supernet score
(``+ranker``) and on log parameter count plus the supernet score (``+params``), and the
label-free ``+rank-params``: the mean of the score's rank and the parameter count's rank.
``--scorer stored --from-variant NAME`` reuses the per-architecture scores that variant
NAME stored in ``supernet_ranking.csv`` (scored on this data set) and judges them against
the truth of ``--truth-lr``/``--truth-steps``, so a new truth needs no supernet again
(``--ranker`` refits its leave-one-out rankers to the new truth). Rows record the truth
version (``nasrec.scratch.TRUTH_VERSION``) and the network revision of the supernets;
rows written before those columns existed are truth version 1, network 1.

Per variant and supernet: Kendall tau with a bootstrap 95% interval, Spearman rho and
top-10 overlap against the truth, the same against each single truth seed, and CPU
seconds: supernet training (once per supernet) and scoring per architecture.

Writes ``results/supernet_ranking.csv`` (one row per variant, supernet seed and
architecture) and ``results/supernet_ranking_summary.csv`` (one row per variant and
supernet seed, plus a ``mean`` row per variant); rows of other variants, and of the same
variant judged against another truth (``truth``) or on another data set, are kept, so
every variant tried stays reported. (The files of the earlier version of this
benchmark, ``supernet_quality*.csv``, describe the earlier 200k-row task and are kept
as they were.)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks._csv import write_rows
from benchmarks._rank import agreement, arch_features, kendall_tau, loo_ridge, rank_with_params
from benchmarks.task_truth import (RESULTS, TRUTH_CSV, bench_archs, bench_data, default_cache, load_truth,
                                   truth_table)
from cosearch.scoring import InheritedScorer
from nasrec import NasRecModel, SyntheticConfig, TrainConfig, build_supernet, load_checkpoint, train_supernet
from nasrec.model import NETWORK_REVISION
from nasrec.scratch import TRUTH_VERSION, TruthCache, TruthRecipe, build, key_hash, truth_key

__all__ = ["kendall_tau", "main", "truth_arrays"]


ZERO_COST = ("gradnorm", "snip")
SHORT_SEED0 = 100


def _supernet(ds, args, seed: int, cache: Path):
    """(supernet, training CPU seconds or nan when loaded, settings): cached by settings."""
    cfg = TrainConfig(steps=args.supernet_steps, batch_size=args.batch_size, lr=args.supernet_lr, seed=seed,
                      initial_accumulator=args.initial_accumulator, paths_per_step=args.paths_per_step,
                      full_path_fraction=args.full_path_fraction)
    tag = (f"{ds.content_hash[:12]}-{args.space}-s{cfg.steps}-lr{cfg.lr}-a{cfg.initial_accumulator}"
           f"-p{cfg.paths_per_step}-f{cfg.full_path_fraction}-n{NETWORK_REVISION}")
    path = cache / f"bench-supernet-{tag}-seed{seed}.pt"
    if path.is_file():
        try:
            sn, state = load_checkpoint(path)
            if state["meta"]["config"] == cfg.to_dict():
                return sn, float("nan"), cfg.to_dict()
        except ValueError as e:
            print(f"warning: {e}; training it again", file=sys.stderr)
    sn = build_supernet(ds.schema, args.space, seed)
    c0 = time.process_time()
    train_supernet(sn, ds.split("train"), cfg, quiet=not sys.stderr.isatty(), checkpoint=path)
    return sn, time.process_time() - c0, cfg.to_dict()


def truth_arrays(specs, ds, recipe, cache: Path, *, results: Path, stored_only: bool, threads: int = 2,
                 seeds=(0, 1)):
    """``(specs that have every seed, t_seed0, t_seed1, ...)``: per-seed test log loss of
    each, from ``results``' truth file, the cache or training (``stored_only``: the file only)."""
    stored = load_truth(results / TRUTH_CSV.name)
    if stored_only:
        # the rows of exactly these trainings: another recipe's (e.g. another clip) never mixes in
        keys = {key_hash(truth_key(ds.content_hash, s, recipe, seed)) for s in specs for seed in seeds}
        truth = pd.DataFrame([row for k, row in stored.items() if k in keys])
    else:
        truth = truth_table(specs, ds, recipe, seeds, cache=TruthCache(cache), stored=stored, threads=threads)
    if truth.empty:
        raise SystemExit(f"no stored truth for this data set and recipe in {results / TRUTH_CSV.name}; "
                         "run benchmarks.task_truth")
    wide = truth.pivot_table(index="model", columns="seed", values="test_logloss")
    missing = [k for k in seeds if k not in wide.columns]
    if missing:
        raise SystemExit(f"no stored truth for seed {missing[0]}; run benchmarks.task_truth --seeds "
                         + " ".join(map(str, seeds)))
    wide = wide[list(seeds)].dropna()
    have = [s for s in specs if f"arch:{s.hash}" in wide.index]
    if len(have) < 3:
        raise SystemExit(f"only {len(have)} architectures have truth for seeds {' '.join(map(str, seeds))}; "
                         "run benchmarks.task_truth")
    return (have, *(np.array([wide.loc[f"arch:{s.hash}", k] for s in have]) for k in seeds))


def _params(spec, schema) -> int:
    return int(sum(p.numel() for p in NasRecModel(spec, schema).parameters()))


def _zero_cost(specs, ds, seed: int, proxy: str) -> np.ndarray:
    """Zero-cost proxy of each spec at its initial weights (seed ``seed``), from the loss
    gradient on one training batch of 512 rows: ``gradnorm`` (L2 norm of the gradient)
    or ``snip`` (sum of |weight x gradient|; Lee et al. 2019, as compared in Abdelfattah
    et al. 2021). Lower scores rank first, so both are negated: a larger value is taken
    to mean a more trainable network."""
    d, x, y = next(ds.split("train").infinite_batches(512, np.random.default_rng([seed, 11]), "cpu"))
    out = []
    for spec in specs:
        net = build(spec, ds.schema, seed)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(d, x), y.float())
        loss.backward()
        with torch.no_grad():
            ps = [p for p in net.parameters() if p.grad is not None]
            if proxy == "gradnorm":
                v = float(torch.sqrt(sum((p.grad ** 2).sum() for p in ps)))
            else:
                v = float(sum((p.grad * p).abs().sum() for p in ps))
        out.append(-v)
    return np.array(out)


def _scored(specs, ds, args, cache: Path, truth_mean: np.ndarray):
    """``[(fit seed, scores [n], fit CPU s, score CPU s per arch, settings)]`` of the scorer."""
    if args.scorer == "params":  # zero-cost: a bigger model scores worse
        c0 = time.process_time()
        scores = np.array([_params(s, ds.schema) for s in specs], dtype=float)
        return [(0, scores, 0.0, (time.process_time() - c0) / len(specs), {})]
    if args.scorer in ZERO_COST:  # one fit per initialisation seed
        out = []
        for seed in range(args.supernets):
            c0 = time.process_time()
            scores = _zero_cost(specs, ds, seed, args.scorer)
            out.append((seed, scores, 0.0, (time.process_time() - c0) / len(specs), {}))
        return out
    if args.scorer == "short":  # low-fidelity training: the truth recipe cut to --short-steps
        recipe = TruthRecipe(steps=args.short_steps, batch_size=TruthRecipe().batch_size, lr=args.truth_lr,
                             lr_fan_in=args.truth_lr_fan_in, test=not args.short_no_test)
        out = []
        for seed in range(args.supernets):
            # seeds 100+: a short run must not share its initial weights with a truth seed
            jobs = [(s, SHORT_SEED0 + seed) for s in specs]
            res = TruthCache(cache).get_or_train_jobs(jobs, ds, recipe, workers=args.jobs,
                                                      threads=max(1, args.threads // args.jobs))
            scores = np.array([r["val_logloss"] for r in res])
            cpu = float(np.mean([r["cpu_seconds"] for r in res]))
            out.append((seed, scores, 0.0, cpu, {"short_steps": args.short_steps}))
        return out
    if args.scorer == "stored":  # another variant's scores against this truth
        return _stored_scores(specs, ds, args)
    if args.scorer == "features":  # learned ranker on the architecture alone, leave-one-out
        c0 = time.process_time()
        x = np.array([list(arch_features(s, _params(s, ds.schema)).values()) for s in specs])
        scores = loo_ridge(x, truth_mean)
        return [(0, scores, 0.0, (time.process_time() - c0) / len(specs), {})]
    out = []
    val = ds.split("val", args.val_rows)
    for seed in range(args.supernets):
        sn, train_cpu, cfg = _supernet(ds, args, seed, cache)
        scorer = InheritedScorer(sn, ds.split("train"), val, finetune_steps=args.finetune_steps,
                                 batch_size=args.finetune_batch, seed=seed, head_fit=args.head_fit,
                                 probe_l2=args.probe_l2)
        c0 = time.process_time()
        scores = scorer.score(specs)
        out.append((seed, scores, train_cpu, (time.process_time() - c0) / len(specs), cfg))
    return out


def _stored_scores(specs, ds, args):
    path = args.results / "supernet_ranking.csv"
    ranking = pd.read_csv(path, dtype={"supernet_seed": str, "hash": str, "data": str}) if path.is_file() \
        else pd.DataFrame(columns=["variant", "supernet_seed", "hash", "score", "data"])
    sub = ranking[(ranking["variant"] == args.from_variant) & (ranking["data"] == ds.content_hash[:16])]
    if sub.empty:
        raise SystemExit(f"no stored scores of variant {args.from_variant!r} for this data set in {path}")
    out = []
    for seed, g in sub.groupby("supernet_seed", sort=True):
        by_hash = dict(zip(g["hash"], g["score"]))
        missing = [s.hash[:16] for s in specs if s.hash[:16] not in by_hash]
        if missing:
            raise SystemExit(f"variant {args.from_variant!r} (fit {seed}) has no score for architecture "
                             f"{missing[0]} ({len(missing)} missing)")
        out.append((int(seed), np.array([by_hash[s.hash[:16]] for s in specs], dtype=float), float("nan"),
                    float("nan"), {}))
    return out


#: What rows written before the ``truth`` column were judged against.
FIRST_TRUTH = "mean of seeds 0 1"


def _judged(row: dict) -> tuple:
    truth = row.get("truth")
    return row["variant"], FIRST_TRUTH if truth is None or pd.isna(truth) else truth, row.get("data")


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` without the rows that ``new`` measures again (the same variant judged against
    the same truth on the same data set), then ``new``: a variant judged against another
    truth keeps both."""
    again = {_judged(r) for r in new}
    return [r for r in old if _judged(r) not in again] + new


def main(argv=None) -> int:
    d, r = SyntheticConfig(), TruthRecipe()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="default", help="name of this scorer variant in the result files")
    ap.add_argument("--scorer", default="supernet",
                    choices=("supernet", "params", "features", "short", "stored") + ZERO_COST,
                    help="supernet: inherited weights, head fine-tuned (cosearch's scorer); params: parameter "
                         "count (zero-cost); features: leave-one-out ridge ranker on architecture features; "
                         "gradnorm, snip: zero-cost gradient proxies at initialisation (one per --supernets seed); "
                         "short: from-scratch training of --short-steps steps (validation log loss); "
                         "stored: the scores --from-variant stored, against this truth")
    ap.add_argument("--from-variant", default=None, help="with --scorer stored: whose stored scores to reuse")
    ap.add_argument("--ranker", action="store_true",
                    help="also report '<variant>+ranker' and '<variant>+params': leave-one-out ridge on "
                         "the supernet score and all architecture features, or log parameter count only")
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--supernets", type=int, default=3, help="independently trained supernets (seeds 0..N-1)")
    ap.add_argument("--rows", type=int, default=d.rows)
    ap.add_argument("--max-cardinality", type=int, default=d.max_cardinality)
    ap.add_argument("--space", default="full", choices=("full",), help="the truth architectures' space")
    ap.add_argument("--supernet-steps", type=int, default=600)
    ap.add_argument("--supernet-lr", type=float, default=0.03)
    ap.add_argument("--initial-accumulator", type=float, default=0.0)
    ap.add_argument("--paths-per-step", type=int, default=1)
    ap.add_argument("--full-path-fraction", type=float, default=TrainConfig.full_path_fraction)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--finetune-steps", type=int, default=8, help="head fine-tuning steps per architecture")
    ap.add_argument("--finetune-batch", type=int, default=128)
    ap.add_argument("--head-fit", default="adagrad", choices=("adagrad", "probe"),
                    help="adagrad: --finetune-steps Adagrad steps on the head; probe: the head fitted to "
                         "convergence on the same rows (L-BFGS, --probe-l2)")
    ap.add_argument("--probe-l2", type=float, default=1e-4)
    ap.add_argument("--val-rows", type=int, default=2048, help="validation rows per score")
    ap.add_argument("--short-steps", type=int, default=50, help="with --scorer short: training steps per score")
    ap.add_argument("--jobs", type=int, default=2, help="with --scorer short: trainings at once")
    ap.add_argument("--short-no-test", action="store_true",
                    help="with --scorer short: skip the test split (faster; a separate cache entry)")
    ap.add_argument("--truth-steps", type=int, default=r.steps)
    ap.add_argument("--truth-lr", type=float, default=r.lr)
    ap.add_argument("--truth-lr-fan-in", type=int, default=r.lr_fan_in,
                    help="the truth recipe's lr_fan_in (0: one learning rate; also used by --scorer short)")
    ap.add_argument("--truth-seeds", type=int, nargs="+", default=[0, 1],
                    help="the from-scratch seeds the truth is built from (two or more)")
    ap.add_argument("--truth-agg", default="mean", choices=("mean", "median"),
                    help="the truth of an architecture: the mean or the median of its seeds' test log loss")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="truth and supernet cache (default $COSEARCH_CACHE)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--stored-truth-only", action="store_true",
                    help="rank only the architectures whose truth is already stored (train none)")
    args = ap.parse_args(argv)
    if args.supernets < 1 or args.archs < 3:
        ap.error("need --supernets >= 1 and --archs >= 3")
    if args.short_steps < 1 or args.jobs < 1:
        ap.error("need --short-steps >= 1 and --jobs >= 1")
    if args.ranker and args.scorer not in ("supernet", "stored", "short"):
        ap.error("--ranker adds features to a scorer's score; use it with --scorer supernet, short or stored")
    if len(args.truth_seeds) < 2 or len(set(args.truth_seeds)) != len(args.truth_seeds):
        ap.error(f"--truth-seeds: give two or more distinct seeds, got {' '.join(map(str, args.truth_seeds))}")
    if (args.scorer == "stored") != (args.from_variant is not None):
        ap.error("--scorer stored and --from-variant go together")
    torch.set_num_threads(args.threads)
    cache = args.cache or default_cache()
    ds = bench_data(SyntheticConfig(rows=args.rows, max_cardinality=args.max_cardinality))
    try:
        recipe = TruthRecipe(steps=args.truth_steps, batch_size=r.batch_size, lr=args.truth_lr,
                             lr_fan_in=args.truth_lr_fan_in)
    except ValueError as e:
        ap.error(str(e))
    specs, *per_seed = truth_arrays(bench_archs(args.archs, 0), ds, recipe, cache, results=args.results,
                                    stored_only=args.stored_truth_only, threads=args.threads,
                                    seeds=tuple(args.truth_seeds))
    t0, t1 = per_seed[0], per_seed[1]
    truth_name = f"{args.truth_agg} of seeds {' '.join(map(str, args.truth_seeds))}" + (
        f", lr_fan_in {recipe.lr_fan_in}" if recipe.lr_fan_in else "")
    truth = (np.median if args.truth_agg == "median" else np.mean)(np.column_stack(per_seed), axis=1)
    scored = [(args.variant, *s) for s in _scored(specs, ds, args, cache, truth)]
    if args.ranker:
        params = [_params(s, ds.schema) for s in specs]
        x = np.array([list(arch_features(s, n).values()) for s, n in zip(specs, params)])
        log_params = np.log2(params)
        for _, seed, scores, train_cpu, score_cpu, cfg in list(scored):
            ranked = loo_ridge(np.column_stack([x, scores]), truth)
            scored.append((f"{args.variant}+ranker", seed, ranked, train_cpu, score_cpu, cfg))
            ranked = loo_ridge(np.column_stack([log_params, scores]), truth)
            scored.append((f"{args.variant}+params", seed, ranked, train_cpu, score_cpu, cfg))
            # label-free: equal weights, so nothing here is fitted to the truth
            scored.append((f"{args.variant}+rank-params", seed, rank_with_params(scores, params),
                           train_cpu, score_cpu, cfg))
    scorer_name = f"stored:{args.from_variant}" if args.scorer == "stored" else args.scorer
    rows, summary = [], []
    for variant, seed, scores, train_cpu, score_cpu, cfg in scored:
        rng = np.random.default_rng([seed, 7])
        ag = agreement(scores, truth, rng)
        summary.append({"variant": variant, "scorer": scorer_name, "supernet_seed": seed, **ag,
                        "kendall_vs_seed0": kendall_tau(scores, t0), "kendall_vs_seed1": kendall_tau(scores, t1),
                        "truth_seed0_vs_seed1": kendall_tau(t0, t1), "truth": truth_name,
                        "supernet_train_cpu_s": train_cpu, "score_cpu_s_per_arch": score_cpu,
                        "score_median": float(np.median(scores)), "score_min": float(scores.min()),
                        "finetune_steps": args.finetune_steps, "finetune_batch": args.finetune_batch,
                        "head_fit": args.head_fit, "probe_l2": args.probe_l2,
                        "val_rows": args.val_rows, **{f"supernet_{k}": v for k, v in cfg.items() if k != "seed"},
                        "truth_steps": recipe.steps, "truth_lr": recipe.lr,
                        "truth_lr_fan_in": recipe.lr_fan_in, "truth_version": TRUTH_VERSION,
                        "network": NETWORK_REVISION if args.scorer != "stored" else None, "threads": args.threads,
                        "cores": os.cpu_count(), "data": ds.content_hash[:16]})
        for k, (s, sc) in enumerate(zip(specs, scores)):
            rows.append({"variant": variant, "supernet_seed": seed, "hash": s.hash[:16], "score": sc,
                         "truth_mean": truth[k], "truth": truth_name,
                         **{f"truth_seed{j}": t[k] for j, t in zip(args.truth_seeds, per_seed)},
                         "truth_version": TRUTH_VERSION, "data": ds.content_hash[:16]})
        print(f"{variant} fit {seed}: Kendall {ag['kendall_tau']:.3f} [{ag['kendall_lo']:.3f}, {ag['kendall_hi']:.3f}], "
              f"Spearman {ag['spearman']:.3f}, top-10 {ag['top10_overlap']} ({len(specs)} architectures)",
              file=sys.stderr, flush=True)
    s = pd.DataFrame(summary)
    for variant in dict.fromkeys(s["variant"]):
        v = s[s["variant"] == variant]
        summary.append({"variant": variant, "scorer": scorer_name, "supernet_seed": "mean",
                        **{k: float(v[k].mean()) for k in
                           ("kendall_tau", "kendall_lo", "kendall_hi", "spearman", "top10_overlap",
                            "kendall_vs_seed0", "kendall_vs_seed1", "truth_seed0_vs_seed1",
                            "supernet_train_cpu_s", "score_cpu_s_per_arch")},
                        "kendall_sd_over_supernets": float(v["kendall_tau"].std(ddof=1)) if len(v) > 1 else float("nan"),
                        "n": len(specs), "truth": truth_name, "truth_version": TRUTH_VERSION,
                        "data": ds.content_hash[:16]})
    for name, new in (("supernet_ranking.csv", rows), ("supernet_ranking_summary.csv", summary)):
        path = args.results / name
        old = pd.read_csv(path).to_dict("records") if path.is_file() else []
        write_rows(merge_rows(old, new), path)
    print(pd.DataFrame(summary).T.to_string())
    print(f"wrote {args.results / 'supernet_ranking.csv'} and {args.results / 'supernet_ranking_summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
