"""Did a run's first verification round pick well, or is its pool the limit?

Trains in full, with the run's own verification recipe and seed, every architecture
of a finished ``cosearch run``'s first round (``rescore_logloss`` in its ``front.csv``),
or its ``--top N`` by that round's validation log loss, and compares:

- where the round's picks (the ``top_k`` verified) rank among the pool by full-training
  validation and test log loss;
- Kendall tau of the search score and of the first round's loss against full-training
  test log loss, within the pool;
- the pool's best against the run's best baseline.

Trainings share the run's truth cache, so the run's own verified members and the
baselines are not trained again. Writes ``results/verify_pool.csv`` (one row per pool
architecture; rows of other runs are kept) and prints a summary.

    python3 -m benchmarks.verify_pool cosearch-run [--top 32] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from benchmarks._csv import replace_rows
from benchmarks._rank import kendall_tau
from benchmarks.task_truth import RESULTS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks.verify_pool", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a finished cosearch run folder")
    ap.add_argument("--top", type=int, default=None, help="only the N best of the round (default: all of it)")
    ap.add_argument("--workers", type=int, default=2, help="trainings at once")
    ap.add_argument("--label", default=None,
                    help="names the run in the results file (default: the run folder's name); its rows replace "
                         "earlier rows of the same label")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if (args.top is not None and args.top < 1) or args.workers < 1:
        ap.error("--top and --workers must be positive")
    from cosearch.pipeline import load_run, verification_recipe
    from nasrec.data import Dataset
    from nasrec.scratch import TruthCache
    from nasrec.space import ArchSpec
    try:
        cfg, meta = load_run(args.run)
    except ValueError as e:
        ap.error(str(e))
    fpath, bpath = args.run / "front.csv", args.run / "baselines.csv"
    if not fpath.is_file() or not fpath.stat().st_size:
        ap.error(f"{args.run} has no front.csv: is the run finished?")
    front = pd.read_csv(fpath, dtype={"arch_hash": str})
    if "rescore_logloss" not in front or front["rescore_logloss"].isna().all():
        ap.error(f"{args.run} had no first verification round ([verify] rescore was off)")
    if "pareto_layer" not in front:  # a run from before the layered pool: front members only
        front["pareto_layer"] = 1
    pool = (front.dropna(subset=["rescore_logloss"]).drop_duplicates("arch_hash")
            .sort_values("rescore_logloss", kind="stable"))
    if args.top is not None:
        pool = pool.head(args.top)
    ds = Dataset(meta["dataset"])
    recipe = verification_recipe(cfg, ds)
    print(f"training {len(pool)} architectures of {args.run}'s first round in full ({recipe.steps} steps)",
          file=sys.stderr, flush=True)
    res = TruthCache(Path(meta["cache_dir"]) / "truth").get_or_train_many(
        [ArchSpec.from_json(a) for a in pool["arch"]], ds, recipe, cfg.seed, workers=args.workers)
    pool = pool.assign(full_val_logloss=[r["val_logloss"] for r in res],
                       full_test_logloss=[r["test_logloss"] for r in res],
                       full_cpu_seconds=[r["cpu_seconds"] for r in res])
    base = pd.read_csv(bpath) if bpath.is_file() and bpath.stat().st_size else pd.DataFrame()
    best_base = base.dropna(subset=["test_logloss"]).sort_values("test_logloss").head(1) if len(base) else base
    label = args.label or args.run.resolve().name
    rows = [{"run": label, "data": ds.content_hash[:16], "seed": cfg.seed,
             "pool": cfg.verify.pool, "rescore": cfg.verify.rescore, "rescore_steps": cfg.verify.rescore_steps,
             "arch_hash": r.arch_hash, "pareto_layer": r.pareto_layer, "search_logloss": r.logloss,
             "latency_s": r.latency_s, "rescore_logloss": r.rescore_logloss, "verified_by_run": int(r.verified),
             "full_val_logloss": r.full_val_logloss, "full_test_logloss": r.full_test_logloss,
             "full_cpu_seconds": r.full_cpu_seconds, "train_steps": recipe.steps,
             "best_baseline": best_base["model"].iloc[0] if len(best_base) else "",
             "best_baseline_test_logloss": float(best_base["test_logloss"].iloc[0]) if len(best_base) else float("nan"),
             "cores": os.cpu_count()} for r in pool.itertuples()]
    path = args.results / "verify_pool.csv"
    replace_rows(rows, path, "run")
    by_val = pool.sort_values("full_val_logloss", kind="stable")["arch_hash"].tolist()
    by_test = pool.sort_values("full_test_logloss", kind="stable")["arch_hash"].tolist()
    picked = pool.loc[pool["verified"] == 1, "arch_hash"].tolist()
    print(f"pool of {len(pool)}: full-training test log loss {pool['full_test_logloss'].min():.4f} to "
          f"{pool['full_test_logloss'].max():.4f}")
    for h in picked:
        print(f"  verified by the run: {h}, rank {by_val.index(h) + 1} by full validation, "
              f"{by_test.index(h) + 1} by test")
    test = pool["full_test_logloss"]
    print(f"Kendall tau against full test log loss: search score {kendall_tau(pool['logloss'], test):.3f}, "
          f"first round {kendall_tau(pool['rescore_logloss'], test):.3f}")
    if len(best_base):
        print(f"best baseline: {best_base['model'].iloc[0]} {float(best_base['test_logloss'].iloc[0]):.4f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
