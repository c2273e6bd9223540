"""Library engines behind the ask/tell interface of :mod:`cosearch.search`: pymoo's
NSGA-II (``nsga2``) and SMS-EMOA (``smsemoa``).

Imported only when one of them is asked for (``make_algorithm``); needs the ``moea``
extra (``pip install 'pim-nasrec[moea]'``).

Candidates travel through pymoo as themselves: a population's ``X`` is one object
column holding the candidate, and pymoo's sampling, crossover and mutation are
operators that call the candidate space (``sample``; ``crossover(a, b, rng)`` where
the space has one, else the parents are copied; ``mutate`` with the mutation count
of ``EvolutionConfig``'s falling schedule). So nothing is lost in translation, and
the engines run on any :class:`~cosearch.search.CandidateSpace`. As in the project's
own algorithms, a child whose key was evaluated or asked before is re-drawn
(``MAX_DUPLICATE_DRAWS`` mutations, then as many uniform samples); pymoo's own
duplicate elimination is off (it compares float vectors).

pymoo is told the objectives as the hypervolume sees them (log10 where the
normalisation is logarithmic, capped where it is capped; neither changes who
dominates whom, both matter to SMS-EMOA's hypervolume contributions) and one
inequality constraint, ``G = 1`` for infeasible candidates (0 otherwise), so that
infeasible ones lose to feasible ones. Non-finite objectives of infeasible
candidates are replaced by the batch's worst finite value: pymoo needs finite numbers
and SMS-EMOA takes its nadir point from the whole population.

Randomness: pymoo's ``random_state`` is the run's generator, and every pymoo routine
these engines reach takes it (no global or unseeded draws; tested). State: the
pymoo algorithm object is pickled, without the generator (restored from the state's
``rng``) and without its link to the search, into the JSON state as base64, beside
pymoo's version; a state from another version is refused (pickled objects of another
version need not mean the same). Unpickling runs code that the state names: resume
only checkpoints you wrote.

Screening (``screen``, :class:`~cosearch.search.Screen`): pymoo's mating is asked for
``factor`` x the children of the generation, the screen keeps as many as the
generation needs, and pymoo is told only those (its survival sees no screened-out child).
"""
from __future__ import annotations

import base64
import pickle

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.sms import SMSEMOA, cv_and_dom_tournament
from pymoo.core.crossover import Crossover
from pymoo.core.evaluator import Evaluator
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.core.termination import NoTermination
from pymoo.operators.selection.tournament import TournamentSelection
from pymoo.problems.static import StaticProblem

from cosearch.search import ENGINE_LIBRARY as LIBRARY, _Base, engine_library

__all__ = ["PymooEngine", "ENGINES", "LIBRARY", "library_version"]

#: Probability that a pair of parents is crossed over (else copied); pymoo's NSGA-II default.
CROSSOVER_PROB = 0.9


def library_version() -> str:
    """pymoo's installed version, as ``run.json`` records it."""
    return engine_library("nsga2")[1]


class _Gene:
    """Holder of one candidate in pymoo's object arrays (numpy would unpack a tuple)."""

    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def __getstate__(self):
        return (self.c,)  # a tuple: pickle skips __setstate__ for a falsy state

    def __setstate__(self, state):
        self.c = state[0]


class _Problem(Problem):
    """One object variable and one inequality constraint. ``n_obj`` is set at the first
    tell (the evaluator, not the space, knows it); ``engine`` links back to the search
    and is left out of pickles and copies."""

    def __init__(self):
        super().__init__(n_var=1, n_obj=1, n_ieq_constr=1)
        self.engine = None

    def __getstate__(self):
        return {k: (None if k == "engine" else v) for k, v in self.__dict__.items()}


class _Sampling(Sampling):
    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        eng = problem.engine
        X = np.empty((n_samples, 1), dtype=object)
        for i in range(n_samples):
            X[i, 0] = _Gene(eng._fresh_child(lambda: eng.space.sample(eng.rng)))
        return X


class _Crossover(Crossover):
    """Two parents, two children: ``crossover(a, b)`` and ``crossover(b, a)``."""

    def __init__(self):
        super().__init__(n_parents=2, n_offsprings=2, prob=CROSSOVER_PROB)

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        eng = problem.engine
        cross = getattr(eng.space, "crossover", None)  # optional in CandidateSpace
        _, n, _ = X.shape
        Y = np.empty((2, n, 1), dtype=object)
        for k in range(n):
            a, b = X[0, k, 0].c, X[1, k, 0].c
            Y[0, k, 0] = _Gene(cross(a, b, eng.rng) if cross else a)
            Y[1, k, 0] = _Gene(cross(b, a, eng.rng) if cross else b)
        return Y


class _Mutation(Mutation):
    def _do(self, problem, X, *args, random_state=None, **kwargs):
        eng = problem.engine
        n_mut = eng._mutations()
        Y = np.empty_like(X)
        for i in range(len(X)):
            parent = X[i, 0].c
            Y[i, 0] = _Gene(eng._fresh_child(lambda: eng.space.mutate(parent, eng.rng, n_mut)))
        return Y


def _operators() -> dict:
    # no pymoo output object: it would compute indicators every generation for nothing
    return {"sampling": _Sampling(), "crossover": _Crossover(), "mutation": _Mutation(),
            "eliminate_duplicates": False, "output": None}


class PymooEngine(_Base):
    """A pymoo genetic algorithm (``make(config)``) driven by ask/tell."""

    library = LIBRARY

    def __init__(self, space, rng, config):
        super().__init__(space, rng, config)
        self.batch_keys: set[str] = set()  # children made during the current ask
        self.infills = None  # pymoo's population of the pending ask
        self.algorithm = self.make(config)
        problem = _Problem()
        problem.engine = self
        # seed=0 only keeps setup away from the OS entropy; its generator is replaced
        self.algorithm.setup(problem, termination=NoTermination(), seed=0, verbose=False)
        self.algorithm.random_state = rng

    @staticmethod
    def make(config):
        raise NotImplementedError

    def _fresh_child(self, draw):
        """``draw()`` until its key is neither evaluated nor already in this batch (see
        ``_Base._fresh``); accepted duplicates are counted by ``ask``."""
        c = self._redraw(draw, lambda k: k in self.seen or k in self.batch_keys)
        self.batch_keys.add(self.space.key(c))
        return c

    def ask(self) -> list:
        if self.pending is not None:
            raise ValueError("ask() called twice without tell()")
        n = max(0, self._batch_size())
        if n == 0:
            self.pending = []
            return []
        self.batch_keys = set()
        screening = self._screening()
        if screening:  # pymoo mates factor x as many children; the screen keeps n of them
            self.algorithm.n_offsprings = n * self.screen.factor
        try:
            pop = self.algorithm.ask()
        finally:
            self.algorithm.n_offsprings = self.config.children
        if screening:
            pool = pop[:n * self.screen.factor]
            pop = pool[self._screen_pick([ind.X[0].c for ind in pool], n, self.seen)]
        else:
            self.last_screened = 0
            # pymoo makes children in pairs and the last generation may be cut by the budget
            pop = pop[:n]
        cands = [ind.X[0].c for ind in pop]
        self._admit(cands)
        self.batch_keys = set()
        self.infills, self.pending = pop, cands
        return list(cands)

    def _view(self, F: np.ndarray) -> np.ndarray:
        """Objectives as pymoo sees them (module docstring)."""
        G = np.array(F, dtype=np.float64)
        for i, c in enumerate(self.norm_cap):
            if c is not None:
                G[:, i] = np.minimum(G[:, i], c)
        for i, lg in enumerate(self.norm_log):
            if lg:
                with np.errstate(divide="ignore", invalid="ignore"):
                    G[:, i] = np.log10(G[:, i])
        for i in range(G.shape[1]):
            bad = ~np.isfinite(G[:, i])
            if bad.any():
                good = G[~bad, i]
                G[bad, i] = good.max() if len(good) else 0.0
        return G

    def _absorb(self, candidates, F, ok) -> None:
        if not candidates:
            return
        problem = self.algorithm.problem
        if self.generation == 0:
            problem.n_obj = F.shape[1]
        elif problem.n_obj != F.shape[1]:
            raise ValueError(f"tell() got {F.shape[1]} objectives, earlier {problem.n_obj}")
        G = np.where(ok, 0.0, 1.0)[:, None]
        Evaluator().eval(StaticProblem(problem, F=self._view(F), G=G), self.infills)
        self.algorithm.tell(infills=self.infills)
        self.infills = None

    # -- state --
    def _extra_state(self) -> dict:
        alg = self.algorithm
        alg.random_state = None  # the run's generator is saved (and restored) as "rng"
        try:
            blob = pickle.dumps((alg, self.infills), protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            alg.random_state = self.rng
        return {"engine": {"library": LIBRARY, "version": library_version(),
                           "state": base64.b64encode(blob).decode("ascii")}}

    def load_state_dict(self, state: dict) -> None:
        eng = state.get("engine")
        if not isinstance(eng, dict) or eng.get("library") != LIBRARY:
            raise ValueError(f"checkpoint holds no {LIBRARY} engine state for algorithm {self.name!r}")
        if eng.get("version") != library_version():
            raise ValueError(f"checkpoint was written with {LIBRARY} {eng.get('version')}, this is "
                             f"{LIBRARY} {library_version()}; resume with the same version "
                             f"(pip install {LIBRARY}=={eng.get('version')})")
        super().load_state_dict(state)

    def _load_extra(self, state) -> None:
        alg, infills = pickle.loads(base64.b64decode(state["engine"]["state"]))
        alg.random_state = self.rng
        alg.problem.engine = self
        self.algorithm, self.infills = alg, infills


class NSGA2Engine(PymooEngine):
    """pymoo's NSGA-II: binary tournaments by domination then crowding, survival by
    rank and crowding over population and children together."""

    name = "nsga2"

    @staticmethod
    def make(config):
        return NSGA2(pop_size=config.population, n_offsprings=config.children, **_operators())


def _sms_tournament(pop, P, *args, random_state=None, **kwargs):
    # pymoo's own, under a module-level name: its decorator's wrapper cannot be pickled
    return cv_and_dom_tournament(pop, P, *args, random_state=random_state, **kwargs)


class SMSEMOAEngine(PymooEngine):
    """pymoo's SMS-EMOA with ``children`` per generation ((mu + lambda), not the
    steady-state original): the member with the least hypervolume contribution of
    the last front is dropped, one at a time."""

    name = "smsemoa"

    @staticmethod
    def make(config):
        return SMSEMOA(pop_size=config.population, n_offsprings=config.children,
                       selection=TournamentSelection(func_comp=_sms_tournament), **_operators())


ENGINES = {e.name: e for e in (NSGA2Engine, SMSEMOAEngine)}
