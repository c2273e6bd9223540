"""NASRec's published architectures on the default task, beside the baselines and the
random architectures of ``task_truth``.

NASRec published six searched architectures (``nasrec-configs``: the one-shot evolution
winners on Criteo, Avazu and KDD, each in the NASRec-Full "xlarge" space and the smaller
"autoctr" one). Are they better than random architectures here, and than the baselines?
Each of them and each ``--baselines`` model trains from scratch with the truth recipe
(``nasrec.scratch.TruthRecipe``; ``--lr-fan-in`` applies to architectures only, baselines
keep their own settings) once per ``--seeds``, through the truth cache, so reruns train
nothing twice.

Writes ``published_archs.csv``: one row per model, recipe and seed list (rows of other
recipes, seeds and data sets are kept): test log loss per seed and their mean, and for
every model ``random_better``: how many of the ``--archs`` random architectures of
``task_truth`` have a lower mean at the same recipe and seeds (from ``scratch_truth.csv``;
empty if they have not all been trained).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch

from benchmarks._csv import replace_rows
from benchmarks.task_truth import (RESULTS, TRUTH_CSV, bench_archs, bench_data, default_cache, load_truth,
                                   published_configs_dir)
from nasrec import BASELINES, SyntheticConfig
from nasrec.scratch import TruthCache, TruthRecipe, key_hash, model_key, truth_key
from nasrec.space import load_arch

OUT = "published_archs.csv"


def _random_means(ds, recipe: TruthRecipe, seeds, n_archs: int, stored: dict) -> list[float] | None:
    """The random architectures' mean test log loss over ``seeds``; None if any is missing."""
    means = []
    for spec in bench_archs(n_archs, 0):
        rows = [stored.get(key_hash(truth_key(ds.content_hash, spec, recipe, s))) for s in seeds]
        if any(r is None for r in rows):
            return None
        means.append(statistics.fmean(float(r["test_logloss"]) for r in rows))
    return means


def main(argv=None) -> int:
    r = TruthRecipe()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=Path, default=None,
                    help="folder of the published architecture JSON files (default $NASREC_CONFIGS or "
                         "shared/nasrec-configs)")
    ap.add_argument("--baselines", nargs="*", default=sorted(BASELINES),
                    help=f"baselines to train beside them (default all: {' '.join(sorted(BASELINES))})")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=r.steps, help=f"default {r.steps} (the truth recipe)")
    ap.add_argument("--batch-size", type=int, default=r.batch_size)
    ap.add_argument("--lr-fan-in", type=int, default=r.lr_fan_in,
                    help="the architectures' TruthRecipe.lr_fan_in (0: one learning rate)")
    ap.add_argument("--archs", type=int, default=40, help="random architectures to rank against")
    ap.add_argument("--jobs", type=int, default=1, help="training processes at once")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per training process")
    ap.add_argument("--cache", type=Path, default=None, help="truth cache folder (default $COSEARCH_CACHE/truth)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the result files")
    args = ap.parse_args(argv)
    folder = args.configs or published_configs_dir()
    if folder is None or not folder.is_dir() or not sorted(folder.glob("*.json")):
        ap.error(f"--configs: no architecture JSON files in {folder or 'shared/nasrec-configs'} "
                 "(give the folder or set NASREC_CONFIGS)")
    unknown = [b for b in args.baselines if b not in BASELINES]
    if unknown:
        ap.error(f"--baselines: unknown {' '.join(unknown)}; known: {' '.join(sorted(BASELINES))}")
    if len(set(args.baselines)) != len(args.baselines):
        ap.error(f"--baselines: give each once, got {' '.join(args.baselines)}")
    if len(set(args.seeds)) != len(args.seeds):
        ap.error(f"--seeds: give distinct seeds, got {' '.join(map(str, args.seeds))}")
    if args.archs < 1:
        ap.error(f"--archs must be >= 1, got {args.archs}")
    try:
        recipe = TruthRecipe(steps=args.steps, batch_size=args.batch_size, lr_fan_in=args.lr_fan_in)
        published = [(p.stem, load_arch(p)) for p in sorted(folder.glob("*.json"))]
    except ValueError as e:
        ap.error(str(e))
    seeds = sorted(args.seeds)
    torch.set_num_threads(args.threads)
    ds = bench_data(SyntheticConfig())
    models = published + [(b, b) for b in args.baselines]
    jobs = [(m, s) for _, m in models for s in seeds]
    trained_now: set[int] = set()  # get_or_train_jobs reports only the jobs it trains

    def done(i, result):
        trained_now.add(i)
        name = models[i // len(seeds)][0]
        print(f"{name} seed {jobs[i][1]}: test log loss {result['test_logloss']:.4f} "
              f"({result['train_seconds']:.0f} s)", file=sys.stderr, flush=True)

    got = TruthCache(args.cache or default_cache()).get_or_train_jobs(
        jobs, ds, recipe, workers=args.jobs, threads=args.threads, on_done=done)
    randoms = _random_means(ds, recipe, seeds, args.archs, load_truth(args.results / TRUTH_CSV.name))
    seeds_text = " ".join(map(str, seeds))
    rows = []
    for k, (name, model) in enumerate(models):
        res = got[k * len(seeds):(k + 1) * len(seeds)]
        mean = statistics.fmean(x["test_logloss"] for x in res)
        rec = recipe.for_model(model)
        # one row per model, data set, recipe of the run and seed list
        rows.append({"row": f"{ds.content_hash[:16]}|{model_key(model)}|{recipe.steps}|{recipe.batch_size}|"
                            f"{recipe.lr_fan_in}|{seeds_text}",
                     "model": name, "kind": "baseline" if isinstance(model, str) else "published",
                     "hash": model_key(model), "params": res[0]["params"], "data": ds.content_hash[:16],
                     "seeds": seeds_text, "steps": rec.steps, "lr": rec.lr, "schedule": rec.schedule,
                     "lr_fan_in": rec.lr_fan_in, "arch_lr_fan_in": recipe.lr_fan_in,
                     **{f"test_logloss_seed{s}": x["test_logloss"] for s, x in zip(seeds, res)},
                     "test_logloss_mean": mean,
                     "val_logloss_mean": statistics.fmean(x["val_logloss"] for x in res),
                     "cpu_seconds_median": statistics.median(x["cpu_seconds"] for x in res),
                     "random_archs": args.archs if randoms else "",
                     "random_better": sum(m < mean for m in randoms) if randoms else "",
                     # how this run trained; CPU seconds of cached results come from the run that made them
                     "trained_now": sum(i in trained_now for i in range(k * len(seeds), (k + 1) * len(seeds))),
                     "jobs": args.jobs, "threads": args.threads, "cores": os.cpu_count()})
    out = replace_rows(rows, args.results / OUT, "row")
    print(pd.DataFrame(rows)[["model", "params", "test_logloss_mean", "random_better"]].to_string(index=False))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
