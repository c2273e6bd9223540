"""The whole co-search pipeline behind ``cosearch run``: data, supernet, search, report.

Data sets and supernets are cached under ``cache_dir`` by the settings that make
them (a changed setting trains a new one; equal settings reuse it). A run
directory holds ``run.json`` (config, seed, dataset and supernet hashes; for a library
engine, the library and its version, which a resume must match),
``results.csv``, ``checkpoint.json``, ``front.csv``, ``baselines.csv`` (baselines on
the default hardware), ``baselines_fronts.csv`` (on the search's hardware knob space),
the plots and ``summary.md``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np

from cosearch.config import RunConfig, config_hash
from cosearch.executor import make_executor
from cosearch.hardware import HardwareKnobs
from cosearch.objectives import Candidate, Constraint, CoSpace, Evaluator, PimsimCost, SupernetAccuracy
from cosearch.profile import TableSpec, module_workload
from cosearch.run import (CHECKPOINT, GenerationInfo, SearchResult, atomic_write_json, atomic_write_text,
                          read_results, run_search)
from cosearch.search import ENGINE_NAMES, engine_library, make_algorithm

__all__ = ["ensure_dataset", "ensure_supernet", "run_pipeline", "normalization_settings", "resume_pipeline", "finish_run",
           "baseline_costs", "verify", "verdict", "truth_recipe", "load_run", "front_rows", "layered_rows", "table_spec",
           "search_space", "verification_recipe", "spread_pool", "SPREAD_BINS", "RUN_FILE", "baseline_fronts", "baseline_hardware", "cost_front", "equal_freedom",
           "MAX_BASELINE_HARDWARE", "BASELINE_FRONTS"]

log = logging.getLogger("cosearch")

RUN_FILE = "run.json"
RUN_VERSION = 1


def _file_hash(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def ensure_dataset(cfg: RunConfig, cache_dir, quiet: bool = True):
    """The data set of ``cfg.data``: a prepared folder, or the synthetic one generated
    once into ``cache_dir`` (keyed by its settings and the seed)."""
    from nasrec.data import Dataset, SyntheticConfig, generate_synthetic
    if cfg.data.path:
        return Dataset(cfg.data.path)
    from nasrec.data import MLPERF_POOLING
    syn = SyntheticConfig(rows=cfg.data.rows, max_cardinality=cfg.data.max_cardinality,
                          zipf_exponent=cfg.data.zipf_exponent, seed=cfg.seed,
                          pooling=MLPERF_POOLING if cfg.data.pooling == "mlperf" else None, bag=cfg.data.bag)
    folder = Path(cache_dir) / f"data-{config_hash(asdict(syn))[:16]}"
    if folder.exists():
        try:
            ds = Dataset(folder)
            ds.verify()
            return ds
        except ValueError as e:  # a damaged cache entry is rebuilt, not fatal
            log.warning(f"cache: {e}; generating the data set again")
    folder.parent.mkdir(parents=True, exist_ok=True)
    return generate_synthetic(syn, folder, overwrite=True, quiet=quiet)


def _train_config(cfg: RunConfig):
    from nasrec.train import TrainConfig
    return TrainConfig(steps=cfg.supernet.steps, batch_size=cfg.supernet.batch_size, lr=cfg.supernet.lr,
                       full_path_fraction=cfg.supernet.full_path_fraction, seed=cfg.seed)


def ensure_supernet(cfg: RunConfig, dataset, cache_dir, quiet: bool = True):
    """(supernet, checkpoint path): trained once per (data hash, space, training
    settings) into ``cache_dir`` and reused afterwards."""
    from nasrec.train import build_supernet, load_checkpoint, train_supernet
    tc = _train_config(cfg)
    emb = cfg.supernet.embedding_space() if cfg.supernet.embeddings == "extended" else None
    from nasrec.model import NETWORK_REVISION
    settings = {"data": dataset.content_hash, "space": cfg.supernet.space, "train": tc.to_dict(),
                "network": NETWORK_REVISION}
    if emb is not None:
        settings["embedding_space"] = asdict(emb)
    key = config_hash(settings)
    path = Path(cache_dir) / f"supernet-{key[:16]}.pt"
    stamp = path.with_name(path.name + ".sha256")  # written after a complete checkpoint
    if path.exists() or stamp.exists():
        try:
            if not stamp.is_file() or stamp.read_text().strip() != _file_hash(path):
                raise ValueError(f"{path}: missing, truncated or changed since it was written")
            sn, _ = load_checkpoint(path)
            return sn, path
        except (ValueError, OSError) as e:  # a damaged cache entry is rebuilt, not fatal
            log.warning(f"cache: {e}; training the supernet again")
    stamp.unlink(missing_ok=True)
    sn = build_supernet(dataset.schema, cfg.supernet.space, cfg.seed, embedding_space=emb)
    train_supernet(sn, dataset.split("train"), tc, quiet=quiet, checkpoint=path)
    atomic_write_text(stamp, _file_hash(path) + "\n")
    sn, _ = load_checkpoint(path)
    return sn, path


def table_spec(dataset, rows_scale: int = 1) -> TableSpec:
    """Index distribution of the tables (Zipf with the data's exponent for synthetic
    data) and the multiplier on their rows."""
    syn = dataset.meta.get("config") if dataset.meta.get("source") == "synthetic" else None
    if syn:
        return TableSpec(distribution="zipf", zipf_alpha=float(syn["zipf_exponent"]), rows_scale=rows_scale)
    return TableSpec(rows_scale=rows_scale)


def _providers(cfg: RunConfig, dataset, supernet, quiet: bool):
    from cosearch import hwmodel
    from cosearch.scoring import InheritedScorer
    scorer = InheritedScorer(supernet, dataset.split("train"), dataset.split("val", cfg.scoring.val_rows),
                             finetune_steps=cfg.scoring.finetune_steps, batch_size=cfg.scoring.batch_size,
                             seed=cfg.seed, head_fit=cfg.scoring.head_fit, probe_l2=cfg.scoring.probe_l2)
    cost = PimsimCost(dataset.schema, hwmodel.query, hwmodel.build_hardware,
                      batch_size=cfg.inference.batch_size,
                      tables=table_spec(dataset, cfg.inference.table_rows_scale), seed=cfg.seed)
    return SupernetAccuracy(scorer), cost


def normalization_settings(objectives, dataset) -> tuple[tuple[bool, ...], tuple]:
    """(log, cap) for normalising objectives: cost metrics in log10 (they span orders
    of magnitude), log loss linear and capped at the constant predictor's log loss
    (the entropy of the data's click rate): anything worse is worthless."""
    from nasrec.data import binary_entropy
    ctr = dataset.meta.get("ctr")
    base = float(binary_entropy(ctr)) if ctr is not None else None
    return (tuple(o != "logloss" for o in objectives),
            tuple(base if o == "logloss" else None for o in objectives))


def _row_fields(c: Candidate) -> dict:
    d = {"arch_hash": c.arch.hash[:16], "hardware": c.hw.label}
    d.update({f"hw_{k}": v for k, v in c.hw.to_dict().items()})
    d["arch"] = c.arch.to_json()
    return d


def search_space(cfg: RunConfig, schema) -> CoSpace:
    """The candidate space of ``cfg``: its NASRec space (with per-field embedding
    choices for ``embeddings = "extended"``) x its hardware knobs."""
    from nasrec.space import get_space
    from cosearch import hwmodel
    knobs, n_fields = cfg.hardware, None
    if cfg.supernet.embeddings == "extended":
        n_fields = schema.n_sparse
        # each field's precision is the architecture's choice; a hardware-wide one
        # would only repeat candidates with identical costs
        knobs = replace(knobs, precisions=knobs.precisions[:1])
    return CoSpace(get_space(cfg.supernet.space), knobs, cfg.search.arch_prob, hwmodel.knobs_valid, n_fields,
                   cfg.supernet.embedding_space())


def run_pipeline(cfg: RunConfig, out_dir, cache_dir, *, quiet: bool = True,
                 on_stage: Callable[[str], None] | None = None,
                 on_generation: Callable[[GenerationInfo], None] | None = None,
                 max_generations: int | None = None) -> SearchResult:
    """Prepare data and supernet, write ``run.json``, search (resuming if the
    directory holds a checkpoint of the same config) and write the report."""
    # a library engine that is not installed fails here, before any work
    engine = (dict(zip(("library", "version"), engine_library(cfg.search.algorithm)))
              if cfg.search.algorithm in ENGINE_NAMES else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_path = out / RUN_FILE
    if run_path.is_file():
        old = json.loads(run_path.read_text(encoding="utf-8"))
        if _with_added_settings(old.get("config")) != cfg.to_dict():
            raise ValueError(f"{out} holds a run with a different configuration; use another --out "
                             "or 'cosearch resume' on it")
        if old.get("engine") is not None and old.get("engine") != engine:
            # the engine's state is pickled library objects: only the same version reads them
            rec = old["engine"]
            raise ValueError(f"{out} was run with {rec.get('library')} {rec.get('version')}, this is "
                             f"{engine['library']} {engine['version']}; resume with the same version "
                             f"(pip install {rec.get('library')}=={rec.get('version')})")
    t0 = time.perf_counter()
    stage = on_stage or (lambda s: None)
    stage("dataset")
    ds = ensure_dataset(cfg, cache_dir, quiet)
    stage("supernet")
    sn, sn_path = ensure_supernet(cfg, ds, cache_dir, quiet)
    meta = {"version": RUN_VERSION, "config": cfg.to_dict(), "seed": cfg.seed, "dataset": str(ds.path),
            "dataset_hash": ds.content_hash, "bayes_logloss": ds.bayes_logloss, "supernet": str(sn_path),
            "supernet_hash": _file_hash(sn_path), "cache_dir": str(Path(cache_dir))}
    if engine is not None:
        meta["engine"] = engine
    if not run_path.is_file():
        atomic_write_json(run_path, meta)
    stage("search")
    acc, cost = _providers(cfg, ds, sn, quiet)
    # the baselines' verification trainings do not depend on the search, which leaves
    # part of the CPU idle (1774 CPU-s in 1036 s for a whole cold default run): start them
    # now, one fewer at once than [verify] workers (but at least one)
    early = (VerificationTrainings(cfg, ds, cache_dir, limit=max(1, cfg.verify.workers - 1),
                                   on_model=lambda m: stage(f"verify {m} (beside the search)"))
             if max_generations is None and verified_baselines(cfg) else None)
    share = _CoreShare(early)
    try:
        executor = make_executor(cfg.execution.executor, cfg.execution.workers)
        try:
            evaluator = Evaluator([acc, cost], cfg.search.objectives,
                                  [Constraint(k, float(v)) for k, v in cfg.constraints.items()], executor)
            log, cap = normalization_settings(cfg.search.objectives, ds)
            # cost-first screening through the evaluator's own cost provider and cache
            screen = evaluator.screen([cost], cfg.search.screen) if cfg.search.screen > 1 else None
            algo = make_algorithm(cfg.search.algorithm, search_space(cfg, ds.schema),
                                  np.random.default_rng([cfg.seed, 5]), cfg.search.evolution(), cfg.search.weights,
                                  log=log, cap=cap, screen=screen)
            result = run_search(out, algo, evaluator, row_fields=_row_fields, seed=cfg.seed, hv_log=log,
                                hv_cap=cap, on_generation=share.wrap(on_generation),
                                max_generations=max_generations)
        finally:
            share.restore()
            executor.close()
        if result.complete:
            stage("report")
            finish_run(out, cfg, ds, cost, cache_dir, quiet=quiet, started=t0, on_stage=stage, trainings=early)
    except BaseException:
        if early is not None:
            early.close(cancel=True)
        raise
    if early is not None:
        early.close()
    return result


# Settings added after runs were written, with the value that reproduces those runs:
# a run.json without them is the same configuration as one with these values.
_ADDED_SETTINGS = {("search", "screen"): 1, ("verify", "rescore"): 0, ("verify", "rescore_steps"): 50,
                   ("verify", "pool"): "front", ("supernet", "embedding_dims"): (0, 4, 8, 16, 32, 64),
                   ("verify", "lr_fan_in"): 0}


def _with_added_settings(config):
    if not isinstance(config, dict):
        return config
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for (table, key), value in _ADDED_SETTINGS.items():
        if isinstance(config.get(table), dict):
            config[table].setdefault(key, value)
    return config


def load_run(run_dir) -> tuple[RunConfig, dict]:
    """(config, run.json dict) of a run directory."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise ValueError(f"not a cosearch run directory (no {RUN_FILE}): {run_dir}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: bad JSON: {e}") from None
    # a run.json from before a setting existed gets the value that reproduces it, not today's default
    return RunConfig.from_dict(_with_added_settings(meta["config"])), meta


def resume_pipeline(run_dir, **kw) -> SearchResult:
    """Continue the run in ``run_dir`` with its recorded config and cache."""
    cfg, meta = load_run(run_dir)
    if not (Path(run_dir) / CHECKPOINT).is_file():
        raise ValueError(f"{run_dir} has no checkpoint to resume from")
    return run_pipeline(cfg, run_dir, meta["cache_dir"], **kw)


def layered_rows(run_dir, objectives) -> list[dict]:
    """Every feasible row with ``pareto_layer`` added (1: the Pareto front; k: the front
    once layers 1..k-1 are removed), by layer, then by the first objective."""
    from cosearch.pareto import non_dominated_sort
    rows = [r for r in read_results(run_dir) if r["feasible"] == "1"]
    if not rows:
        return []
    layer = non_dominated_sort(np.array([[float(r[o]) for o in objectives] for r in rows]))
    out = [dict(r, pareto_layer=int(k) + 1) for r, k in zip(rows, layer)]
    return sorted(out, key=lambda r: (r["pareto_layer"], float(r[objectives[0]])))


SPREAD_BINS = 8


def _first_cost_objective(objectives) -> str | None:
    """The objective a spread pool spreads over: the first that is not ``logloss``."""
    return next((o for o in objectives if o != "logloss"), None)


def spread_pool(rows: list[dict], objectives, want: int, bins: int = SPREAD_BINS) -> list[dict]:
    """Up to ``want`` distinct architectures of ``rows`` spread over the first cost
    objective (the first one that is not ``logloss``): its log10 range cut into ``bins``
    equal bins, the ``ceil(want / bins)`` lowest search log losses of each bin, then the
    lowest of the rest for slots a sparse bin leaves. An architecture stands for its row
    of lowest (log loss, cost). Without a cost objective: the lowest log losses."""
    cost = _first_cost_objective(objectives)
    best: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: (float(r["logloss"]), float(r[cost]) if cost else 0.0)):
        best.setdefault(r["arch_hash"], r)
    archs = sorted(best.values(), key=lambda r: float(r["logloss"]))
    if cost is None or len(archs) <= want:
        return archs[:want]
    x = np.log10(np.maximum([float(r[cost]) for r in archs], np.finfo(float).tiny))
    edges = np.linspace(x.min(), x.max(), bins + 1)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    per = -(-want // bins)
    # archs is sorted by log loss, so within a bin and among the rest the lowest come first
    taken = sorted(int(i) for b in range(bins) for i in np.flatnonzero(which == b)[:per])
    chosen = set(taken)
    rest = [i for i in range(len(archs)) if i not in chosen]
    picked = taken[:want] + rest[:max(0, want - len(taken))]
    return [archs[i] for i in picked]


def front_rows(run_dir, objectives) -> list[dict]:
    """Rows of the final Pareto front (feasible, non-dominated), by the first objective."""
    from cosearch.pareto import pareto_mask
    rows = [r for r in read_results(run_dir) if r["feasible"] == "1"]
    if not rows:
        return []
    F = np.array([[float(r[o]) for o in objectives] for r in rows])
    front, seen = [], set()
    for r, f, m in zip(rows, F, pareto_mask(F)):
        if m:
            arch, hw = _equivalence_key(r)
            # equivalent architecture on equivalent hardware, or on hardware that differs
            # only in what this workload never uses (same objectives), is one point
            keys = {(arch, hw), (arch, tuple(f))}
            if not keys & seen:
                seen |= keys
                front.append(r)
    return sorted(front, key=lambda r: float(r[objectives[0]]))


def _equivalence_key(row: dict) -> tuple[str, str]:
    """(canonical architecture hash, hardware key) of a results row."""
    from nasrec.space import ArchSpec
    hw = {k[3:]: row[k] for k in row if k.startswith("hw_")}
    for k in ("ranks", "crossbar_size", "adc_bits", "host_rows_max"):
        if k in hw:
            hw[k] = int(float(hw[k]))
    return ArchSpec.from_json(row["arch"]).hash, HardwareKnobs.from_dict(hw).key


def _baseline_inputs(cfg: RunConfig, schema) -> tuple:
    """(dense, ids): one batch of inputs the baselines are profiled on, from the run's seed."""
    import torch
    b = cfg.inference.batch_size
    g = torch.Generator().manual_seed(cfg.seed)
    dense = torch.rand(b, schema.n_dense, generator=g)
    ids = torch.cat([torch.randint(0, c, (b, p), generator=g) for c, p in zip(schema.cardinalities, schema.lookups)],
                    1)
    return dense, ids


def baseline_costs(cfg: RunConfig, dataset, cost: PimsimCost) -> list[dict]:
    """Each baseline's latency and energy on ``cfg.baselines.hardware``, profiled with
    the same cost model as the searched candidates."""
    from nasrec.baselines import build_baseline
    from cosearch import hwmodel
    rows = []
    dense, ids = _baseline_inputs(cfg, dataset.schema)
    hw = hwmodel.build_hardware(HardwareKnobs(cfg.baselines.hardware))
    for name in cfg.baselines.names:
        model = build_baseline(name, dataset.schema, cfg.seed)
        w = module_workload(model, (dense, ids), dataset.schema, tables=cost.tables, name=name)
        rep = cost.query(w, hw, seed=cost.seed)
        rows.append({"model": name, "hardware": cfg.baselines.hardware, "latency_s": rep.latency_s,
                     "energy_per_sample_j": rep.energy_per_sample_j, "dense_flops": w.dense_flops,
                     "seed": cfg.seed})
    return rows


# Hardware configurations each baseline is costed on, at most (issue 15 item 4: baselines
# on their best hardware). A pimsim query takes about 10 ms, so the default five baselines
# stay within 5 x 48 = 240 queries, a few seconds of the report, and each is profiled once
# per embedding precision. The default knob space (about 1,600 combinations) is sampled;
# a small one (the tests' 6) is costed whole.
MAX_BASELINE_HARDWARE = 48
BASELINE_FRONTS = "baselines_fronts.csv"


def baseline_hardware(cfg: RunConfig) -> tuple[list[HardwareKnobs], bool]:
    """(configurations, sampled): the hardware the baselines are costed on: the default
    (``cfg.baselines.hardware``), then every valid configuration of the search's knob
    space (``cfg.hardware``, with every precision it lists even where the architecture
    chooses precisions per field: the same freedom), or, beyond
    ``MAX_BASELINE_HARDWARE``, a uniform sample drawn by a generator seeded with the run's seed."""
    from cosearch import hwmodel
    from cosearch.hardware import knob_sample
    return knob_sample(cfg.hardware, np.random.default_rng([cfg.seed, 11]), MAX_BASELINE_HARDWARE,
                       valid=hwmodel.knobs_valid, first=(HardwareKnobs(cfg.baselines.hardware),))


def cost_front(points) -> np.ndarray:
    """``[n]`` bool: the non-dominated rows of ``points`` (``[n, k]``, lower is better,
    NaN rows never on it), one row for points that are equal (the first)."""
    from cosearch.pareto import pareto_mask
    P = np.asarray(points, dtype=np.float64)
    on = np.zeros(len(P), dtype=bool)
    if not len(P):
        return on
    ok = np.flatnonzero(np.isfinite(P).all(axis=1))
    if len(ok):
        on[ok[pareto_mask(P[ok])]] = True
        _, first = np.unique(P[on], axis=0, return_index=True)
        keep = np.flatnonzero(on)[np.sort(first)]
        on[:] = False
        on[keep] = True
    return on


def baseline_fronts(cfg: RunConfig, dataset, cost: PimsimCost) -> list[dict]:
    """Every baseline on every configuration of :func:`baseline_hardware`, costed as the
    searched candidates are (profiled with that configuration's embedding precision,
    small tables pinned to the host as its knobs say): one row each, with ``on_front``
    1 for the baseline's own non-dominated (latency, energy per sample) points and
    ``default_hw`` 1 for ``cfg.baselines.hardware``."""
    from nasrec.baselines import build_baseline
    from cosearch.objectives import pin_host_tables
    knobs, sampled = baseline_hardware(cfg)
    default = HardwareKnobs(cfg.baselines.hardware).key
    inputs = _baseline_inputs(cfg, dataset.schema)
    rows = []
    for name in cfg.baselines.names:
        model = build_baseline(name, dataset.schema, cfg.seed)
        profiled = {}  # precision -> workload: profiling (a forward pass) costs more than a query
        mine = []
        for k in knobs:
            if k.precision not in profiled:
                profiled[k.precision] = module_workload(model, inputs, dataset.schema, name=name,
                                                        tables=replace(cost.tables, precision=k.precision))
            w = pin_host_tables(profiled[k.precision], k.host_rows_max)
            lat, energy, area, power = cost.cost_of(w, k)
            mine.append({"model": name, "hardware": k.label, **{f"hw_{a}": v for a, v in k.to_dict().items()},
                         "default_hw": int(k.key == default), "latency_s": lat, "energy_per_sample_j": energy,
                         "area_mm2": area, "peak_power_w": power, "dense_flops": w.dense_flops,
                         "configs": len(knobs), "sampled": int(sampled), "seed": cfg.seed})
        on = cost_front([[r["latency_s"], r["energy_per_sample_j"]] for r in mine])
        rows += [dict(r, on_front=int(f)) for r, f in zip(mine, on)]
    return rows


def truth_recipe(cfg: RunConfig):
    """The from-scratch recipe that verifies front members and baselines."""
    from nasrec.scratch import TruthRecipe
    v = cfg.verify
    return TruthRecipe(steps=v.steps, batch_size=v.batch_size, lr=v.lr, lr_fan_in=v.lr_fan_in)


def verification_recipe(cfg: RunConfig, dataset):
    """``truth_recipe(cfg)`` as it runs on ``dataset``: with fewer steps when the training
    split cannot give every step fresh rows (small data sets, ``--quick``)."""
    recipe, n_train = truth_recipe(cfg), len(dataset.split("train"))
    if recipe.steps * recipe.batch_size <= n_train:
        return recipe
    return replace(recipe, steps=max(1, n_train // recipe.batch_size))


#: Baselines that train several times longer than the others (xDeepFM's CIN, AutoInt's
#: attention): they start first, so that the workers finish together.
_SLOW_BASELINES = ("xdeepfm", "autoint")
#: Queue priorities (lower starts first): slow baselines (slowest first), front
#: architectures, the rest.
_ARCH_PRIORITY = len(_SLOW_BASELINES)


def verified_baselines(cfg: RunConfig) -> list[str]:
    """The baselines a finished run trains from scratch."""
    return list(cfg.baselines.names) if cfg.verify.baselines else []


class _CoreShare:
    """Torch threads of this process during the search: the cores that the trainings
    beside it leave, updated every generation, and the original count afterwards.

    Oversubscribed OpenMP threads spin against each other: on 2 cores the default search
    (2 threads) took 360-373 s with one 1-thread training beside it, against 183 s alone,
    while a 96-evaluation search took only 1.34x longer on 1 thread than on 2."""

    def __init__(self, trainings: "VerificationTrainings | None"):
        import torch
        self.torch, self.trainings = torch, trainings
        self.threads = torch.get_num_threads()
        self.update()

    def update(self) -> None:
        if self.trainings is not None:
            free = max(1, self.threads - self.trainings.queue.busy_threads)
            if free != self.torch.get_num_threads():
                self.torch.set_num_threads(free)

    def wrap(self, on_generation):
        def hook(info):
            self.update()
            if on_generation is not None:
                on_generation(info)
        return hook

    def restore(self) -> None:
        if self.torch.get_num_threads() != self.threads:
            self.torch.set_num_threads(self.threads)


class VerificationTrainings:
    """The from-scratch trainings of a run's verification, in a ``TrainingQueue``.

    Created before the search, it trains the baselines (which do not depend on the
    search) on the cores the search leaves idle, at most ``limit`` at once; ``verify``
    then adds the front architectures and raises the limit to ``[verify] workers``."""

    def __init__(self, cfg: RunConfig, dataset, cache_dir, *, limit: int | None = None,
                 on_model: Callable[[str], None] | None = None):
        from nasrec.scratch import TrainingQueue, TruthCache
        self.seed = cfg.seed
        recipe = verification_recipe(cfg, dataset)
        start = (lambda m, s: on_model(m if isinstance(m, str) else f"arch {m.hash[:16]}")) if on_model else None
        self.queue = TrainingQueue(TruthCache(Path(cache_dir) / "truth"), dataset, recipe,
                                   workers=cfg.verify.workers, limit=limit, save_model=True, on_start=start)
        self.baselines = {n: self.queue.submit(n, cfg.seed, priority=_SLOW_BASELINES.index(n) if n in _SLOW_BASELINES
                                               else _ARCH_PRIORITY + 1)
                          for n in verified_baselines(cfg)}

    def close(self, cancel: bool = False) -> None:
        self.queue.close(cancel=cancel)


def _candidates(out, cfg: RunConfig, front: list[dict]) -> dict[str, dict]:
    """{arch hash: its row}, best first, of the distinct architectures verification may
    train: without a first round (``rescore <= top_k``) or a ``"front"`` pool, the front
    by search log loss; ``"layers"``, the front, then the layers behind it (by layer,
    then search log loss); ``"spread"``, ``spread_pool``'s ``rescore``
    by search log loss. Empty when the search has no log loss objective."""
    v, objectives = cfg.verify, cfg.search.objectives
    if "logloss" not in objectives:
        return {}
    first_round = v.rescore > v.top_k
    if first_round and v.pool == "spread":
        rows = spread_pool(layered_rows(out, objectives), objectives, v.rescore)
    elif first_round and v.pool == "layers":
        rows = layered_rows(out, objectives)
    else:
        rows = front
    by_layer = v.pool == "layers"  # the front's rows are all layer 1
    ranked: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: (int(r["pareto_layer"]) if by_layer else 0, float(r["logloss"]))):
        ranked.setdefault(r["arch_hash"], r)
    return ranked


def verify(out, cfg: RunConfig, dataset, cache_dir, *, quiet: bool = True,
           on_model: Callable[[str], None] | None = None,
           trainings: VerificationTrainings | None = None) -> tuple[list[dict], dict[str, dict]]:
    """Train and test from scratch the top-K distinct architectures of the pool and the
    baselines; their model files go to ``out/models/``. Without a first round the pool
    is the front and the lowest search log losses are verified; with ``[verify] rescore``
    the pool (``_candidates``) trains a short first round and the lowest validation log
    losses after it are verified. ``trainings``: the run's queue if its baselines
    started beside the search (it is not closed here).

    Returns (front rows, then one row for each first-round architecture off the front,
    with ``pareto_layer``, ``test_logloss``, ``test_auc``, ``verified``, ``model_file``
    and ``rescore_logloss`` (NaN outside the first round) added, {baseline name: truth
    result}). Cached under ``cache_dir/truth``."""
    import shutil
    from nasrec.space import ArchSpec
    out = Path(out)
    v = cfg.verify
    front = [dict(r, pareto_layer=1) for r in front_rows(out, cfg.search.objectives)]
    models = out / "models"
    ranked = _candidates(out, cfg, front)
    first_round = v.rescore > v.top_k and len(ranked) > v.top_k
    pool = list(ranked)[:v.rescore if first_round else v.top_k]
    own = trainings is None
    if own:
        trainings = VerificationTrainings(cfg, dataset, cache_dir, on_model=on_model)
    rescored: dict[str, float] = {}
    try:
        trainings.queue.set_limit(v.workers)
        if first_round:
            short = replace(trainings.queue.recipe, steps=min(v.rescore_steps, trainings.queue.recipe.steps),
                            test=False)
            futures = [trainings.queue.submit(ArchSpec.from_json(ranked[h]["arch"]), cfg.seed,
                                              priority=_ARCH_PRIORITY, recipe=short, save_model=False)
                       for h in pool]
            rescored = {h: float(f.result()["val_logloss"]) for h, f in zip(pool, futures)}
            # ties keep the search's order (sorted is stable)
            pool = sorted(pool, key=lambda h: rescored[h])[:v.top_k]
        picked = {h: ranked[h] for h in pool}
        archs = [ArchSpec.from_json(r["arch"]) for r in picked.values()]
        futures = [trainings.queue.submit(a, cfg.seed, priority=_ARCH_PRIORITY) for a in archs]
        got = [f.result() for f in futures]
        base = {n: f.result() for n, f in trainings.baselines.items()}
    except BaseException:
        if own:
            trainings.close(cancel=True)
        raise
    if own:
        trainings.close()
    results: dict[str, dict] = {}
    for h, res in zip(picked, got):
        if res.get("model_file"):
            models.mkdir(parents=True, exist_ok=True)
            dst = models / f"arch-{h}.pt"
            tmp = models / f".arch-{h}.pt.tmp"
            shutil.copyfile(res["model_file"], tmp)
            tmp.replace(dst)
            res = dict(res, model_file=str(dst.relative_to(out)))
        results[h] = res
    rows = []
    on_front = {r["arch_hash"] for r in front}
    behind = [ranked[h] for h in ranked if h not in on_front and (h in rescored or h in results)]
    for r in front + behind:
        res = results.get(r["arch_hash"])
        rows.append(dict(r, verified=int(res is not None),
                         test_logloss=res["test_logloss"] if res else float("nan"),
                         test_auc=res["test_auc"] if res else float("nan"),
                         model_file=res["model_file"] if res else "",
                         rescore_logloss=rescored.get(r["arch_hash"], float("nan"))))
    return rows, base


def _csv(rows: list[dict]) -> str:
    import pandas as pd
    return pd.DataFrame(rows).to_csv(index=False)


def finish_run(out, cfg: RunConfig, dataset, cost: PimsimCost, cache_dir, *, quiet: bool = True,
               started: float | None = None, on_stage: Callable[[str], None] | None = None,
               trainings: VerificationTrainings | None = None) -> None:
    """Verification by training (``verify``), front.csv, baselines.csv, plots and
    summary.md of a finished run; ``started``: ``time.perf_counter()`` when this
    invocation began (for the wall time in the summary)."""
    from cosearch import plots
    out = Path(out)
    stage = on_stage or (lambda s: None)
    front, base = verify(out, cfg, dataset, cache_dir, quiet=quiet, on_model=lambda m: stage(f"verify {m}"),
                         trainings=trainings)
    atomic_write_text(out / "front.csv", _csv(front) if front else "")
    brows = baseline_costs(cfg, dataset, cost)
    recipe = verification_recipe(cfg, dataset)
    for b in brows:
        res = base.get(b["model"])
        b.update(test_logloss=res["test_logloss"] if res else float("nan"),
                 test_auc=res["test_auc"] if res else float("nan"),
                 train_steps=recipe.steps if res else 0,
                 train_lr=res["recipe"]["lr"] if res else float("nan"),
                 train_schedule=res["recipe"].get("schedule", "cosine") if res else "",
                 train_eps=res["recipe"].get("eps", recipe.eps) if res else float("nan"),
                 data=dataset.content_hash[:16])
    atomic_write_text(out / "baselines.csv", _csv(brows))
    stage("baselines on the search's hardware")
    atomic_write_text(out / BASELINE_FRONTS, _csv(baseline_fronts(cfg, dataset, cost)))
    plots.plot_run(out)
    write_summary(out, cfg, time.perf_counter() - started if started is not None else float("nan"))


def verdict(front: list[dict], baselines: list[dict]) -> str:
    """One sentence: does the best verified searched model beat the best baseline?"""
    ver = [r for r in front if str(r.get("verified")) in ("1", "True") and np.isfinite(float(r["test_logloss"]))]
    bas = [b for b in baselines if np.isfinite(float(b.get("test_logloss", float("nan"))))]
    if not ver or not bas:
        return "No verdict: " + ("no front member was verified" if not ver else "no baseline was trained") + "."
    s = min(ver, key=lambda r: float(r["test_logloss"]))
    b = min(bas, key=lambda r: float(r["test_logloss"]))
    d = float(b["test_logloss"]) - float(s["test_logloss"])
    who = f"the best verified searched model ({s['arch_hash']}, test log loss {float(s['test_logloss']):.4f})"
    best = f"the best baseline ({b['model']}, {float(b['test_logloss']):.4f})"
    if d > 0:
        return f"{who[0].upper() + who[1:]} beats {best} by {d:.4f}."
    return f"{who[0].upper() + who[1:]} does not beat {best}: it is {-d:.4f} worse."


def equal_freedom(front: list[dict], baselines: list[dict], fronts: list[dict]) -> list[dict]:
    """Per baseline with rows in ``fronts`` (``baselines_fronts.csv``): its latency and
    energy on the default hardware, its best of each over the hardware it was costed on
    and where, and how many verified searched models are at least as accurate (test log
    loss, both trained from scratch) and faster, or lower in energy, than that best."""
    test = {b["model"]: float(b.get("test_logloss", float("nan"))) for b in baselines}
    ver = [r for r in front if str(r.get("verified")) in ("1", "True") and np.isfinite(float(r["test_logloss"]))]
    out = []
    for name in dict.fromkeys(r["model"] for r in fronts):
        mine = [r for r in fronts if r["model"] == name]
        ok = [r for r in mine if np.isfinite(float(r["latency_s"])) and np.isfinite(float(r["energy_per_sample_j"]))]
        if not ok:
            continue
        default = next((r for r in mine if int(r["default_hw"])), None)
        fast = min(ok, key=lambda r: float(r["latency_s"]))
        frugal = min(ok, key=lambda r: float(r["energy_per_sample_j"]))
        t = test.get(name, float("nan"))
        accurate = [r for r in ver if np.isfinite(t) and float(r["test_logloss"]) <= t]
        row = {"model": name, "test_logloss": t,
               "latency_default_s": float(default["latency_s"]) if default else float("nan"),
               "latency_best_s": float(fast["latency_s"]), "latency_best_hw": fast["hardware"],
               "energy_default_j": float(default["energy_per_sample_j"]) if default else float("nan"),
               "energy_best_j": float(frugal["energy_per_sample_j"]), "energy_best_hw": frugal["hardware"],
               "front_points": sum(int(r["on_front"]) for r in mine), "hardware_costed": len(mine)}
        for metric, key in (("latency_s", "latency_best_s"), ("energy_per_sample_j", "energy_best_j")):
            col = f"searched_better_{metric.split('_')[0]}"
            row[col] = (sum(float(r[metric]) < row[key] for r in accurate if metric in r)
                        if np.isfinite(t) and ver else float("nan"))
        out.append(row)
    return out


def write_summary(out, cfg: RunConfig, seconds: float) -> None:
    """A short ``summary.md``: provenance, verdict, hypervolume, front and baselines."""
    import pandas as pd
    out = Path(out)
    meta = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    ck = json.loads((out / CHECKPOINT).read_text(encoding="utf-8"))
    rows = read_results(out)
    fpath, bpath = out / "front.csv", out / "baselines.csv"
    front = pd.read_csv(fpath).to_dict("records") if fpath.is_file() and fpath.stat().st_size else []
    base = pd.read_csv(bpath).to_dict("records") if bpath.is_file() and bpath.stat().st_size else []
    v = cfg.verify
    # architectures the first round trained (none when the front was no larger than top_k)
    n_round = len({r["arch_hash"] for r in front if pd.notna(r.get("rescore_logloss"))})
    on_front = [r for r in front if int(r.get("pareto_layer", 1)) == 1]
    n_front = len(on_front)
    behind = len(front) > n_front
    cost = _first_cost_objective(cfg.search.objectives) or "cost"
    where = {"layers": "architectures of the front and the Pareto layers behind it (by layer, then lowest "
                       "search log loss)",
             "spread": f"architectures spread over the search's {cost} range ({SPREAD_BINS} equal bins of log "
                       f"{cost}, the lowest search log losses of each)"}.get(
        v.pool, "front architectures with the lowest search log loss")
    bayes = (meta.get("bayes_logloss") or {}).get("test")
    lines = [f"# cosearch run ({cfg.search.algorithm}, seed {cfg.seed})", "",
             verdict(front, base), "",
             f"- evaluations: {len(rows)} ({sum(r['feasible'] == '1' for r in rows)} feasible), "
             f"generations: {ck['algorithm']['generation']}"
             + (f"; cost-first screening x{cfg.search.screen}: {ck['algorithm'].get('screened', 0)} more children "
                "costed and not evaluated" if cfg.search.screen > 1 else ""),
             f"- final hypervolume: {ck['hv_history'][-1][1]:.4f} (objectives {', '.join(cfg.search.objectives)}, "
             f"normalised by lower {ck['normalization']['lower']} / upper {ck['normalization']['upper']}, "
             f"log10 scale {ck['normalization']['log']}, reference point 1.1 in each)",
             f"- dataset: {meta['dataset']} (hash {meta['dataset_hash'][:16]}"
             + (f", Bayes test log loss {bayes:.4f}" if bayes is not None else "") + f"); supernet: {meta['supernet']} "
             f"(sha256 {meta['supernet_hash'][:16]})",
             (f"- verification: the {v.top_k} best of the {n_round} {where}, "
              f"by validation log loss after a first round of {v.rescore_steps} training steps "
              "(`rescore_logloss`), and the baselines, " if n_round else
              f"- verification: the {v.top_k} best front architectures by search log loss and the baselines, ")
             + f"trained from scratch ({v.steps} steps x {v.batch_size} fresh rows, Adagrad lr {v.lr} with warm-up and "
             f"cosine decay"
             + (f", architectures' weight matrices at lr x min(1, {v.lr_fan_in} / fan-in)" if v.lr_fan_in else "")
             + f", seed {cfg.seed}; baselines listed in nasrec.baselines.TRAINING with their own lr, "
             "schedule and Adagrad eps, see baselines.csv) and tested on the test split",
             f"- wall time of this invocation: {seconds:.0f} s", "",
             f"## Pareto front ({n_front} candidates)", "",
             "`logloss` is the search's cheap score (supernet, validation rows); `test_logloss` is measured "
             "after training from scratch (verified members only)."
             + (f" The {len(front) - n_front} rows with `pareto_layer` > 1 are first-round architectures from "
                "behind the front." if behind else ""), ""]
    cols = (["arch_hash", "hardware"] + (["pareto_layer"] if behind else []) + list(cfg.search.objectives)
            + (["rescore_logloss"] if n_round else []) + ["test_logloss", "test_auc"])
    if front:
        df = pd.DataFrame([{c: r.get(c) for c in cols} for r in front])
        lines.append(df.to_markdown(index=False) if _has_tabulate() else "```\n" + df.to_string(index=False) + "\n```")
    if base:
        b = pd.DataFrame(base)
        lines += ["", f"## Baselines on {cfg.baselines.hardware}", "",
                  "```\n" + b.to_string(index=False) + "\n```"]
    hpath = out / BASELINE_FRONTS
    hw_rows = pd.read_csv(hpath).to_dict("records") if hpath.is_file() and hpath.stat().st_size else []
    eq = equal_freedom(front, base, hw_rows)
    if eq:
        n, sampled = int(hw_rows[0]["configs"]), bool(int(hw_rows[0]["sampled"]))
        which = (f"a sample of {n} of its configurations (at most {MAX_BASELINE_HARDWARE}, drawn with seed "
                 f"{cfg.seed})" if sampled else f"all its valid configurations ({n} with the default)")
        lines += ["", "## Baselines at equal hardware freedom", "",
                  f"Each baseline costed on the search's hardware knob space: {which}, with "
                  f"{cfg.baselines.hardware} as the default; its own (latency, energy per sample) front is in "
                  f"`{BASELINE_FRONTS}` (`on_front`) and `cost_fronts.png`. `searched_better_*`: verified "
                  "searched (architecture, hardware) pairs at least as accurate (test log loss) and "
                  "faster, or lower in energy, than the baseline on its best hardware for that metric.", ""]
        if on_front:
            fast = min(float(r["latency_s"]) for r in on_front)
            frugal = min(float(r["energy_per_sample_j"]) for r in on_front)
            lines += [f"Searched front: fastest {fast:.4g} s per batch, lowest energy {frugal:.4g} J per sample.",
                      ""]
        df = pd.DataFrame(eq)
        # 4 significant digits: latencies of microseconds would print as 0.000024 otherwise
        lines.append(df.to_markdown(index=False, floatfmt=".4g") if _has_tabulate() else
                     "```\n" + df.to_string(index=False, float_format=lambda v: f"{v:.4g}") + "\n```")
    lines += ["", "Plots: `logloss_vs_latency.png`, `logloss_vs_energy.png`, `cost_fronts.png`, `hypervolume.png`. "
              "Verified models: `models/*.pt` (`cosearch query models/FILE.pt --hardware NAME`).", ""]
    atomic_write_text(out / "summary.md", "\n".join(lines))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def retrain(run_dir, top: int, *, steps: int | None = None, quiet: bool = True) -> list[dict]:
    """Train the ``top`` front members with the lowest search log loss from scratch with
    the run's verification recipe (``steps`` overrides its length) and test them;
    written to ``retrain.csv`` beside their search-time scores. Shares the truth cache."""
    from nasrec.data import Dataset
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"--top must be a positive integer, got {top!r}")
    cfg, meta = load_run(run_dir)
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be >= 1, got {steps}")
        cfg = replace(cfg, verify=replace(cfg.verify, steps=steps))
    cfg = replace(cfg, verify=replace(cfg.verify, top_k=top, baselines=False, rescore=0, pool="front"))
    ds = Dataset(meta["dataset"])
    if not front_rows(run_dir, cfg.search.objectives):
        raise ValueError(f"{run_dir} has no feasible front to retrain")
    front, _ = verify(run_dir, cfg, ds, meta["cache_dir"], quiet=quiet)
    rows = [{"arch_hash": r["arch_hash"], "hardware": r["hardware"], "search_logloss": float(r["logloss"]),
             "test_logloss": r["test_logloss"], "test_auc": r["test_auc"], "latency_s": float(r["latency_s"]),
             "energy_per_sample_j": float(r["energy_per_sample_j"]), "train_steps": cfg.verify.steps,
             "seed": cfg.seed, "data": ds.content_hash[:16], "model_file": r["model_file"]}
            for r in sorted(front, key=lambda r: float(r["logloss"])) if r["verified"]]
    atomic_write_text(Path(run_dir) / "retrain.csv", _csv(rows))
    return rows
