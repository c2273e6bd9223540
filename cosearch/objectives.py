"""Candidates, metric providers, constraints and the cached, batched evaluator.

A *metric provider* is any callable object with ``names`` (the metrics it
computes), ``key(candidate)`` (what its result depends on, for the cache) and
``__call__(candidates) -> array [n, len(names)]`` (NaN where a candidate cannot
be evaluated). Production providers: :class:`SupernetAccuracy` (validation log
loss from the supernet, keyed by architecture) and :class:`PimsimCost` (latency,
energy, area, power from ``pimsim.query``, keyed by architecture and hardware).
Tests plug in cheap stand-ins. Objectives (minimised) and constraints (upper
limits) name metrics.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from cosearch.executor import Executor, InProcess
from cosearch.hardware import HardwareKnobs, KnobSpace
from cosearch.profile import TableSpec, arch_workload
from cosearch.search import Screen
from nasrec.data import Schema
from nasrec.space import EMBEDDING_SPACE, ArchSpec, EmbeddingSpace, SearchSpace, crossover, mutate, sample

__all__ = ["Candidate", "CoSpace", "Constraint", "Evaluation", "Evaluator", "SupernetAccuracy",
           "PimsimCost", "COST_METRICS", "pin_host_tables"]

COST_METRICS = ("latency_s", "energy_per_sample_j", "area_mm2", "peak_power_w")


@dataclass(frozen=True)
class Candidate:
    """One point of the co-search: an architecture on one hardware configuration."""

    arch: ArchSpec
    hw: HardwareKnobs

    @property
    def key(self) -> str:
        return f"{self.arch.hash}|{self.hw.key}"

    def to_dict(self) -> dict:
        return {"arch": self.arch.to_dict(), "hw": self.hw.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "Candidate":
        return cls(ArchSpec.from_dict(d["arch"]), HardwareKnobs.from_dict(d["hw"]))


@dataclass(frozen=True)
class CoSpace:
    """Architectures of ``arch_space`` x hardware of ``knobs``. A mutation changes the
    architecture (one NASRec mutation) with probability ``arch_prob``, else one
    hardware knob. ``valid``: optional predicate on knobs (e.g. 'pimsim accepts it')."""

    arch_space: SearchSpace
    knobs: KnobSpace
    arch_prob: float = 0.5
    valid: Callable[[HardwareKnobs], bool] | None = None
    n_fields: int | None = None  # set: the extended space, with per-field embedding choices
    embedding_space: EmbeddingSpace = EMBEDDING_SPACE

    def __post_init__(self):
        if not 0.0 <= self.arch_prob <= 1.0:
            raise ValueError(f"arch_prob must lie in [0, 1], got {self.arch_prob}")

    def sample(self, rng: np.random.Generator) -> Candidate:
        return Candidate(sample(rng, self.arch_space, self.n_fields, self.embedding_space),
                         self.knobs.sample(rng, self.valid))

    def mutate(self, c: Candidate, rng: np.random.Generator, n_mutations: int = 1) -> Candidate:
        arch, hw = c.arch, c.hw
        for _ in range(n_mutations):
            if rng.random() < self.arch_prob:
                arch = mutate(arch, rng, 1, self.embedding_space)
            else:
                hw = self.knobs.mutate(hw, rng, self.valid)
        return Candidate(arch, hw)

    def crossover(self, a: Candidate, b: Candidate, rng: np.random.Generator) -> Candidate:
        """Uniform crossover of architecture and hardware knobs (``nasrec.space.crossover``,
        ``KnobSpace.crossover``): used by the library engines (``cosearch.engines``)."""
        return Candidate(crossover(a.arch, b.arch, rng), self.knobs.crossover(a.hw, b.hw, rng, self.valid))

    def key(self, c: Candidate) -> str:
        return c.key

    def encode(self, c: Candidate) -> dict:
        return c.to_dict()

    def decode(self, d: dict) -> Candidate:
        return Candidate.from_dict(d)


@dataclass(frozen=True)
class Constraint:
    """Hard upper limit on a metric: a candidate with ``metric > limit`` is infeasible."""

    metric: str
    limit: float

    def __post_init__(self):
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"constraint metric must be a name, got {self.metric!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, (int, float)) or not self.limit > 0:
            raise ValueError(f"constraint on {self.metric}: limit must be a positive number, got {self.limit!r}")


@dataclass(frozen=True)
class Evaluation:
    """Evaluated batch: every metric ``[n, m]`` (``metric_names``), the objectives
    ``[n, k]``, feasibility ``[n]`` and the seconds spent on uncached work ``[n]``."""

    metric_names: tuple[str, ...]
    metrics: np.ndarray
    objectives: np.ndarray
    feasible: np.ndarray
    seconds: np.ndarray


class Evaluator:
    """Evaluates batches of candidates through metric providers, with a cache per
    provider keyed by ``provider.key(candidate)``; uncached work is split into
    contiguous chunks, one per executor worker, so results do not depend on the
    number of workers."""

    def __init__(self, providers: Sequence, objectives: Sequence[str], constraints: Sequence[Constraint] = (),
                 executor: Executor | None = None):
        self.providers = tuple(providers)
        names = [n for p in self.providers for n in p.names]
        if len(set(names)) != len(names):
            raise ValueError(f"metric providers repeat a metric name: {names}")
        self.metric_names = tuple(names)
        self.objectives = tuple(objectives)
        if not self.objectives:
            raise ValueError("choose at least one objective")
        for n in self.objectives:
            if n not in names:
                raise ValueError(f"unknown objective {n!r}; metrics available: {', '.join(names)}")
        self.constraints = tuple(constraints)
        for c in self.constraints:
            if c.metric not in names:
                raise ValueError(f"constraint on unknown metric {c.metric!r}; metrics available: {', '.join(names)}")
        self.executor = executor or InProcess()
        self.cache: list[dict[str, list[float]]] = [{} for _ in self.providers]

    def evaluate(self, candidates: Sequence) -> Evaluation:
        n = len(candidates)
        cols = []
        seconds = self._fill(candidates, range(len(self.providers)))
        for pi, p in enumerate(self.providers):
            cols.append(np.array([self.cache[pi][p.key(c)] for c in candidates], dtype=np.float64)
                        .reshape(n, len(p.names)))
        M = np.concatenate(cols, axis=1) if cols else np.zeros((n, 0))
        F = M[:, [self.metric_names.index(o) for o in self.objectives]]
        ok = np.isfinite(M).all(axis=1)
        for c in self.constraints:
            ok &= M[:, self.metric_names.index(c.metric)] <= c.limit
        return Evaluation(self.metric_names, M, F, ok, seconds)

    def _fill(self, candidates: Sequence, which) -> np.ndarray:
        """Compute what the cache lacks of providers ``which`` for ``candidates``; the
        seconds of uncached work per candidate ``[n]``."""
        n = len(candidates)
        seconds = np.zeros(n)
        tasks, where = [], []
        for pi in which:
            p = self.providers[pi]
            keys = [p.key(c) for c in candidates]
            todo, first = [], {}
            for i, k in enumerate(keys):
                if k not in self.cache[pi] and k not in first:
                    first[k] = i
                    todo.append(i)
            for chunk in _chunks(todo, self.executor.workers):
                tasks.append((pi, [candidates[i] for i in chunk]))
                where.append((pi, chunk))
        t0 = time.perf_counter()
        results = self.executor.map(self.providers, tasks) if tasks else []
        wall = time.perf_counter() - t0
        n_new = sum(len(c) for _, c in where)
        for (pi, chunk), res in zip(where, results):
            res = np.asarray(res, dtype=np.float64).reshape(len(chunk), len(self.providers[pi].names))
            for i, row in zip(chunk, res):
                self.cache[pi][self.providers[pi].key(candidates[i])] = [float(v) for v in row]
                seconds[i] += wall / n_new
        return seconds

    def screen(self, providers: Sequence, factor: int):
        """Cost-first screening (:class:`cosearch.search.Screen`) by the objectives that
        ``providers`` (some of this evaluator's own, e.g. the pimsim cost) compute: the
        screen costs candidates through this evaluator's cache and executor, so its
        numbers are the evaluation's and a child that is then asked is not costed twice.
        A candidate whose metrics from those providers are not finite, or break a
        constraint on them, gets a NaN row (known infeasible)."""
        idx = []
        for p in providers:
            hit = [i for i, q in enumerate(self.providers) if q is p]
            if not hit:
                raise ValueError(f"screen: {type(p).__name__} is not one of this evaluator's providers")
            idx.append(hit[0])
        names = [m for pi in idx for m in self.providers[pi].names]
        cheap = tuple(j for j, o in enumerate(self.objectives) if o in names)
        if not cheap:
            raise ValueError(f"screen: none of the objectives ({', '.join(self.objectives)}) comes from "
                             f"the screening providers ({', '.join(names)})")
        limits = [(names.index(c.metric), c.limit) for c in self.constraints if c.metric in names]
        cols = [names.index(self.objectives[j]) for j in cheap]

        def fn(candidates: Sequence) -> np.ndarray:
            self._fill(candidates, idx)
            M = np.array([[v for pi in idx for v in self.cache[pi][self.providers[pi].key(c)]] for c in candidates],
                         dtype=np.float64).reshape(len(candidates), len(names))
            bad = ~np.isfinite(M).all(axis=1)
            for j, limit in limits:
                bad |= M[:, j] > limit
            C = M[:, cols]
            C[bad] = np.nan
            return C
        return Screen(fn, factor, cheap)

    def cache_state(self) -> list[dict]:
        return [dict(c) for c in self.cache]

    def load_cache_state(self, state: list[dict]) -> None:
        if len(state) != len(self.providers):
            raise ValueError(f"cache holds {len(state)} providers, evaluator has {len(self.providers)}")
        self.cache = [{k: [float(v) for v in row] for k, row in c.items()} for c in state]


def _chunks(items: list, parts: int) -> list[list]:
    if not items:
        return []
    parts = max(1, min(parts, len(items)))
    bounds = np.linspace(0, len(items), parts + 1).round().astype(int)
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class SupernetAccuracy:
    """Validation log loss of each candidate's architecture, from a scorer with
    ``score(specs) -> [n]`` (``nasrec.SupernetScorer``). Keyed by architecture hash."""

    names = ("logloss",)

    def __init__(self, scorer):
        self.scorer = scorer

    def key(self, c: Candidate) -> str:
        return c.arch.hash

    def __call__(self, candidates: Sequence[Candidate]) -> np.ndarray:
        return np.asarray(self.scorer.score([c.arch for c in candidates]), dtype=np.float64).reshape(-1, 1)


def pin_host_tables(workload, rows_max: int):
    """``workload`` with its tables of at most ``rows_max`` rows placed on the host (the
    ``host_rows_max`` knob); 0 pins none."""
    if not rows_max:
        return workload
    return replace(workload, tables=tuple(replace(t, place="host") if t.rows <= rows_max else t
                                          for t in workload.tables))


class PimsimCost:
    """Latency (s per batch), energy per sample (J), area (mm^2) and peak power (W) of
    each candidate from ``query(workload, hardware, seed=seed)`` (``pimsim.query``) on
    ``hardware(knobs)`` (e.g. :func:`cosearch.pimsim_hw.build_hardware`). A hardware
    configuration that pimsim rejects, or a workload it cannot run there, gives NaN
    (infeasible). Keyed by architecture hash and hardware knobs."""

    names = COST_METRICS

    def __init__(self, schema: Schema, query: Callable, hardware: Callable[[HardwareKnobs], object], *,
                 batch_size: int = 256, tables: TableSpec = TableSpec(), seed: int = 0):
        self.schema, self.query, self.hardware = schema, query, hardware
        self.batch_size, self.tables, self.seed = batch_size, tables, seed

    def key(self, c: Candidate) -> str:
        return c.key

    def workload(self, c: Candidate):
        w = arch_workload(c.arch, self.schema, batch_size=self.batch_size,
                          tables=replace(self.tables, precision=c.hw.precision))
        return pin_host_tables(w, c.hw.host_rows_max)

    def cost_of(self, workload, knobs: HardwareKnobs) -> np.ndarray:
        """The four metrics of any workload on ``knobs`` (NaN where pimsim refuses)."""
        try:
            rep = self.query(workload, self.hardware(knobs), seed=self.seed)
        except ValueError:
            return np.full(len(self.names), np.nan)
        return np.array([rep.latency_s, rep.energy_per_sample_j, rep.area_mm2, rep.peak_power_w],
                        dtype=np.float64)

    def __call__(self, candidates: Sequence[Candidate]) -> np.ndarray:
        return np.stack([self.cost_of(self.workload(c), c.hw) for c in candidates])
