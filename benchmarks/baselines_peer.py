"""The project's baselines against an independent implementation (deepctr-torch, the
``bench`` extra) at equal data and budget.

Both sides see the same ``steps x batch_size`` fresh training rows in the same order
(the truth recipe's seed-0 order) and are tested on the whole test split of the default
data set. The project's models train with ``nasrec.scratch.TruthRecipe`` (Adagrad with
warm-up and cosine decay, clipping 5); the peer trains the way its own ``compile("adagrad")``
and ``fit`` do (Adagrad lr 0.01, no schedule, its own initialisation and its L2 on
embeddings), with the project's layer sizes (``--peer-sizes own`` keeps the peer's
default sizes instead). DLRM has no deepctr-torch counterpart and is trained on our side
only.

Writes ``results/baselines_peer.csv``: one row per model and side, with the gap.

``--tune SCHEDULE:LR[:EPS[:CLIP[:FAN_IN]]] ... [--tune-seeds 0 1]`` instead trains the
project's baselines with each setting (EPS: Adagrad's, CLIP: the gradient-norm clipping,
FAN_IN: ``TruthRecipe.lr_fan_in``, each by default the truth recipe's) and seed and
writes ``results/baselines_tune[_TAG].csv``: validation and test log loss per setting
and seed, and the setting each model would choose by mean validation log loss
(``nasrec.baselines.TRAINING``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from benchmarks.task_truth import default_data, write_csv
from nasrec.scratch import TruthRecipe, train_truth, truth_splits

MODELS = ("deepfm", "dcnv2", "autoint", "xdeepfm", "dlrm")


def _peer_model(name: str, columns, sizes: str):
    from deepctr_torch import models as m
    own = sizes == "own"
    if name == "deepfm":
        return m.DeepFM(columns, columns, **({} if own else {"dnn_hidden_units": (400, 400, 400)}))
    if name == "dcnv2":
        return m.DCN(columns, columns, cross_parameterization="matrix",
                     **({} if own else {"cross_num": 3, "dnn_hidden_units": (512, 256)}))
    if name == "autoint":
        return m.AutoInt(columns, columns, **({} if own else {"att_layer_num": 3, "att_head_num": 2,
                                                            "dnn_hidden_units": ()}))
    if name == "xdeepfm":
        return m.xDeepFM(columns, columns, **({} if own else {"dnn_hidden_units": (400, 400),
                                                            "cin_layer_size": (128, 128), "cin_split_half": False}))
    return None


def _inputs(split, n_dense: int, n_sparse: int, order=None) -> dict:
    sl = order if order is not None else slice(None)
    x = {f"I{j}": split.dense[sl, j] for j in range(n_dense)}
    x.update({f"C{i}": split.sparse[sl, i].astype(np.int64) for i in range(n_sparse)})
    return x


def _peer(name: str, ds, splits, recipe: TruthRecipe, sizes: str) -> dict | None:
    from deepctr_torch.inputs import DenseFeat, SparseFeat
    from nasrec.data import log_loss
    from nasrec.train import auc
    schema = ds.schema
    columns = ([SparseFeat(f"C{i}", vocabulary_size=c + 1, embedding_dim=16) for i, c in enumerate(schema.cardinalities)]
               + [DenseFeat(f"I{j}", 1) for j in range(schema.n_dense)])
    model = _peer_model(name, columns, sizes)
    if model is None:
        return None
    # the rows and order the project's train_model draws for seed 0 (Split.infinite_batches)
    train = splits["train"]
    order = np.random.default_rng([0, 1]).permutation(len(train))[:recipe.steps * recipe.batch_size]
    x = _inputs(train, schema.n_dense, schema.n_sparse, order)
    model.compile("adagrad", "binary_crossentropy")
    t0 = time.perf_counter()
    model.fit(x, train.label[order], batch_size=recipe.batch_size, epochs=1, shuffle=False, verbose=0)
    seconds = time.perf_counter() - t0
    test = splits["test"]
    p = model.predict(_inputs(test, schema.n_dense, schema.n_sparse), batch_size=8192).ravel().astype(np.float64)
    return {"test_logloss": log_loss(test.label, p), "test_auc": auc(test.label, p), "train_seconds": seconds,
            "params": int(sum(q.numel() for q in model.parameters()))}


def _tune_recipe(recipe: TruthRecipe, setting: str) -> TruthRecipe:
    """``recipe`` with ``SCHEDULE:LR[:EPS[:CLIP[:FAN_IN]]]`` applied; ValueError naming a bad setting."""
    parts = setting.split(":")
    if len(parts) not in (2, 3, 4, 5):
        raise ValueError(f"--tune {setting!r}: want SCHEDULE:LR, SCHEDULE:LR:EPS, SCHEDULE:LR:EPS:CLIP "
                         "or SCHEDULE:LR:EPS:CLIP:FAN_IN")
    try:
        nums = [float(v) for v in parts[1:4]]
        return replace(recipe, schedule=parts[0], lr=nums[0], eps=nums[1] if len(nums) > 1 else recipe.eps,
                       clip=nums[2] if len(nums) > 2 else recipe.clip,
                       lr_fan_in=int(parts[4]) if len(parts) > 4 else recipe.lr_fan_in)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--tune {setting!r}: {e}") from None


def _tune(args, ds, splits, recipe: TruthRecipe) -> int:
    from nasrec import build_baseline, evaluate, train_model
    rows = []
    for name in args.models:
        for setting in args.tune:
            rec = _tune_recipe(recipe, setting)
            schedule = rec.schedule
            for seed in args.tune_seeds:
                # a seed fixes the initial weights and the row order, as in the truth
                model = build_baseline(name, ds.schema, seed)
                t0 = time.perf_counter()
                train_model(model, splits["train"], rec.train_config(seed))
                rows.append({"model": name, "schedule": schedule, "lr": rec.lr, "eps": rec.eps, "clip": rec.clip,
                             "lr_fan_in": rec.lr_fan_in,
                             "val_logloss": evaluate(model, splits["val"])["logloss"],
                             "test_logloss": evaluate(model, splits["test"])["logloss"],
                             "train_seconds": time.perf_counter() - t0, "steps": rec.steps,
                             "batch_size": rec.batch_size, "seed": seed, "data": ds.content_hash[:16],
                             "threads": args.threads, "cores": os.cpu_count()})
                print(f"{name} {setting} seed {seed}: val {rows[-1]['val_logloss']:.4f} "
                      f"test {rows[-1]['test_logloss']:.4f}", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    # chosen: the setting with the lowest validation log loss averaged over the seeds
    mean_val = df.groupby(["model", "schedule", "lr", "eps", "clip", "lr_fan_in"])["val_logloss"].transform("mean")
    best = df.assign(mean_val=mean_val).groupby("model")["mean_val"].transform("min")
    df["chosen"] = mean_val == best
    path = write_csv(df, f"baselines_tune{'_' + args.tag if args.tag else ''}.csv")
    print(df.to_string(index=False))
    print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    r = TruthRecipe()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--steps", type=int, default=r.steps)
    ap.add_argument("--lr", type=float, default=r.lr)
    ap.add_argument("--peer-sizes", choices=("ours", "own"), default="ours")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="", help="suffix of the result file")
    ap.add_argument("--tune", nargs="+", default=None, metavar="SCHEDULE:LR",
                    help="tune the project's baselines over these settings (SCHEDULE:LR[:ADAGRAD_EPS[:CLIP[:FAN_IN]]], "
                         "e.g. constant:0.01 cosine:0.04:1e-10 cosine:0.04:0.01:1 cosine:0.12:0.01:5:64)")
    ap.add_argument("--tune-seeds", nargs="+", type=int, default=[0], metavar="SEED",
                    help="with --tune: seeds per setting; a model chooses by mean validation log loss")
    args = ap.parse_args(argv)
    for setting in args.tune or ():
        try:
            _tune_recipe(TruthRecipe(), setting)
        except ValueError as e:
            ap.error(str(e))
    torch.set_num_threads(args.threads)
    ds = default_data()
    splits = truth_splits(ds)
    recipe = TruthRecipe(steps=args.steps, batch_size=r.batch_size, lr=args.lr)
    if args.tune:
        return _tune(args, ds, splits, recipe)
    rows = []
    for name in args.models:
        ours, _ = train_truth(name, ds, recipe, 0, splits=splits)
        row = {"model": name, "project_test_logloss": ours["test_logloss"], "project_test_auc": ours["test_auc"],
               "project_params": ours["params"], "project_train_seconds": ours["train_seconds"]}
        torch.manual_seed(1024)  # deepctr-torch seeds its own models with 1024 as well
        peer = _peer(name, ds, splits, recipe, args.peer_sizes)
        if peer is not None:
            row.update({f"peer_{k}": v for k, v in peer.items()})
            row["gap"] = row["project_test_logloss"] - peer["test_logloss"]
        row.update(steps=recipe.steps, batch_size=recipe.batch_size, project_lr=recipe.lr, peer="deepctr-torch 0.3.0",
                   peer_sizes=args.peer_sizes, threads=args.threads, cores=os.cpu_count(), seed=0,
                   data=ds.content_hash[:16], bayes_test_logloss=ds.bayes_logloss["test"])
        rows.append(row)
        print(f"{name}: project {row['project_test_logloss']:.4f}"
              + (f", peer {peer['test_logloss']:.4f} (gap {row['gap']:+.4f})" if peer else ""), file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    path = write_csv(df, f"baselines_peer{'_' + args.tag if args.tag else ''}.csv")
    print(df.to_string(index=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
