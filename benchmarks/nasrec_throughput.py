"""Training throughput (samples/s) of the supernet (single-operator any-connection
sampling, the regime after warm-up) and of DLRM of similar size on the same data and
training loop. Target: supernet at no less than half of DLRM's throughput.

The models alternate in short rounds (supernet, DLRM, supernet, ...) so that both see
the same machine load; the ratio is the median over rounds of the per-round ratio.
The first round is a warm-up and is not counted. ``--standalone`` adds sampled
architectures trained as ordinary models: if they are as slow as the supernet, the
gap to DLRM is the cost of the searched operators, not of weight sharing.

Writes benchmarks/results/nasrec_throughput_<space>.csv.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from benchmarks._csv import write_rows
from benchmarks.task_truth import RESULTS, default_data
from nasrec import NasRecModel, TrainConfig, build_supernet, sample, train_model, train_supernet
from nasrec.util import seeded_torch
from nasrec.baselines import DLRM


def _dense_params(model: nn.Module) -> int:
    """Parameters outside the embedding tables."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("embedding."))


def _similar_dlrm(schema, target: float, seed: int) -> DLRM:
    """DLRM whose top MLP (h, h, h/2) brings its dense parameter count closest to ``target``
    ("DLRM of similar size" as the mean sampled subnet)."""
    best = None
    for h in (256, 512, 768, 1024, 1536, 2048, 3072):
        with seeded_torch(seed):
            m = DLRM(schema, top=(h, h, h // 2))
        if best is None or abs(_dense_params(m) - target) < abs(_dense_params(best) - target):
            best = m
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=None, help="default: the default data set's")
    ap.add_argument("--steps", type=int, default=20, help="training steps per model per round")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up round)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--space", default="full", choices=("full", "small"))
    ap.add_argument("--plain", action="store_true",
                    help="also time the supernet with plain full-size gradient updates (sliced=False)")
    ap.add_argument("--standalone", action="store_true",
                    help="also time sampled architectures trained as standalone models (no weight sharing)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = default_data(args.rows, args.seed)
    train = ds.split("train")
    # full_path_fraction=0: measure the sampled-subnet regime that dominates training.
    sn = build_supernet(ds.schema, args.space, args.seed)
    rng = np.random.default_rng([args.seed, 7])
    with seeded_torch(args.seed):
        sub = float(np.mean([_dense_params(NasRecModel(sample(rng, sn.space), ds.schema))
                             for _ in range(20)]))
    dlrm = _similar_dlrm(ds.schema, sub, args.seed)
    runs = {f"supernet-{args.space}": lambda cfg: train_supernet(sn, train, cfg),
            "dlrm": lambda cfg: train_model(dlrm, train, cfg)}
    if args.plain:
        runs[f"supernet-{args.space}-plain"] = lambda cfg: train_supernet(sn, train, cfg, sliced=False)
    if args.standalone:
        spec_rng = np.random.default_rng([args.seed, 8])

        def standalone(cfg):
            """Sampled architectures built as ordinary models (no weight sharing), a
            fresh one every ``steps // 4`` steps: what the subnets cost by themselves."""
            seconds, n = 0.0, 0
            for k in range(4):
                with seeded_torch(cfg.seed + k):
                    model = NasRecModel(sample(spec_rng, sn.space), ds.schema)
                steps = max(1, cfg.steps // 4)
                out = train_model(model, train, replace(cfg, steps=steps, seed=cfg.seed + k))
                seconds += out["seconds"]
                n += steps * cfg.batch_size
            return {"samples_per_second": n / seconds}
        runs[f"subnets-{args.space}-standalone"] = standalone
    speed: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds + 1):
        # A new data order each round; the models carry on from their current weights.
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, full_path_fraction=0.0,
                          seed=args.seed * 1000 + r)
        for name, run in runs.items():
            sps = run(cfg)["samples_per_second"]
            if r > 0:
                speed[name].append(sps)
        if r > 0:
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in speed.items()), file=sys.stderr)
    ref = speed["dlrm"]
    emb = sn.embedding.table.weight.numel()
    params = {f"supernet-{args.space}": _dense_params(sn), "dlrm": _dense_params(dlrm),
              f"subnets-{args.space}-standalone": round(sub)}
    rows = []
    for name, v in speed.items():
        ratios = [a / b for a, b in zip(v, ref)]
        rows.append({"model": name, "samples_per_second_median": statistics.median(v),
                     "samples_per_second_min": min(v), "samples_per_second_max": max(v),
                     "ratio_to_dlrm_median": statistics.median(ratios),
                     "ratio_to_dlrm_min": min(ratios), "ratio_to_dlrm_max": max(ratios),
                     "params_dense": params.get(name, params[f"supernet-{args.space}"]),
                     "params_dense_mean_subnet": sub, "params_embedding": emb,
                     "threads": args.threads, "cpu_count": os.cpu_count(), "batch_size": args.batch_size,
                     "steps_per_round": args.steps, "rounds": args.rounds,
                     "seed": args.seed, "data": ds.content_hash[:16]})
    path = write_rows(rows, RESULTS / f"nasrec_throughput_{args.space}.csv")
    for row in rows:
        print(f"{row['model']:>22}: {row['samples_per_second_median']:8.0f} samples/s, "
              f"ratio to DLRM {row['ratio_to_dlrm_median']:.2f} "
              f"[{row['ratio_to_dlrm_min']:.2f}, {row['ratio_to_dlrm_max']:.2f}]")
    ratio = rows[0]["ratio_to_dlrm_median"]
    print(f"supernet/DLRM throughput ratio {ratio:.2f} (target >= 0.5), batch {args.batch_size}, "
          f"{args.threads} threads; wrote {path}")
    return 0 if np.isfinite(ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
