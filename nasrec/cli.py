"""The ``nasrec`` command: generate / prepare data, train a supernet, score
architectures, train an ArchSpec or baseline from scratch, prune a trained model. The only module that
talks to the terminal."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nasrec.util import atomic_write_json, atomic_write_text, resolve_device


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit status 2 (see main)
        raise _UsageError(message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (recorded in every result)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (cuda if available)")


def _train_flags(p: argparse.ArgumentParser, steps: int) -> None:
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.12)
    p.add_argument("--initial-accumulator", type=float, default=0.0,
                   help="Adagrad's starting sum of squares (NASRec: 0; > 0 damps the first updates)")


def _parser() -> _Parser:
    ap = _Parser(prog="nasrec", description="NASRec: data sets, supernet training, "
                 "architecture scoring and training from scratch.")
    sub = ap.add_subparsers(dest="command", required=True)

    from nasrec.data import SyntheticConfig
    p = sub.add_parser("generate", help="generate the synthetic data set")
    p.add_argument("out", type=Path)
    d = SyntheticConfig()
    p.add_argument("--rows", type=int, default=d.rows, help=f"default {d.rows} (the earlier default: 200000)")
    p.add_argument("--dense", type=int, default=d.n_dense)
    p.add_argument("--sparse", type=int, default=d.n_sparse)
    p.add_argument("--max-cardinality", type=int, default=d.max_cardinality,
                   help=f"default {d.max_cardinality} (the earlier default: 100000)")
    p.add_argument("--ctr", type=float, default=0.25)
    p.add_argument("--pooling", default=None, metavar="mlperf|N|N,N,...",
                   help="lookups per sample per field: 'mlperf' (the MLPerf DLRM-v2 multi-hot mix, "
                        "26 fields), one count for every field, or one per field (default: one-hot)")
    p.add_argument("--bag", choices=("mean", "sum"), default="mean",
                   help="how a multi-hot field's rows combine, in the teacher and in every model")
    p.add_argument("--overwrite", action="store_true")
    _common(p)

    p = sub.add_parser("prepare", help="preprocess a real data set (Criteo, Avazu, KDD 2012)")
    p.add_argument("format", choices=("criteo", "avazu", "kdd"))
    p.add_argument("source", type=Path, help="train.txt / train CSV / KDD folder")
    p.add_argument("out", type=Path)
    p.add_argument("--vocab-size", type=int, default=1_000_000)
    p.add_argument("--overwrite", action="store_true")
    _common(p)

    p = sub.add_parser("train-supernet", help="train a weight-sharing supernet")
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path, help="checkpoint file to write")
    p.add_argument("--space", default="full", choices=("full", "small"))
    p.add_argument("--embeddings", default="published", choices=("published", "extended"),
                   help="extended: also share weights over per-field embedding dims (0-64) and "
                        "precisions (fp32, fp16, int8)")
    p.add_argument("--checkpoint-every", type=int, default=0)
    p.add_argument("--paths-per-step", type=int, default=1,
                   help="subnets per step, operators spread fairly over them (NASRec: 1)")
    _train_flags(p, 1000)
    _common(p)

    p = sub.add_parser("score", help="score architectures with inherited supernet weights")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("data", type=Path)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--arch", type=Path, nargs="+", help="architecture JSON files")
    g.add_argument("--sample", type=int, help="score this many random architectures")
    p.add_argument("--finetune-steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--val-rows", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("scores.csv"))
    _common(p)

    p = sub.add_parser("train", help="train an ArchSpec or a baseline from scratch")
    p.add_argument("data", type=Path)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--arch", type=Path, help="architecture JSON file")
    g.add_argument("--baseline", help="dlrm, deepfm, dcnv2, autoint or xdeepfm")
    p.add_argument("--out", type=Path, default=Path("result.json"))
    p.add_argument("--save-model", type=Path, default=None,
                   help="also write the trained model here (input of `nasrec prune`)")
    from nasrec.scratch import TruthRecipe
    r = TruthRecipe()
    p.add_argument("--steps", type=int, default=r.steps, help=f"default {r.steps} (the truth recipe)")
    p.add_argument("--batch-size", type=int, default=r.batch_size)
    p.add_argument("--lr", type=float, default=None,
                   help=f"Adagrad lr (default: the truth recipe's, {r.lr}, or a baseline's own in nasrec.baselines.TRAINING)")
    p.add_argument("--schedule", choices=("cosine", "constant"), default=None,
                   help="lr schedule (default: as --lr's default)")
    p.add_argument("--initial-accumulator", type=float, default=0.0,
                   help="Adagrad's starting sum of squares (NASRec: 0; > 0 damps the first updates)")
    p.add_argument("--lr-fan-in", type=int, default=None,
                   help="n > 0: weight matrices outside the embedding tables train at lr x min(1, n / "
                        f"fan-in); 0: one learning rate (default: the truth recipe's, {r.lr_fan_in}, "
                        "for an architecture; 0 for a baseline)")
    _common(p)

    p = sub.add_parser("prune", help="structured pruning of a trained model (see nasrec/prune.py)")
    p.add_argument("model", type=Path, help="model file from `nasrec train --save-model` or `nasrec prune`")
    p.add_argument("--data", type=Path, default=None,
                   help="data set for fine-tuning and log loss (default: the one the model was trained on)")
    p.add_argument("--ratio", type=str, nargs="+", required=True,
                   help="fraction(s) of units to remove, each in [0, 1)")
    p.add_argument("--method", default="l1", help="l1 (magnitude) or mask (learned gates)")
    p.add_argument("--schedule", default="oneshot", help="oneshot or progressive")
    p.add_argument("--scope", default="layer", help="layer (every group) or global (per unit kind)")
    p.add_argument("--kinds", default=",".join(("neurons", "tokens", "heads", "rows", "emb")),
                   help="comma list of unit kinds: neurons, tokens, heads, rows, emb")
    p.add_argument("--steps", type=int, default=3, help="pruning steps of the progressive schedule")
    p.add_argument("--finetune-steps", type=int, default=200, help="training steps after each pruning step")
    p.add_argument("--mask-steps", type=int, default=200, help="gate training steps (mask method)")
    p.add_argument("--mask-penalty", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.04)
    p.add_argument("--out", type=Path, default=Path("pruned"), help="output folder")
    _common(p)
    return ap


def _device_and_rank(args):
    """The device to use; under ``torchrun`` (WORLD_SIZE > 1) also joins the process group
    (gloo on CPU, nccl on CUDA) and picks this rank's GPU. Returns (device, rank)."""
    import torch
    device = resolve_device(args.device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    return device, rank


def _pooling(text: str | None, n_fields: int) -> tuple[int, ...] | None:
    from nasrec.data import MLPERF_POOLING
    if text is None:
        return None
    if text == "mlperf":
        if n_fields != len(MLPERF_POOLING):
            raise ValueError(f"--pooling mlperf needs --sparse {len(MLPERF_POOLING)}, got {n_fields}")
        return MLPERF_POOLING
    try:
        counts = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--pooling must be 'mlperf' or comma-separated integers, got {text!r}") from None
    if len(counts) == 1:
        counts = counts * n_fields
    return counts


def _generate(args) -> int:
    from nasrec.data import SyntheticConfig, generate_synthetic
    cfg = SyntheticConfig(rows=args.rows, n_dense=args.dense, n_sparse=args.sparse,
                          max_cardinality=args.max_cardinality, target_ctr=args.ctr, seed=args.seed,
                          pooling=_pooling(args.pooling, args.sparse), bag=args.bag)
    ds = generate_synthetic(cfg, args.out, overwrite=args.overwrite, quiet=args.quiet)
    b = ds.bayes_logloss
    print(f"wrote {ds.meta['rows']} rows to {ds.path} (hash {ds.content_hash[:16]}, "
          f"ctr {ds.meta['ctr']:.4f}, Bayes log loss test {b['test']:.5f})")
    return 0


def _prepare(args) -> int:
    from nasrec.data import prepare_real
    ds = prepare_real(args.format, args.source, args.out, vocab_size=args.vocab_size,
                      overwrite=args.overwrite, quiet=args.quiet)
    print(f"wrote {ds.meta['rows']} rows to {ds.path} (hash {ds.content_hash[:16]}, "
          f"{ds.meta['malformed_lines']} malformed lines skipped)")
    return 0


def _train_supernet(args) -> int:
    from nasrec.data import Dataset
    from nasrec.train import TrainConfig, build_supernet, train_supernet
    device, rank = _device_and_rank(args)
    ds = Dataset(args.data)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      initial_accumulator=args.initial_accumulator, paths_per_step=args.paths_per_step)
    from nasrec.space import EMBEDDING_SPACE
    sn = build_supernet(ds.schema, args.space, args.seed, device,
                        EMBEDDING_SPACE if args.embeddings == "extended" else None)
    h = train_supernet(sn, ds.split("train"), cfg, quiet=args.quiet, checkpoint=args.out,
                       checkpoint_every=args.checkpoint_every)
    if rank > 0:
        return 0
    print(f"wrote supernet checkpoint {args.out} ({cfg.steps} steps, "
               f"{h['samples_per_second']:.0f} samples/s, final loss {np.mean(h['train_losses'][-20:]):.4f})")
    return 0


def _score(args) -> int:
    from nasrec.data import Dataset
    from nasrec.space import EMBEDDING_SPACE, load_arch, sample
    from nasrec.train import SupernetScorer, load_checkpoint
    device = resolve_device(args.device)
    sn, _ = load_checkpoint(args.checkpoint, device)
    ds = Dataset(args.data)
    if args.arch:
        specs = [load_arch(p) for p in args.arch]
    else:
        if args.sample < 1:
            raise ValueError(f"--sample must be >= 1, got {args.sample}")
        rng = np.random.default_rng(args.seed)
        n_fields = ds.schema.n_sparse if sn.embedding_space is not None else None
        specs = [sample(rng, sn.space, n_fields, sn.embedding_space or EMBEDDING_SPACE) for _ in range(args.sample)]
    val = ds.split("val", args.val_rows)
    scorer = SupernetScorer(sn, ds.split("train"), val, finetune_steps=args.finetune_steps,
                            batch_size=args.batch_size, seed=args.seed, quiet=args.quiet)
    rows = [dict(scorer.evaluate(s), arch=s.to_json()) for s in specs]
    atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False))
    best = min(rows, key=lambda r: r["logloss"])
    print(f"wrote {len(rows)} scores to {args.out} (best val log loss {best['logloss']:.5f})")
    return 0


def _train(args) -> int:
    from nasrec.baselines import build_baseline
    from nasrec.data import Dataset
    from nasrec.model import NasRecModel
    from nasrec.space import load_arch
    from nasrec.train import evaluate, train_model
    from nasrec.util import seeded_torch
    device, rank = _device_and_rank(args)
    from dataclasses import replace
    from nasrec.scratch import TruthRecipe
    ds = Dataset(args.data)
    recipe = TruthRecipe(steps=args.steps, batch_size=args.batch_size,
                         initial_accumulator=args.initial_accumulator).for_model(args.baseline or load_arch(args.arch))
    if args.lr is not None:
        recipe = replace(recipe, lr=args.lr)
    if args.schedule is not None:
        recipe = replace(recipe, schedule=args.schedule)
    if args.lr_fan_in is not None:
        recipe = replace(recipe, lr_fan_in=args.lr_fan_in)
    cfg = recipe.train_config(args.seed)
    if args.arch:
        spec = load_arch(args.arch)
        with seeded_torch(args.seed):
            model = NasRecModel(spec, ds.schema)
        name = f"arch:{spec.hash[:16]}"
    else:
        model = build_baseline(args.baseline, ds.schema, args.seed)
        name = args.baseline
    model = model.to(device)
    h = train_model(model, ds.split("train"), cfg, quiet=args.quiet)
    if rank > 0:
        return 0
    result = {"model": name, "seed": args.seed, "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
              "samples_per_second": h["samples_per_second"], "val": evaluate(model, ds.split("val")),
              "test": evaluate(model, ds.split("test")), "bayes_logloss": ds.bayes_logloss}
    atomic_write_json(args.out, result)
    print(f"wrote {args.out} ({name}: test log loss {result['test']['logloss']:.5f}, "
               f"AUC {result['test']['auc']:.4f})")
    if args.save_model is not None:
        from nasrec.modelio import save_model
        save_model(model, args.save_model, schema=ds.schema,
                   meta={"data": str(Path(args.data).resolve()), "seed": args.seed, "model": name,
                         "test_logloss": result["test"]["logloss"]})
        print(f"wrote model {args.save_model}")
    return 0


def _ratio(text: str) -> float:
    try:
        r = float(text)
    except ValueError:
        raise ValueError(f"--ratio must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= r < 1.0:
        raise ValueError(f"--ratio must be a number in [0, 1), got {text!r}")
    return r


def _prune(args) -> int:
    from nasrec.data import Dataset
    from nasrec.modelio import load_model, save_model
    from nasrec.prune import PruneConfig, prune
    from nasrec.train import evaluate
    ratios = [_ratio(t) for t in args.ratio]
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    cfgs = [PruneConfig(r, method=args.method, schedule=args.schedule, scope=args.scope, kinds=kinds,
                        steps=args.steps, finetune_steps=args.finetune_steps, mask_steps=args.mask_steps,
                        mask_penalty=args.mask_penalty, batch_size=args.batch_size, lr=args.lr,
                        seed=args.seed) for r in ratios]
    device = resolve_device(args.device)
    model, info = load_model(args.model, device)
    data = args.data or info.get("meta", {}).get("data")
    if data is None:
        raise ValueError(f"{args.model} records no data set; pass --data")
    ds = Dataset(data)
    if ds.schema != info["schema"]:
        raise ValueError(f"data set {data} does not match the model's input schema")
    train, val, test = ds.split("train"), ds.split("val"), ds.split("test")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for cfg in cfgs:
        pruned, steps = prune(model, cfg, train, val, quiet=args.quiet)
        tag = f"{cfg.method}_{cfg.schedule}_{cfg.scope}_r{cfg.ratio:.2f}"
        path = save_model(pruned, args.out / f"model_{tag}.pt", schema=ds.schema,
                          meta=dict(info.get("meta", {}), data=str(Path(data).resolve()),
                                    pruning={k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                                    source=str(args.model)))
        desc = args.out / f"arch_{tag}.json"
        if hasattr(pruned, "describe"):
            atomic_write_json(desc, pruned.describe())
        te = evaluate(pruned, test)
        for r in steps:
            r.update(ratio=cfg.ratio, model_file=str(path))
        steps[-1].update(test_logloss=te["logloss"], test_auc=te["auc"])
        rows.extend(steps)
        print(f"wrote {path} (ratio {cfg.ratio:g}: test log loss {te['logloss']:.5f}, "
              f"FLOPs/sample {steps[-1]['flops_per_sample']}, params {steps[-1]['params']})")
    table = args.out / "prune.csv"
    atomic_write_text(table, pd.DataFrame(rows).to_csv(index=False))
    print(f"wrote {table} ({len(rows)} rows)")
    return 0


_COMMANDS = {"generate": _generate, "prepare": _prepare, "train-supernet": _train_supernet,
             "score": _score, "train": _train, "prune": _prune}


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except _UsageError as e:
        print(f"nasrec: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError, json.JSONDecodeError) as e:
        print(f"nasrec: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
