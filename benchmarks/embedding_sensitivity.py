"""Does the search's accuracy score see the embedding choices it makes?

Takes architectures of a finished ``cosearch run`` in the extended space (default: its
verified ones), keeps each one's blocks and varies only its embedding side:

- ``as-is``: the searched dims and precisions;
- ``no-drop``: every dropped field (dim 0) back at ``--fill`` dims;
- ``fp32``: the searched dims, every table fp32;
- ``no-drop+fp32``;
- ``all-D``: every field at D dims, fp32, for each D of ``--dims``;
- ``dropK``: ``no-drop`` with K of its fields dropped (drawn by a generator seeded with
  the run's seed), for each K of ``--drop``.

Each variant gets the run's own supernet score (inherited weights, the run's scoring
settings), the standard deviation of its path's logits in the supernet before the head
is fitted (``supernet_logit_std``, over 1,024 validation rows or all there are: near 0,
the path outputs a constant and the score is the head's fit to the click rate) and a
from-scratch training with the run's verification recipe and seed (shared truth cache,
so repeated variants are not trained again). For scale, it also measures that spread over
``--paths`` random candidates of the run's space and over the run's verified models
trained from scratch. Writes ``results/embedding_sensitivity.csv`` (rows of other runs
are kept) and prints, per architecture, the figures side by side and the Kendall tau
between score and test log loss.

    python3 -m benchmarks.embedding_sensitivity cosearch-run [--archs H1,H2] [--workers 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._csv import replace_rows
from benchmarks._rank import kendall_tau
from benchmarks.task_truth import RESULTS


def _ints(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return out


def variants(emb, fill: int, dims, drops, rng: np.random.Generator) -> dict:
    """Name -> ``EmbeddingSpec``: the variants listed in the module docstring."""
    from nasrec.space import EmbeddingSpec
    n = emb.n_fields
    fp32 = ("fp32",) * n
    kept = tuple(d if d else fill for d in emb.dims)
    out = {"as-is": emb, "no-drop": EmbeddingSpec(kept, emb.precisions), "fp32": EmbeddingSpec(emb.dims, fp32),
           "no-drop+fp32": EmbeddingSpec(kept, fp32)}
    out.update({f"all-{d}": EmbeddingSpec((d,) * n, fp32) for d in dims})
    for k in drops:
        if k < n:
            d = np.array(kept)
            d[rng.choice(n, k, replace=False)] = 0
            out[f"drop{k}"] = EmbeddingSpec(tuple(int(v) for v in d), emb.precisions)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks.embedding_sensitivity",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a finished cosearch run folder (extended embedding space)")
    ap.add_argument("--label", default=None,
                    help="names the run in the results file (default: the run folder's name); its rows replace "
                         "earlier rows of the same label")
    ap.add_argument("--archs", default=None, help="comma-separated architecture hash prefixes (default: the verified)")
    ap.add_argument("--fill", type=int, default=8, help="dims given back to a dropped field (default 8)")
    ap.add_argument("--dims", type=_ints, default=[4, 8, 16, 32], help="uniform dims to try (default 4,8,16,32)")
    ap.add_argument("--drop", type=_ints, default=[3, 6, 9], help="fields to drop from no-drop (default 3,6,9)")
    ap.add_argument("--paths", type=int, default=40, help="random candidates whose logit spread is measured")
    ap.add_argument("--workers", type=int, default=2, help="trainings at once")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.workers < 1 or args.fill < 1 or args.paths < 1:
        ap.error("--workers, --fill and --paths must be positive")
    import torch
    from cosearch.pipeline import ensure_supernet, load_run, search_space, verification_recipe
    from cosearch.scoring import InheritedScorer
    from nasrec.data import Dataset
    from nasrec.scratch import TruthCache
    from nasrec.space import ArchSpec
    try:
        cfg, meta = load_run(args.run)
    except ValueError as e:
        ap.error(str(e))
    fpath = args.run / "front.csv"
    if not fpath.is_file() or not fpath.stat().st_size:
        ap.error(f"{args.run} has no front.csv: is the run finished?")
    front = pd.read_csv(fpath, dtype={"arch_hash": str}).drop_duplicates("arch_hash")
    if args.archs:
        want = [h.strip() for h in args.archs.split(",") if h.strip()]
        rows = []
        for h in want:
            hit = front[front["arch_hash"].str.startswith(h)]
            if hit.empty:
                ap.error(f"--archs: no architecture {h!r} in {fpath}")
            rows.append(hit.iloc[0])
        picked = pd.DataFrame(rows)
    else:
        picked = front[front["verified"] == 1]
        if picked.empty:
            ap.error(f"{args.run} verified no architecture; name some with --archs")
    specs = [ArchSpec.from_json(a) for a in picked["arch"]]
    if any(s.embedding is None for s in specs):
        ap.error(f"{args.run} searched the published embedding space: there is no embedding choice to vary")
    ds = Dataset(meta["dataset"])
    supernet, _ = ensure_supernet(cfg, ds, meta["cache_dir"])
    scorer = InheritedScorer(supernet, ds.split("train"), ds.split("val", cfg.scoring.val_rows),
                             finetune_steps=cfg.scoring.finetune_steps, batch_size=cfg.scoring.batch_size,
                             seed=cfg.seed, head_fit=cfg.scoring.head_fit, probe_l2=cfg.scoring.probe_l2)
    recipe = verification_recipe(cfg, ds)
    rng = np.random.default_rng([cfg.seed, 17])
    names, varied = [], []
    for h, s in zip(picked["arch_hash"], specs):
        for name, emb in variants(s.embedding, args.fill, args.dims, args.drop, rng).items():
            names.append((h, name))
            varied.append(dataclasses.replace(s, embedding=emb))
    print(f"scoring and training {len(varied)} variants of {len(specs)} architectures ({recipe.steps} steps each)",
          file=sys.stderr, flush=True)
    scores = scorer.score(varied)
    val = ds.split("val")
    dense, ids, _ = next(val.infinite_batches(min(1024, len(val)), np.random.default_rng([cfg.seed, 18]), "cpu"))
    supernet.eval()
    with torch.no_grad():
        spread = [float(supernet(dense, ids, v).std()) for v in varied]
        space = search_space(cfg, ds.schema)
        path_rng = np.random.default_rng([cfg.seed, 19])
        random_spread = np.array([float(supernet(dense, ids, space.sample(path_rng).arch).std())
                                  for _ in range(args.paths)])
    res = TruthCache(Path(meta["cache_dir"]) / "truth").get_or_train_many(varied, ds, recipe, cfg.seed,
                                                                         workers=args.workers)
    label = args.label or args.run.resolve().name
    rows = [{"run": label, "data": ds.content_hash[:16], "seed": cfg.seed, "arch_hash": h,
             "variant": name, "fields_dropped": sum(d == 0 for d in v.embedding.dims),
             "mean_dim": float(np.mean(v.embedding.dims)),
             "fp32_fields": sum(p == "fp32" for p in v.embedding.precisions), "supernet_score": float(sc),
             "supernet_logit_std": sd,
             "val_logloss": r["val_logloss"], "test_logloss": r["test_logloss"], "cpu_seconds": r["cpu_seconds"],
             "train_steps": recipe.steps, "cores": os.cpu_count()}
            for (h, name), v, sc, sd, r in zip(names, varied, scores, spread, res)]
    path = args.results / "embedding_sensitivity.csv"
    replace_rows(rows, path, "run")
    table = pd.DataFrame(rows)
    for h, g in table.groupby("arch_hash", sort=False):
        print(f"{h}: Kendall tau of supernet score against test log loss over {len(g)} variants "
              f"{kendall_tau(g['supernet_score'], g['test_logloss']):.3f}")
        print(g[["variant", "fields_dropped", "mean_dim", "supernet_score", "supernet_logit_std", "test_logloss"]]
              .to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    lo, med, hi = np.quantile(random_spread, [0.0, 0.5, 1.0])
    print(f"supernet logit standard deviation over {args.paths} random candidates of the run's space: "
          f"{lo:.4f} to {hi:.4f} (median {med:.4f})")
    trained = _trained_spread(args.run, picked["arch_hash"], dense, ids)
    if trained:
        print("the same, for the run's verified models trained from scratch: "
              + ", ".join(f"{h[:8]} {v:.4f}" for h, v in trained.items()))
    print(f"wrote {path}")
    return 0


def _trained_spread(run: Path, hashes, dense, ids) -> dict:
    """Logit standard deviation of the run's saved verified models, by hash."""
    import torch
    from nasrec.modelio import load_model
    out = {}
    for h in hashes:
        f = run / "models" / f"arch-{h}.pt"
        if f.is_file():
            model, _ = load_model(f)
            model.eval()
            with torch.no_grad():
                out[h] = float(model(dense, ids).std())
    return out


if __name__ == "__main__":
    sys.exit(main())
