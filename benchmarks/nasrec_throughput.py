"""Training throughput (samples/s) of the supernet (single-operator any-connection
sampling, the regime after warm-up) and of DLRM on the same data and loop.
Target: supernet at no less than half of DLRM's throughput.

Writes benchmarks/results/nasrec_throughput_<space>.csv.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd
import torch
from torch import nn

from benchmarks.supernet_quality import default_data, write_csv
from nasrec import NasRecModel, TrainConfig, build_supernet, sample, train_model, train_supernet
from nasrec._util import seeded_torch
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
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--space", default="full", choices=("full", "small"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = default_data(args.rows, args.seed)
    train = ds.split("train")
    # full_path_fraction=0: measure the sampled-subnet regime that dominates training.
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, full_path_fraction=0.0, seed=args.seed)
    rng = np.random.default_rng([args.seed, 7])
    sn = build_supernet(ds.schema, args.space, args.seed)
    with seeded_torch(args.seed):
        sub = float(np.mean([_dense_params(NasRecModel(sample(rng, sn.space), ds.schema))
                             for _ in range(20)]))
    dlrm = _similar_dlrm(ds.schema, sub, args.seed)
    rows = []
    h = train_supernet(sn, train, cfg)
    emb = sn.embedding.table.weight.numel()
    rows.append({"model": f"supernet-{args.space}", "samples_per_second": h["samples_per_second"],
                 "params_dense": _dense_params(sn), "params_dense_mean_subnet": sub, "params_embedding": emb})
    h = train_model(dlrm, train, cfg)
    rows.append({"model": "dlrm", "samples_per_second": h["samples_per_second"],
                 "params_dense": _dense_params(dlrm), "params_dense_mean_subnet": sub, "params_embedding": emb})
    df = pd.DataFrame(rows)
    ratio = df.samples_per_second[0] / df.samples_per_second[1]
    df = df.assign(ratio_to_dlrm=df.samples_per_second / df.samples_per_second[1], threads=args.threads,
                   cpu_count=os.cpu_count(), batch_size=args.batch_size, steps=args.steps,
                   seed=args.seed, data=ds.content_hash[:16])
    path = write_csv(df, f"nasrec_throughput_{args.space}.csv")
    print(df.to_string(index=False))
    print(f"supernet/DLRM throughput ratio {ratio:.2f} (target >= 0.5); wrote {path}")
    return 0 if np.isfinite(ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
