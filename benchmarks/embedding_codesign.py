"""Embedding co-design: the extended space against NASRec's published space, at equal evaluations.

On multi-hot synthetic data (the MLPerf DLRM-v2 mix) and the rank-level near-memory
family (recnmp: embeddings on the host or the rank units, 2/4/8 ranks, small tables
pinned to the host cache or not), two co-searches with the same seed, budget,
hardware knobs and objectives (validation log loss, latency per batch, energy per
sample):

- ``published``: NASRec's space, every field 16-dim fp32 (a supernet trained as usual);
- ``extended``: per-field dimension {0,4,8,16,32,64} and precision {fp32,fp16,int8}
  join the search (an elastic supernet trained over them).

Writes ``benchmarks/results/embedding_codesign.csv`` (hypervolume against evaluations,
one shared normalisation from the union of both runs' feasible points: costs in
log10, log loss capped at the constant predictor's, reference 1.1),
``embedding_codesign_fronts.csv`` (for every published front member, the extended
front's cheapest model at no worse log loss, with latency and energy ratios) and
``embedding_codesign_dims.png`` (mean chosen dimension per field on the extended
front against the field's cardinality and its number of teacher interaction terms).

    python -m benchmarks.embedding_codesign [--budget 48] [--supernet-steps 60] [--rows 40000] [--seeds 1]

``embedding_codesign_summary.csv`` has one row per seed (both hypervolumes, their
ratio and margin, the best log loss of each search, the constant predictor's).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._csv import save_figure, write_rows
from cosearch.config import RunConfig
from cosearch.pareto import Normalization, hypervolume, pareto_mask
from cosearch.pipeline import normalization_settings, run_pipeline
from cosearch.run import read_results

RESULTS = Path(__file__).resolve().parent / "results"
OBJECTIVES = ("logloss", "latency_s", "energy_per_sample_j")


def config(embeddings: str, args) -> RunConfig:
    return RunConfig.from_dict({
        "seed": args.seed,
        "data": {"rows": args.rows, "max_cardinality": 100_000, "pooling": "mlperf"},
        "supernet": {"space": "full", "steps": args.supernet_steps, "batch_size": 256, "embeddings": embeddings},
        "scoring": {"finetune_steps": 4, "batch_size": 128, "val_rows": 1024},
        "search": {"budget": args.budget, "population": 12, "sample_size": 4, "children": 6,
                   "objectives": list(OBJECTIVES)},
        "hardware": {"families": ["recnmp"], "embeddings": ["host", "nmp"], "gemm": ["host"], "ranks": [2, 4, 8],
                     "host_rows_max": [0, 1000, 100000], "precisions": ["fp32"]},
        "baselines": {"names": ["dlrm"]},
        "verify": {"top_k": 0, "baselines": False},
        "inference": {"batch_size": 64},
    })


def _points(run_dir) -> tuple[np.ndarray, list[dict]]:
    rows = read_results(run_dir)
    F = np.array([[float(r[o]) if r["feasible"] == "1" else np.nan for o in OBJECTIVES] for r in rows])
    return F, rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=48)
    p.add_argument("--supernet-steps", type=int, default=60)
    p.add_argument("--rows", type=int, default=40_000)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, default=1, help="seeds seed, seed + 1, ...")
    p.add_argument("--work", type=Path, default=None, help="folder for runs and cache (default: a temp dir)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="codesign-"))
    rows, comp, summary, ext_fronts = [], [], [], []  # ext_fronts: (seed, front, data set)
    for seed in range(args.seed, args.seed + args.seeds):
        r, c, s, front, ds = _one_seed(args, seed, work / f"seed{seed}")
        rows += r
        comp += c
        summary.append(s)
        ext_fronts.append((seed, front, ds))
        write_rows(rows, RESULTS / "embedding_codesign.csv")
        write_rows(comp, RESULTS / "embedding_codesign_fronts.csv")
        write_rows(summary, RESULTS / "embedding_codesign_summary.csv")
        print(f"seed {seed}: hypervolume at {args.budget} evaluations: published {s['hv_published']:.4f}, "
              f"extended {s['hv_extended']:.4f} ({s['hv_ratio']:.2f}x, margin {s['hv_margin']:+.4f}); "
              f"wall {s['wall_published_s']:.0f} s + {s['wall_extended_s']:.0f} s", flush=True)
        ratios = [x for x in c if "latency_ratio" in x]
        if ratios:
            print(f"  extended vs published front at no worse log loss: latency ratio "
                  f"{min(x['latency_ratio'] for x in ratios):.2f}-{max(x['latency_ratio'] for x in ratios):.2f}x, "
                  f"energy ratio {min(x['energy_ratio'] for x in ratios):.2f}-"
                  f"{max(x['energy_ratio'] for x in ratios):.2f}x ({len(ratios)} of {len(c)} published members "
                  f"matched)", flush=True)
    _plot_dims(ext_fronts, RESULTS / "embedding_codesign_dims.png")
    hv = np.array([[s["hv_published"], s["hv_extended"]] for s in summary])
    print(f"mean over {len(summary)} seeds: published {hv[:, 0].mean():.4f}, extended {hv[:, 1].mean():.4f}; "
          f"extended larger in {int((hv[:, 1] > hv[:, 0]).sum())} of {len(summary)}; runs in {work}")
    return 0


def _one_seed(args, seed: int, work: Path):
    """Both searches for one seed: HV rows, front comparison rows, summary, extended front, data set."""
    runs, seconds = {}, {}
    for emb in ("published", "extended"):
        t0 = time.perf_counter()
        cfg = config(emb, _replace_seed(args, seed))
        run_pipeline(cfg, work / emb, work / "cache", quiet=True)
        seconds[emb] = time.perf_counter() - t0
        runs[emb] = _points(work / emb)
    from nasrec.data import Dataset
    ds = Dataset(json.loads((work / "extended" / "run.json").read_text())["dataset"])
    log, cap = normalization_settings(OBJECTIVES, ds)
    union = np.vstack([F for F, _ in runs.values()])
    norm = Normalization.from_points(union, log, cap)
    rows = []
    for emb, (F, _) in runs.items():
        for n in range(1, len(F) + 1):
            rows.append({"space": emb, "evaluations": n, "hypervolume": hypervolume(F[:n], norm),
                         "seed": seed, "budget": args.budget, "supernet_steps": args.supernet_steps,
                         "rows": args.rows, "wall_s": seconds[emb]})
    final = {emb: hypervolume(F, norm) for emb, (F, _) in runs.items()}
    fronts = {}
    for emb, (F, rr) in runs.items():
        ok = np.isfinite(F).all(axis=1)
        mask = np.zeros(len(F), bool)
        mask[ok] = pareto_mask(F[ok])
        fronts[emb] = [(F[i], rr[i]) for i in np.flatnonzero(mask)]
    comp = []
    for fp, rp in sorted(fronts["published"], key=lambda t: t[0][0]):
        better = [(fe, re) for fe, re in fronts["extended"] if fe[0] <= fp[0]]
        row = {"published_arch": rp["arch_hash"], "published_logloss": fp[0], "published_latency_s": fp[1],
               "published_energy_j": fp[2], "seed": seed}
        if better:
            fe, re = min(better, key=lambda t: t[0][1])
            row.update(extended_arch=re["arch_hash"], extended_logloss=fe[0], latency_ratio=fp[1] / fe[1],
                       energy_ratio=fp[2] / min(b[0][2] for b in better))
        comp.append(row)
    summary = {"seed": seed, "budget": args.budget, "supernet_steps": args.supernet_steps, "rows": args.rows,
               "hv_published": final["published"], "hv_extended": final["extended"],
               "hv_ratio": final["extended"] / max(final["published"], 1e-12),
               "hv_margin": final["extended"] - final["published"],
               "best_logloss_published": float(np.nanmin(runs["published"][0][:, 0])),
               "best_logloss_extended": float(np.nanmin(runs["extended"][0][:, 0])),
               "constant_logloss": cap[0], "wall_published_s": seconds["published"],
               "wall_extended_s": seconds["extended"], "cores": _cores()}
    return rows, comp, summary, fronts["extended"], ds


def _replace_seed(args, seed: int):
    return argparse.Namespace(**dict(vars(args), seed=seed))


def _cores() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _plot_dims(per_seed, out: Path) -> None:
    """Mean chosen dim per field on each seed's extended front against the field's
    cardinality and its number of teacher interaction terms (one colour per seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nasrec.data import SyntheticConfig, _Teacher

    per_seed = [(seed, front, ds) for seed, front, ds in per_seed if front]
    if not per_seed:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    jitter = np.random.default_rng(0)
    members = 0
    for seed, front, ds in per_seed:
        dims = np.array([json.loads(r["arch"])["embedding"]["dims"] for _, r in front], dtype=float)
        mean_dim = dims.mean(axis=0)
        members += len(front)
        cards = np.array(ds.schema.cardinalities)
        cfg = dict(ds.meta["config"])
        cfg["pooling"] = tuple(cfg["pooling"]) if cfg.get("pooling") else None
        teacher = _Teacher(SyntheticConfig(**cfg))
        terms = np.zeros(len(cards))
        for a, b in teacher.pairs:
            terms[[a, b]] += 1
        for t in teacher.triples:
            terms[list(t)] += 1
        axes[0].scatter(cards, mean_dim, s=14, label=f"seed {seed}")
        axes[1].scatter(terms + jitter.uniform(-0.15, 0.15, len(terms)), mean_dim, s=14, label=f"seed {seed}")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("field cardinality")
    axes[1].set_xlabel("teacher interaction terms of the field")
    for ax in axes:
        ax.set_ylabel("mean chosen dim on the extended front")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"per-field embedding dims, {members} front members over {len(per_seed)} seeds")
    fig.tight_layout()
    save_figure(fig, out)


if __name__ == "__main__":
    raise SystemExit(main())
