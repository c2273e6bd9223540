"""Co-search on the default synthetic data and the rank-level NMP preset (recnmp).

(a) hypervolume against evaluations for multi-objective evolution (the default,
    elitist survival), the same with ageing survival (``moea-age``), NASRec's
    scalarised regularised evolution (ageing), random search, the library engines
    behind the project's ask/tell (``nsga2``, ``smsemoa``: cosearch.engines) and pymoo's
    NSGA-II with mixed variables in one ``minimize`` (``nsga2-pymoo``), several seeds, in the default joint space (NASRec-Full
    blocks plus a dimension and a precision per field), same objectives (log loss,
    latency, energy per sample), budget, hardware space and reference point: all runs share
    one normalisation taken from the union of their feasible points (latency and
    energy in log10, log loss capped at the constant predictor's), reference 1.1.
    A variant name with ``+screenN`` (e.g. ``moea+screen8``; ``--screen N`` adds
    ``moea+screenN``) runs that algorithm with cost-first screening of factor N
    (cosearch.search.Screen through the evaluator's pimsim provider); the summary's
    ``screened_mean`` counts the children it costed and never evaluated. The sizes
    default to the default run's (320 evaluations, population 40, 16 children, sample
    10) and 5 seeds; the summary gives each algorithm's mean final hypervolume with a
    percentile bootstrap 95% interval over seeds (``--bootstrap-seed``), the evaluations
    after which its mean curve reaches random search's mean final hypervolume, and wall
    seconds per run (each run with an evaluator of its own, so no run gains from
    another's cache). Finished runs are kept under ``CACHE/race/<sizes>/`` and read
    back by a later invocation with the same sizes (``--fresh`` reruns them), so an
    interrupted race resumes where it stopped;
(b) searched front models (the best by search log loss among those at no more than
    half the latency of the most accurate baseline, and the best overall) retrained
    from scratch next to DLRM, DeepFM, DCN-v2, AutoInt and xDeepFM, all costed on
    recnmp with its own settings;
(c) wall time of the default pipeline (``cosearch run`` settings): data set and
    supernet (timed when first made), then the run itself with both cached.

Writes benchmarks/results/cosearch_synthetic_{hv,hv_summary,models,wall}.csv and
cosearch_synthetic_hv.png. Needs the ``bench`` extra (pymoo) for the NSGA-II row.
"""
from __future__ import annotations

import argparse
import itertools
import os
import pickle
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks._csv import write_rows
from cosearch import hwmodel
from cosearch.config import DEFAULT, QUICK, RunConfig
from cosearch.hardware import HardwareKnobs, KnobSpace
from cosearch.objectives import Candidate, CoSpace, Evaluator, PimsimCost, SupernetAccuracy
from cosearch.pareto import Normalization, hypervolume, pareto_mask
from cosearch.pipeline import (ensure_dataset, ensure_supernet, normalization_settings, run_pipeline,
                               search_space, table_spec)
from cosearch.profile import module_workload
from cosearch.scoring import InheritedScorer
from cosearch.search import SCREEN_MAX, EvolutionConfig, make_algorithm
from nasrec.space import ArchSpec, BlockSpec, EmbeddingSpec

RESULTS = Path(__file__).resolve().parent / "results"
OBJECTIVES = ("logloss", "latency_s", "energy_per_sample_j")
#: The recnmp family's own knobs (rank-level near-memory units).
KNOBS = KnobSpace(families=("recnmp",), embeddings=("host", "nmp"), gemm=("host", "nmp"), ranks=(2, 4, 8),
                  host_rows_max=(0, 1_000, 100_000))


def _evaluator(cfg: RunConfig, ds, sn, scoring_steps: int, val_rows: int) -> Evaluator:
    scorer = InheritedScorer(sn, ds.split("train"), ds.split("val", val_rows), finetune_steps=scoring_steps,
                             batch_size=cfg.scoring.batch_size, seed=cfg.seed)
    cost = PimsimCost(ds.schema, hwmodel.query, hwmodel.build_hardware, batch_size=cfg.inference.batch_size,
                      tables=table_spec(ds), seed=cfg.seed)
    return Evaluator([SupernetAccuracy(scorer), cost], OBJECTIVES)


#: Benchmark rows of this project's algorithms: (algorithm, survival).
VARIANTS = {"moea": ("moea", "elitist"), "moea-age": ("moea", "age"), "evolution": ("evolution", "age"),
            "random": ("random", "elitist")}
#: Rows of the library engines behind the project's ask/tell (cosearch.engines; need pymoo).
ENGINE_VARIANTS = {"nsga2": ("nsga2", "elitist"), "smsemoa": ("smsemoa", "elitist")}


#: Suffix of a variant with cost-first screening: ``moea+screen8``.
SCREEN_SUFFIX = "+screen"


def split_variant(variant: str) -> tuple[str, int]:
    """(base variant, screening factor; 1 = off) of a variant name."""
    base, sep, factor = variant.partition(SCREEN_SUFFIX)
    if not sep:
        return variant, 1
    if not factor.isdigit() or not 2 <= int(factor) <= SCREEN_MAX:
        raise ValueError(f"{variant!r}: the screening factor must be an integer in 2..{SCREEN_MAX}")
    return base, int(factor)


def select_variants(available: list[str], requested: list[str] | None, screen: int | None) -> list[str]:
    """The variants of (a) to run: ``requested`` (``available`` names, each but
    nsga2-pymoo with an optional ``+screenN``; must include random) or all available,
    plus ``moea+screenN`` for ``screen``; a ValueError for anything else."""
    out = list(available)
    if requested:
        def known(a):
            base, factor = split_variant(a)
            return base in available and (factor == 1 or base != "nsga2-pymoo")
        if not all(known(a) for a in requested) or "random" not in requested:
            raise ValueError(f"--algorithms must name known ones ({', '.join(available)}, each but nsga2-pymoo "
                             f"with an optional {SCREEN_SUFFIX}N) including random, got {' '.join(requested)}")
        out = [a for a in available if a in requested] + [a for a in dict.fromkeys(requested) if a not in available]
    if screen is not None:
        if not 2 <= screen <= SCREEN_MAX:
            raise ValueError(f"--screen must be in 2..{SCREEN_MAX}, got {screen}")
        out = list(dict.fromkeys(out + [f"moea{SCREEN_SUFFIX}{screen}"]))
    return out


def run_ours(variant, space, ev, seed, evo: EvolutionConfig, log, cap, stats: dict | None = None):
    base, factor = split_variant(variant)
    name, survival = {**VARIANTS, **ENGINE_VARIANTS}[base]
    # the screen costs through the evaluator's own pimsim provider (and its cache)
    screen = ev.screen([ev.providers[1]], factor) if factor > 1 else None
    algo = make_algorithm(name, space, np.random.default_rng([seed, 5]), replace(evo, survival=survival),
                          weights=(1.0, 1.0, 1.0), log=log, cap=cap, screen=screen)
    cands, F, ok = [], [], []
    while not algo.done:
        c = algo.ask()
        e = ev.evaluate(c)
        algo.tell(c, e.objectives, e.feasible)
        cands += c
        F.append(e.objectives)
        ok.append(e.feasible)
    if stats is not None:
        stats["screened"] = algo.screened
    return cands, np.concatenate(F), np.concatenate(ok)


# -- pymoo NSGA-II over the same space, mixed variables --------------------------------------

def _subsets(i: int, max_inputs: int) -> list[tuple[int, ...]]:
    return [s for n in range(1, min(i + 1, max_inputs) + 1) for s in itertools.combinations(range(i + 1), n)]


def run_nsga2(space: CoSpace, ev, seed, evo: EvolutionConfig):
    from pymoo.algorithms.moo.nsga2 import RankAndCrowdingSurvival
    from pymoo.core.mixed import MixedVariableGA
    from pymoo.core.problem import Problem
    from pymoo.core.variable import Choice
    from pymoo.optimize import minimize

    s = space.arch_space
    k = space.knobs
    variables = {}
    subsets = {i: [",".join(map(str, t)) for t in _subsets(i, s.max_inputs)] for i in range(s.num_blocks)}
    for i in range(s.num_blocks):
        variables.update({
            f"b{i}_dense_idx": Choice(options=subsets[i]), f"b{i}_sparse_idx": Choice(options=subsets[i]),
            f"b{i}_left": Choice(options=list(range(i + 1))), f"b{i}_right": Choice(options=list(range(i + 1))),
            f"b{i}_dense_op": Choice(options=list(s.dense_ops)), f"b{i}_sparse_op": Choice(options=list(s.sparse_ops)),
            f"b{i}_width": Choice(options=list(s.dense_widths)), f"b{i}_tokens": Choice(options=list(s.sparse_tokens)),
            f"b{i}_d2s": Choice(options=[0, 1]), f"b{i}_fm": Choice(options=[0, 1])})
    n_fields = space.n_fields or 0
    if n_fields:  # the extended space: a dimension and a precision per field
        for f in range(n_fields):
            variables.update({f"f{f}_dim": Choice(options=list(space.embedding_space.dims)),
                              f"f{f}_precision": Choice(options=list(space.embedding_space.precisions))})
    variables.update({"hw_embeddings": Choice(options=list(k.embeddings)), "hw_gemm": Choice(options=list(k.gemm)),
                      "hw_ranks": Choice(options=list(k.ranks)),
                      "hw_precision": Choice(options=[p.value for p in k.precisions]),
                      "hw_host_rows_max": Choice(options=list(k.host_rows_max))})
    log = {"cands": [], "F": [], "ok": []}

    def decode(x) -> Candidate:
        blocks = tuple(BlockSpec(
            dense_idx=tuple(int(v) for v in x[f"b{i}_dense_idx"].split(",")),
            sparse_idx=tuple(int(v) for v in x[f"b{i}_sparse_idx"].split(",")),
            dense_left_idx=int(x[f"b{i}_left"]), dense_right_idx=int(x[f"b{i}_right"]),
            dense_op=x[f"b{i}_dense_op"], sparse_op=x[f"b{i}_sparse_op"], dense_width=int(x[f"b{i}_width"]),
            sparse_tokens=int(x[f"b{i}_tokens"]), dense_sparse_interact=bool(x[f"b{i}_d2s"]),
            deep_fm=bool(x[f"b{i}_fm"])) for i in range(s.num_blocks))
        hw = HardwareKnobs(family=k.families[0], embeddings=x["hw_embeddings"], gemm=x["hw_gemm"],
                           ranks=int(x["hw_ranks"]), precision=x["hw_precision"],
                           host_rows_max=int(x["hw_host_rows_max"]))
        emb = None
        if n_fields:
            dims = [int(x[f"f{f}_dim"]) for f in range(n_fields)]
            if not any(dims):  # as the search space: at least one field stays
                dims[0] = max(space.embedding_space.dims)
            emb = EmbeddingSpec(tuple(dims), tuple(x[f"f{f}_precision"] for f in range(n_fields)))
        return Candidate(ArchSpec(blocks, s.name, emb), hw)

    class CoProblem(Problem):
        def __init__(self):
            super().__init__(vars=variables, n_obj=len(OBJECTIVES))

        def _evaluate(self, X, out, *args, **kwargs):
            cands = [decode(x) for x in X]
            left = evo.budget - len(log["cands"])
            e = ev.evaluate(cands)
            F = np.where(e.feasible[:, None], e.objectives, 1e9)
            log["cands"] += cands[:max(0, left)]
            log["F"].append(e.objectives[:max(0, left)])
            log["ok"].append(e.feasible[:max(0, left)])
            out["F"] = F

    algo = MixedVariableGA(pop_size=evo.population, n_offsprings=evo.children, survival=RankAndCrowdingSurvival())
    minimize(CoProblem(), algo, ("n_evals", evo.budget), seed=seed, verbose=False)
    return log["cands"], np.concatenate(log["F"]), np.concatenate(log["ok"])


def hv_curve(F, ok, norm: Normalization, step: int) -> list[tuple[int, float]]:
    out = []
    for n in list(range(step, len(F), step)) + [len(F)]:
        G = F[:n][ok[:n]]
        out.append((n, hypervolume(G[pareto_mask(G)], norm) if len(G) else 0.0))
    return out


def mean_ci(values, rng: np.random.Generator, n_boot: int = 10_000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one per seed)."""
    v = np.asarray(values, dtype=float)
    means = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def evals_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    """The first evaluation count of ``curve`` ((evaluations, hypervolume) pairs)
    whose hypervolume reaches ``target``; None if it never does."""
    return next((n for n, hv in curve if hv >= target), None)


def _hv_after(curve: list[tuple[int, float]], n: int) -> float:
    """The hypervolume of ``curve`` at the last point with at most ``n`` evaluations."""
    return max((hv for k, hv in curve if k <= n), default=0.0)


def _save(obj, path: Path) -> None:
    """Pickle ``obj`` to ``path`` through a temporary file, so no half-written run is ever read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f)
    os.replace(tmp, path)


# -- (b) retrained models ----------------------------------------------------------------------

def models_table(cfg: RunConfig, ds, cands, F, ok, top: int, steps: int) -> list[dict]:
    """The five baselines and searched front models, trained ``steps`` from scratch,
    tested, all costed on recnmp's own settings. Searched models: the front's best
    ``top`` by search log loss among those at no more than half the latency of the
    most accurate baseline (the goal of (b)), then the best by search log loss overall."""
    import torch
    from nasrec.baselines import BASELINES, build_baseline
    from nasrec.model import NasRecModel
    from nasrec.train import TrainConfig, evaluate, train_model
    from nasrec.util import seeded_torch
    cost = PimsimCost(ds.schema, hwmodel.query, hwmodel.build_hardware, batch_size=cfg.inference.batch_size,
                      tables=table_spec(ds), seed=cfg.seed)
    ref = HardwareKnobs("recnmp")
    hw = hwmodel.build_hardware(ref)
    b = cfg.inference.batch_size
    g = torch.Generator().manual_seed(0)
    dense = torch.rand(b, ds.schema.n_dense, generator=g)
    ids = torch.stack([torch.randint(0, c, (b,), generator=g) for c in ds.schema.cardinalities], 1)
    tc = TrainConfig(steps=steps, seed=cfg.seed)
    train, test = ds.split("train"), ds.split("test")
    rows = []
    for name in sorted(BASELINES):
        model = build_baseline(name, ds.schema, cfg.seed)
        w = module_workload(model, (dense, ids), ds.schema, tables=cost.tables, name=name)
        rep = hwmodel.query(w, hw, seed=cfg.seed)
        t0 = time.perf_counter()
        train_model(model, train, tc)
        r = evaluate(model, test)
        rows.append({"model": name, "test_logloss": r["logloss"], "test_auc": r["auc"], "latency_s": rep.latency_s,
                     "energy_per_sample_j": rep.energy_per_sample_j, "train_seconds": time.perf_counter() - t0})
        print(f"(b) {name}: test log loss {r['logloss']:.5f}", flush=True)
    best = min(rows, key=lambda r: r["test_logloss"])
    idx = np.flatnonzero(ok)
    front = idx[pareto_mask(F[idx])]
    ref_latency = {}
    for i in front:
        h = cands[i].arch.hash
        if h not in ref_latency:
            ref_latency[h] = cost.cost_of(cost.workload(Candidate(cands[i].arch, ref)), ref)
    by_loss = front[np.argsort(F[front, 0], kind="stable")]
    fast = [i for i in by_loss if ref_latency[cands[i].arch.hash][0] <= 0.5 * best["latency_s"]]
    chosen, seen = [], set()
    for i in fast[:top] + list(by_loss[:1]):
        if cands[i].arch.hash not in seen:
            seen.add(cands[i].arch.hash)
            chosen.append(i)
    for i in chosen:
        spec = cands[i].arch
        with seeded_torch(cfg.seed):
            model = NasRecModel(spec, ds.schema)
        t0 = time.perf_counter()
        train_model(model, train, tc)
        r = evaluate(model, test)
        c = ref_latency[spec.hash]
        rows.append({"model": f"searched:{spec.hash[:12]}", "search_logloss": float(F[i, 0]),
                     "test_logloss": r["logloss"], "test_auc": r["auc"], "latency_s": c[0],
                     "energy_per_sample_j": c[1], "searched_hardware": cands[i].hw.label,
                     "searched_latency_s": float(F[i, 1]), "train_seconds": time.perf_counter() - t0,
                     "half_latency_of_best_baseline": bool(c[0] <= 0.5 * best["latency_s"])})
        print(f"(b) {rows[-1]['model']}: test log loss {r['logloss']:.5f}", flush=True)
    for r in rows:
        r.update(hardware="recnmp", train_steps=steps, seed=cfg.seed, data=test.tag,
                 bayes_test_logloss=ds.bayes_logloss["test"], best_baseline=best["model"])
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    # the default run's search sizes (cosearch.config.DEFAULT.search)
    ap.add_argument("--budget", type=int, default=DEFAULT.search.budget)
    ap.add_argument("--population", type=int, default=DEFAULT.search.population)
    ap.add_argument("--children", type=int, default=DEFAULT.search.children)
    ap.add_argument("--sample-size", type=int, default=DEFAULT.search.sample_size)
    ap.add_argument("--scoring-steps", type=int, default=DEFAULT.scoring.finetune_steps)
    ap.add_argument("--val-rows", type=int, default=DEFAULT.scoring.val_rows)
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cosearch-bench-cache")
    ap.add_argument("--skip-e2e", action="store_true", help="skip (c), the default end-to-end run")
    ap.add_argument("--skip-models", action="store_true", help="skip (b), the retraining table")
    ap.add_argument("--quick", action="store_true", help="the --quick data set and supernet (smoke test)")
    ap.add_argument("--algorithms", nargs="+", default=None, metavar="NAME",
                    help=f"subset of {', '.join(list(VARIANTS) + list(ENGINE_VARIANTS) + ['nsga2-pymoo'])} for (a) "
                    "(must include random)")
    ap.add_argument("--tag", default="", help="suffix of the (a) result files (keeps the default run's files)")
    ap.add_argument("--fresh", action="store_true",
                    help="rerun (a)'s runs even where the cache holds a finished one with the same settings")
    ap.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap intervals")
    ap.add_argument("--also-at", type=int, nargs="*", default=[96], metavar="N",
                    help="also report the mean hypervolume after N evaluations of the same runs (a prefix: "
                         "not a run with budget N, whose mutation schedule differs)")
    ap.add_argument("--screen", type=int, default=None, metavar="N",
                    help=f"also run moea+screenN: cost-first screening of factor N (2..{SCREEN_MAX}); any variant "
                    "of (a) takes the suffix +screenN in --algorithms")
    args = ap.parse_args(argv)
    # the variants are checked before the data set and supernet are made
    algos = list(VARIANTS)
    try:
        import pymoo  # noqa: F401
        algos += list(ENGINE_VARIANTS) + ["nsga2-pymoo"]
    except ImportError:
        print("pymoo not installed (pip install '.[bench]'): skipping NSGA-II and the engines", file=sys.stderr)
    try:
        algos = select_variants(algos, args.algorithms, args.screen)
    except ValueError as e:
        print(f"cosearch_synthetic: {e}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    cfg = QUICK if args.quick else DEFAULT
    wall = []
    t0 = time.perf_counter()
    ds = ensure_dataset(cfg, args.cache)
    t1 = time.perf_counter()
    sn, _ = ensure_supernet(cfg, ds, args.cache)
    wall.append({"what": "data set + supernet (cached afterwards)", "dataset_seconds": t1 - t0,
                 "supernet_seconds": time.perf_counter() - t1, "supernet_steps": cfg.supernet.steps,
                 "cores": _cores(), "seed": cfg.seed})
    wall_csv = RESULTS / (f"cosearch_synthetic_wall_{args.tag}.csv" if args.tag else "cosearch_synthetic_wall.csv")
    write_rows(wall, wall_csv)
    print(f"data set {t1 - t0:.0f} s, supernet {time.perf_counter() - t1:.0f} s", flush=True)
    space = search_space(replace(cfg, hardware=KNOBS), ds.schema)  # the default space on recnmp
    evo = EvolutionConfig(budget=args.budget, population=args.population, sample_size=args.sample_size,
                          children=args.children)
    runs = {}
    log, cap = normalization_settings(OBJECTIVES, ds)
    screened = {}
    # finished runs are kept, so that a race of hours survives an interruption
    saved = args.cache / "race" / (f"{'quick' if args.quick else 'default'}-b{args.budget}-p{args.population}"
                                   f"-c{args.children}-k{args.sample_size}-f{args.scoring_steps}-v{args.val_rows}")
    for seed in range(args.seeds):
        for a in algos:
            path = saved / f"{a}-seed{seed}.pkl"
            if path.exists() and not args.fresh:
                with open(path, "rb") as f:
                    r = pickle.load(f)
                print(f"(a) {a} seed {seed}: from {path} ({r['seconds']:.0f} s when run)", flush=True)
            else:
                # a fresh evaluator per run: no run gains from another's cache, so wall times compare
                ev = _evaluator(cfg, ds, sn, args.scoring_steps, args.val_rows)
                t0 = time.perf_counter()
                stats = {}
                cands, F, ok = (run_nsga2(space, ev, seed, evo) if a == "nsga2-pymoo"
                                else run_ours(a, space, ev, seed, evo, log, cap, stats))
                r = {"cands": cands, "F": F, "ok": ok, "seconds": time.perf_counter() - t0,
                     "screened": stats.get("screened", 0)}
                _save(r, path)
                print(f"(a) {a} seed {seed}: {r['seconds']:.0f} s", flush=True)
            runs[(a, seed)] = (r["cands"], r["F"], r["ok"], r["seconds"])
            screened[(a, seed)] = r["screened"]
    sfx = f"_{args.tag}" if args.tag else ""
    allF = np.concatenate([F[ok] for _, F, ok, _ in runs.values()])
    norm = Normalization.from_points(allF, log, cap)
    points = [{"algorithm": a, "seed": seed, "index": i, "arch_hash": c.arch.hash[:16], "hardware": c.hw.label,
               **{o: float(v) for o, v in zip(OBJECTIVES, F[i])}, "feasible": bool(ok[i])}
              for (a, seed), (cands, F, ok, _) in runs.items() for i, c in enumerate(cands)]
    write_rows(points, RESULTS / f"cosearch_synthetic_points{sfx}.csv")
    hv_rows, summary = [], []
    step = 8  # the resolution of the curves and of the evaluations to reach random search's result
    curves = {k: hv_curve(F, ok, norm, step) for k, (_, F, ok, _) in runs.items()}
    for (a, seed), curve in curves.items():
        for n, hv in curve:
            hv_rows.append({"algorithm": a, "seed": seed, "evaluations": n, "hypervolume": hv})
    boot = np.random.default_rng(args.bootstrap_seed)
    rnd_final = float(np.mean([curves[("random", s)][-1][1] for s in range(args.seeds)]))
    for a in algos:
        finals = [curves[(a, s)][-1][1] for s in range(args.seeds)]
        lo, hi = mean_ci(finals, boot)
        reach = [evals_to_reach(curves[(a, s)], rnd_final) for s in range(args.seeds)]
        ns = [n for n, _ in curves[(a, 0)]]
        mean_curve = list(zip(ns, np.mean([[hv for _, hv in curves[(a, s)]] for s in range(args.seeds)], 0)))
        to_random = evals_to_reach(mean_curve, rnd_final)
        summary.append({"algorithm": a, "seeds": args.seeds, "budget": args.budget, "hv_mean": float(np.mean(finals)),
                        "hv_lo95": lo, "hv_hi95": hi,
                        "hv_std": float(np.std(finals)), "hv_per_seed": " ".join(f"{v:.4f}" for v in finals),
                        # evaluations after which the mean curve over seeds reaches random search's
                        # mean final hypervolume (empty: never within the budget)
                        "evals_to_random": "" if to_random is None else to_random,
                        "seeds_reaching_random": sum(n is not None for n in reach),
                        "seconds_mean": float(np.mean([runs[(a, s)][3] for s in range(args.seeds)])),
                        "seconds_median": float(np.median([runs[(a, s)][3] for s in range(args.seeds)])),
                        **{f"hv_mean_after_{n}": float(np.mean([_hv_after(curves[(a, s)], n) for s in range(args.seeds)]))
                           for n in args.also_at if n < args.budget},
                        "seconds_per_seed": " ".join(f"{runs[(a, s)][3]:.0f}" for s in range(args.seeds)),
                        # children costed by the screen and never evaluated: the extra pimsim calls
                        "screened_mean": float(np.mean([screened[(a, s)] for s in range(args.seeds)])),
                        "population": args.population, "children": args.children, "sample_size": args.sample_size,
                        "scoring_steps": args.scoring_steps, "bootstrap_seed": args.bootstrap_seed})
    rnd = next(r for r in summary if r["algorithm"] == "random")
    for r in summary:
        r.update(ratio_to_random=r["hv_mean"] / rnd["hv_mean"] if rnd["hv_mean"] else float("nan"),
                 **{f"ratio_to_random_after_{n}": r[f"hv_mean_after_{n}"] / rnd[f"hv_mean_after_{n}"]
                    for n in args.also_at if n < args.budget},
                 lower=" ".join(map(repr, norm.lower)),
                 upper=" ".join(map(repr, norm.upper)), log10=" ".join(map(str, norm.log)), reference=1.1, objectives=" ".join(OBJECTIVES),
                 hardware="recnmp", cores=_cores())
    write_rows(hv_rows, RESULTS / f"cosearch_synthetic_hv{sfx}.csv")
    write_rows(summary, RESULTS / f"cosearch_synthetic_hv_summary{sfx}.csv")
    _plot(hv_rows, algos, RESULTS / f"cosearch_synthetic_hv{sfx}.png")
    for r in summary:
        print(f"(a) {r['algorithm']}: hv {r['hv_mean']:.4f} [{r['hv_lo95']:.4f}, {r['hv_hi95']:.4f}] "
              f"({r['ratio_to_random']:.2f}x random), random's final hv "
              + (f"after {r['evals_to_random']} evaluations" if r["evals_to_random"] else "never reached")
              + f", {r['seconds_median']:.0f} s a run (median)")
    if not args.skip_models and "moea" in algos:
        cands = [c for s in range(args.seeds) for c in runs[("moea", s)][0]]
        F = np.concatenate([runs[("moea", s)][1] for s in range(args.seeds)])
        ok = np.concatenate([runs[("moea", s)][2] for s in range(args.seeds)])
        rows = models_table(cfg, ds, cands, F, ok, args.top, args.train_steps)
        write_rows(rows, RESULTS / "cosearch_synthetic_models.csv")
        for r in rows:
            print(f"(b) {r['model']}: test log loss {r['test_logloss']:.5f}, latency {r['latency_s'] * 1e3:.4f} ms, "
                  f"energy {r['energy_per_sample_j'] * 1e6:.3f} uJ/sample")
    if not args.skip_e2e:
        out = Path(tempfile.mkdtemp(prefix="cosearch-e2e-"))
        stages, t_last = {}, [time.perf_counter(), None]

        def on_stage(name):
            now = time.perf_counter()
            if t_last[1] is not None:
                stages[t_last[1]] = now - t_last[0]
            t_last[0], t_last[1] = now, name
        t0 = time.perf_counter()
        res = run_pipeline(cfg, out, args.cache, on_stage=on_stage)
        on_stage("end")
        wall.append({"what": "cosearch run (defaults; data set and supernet from the cache)",
                     "seconds": time.perf_counter() - t0,
                     **{f"{k}_seconds": v for k, v in stages.items()}, "evaluations": len(res.keys),
                     "front": int(res.front.sum()), "cores": _cores(), "seed": cfg.seed, "out": str(out)})
        write_rows(wall, wall_csv)
        print(f"(c) default run with cached data and supernet: {wall[-1]['seconds']:.0f} s ({stages})", flush=True)
    return 0


def _cores() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _plot(rows, algos, path):
    from cosearch.plots import _plt, save_png
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, a in enumerate(algos):
        rs = [r for r in rows if r["algorithm"] == a]
        seeds = sorted({r["seed"] for r in rs})
        ns = sorted({r["evaluations"] for r in rs})
        M = np.array([[next(r["hypervolume"] for r in rs if r["seed"] == s and r["evaluations"] == n) for n in ns]
                      for s in seeds])
        ax.plot(ns, M.mean(0), "-", c=f"C{i}", label=f"{a} (mean of {len(seeds)})")
        ax.fill_between(ns, M.min(0), M.max(0), color=f"C{i}", alpha=0.15)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume (normalised, ref 1.1)")
    ax.set_title("co-search on synthetic data, recnmp: log loss x latency x energy", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


if __name__ == "__main__":
    sys.exit(main())
