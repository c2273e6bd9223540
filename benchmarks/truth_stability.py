"""Why do some architectures' truth seeds disagree? The first steps of a truth training.

Trains each architecture with the truth recipe (``nasrec.scratch.TruthRecipe``, the
same weights, data order and schedule as ``benchmarks.task_truth``) for its first
``--probe-steps`` steps only, once per ``--lr-fan-in`` setting and seed, and records
what the network outputs on each training batch:

- ``max_logit_swing``: the largest change of the batch's mean logit from one step to
  the next (a logit of 0 is p = 0.5; the task's base rate is a logit of about -1.1);
- ``min_logit_std``: the smallest within-batch logit standard deviation after step 10
  (about 0: the network has collapsed to a constant predictor and must start again);
- ``mean_logit_swing``: the mean of those changes;
- ``logit_mean_first`` and ``logit_mean_last``: the first and last probed batch's mean
  logit, beside ``base_rate_logit``, the training labels' log-odds.

The architectures are the truth benchmark's (``bench_archs``): ``--arch-index`` picks
some by their position in ``scratch_truth``'s list (0-based), by default the four whose
six lr 0.04 seeds spread most and the four that spread least.

Writes ``results/truth_stability.csv``; a rerun replaces the rows of the same ``probe``
(architecture, seed, setting and probe length).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks._csv import replace_rows
from benchmarks.task_truth import RESULTS, bench_archs, default_data
from nasrec.scratch import TruthRecipe, build, truth_splits
from nasrec.train import train_model

__all__ = ["main", "probe"]

#: Positions in ``bench_archs(40, 0)`` of the four architectures whose six lr 0.04 truth
#: seeds spread most (std 0.0065-0.0139, ``scratch_truth.csv``) and the four that spread
#: least (0.0004-0.0006).
DEFAULT_ARCHS = (34, 20, 24, 16, 3, 19, 2, 27)


class _Enough(Exception):
    """Raised from the forward hook to end a probe after its steps."""


def probe(spec, ds, splits, recipe: TruthRecipe, seed: int, steps: int) -> dict:
    """The first ``steps`` training steps of ``spec`` under ``recipe`` (see module doc)."""
    net = build(spec, ds.schema, seed)
    means, stds = [], []

    def hook(module, args, out):
        if module.training:
            z = out.detach()
            means.append(float(z.mean()))
            stds.append(float(z.std()))
            if len(means) > steps:
                raise _Enough

    handle = net.register_forward_hook(hook)
    try:
        cfg = recipe.train_config(seed)
        train_model(net, splits["train"], cfg)
    except _Enough:
        pass
    finally:
        handle.remove()
    means, stds = np.array(means[:steps]), np.array(stds[:steps])
    y_rate = float(np.asarray(splits["train"].label, dtype=np.float64).mean())
    swing = np.abs(np.diff(means))
    return {"max_logit_swing": float(swing.max()), "mean_logit_swing": float(swing.mean()),
            "min_logit_std": float(stds[10:].min()) if steps > 10 else float("nan"),
            "base_rate_logit": float(np.log(y_rate / (1 - y_rate))),
            "logit_mean_first": float(means[0]), "logit_mean_last": float(means[-1])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch-index", type=int, nargs="+", default=list(DEFAULT_ARCHS),
                    help="positions in the truth benchmark's list of 40 architectures (0-39)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--lr-fan-in", type=int, nargs="+", default=[0, 64],
                    help="settings of TruthRecipe.lr_fan_in to compare (0: one learning rate)")
    ap.add_argument("--probe-steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    specs = bench_archs(40, 0)
    bad = [i for i in args.arch_index if not 0 <= i < len(specs)]
    if bad:
        ap.error(f"--arch-index: {bad[0]} is not in 0-{len(specs) - 1}")
    if args.probe_steps < 2:
        ap.error(f"--probe-steps must be >= 2, got {args.probe_steps}")
    try:
        recipes = [TruthRecipe(lr_fan_in=n) for n in args.lr_fan_in]
    except ValueError as e:
        ap.error(str(e))
    if any(args.probe_steps > r.steps for r in recipes):
        ap.error(f"--probe-steps {args.probe_steps} is longer than the recipe's {recipes[0].steps} steps")
    torch.set_num_threads(args.threads)
    ds = default_data()
    splits = truth_splits(ds)
    out = args.results / "truth_stability.csv"
    rows = []
    for i in args.arch_index:
        for recipe in recipes:
            for seed in args.seeds:
                r = probe(specs[i], ds, splits, recipe, seed, args.probe_steps)
                rows.append({"probe": f"{specs[i].hash[:16]}:{seed}:{recipe.lr_fan_in}:{args.probe_steps}",
                             "arch_index": i, "arch": specs[i].hash[:16], "seed": seed,
                             "lr_fan_in": recipe.lr_fan_in, "lr": recipe.lr, "steps": recipe.steps,
                             "probe_steps": args.probe_steps, **r, "data": ds.content_hash[:16]})
                print(f"arch {i} lr_fan_in {recipe.lr_fan_in} seed {seed}: logit swing max "
                      f"{r['max_logit_swing']:.2f}, min logit std {r['min_logit_std']:.3f}",
                      file=sys.stderr, flush=True)
    replace_rows(rows, out, "probe")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
