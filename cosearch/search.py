"""Search algorithms with ask/tell over any candidate space.

Every algorithm takes an explicit ``numpy.random.Generator``, asks for one
generation of candidates at a time (the initial population first, then
``children`` per generation) and is told their objective values (minimised) and
feasibility. ``state_dict()`` is JSON-ready and, loaded into a fresh algorithm
with ``load_state_dict``, continues exactly where the original would have.

- :class:`RegularizedEvolution`: NASRec's regularised evolution (Real et al.) on
  one scalarised objective: tournament of ``sample_size`` from the population,
  the winner mutated ``mutations`` times (falling linearly from
  ``mutations_start`` to ``mutations_end`` over the budget), duplicates (by key)
  re-drawn, then replaced by uniform samples.
- :class:`MultiObjectiveEvolution` (the default): the same loop, but tournaments are
  won by Pareto rank, then crowding distance, within the population.

``EvolutionConfig.survival`` decides who leaves the population once it is full:
``"age"`` removes the oldest (Real et al.'s regularised evolution, as NASRec) and
``"elitist"`` (the default) removes the least preferred of population and children
together (NSGA-II's survival for ``moea``, the worst scalarised value for
``evolution``), so good early candidates are not lost on short budgets.
- :class:`RandomSearch`: uniform samples, duplicates re-drawn.
- ``nsga2``, ``smsemoa``: pymoo's NSGA-II and SMS-EMOA (:mod:`cosearch.engines`,
  imported on demand; ``population``, ``children``, ``budget`` and the mutation
  schedule apply, ``sample_size`` and ``survival`` do not). They also use the space's
  ``crossover(a, b, rng)`` where it has one.

Infeasible candidates lose every comparison to feasible ones.

Cost-first screening (:class:`Screen`, off by default): every algorithm can be handed
a cheap function of candidates (the cost objectives, ~10 ms each against a supernet
score 100-500x dearer) and a factor; after the initial population it then makes
``factor`` x as many children as a generation needs, costs them all and asks only the
ones most likely to enter the Pareto front (rule: :func:`screen_order`). Screened-out
children are not evaluations (they never reach the accuracy scoring) and are counted
apart (``screened``).
"""
from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from cosearch.pareto import Normalization, crowding_distance, non_dominated_sort

__all__ = ["CandidateSpace", "EvolutionConfig", "RegularizedEvolution", "MultiObjectiveEvolution",
           "RandomSearch", "Scalarization", "Screen", "screen_order", "ALGORITHMS", "ENGINE_NAMES",
           "engine_library", "make_algorithm", "SCREEN_MAX"]

#: Population replacement rules (see the module docstring).
SURVIVALS = ("elitist", "age")

#: Re-draws of a duplicate child before it is accepted as it is (and counted).
MAX_DUPLICATE_DRAWS = 32

#: Largest screening factor (children made and costed per child asked).
SCREEN_MAX = 32


class CandidateSpace(Protocol):
    """What a search needs of its candidates."""

    def sample(self, rng: np.random.Generator) -> Any: ...

    def mutate(self, candidate, rng: np.random.Generator, n_mutations: int) -> Any: ...

    def key(self, candidate) -> str: ...

    def encode(self, candidate) -> dict: ...

    def decode(self, data: dict) -> Any: ...


@dataclass(frozen=True)
class EvolutionConfig:
    """Sizes shared by the algorithms. ``budget``: total evaluations."""

    budget: int = 480
    population: int = 48
    sample_size: int = 12
    children: int = 16
    mutations_start: int = 3
    mutations_end: int = 1
    survival: str = "elitist"

    def __post_init__(self):
        if self.survival not in SURVIVALS:
            raise ValueError(f"search: survival must be one of {', '.join(SURVIVALS)}, got {self.survival!r}")
        for name in ("budget", "population", "sample_size", "children", "mutations_start", "mutations_end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"search: {name} must be a positive integer, got {v!r}")
        if self.sample_size > self.population:
            raise ValueError(f"search: sample_size {self.sample_size} exceeds population {self.population}")
        if self.mutations_end > self.mutations_start:
            raise ValueError(f"search: mutations_end {self.mutations_end} exceeds mutations_start "
                             f"{self.mutations_start} (the count falls over the run)")


@dataclass(frozen=True)
class Scalarization:
    """Weighted sum of normalised objectives: ``sum_i w_i * norm(f)_i``."""

    weights: tuple[float, ...]

    def __post_init__(self):
        w = tuple(float(v) for v in self.weights)
        if not w or min(w) < 0 or sum(w) <= 0:
            raise ValueError(f"scalarisation weights must be non-negative with a positive sum, got {w}")
        object.__setattr__(self, "weights", w)

    def __call__(self, F: np.ndarray, normalization: Normalization | None) -> np.ndarray:
        G = normalization(F) if normalization is not None else np.asarray(F, dtype=np.float64)
        return G @ np.array(self.weights)


@dataclass(frozen=True)
class Screen:
    """Cost-first screening: ``fn(candidates) -> [n, len(cheap)]`` gives the cheap
    objectives of a batch, in the units of the told objectives' columns ``cheap`` (the
    same cost model as the evaluation, e.g. ``Evaluator.screen``); a row with a
    non-finite value marks a candidate known to be infeasible. ``factor`` (2 ..
    ``SCREEN_MAX``): children made and costed per child asked."""

    fn: Callable[[list], Any]
    factor: int
    cheap: tuple[int, ...]

    def __post_init__(self):
        f = self.factor
        if isinstance(f, bool) or not isinstance(f, int) or not 2 <= f <= SCREEN_MAX:
            raise ValueError(f"screen factor must be an integer in 2..{SCREEN_MAX}, got {f!r}")
        cheap = tuple(self.cheap)
        if not cheap or len(set(cheap)) != len(cheap) or any(
                isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in cheap):
            raise ValueError(f"screen: cheap must name distinct objective columns, at least one, got {self.cheap!r}")
        object.__setattr__(self, "cheap", cheap)

    def settings(self) -> dict:
        """What a checkpoint records (and a resume must match)."""
        return {"factor": self.factor, "cheap": list(self.cheap)}


def screen_order(C: np.ndarray, front: np.ndarray, repeat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of the oversampled children ``C`` ``[m, j]`` (cheap objectives) from the
    most to the least promising, given the cheap objectives ``front`` ``[p, j]`` of the
    current Pareto front (of every feasible evaluation so far, on all objectives).

    The rule, by these keys in turn:

    1. children known to be infeasible (a non-finite cheap objective) last;
    2. ``repeat`` (a key evaluated or asked before, or earlier in the batch: only where
       the space ran out of new ones) after the new ones;
    3. fewer front members that weakly dominate the child on the cheap objectives
       (``front <= c`` in every one) first;
    4. ties in a random order drawn from ``rng`` (one permutation of ``m``).

    Why key 3: any evaluated point that dominates a child is itself dominated by, or
    equal to, a front member, and a member can dominate the child only if it is no worse
    in every cheap objective. So a child that no member weakly dominates on cost enters
    the front whatever its accuracy, and a child that some do enters only if it is better
    than each of them in an expensive objective (with accuracy the only one: more
    accurate than the most accurate of them; if that is the best accuracy seen so far,
    only a new best lets it in). The more members dominate it on cost, the more it must
    beat: the count is the rule's proxy for "less likely to enter". Accuracy is not
    predicted; a screened-out child that would have been more accurate than all of them
    is lost, which is the price of the screen.
    """
    C = np.asarray(C, dtype=np.float64)
    if C.ndim != 2:
        raise ValueError(f"screen: cheap objectives must be [children, objectives], got shape {C.shape}")
    m = len(C)
    bad = ~np.isfinite(C).all(axis=1)
    front = np.asarray(front, dtype=np.float64).reshape(-1, C.shape[1])
    count = (front[None, :, :] <= C[:, None, :]).all(axis=2).sum(axis=1) if len(front) and m else np.zeros(m)
    count = np.where(bad, 0, count)
    tie = rng.permutation(m)
    return np.lexsort((tie, count, np.asarray(repeat, dtype=bool).astype(np.int64), bad.astype(np.int64)))


class _Base:
    """Budget, generation counter, pending ask, duplicate rejection, RNG state,
    cost-first screening (``screen``)."""

    name = "base"

    def __init__(self, space: CandidateSpace, rng: np.random.Generator, config: EvolutionConfig):
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.space, self.rng, self.config = space, rng, config
        self.generation = 0
        self.evaluations = 0
        self.duplicates = 0
        self.seen: set[str] = set()
        self.pending: list | None = None
        self.normalization: Normalization | None = None
        # how the first feasible generation's bounds become the normalisation
        self.norm_log: tuple[bool, ...] = ()
        self.norm_cap: tuple = ()
        # cost-first screening (None: off); the front's objectives, children screened out
        self.screen: Screen | None = None
        self.front = np.zeros((0, 0))
        self.screened = 0
        self.last_screened = 0

    @property
    def done(self) -> bool:
        return self.evaluations >= self.config.budget

    def _fresh(self, draw) -> Any:
        """``draw()`` until its key is new, at most MAX_DUPLICATE_DRAWS times, then
        as many uniform samples (a converged population's neighbours may all be
        known); failing that, the duplicate is accepted and counted."""
        c = self._redraw(draw, lambda k: k in self.seen)
        self._admit([c])
        return c

    def _redraw(self, draw, taken: Callable[[str], bool]) -> Any:
        """``draw()`` until ``taken(key)`` is false, at most MAX_DUPLICATE_DRAWS times,
        then as many uniform samples; the last one drawn either way."""
        c, tries = draw(), 1
        while taken(self.space.key(c)) and tries < 2 * MAX_DUPLICATE_DRAWS:
            c = draw() if tries < MAX_DUPLICATE_DRAWS else self.space.sample(self.rng)
            tries += 1
        return c

    def _batch_size(self) -> int:
        first = self.generation == 0
        return min(self.config.population if first else self.config.children,
                   self.config.budget - self.evaluations)

    def ask(self) -> list:
        """The next generation's candidates ([] once the budget is spent)."""
        if self.pending is not None:
            raise ValueError("ask() called twice without tell()")
        n = max(0, self._batch_size())
        if n and self._screening():
            seen, dups = set(self.seen), self.duplicates
            draw = self._drawer()
            pool = [self._fresh(draw) for _ in range(n * self.screen.factor)]
            # only the children asked are 'seen' (a screened-out one may be made again later)
            self.seen, self.duplicates = seen, dups
            batch = [pool[i] for i in self._screen_pick(pool, n, seen)]
            self._admit(batch)
        else:
            self.last_screened = 0
            batch = [self._fresh(self._drawer()) for _ in range(n)] if n else []
        self.pending = batch
        return list(batch)

    # -- screening --
    def _screening(self) -> bool:
        """Screen this ask: a screen is set and a feasible front exists to screen by."""
        return self.screen is not None and self.generation > 0 and len(self.front) > 0

    def _screen_pick(self, pool: list, n: int, seen: set) -> list[int]:
        """Positions in ``pool`` of the ``n`` children to ask, in pool order (rule:
        :func:`screen_order`); counts the others as screened."""
        keys = [self.space.key(c) for c in pool]
        repeat, batch = np.zeros(len(pool), dtype=bool), set()
        for i, k in enumerate(keys):
            repeat[i] = k in seen or k in batch
            batch.add(k)
        C = np.asarray(self.screen.fn(list(pool)), dtype=np.float64).reshape(len(pool), len(self.screen.cheap))
        order = screen_order(C, self.front[:, list(self.screen.cheap)], repeat, self.rng)
        keep = sorted(int(i) for i in order[:n])
        self.last_screened = len(pool) - len(keep)
        self.screened += self.last_screened
        return keep

    def _admit(self, batch: list) -> None:
        """Mark the children asked as seen, counting repeats (as ``_fresh`` does)."""
        for c in batch:
            k = self.space.key(c)
            if k in self.seen:
                self.duplicates += 1
            self.seen.add(k)

    def _update_front(self, F: np.ndarray, ok: np.ndarray) -> None:
        """The Pareto front (distinct objective vectors) of every feasible evaluation so far."""
        good = F[ok & np.isfinite(F).all(axis=1)]
        if not len(good):
            return
        if len(self.front) and self.front.shape[1] != F.shape[1]:
            raise ValueError(f"tell() got {F.shape[1]} objectives, earlier {self.front.shape[1]}")
        if max(self.screen.cheap) >= F.shape[1]:
            raise ValueError(f"screen: cheap objective column {max(self.screen.cheap)} does not exist; "
                             f"tell() gave {F.shape[1]} objectives")
        G = np.unique(np.concatenate([self.front.reshape(-1, F.shape[1]), good]), axis=0)
        self.front = G[non_dominated_sort(G) == 0]

    def tell(self, candidates: Sequence, objectives, feasible) -> None:
        """Objective values ``[n, k]`` (minimised) and feasibility ``[n]`` of the last ask."""
        if self.pending is None:
            raise ValueError("tell() without a preceding ask()")
        F = np.asarray(objectives, dtype=np.float64).reshape(len(candidates), -1)
        ok = np.asarray(feasible, dtype=bool).reshape(len(candidates))
        if [self.space.key(c) for c in candidates] != [self.space.key(c) for c in self.pending]:
            raise ValueError("tell() must receive exactly the candidates of the last ask(), in order")
        self.pending = None
        self._absorb(list(candidates), F, ok)
        if self.screen is not None and len(candidates):
            self._update_front(F, ok)
        self.evaluations += len(candidates)
        self.generation += 1

    def _mutations(self) -> int:
        c = self.config
        frac = min(1.0, self.evaluations / c.budget)
        return int(round(c.mutations_start + (c.mutations_end - c.mutations_start) * frac))

    # -- state --
    def state_dict(self) -> dict:
        return {"algorithm": self.name, "config": asdict(self.config), "rng": self.rng.bit_generator.state,
                "generation": self.generation, "evaluations": self.evaluations,
                "duplicates": self.duplicates, "seen": sorted(self.seen),
                "pending": None if self.pending is None else [self.space.encode(c) for c in self.pending],
                "normalization": None if self.normalization is None else self.normalization.to_dict(),
                **self._screen_state(), **self._extra_state()}

    def _screen_state(self) -> dict:
        # absent when screening is off: such a state is the same as before screening existed
        if self.screen is None:
            return {}
        return {"screen": self.screen.settings(), "screened": self.screened, "last_screened": self.last_screened,
                "front": [[float(v) for v in f] for f in self.front]}

    def load_state_dict(self, state: dict) -> None:
        if state.get("algorithm") != self.name:
            raise ValueError(f"checkpoint is for algorithm {state.get('algorithm')!r}, not {self.name!r}")
        if state.get("config") != asdict(self.config):
            raise ValueError("checkpoint was written with different search settings")
        mine = None if self.screen is None else self.screen.settings()
        if state.get("screen") != mine:
            raise ValueError(f"checkpoint was written with screening {state.get('screen')}, this search has {mine}")
        self.rng.bit_generator.state = state["rng"]
        self.generation, self.evaluations = int(state["generation"]), int(state["evaluations"])
        self.duplicates = int(state["duplicates"])
        self.seen = set(state["seen"])
        self.pending = None if state["pending"] is None else [self.space.decode(d) for d in state["pending"]]
        n = state.get("normalization")
        self.normalization = None if n is None else Normalization.from_dict(n)
        if self.screen is not None:
            self.screened, self.last_screened = int(state["screened"]), int(state["last_screened"])
            self.front = np.array(state["front"], dtype=np.float64).reshape(len(state["front"]), -1)
        self._load_extra(state)

    def _extra_state(self) -> dict:
        return {}

    def _load_extra(self, state: dict) -> None:
        pass

    def _drawer(self):
        raise NotImplementedError

    def _absorb(self, candidates, F, ok) -> None:
        pass


class RandomSearch(_Base):
    """Uniform random samples, ``population`` first and then ``children`` per generation."""

    name = "random"

    def _drawer(self):
        return lambda: self.space.sample(self.rng)


class _AgingEvolution(_Base):
    """Population of (candidate, objectives, feasible), oldest first; replacement by
    ``config.survival``."""

    def __init__(self, space, rng, config):
        super().__init__(space, rng, config)
        self.population: list[tuple[Any, np.ndarray, bool]] = []

    def _drawer(self):
        if self.generation == 0 or not self.population:
            return lambda: self.space.sample(self.rng)
        order = self._preference()  # position of each member in preference order
        n_mut = self._mutations()

        def child():
            idx = self.rng.choice(len(self.population), size=min(self.config.sample_size, len(self.population)),
                                  replace=False)
            parent = self.population[int(idx[np.argmin(order[idx])])][0]
            return self.space.mutate(parent, self.rng, n_mut)
        return child

    def _preference(self) -> np.ndarray:
        """Preference position of each population member (0 = best), a total order."""
        raise NotImplementedError

    def _absorb(self, candidates, F, ok):
        if self.normalization is None:
            good = F[ok & np.isfinite(F).all(axis=1)]
            if len(good):
                self.normalization = Normalization.from_points(good, self.norm_log, self.norm_cap)
        self.population.extend((c, f, bool(o)) for c, f, o in zip(candidates, F, ok))
        excess = len(self.population) - self.config.population
        if excess <= 0:
            return
        if self.config.survival == "age":
            del self.population[:excess]
        else:
            pos = self._preference()  # on population and children together
            self.population = [m for m, p in zip(self.population, pos) if p < self.config.population]

    def _extra_state(self):
        return {"population": [{"candidate": self.space.encode(c), "objectives": [float(v) for v in f],
                                "feasible": o} for c, f, o in self.population]}

    def _load_extra(self, state):
        self.population = [(self.space.decode(m["candidate"]), np.array(m["objectives"], dtype=np.float64),
                            bool(m["feasible"])) for m in state["population"]]

    def _matrix(self):
        F = np.array([f for _, f, _ in self.population], dtype=np.float64)
        ok = np.array([o for _, _, o in self.population], dtype=bool) & np.isfinite(F).all(axis=1)
        return F, ok


class RegularizedEvolution(_AgingEvolution):
    """NASRec regularised evolution on ``scalarization`` of the objectives (normalised
    by bounds fixed from the first feasible generation)."""

    name = "evolution"

    def __init__(self, space, rng, config, scalarization: Scalarization):
        super().__init__(space, rng, config)
        self.scalarization = scalarization

    def _preference(self):
        F, ok = self._matrix()
        s = np.full(len(F), np.inf)
        if ok.any():
            s[ok] = self.scalarization(F[ok], self.normalization)
        return np.argsort(np.argsort(s, kind="stable"), kind="stable")


class MultiObjectiveEvolution(_AgingEvolution):
    """Regularised evolution selecting by Pareto rank, then crowding distance (larger
    wins), then age (younger wins); infeasible members rank last."""

    name = "moea"

    def _preference(self):
        F, ok = self._matrix()
        n = len(F)
        rank = np.full(n, n + 1, dtype=np.int64)
        crowd = np.zeros(n)
        if ok.any():
            idx = np.flatnonzero(ok)
            G = F[idx] if self.normalization is None else self.normalization(F[idx])
            r = non_dominated_sort(G)
            rank[idx] = r
            for front in np.unique(r):
                members = idx[r == front]
                crowd[members] = crowding_distance(G[r == front])
        age = np.arange(n)  # larger = younger
        order = np.lexsort((-age, -crowd, rank))
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)
        return pos


#: Library engines (``cosearch.engines``, pymoo; the ``moea`` extra), imported on demand.
ENGINE_NAMES = ("nsga2", "smsemoa")
ALGORITHMS = ("moea", "evolution", "random") + ENGINE_NAMES
ENGINE_LIBRARY = "pymoo"


def engine_library(name: str) -> tuple[str, str]:
    """(library, installed version) behind the library engine ``name``, read from the
    installed package's metadata (pymoo itself is not imported); a ValueError naming
    the pip command when it is not installed."""
    if name not in ENGINE_NAMES:
        raise ValueError(f"{name!r} is not a library engine; those are {', '.join(ENGINE_NAMES)}")
    try:
        return ENGINE_LIBRARY, importlib.metadata.version(ENGINE_LIBRARY)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(f"algorithm {name!r} needs {ENGINE_LIBRARY}, which is not installed: "
                         "pip install 'pymoo>=0.6.1' (or the project's 'moea' extra)") from None


def make_algorithm(name: str, space: CandidateSpace, rng: np.random.Generator, config: EvolutionConfig,
                   weights: tuple[float, ...] | None = None, *, log: tuple[bool, ...] = (), cap: tuple = (),
                   screen: Screen | None = None):
    """An algorithm by name; ``weights`` (one per objective) for 'evolution'; ``log``
    and ``cap``: how objectives are normalised for crowding and scalarisation (see
    ``Normalization.from_points``); ``screen``: cost-first screening (None: off)."""
    if name == "moea":
        algo = MultiObjectiveEvolution(space, rng, config)
    elif name == "evolution":
        if weights is None:
            raise ValueError("the 'evolution' algorithm needs scalarisation weights, one per objective")
        algo = RegularizedEvolution(space, rng, config, Scalarization(tuple(weights)))
    elif name == "random":
        algo = RandomSearch(space, rng, config)
    elif name in ENGINE_NAMES:
        if config.survival != "elitist":
            raise ValueError(f"survival {config.survival!r} applies to 'moea' and 'evolution'; "
                             f"{name!r} has its own")
        engine_library(name)  # the one-line error when pymoo is missing
        from cosearch.engines import ENGINES
        algo = ENGINES[name](space, rng, config)
    else:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}")
    algo.norm_log, algo.norm_cap = tuple(log), tuple(cap)
    if screen is not None and not isinstance(screen, Screen):
        raise ValueError(f"screen must be a cosearch.search.Screen or None, got {type(screen).__name__}")
    algo.screen = screen
    return algo
