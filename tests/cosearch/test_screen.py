"""Cost-first screening (cosearch.search.Screen, screen_order; Evaluator.screen)."""
import hashlib
import importlib.metadata
import json

import numpy as np
import pytest

from cosearch.config import RunConfig, SearchConfig
from cosearch.objectives import Constraint, Evaluator
from cosearch.run import CHECKPOINT, EXCLUDED_FROM_EQUALITY, read_results, run_search
from cosearch.search import SCREEN_MAX, EvolutionConfig, Screen, make_algorithm, screen_order
from tests.cosearch.conftest import GridMetrics, GridSpace, drive

N = 21
OURS = ("moea", "evolution", "random")
try:
    import pymoo  # noqa: F401
    ALL = OURS + ("nsga2", "smsemoa")
except ImportError:
    ALL = OURS
CFG = EvolutionConfig(budget=70, population=16, sample_size=4, children=9)


class _Counted:
    """A provider of the toy space that records every candidate it computes."""

    names: tuple = ()

    def __init__(self):
        self.calls = []

    def key(self, c):
        return f"{c[0]},{c[1]}"

    def __call__(self, cands):
        self.calls += [tuple(c) for c in cands]
        return np.array([self.row(a, b) for a, b in cands], dtype=float)


class Loss(_Counted):
    """The expensive objective of the toy space: a bowl around (15, 15)."""

    names = ("loss",)

    @staticmethod
    def row(a, b):
        return [(a - 15.0) ** 2 + (b - 15.0) ** 2]


class Cost(_Counted):
    """The cheap objectives: ``c1 = a``, ``c2 = b + (a % 3)`` and an ``area`` of ``b``."""

    names = ("c1", "c2", "area")

    @staticmethod
    def row(a, b):
        return [float(a), float(b + a % 3), float(b)]


def _cost_of(c):
    a, b = c
    return np.array([a, b + a % 3], dtype=float)


def _toy(factor=4, constraints=()):
    loss, cost = Loss(), Cost()
    ev = Evaluator([loss, cost], ("loss", "c1", "c2"), constraints)
    return ev, loss, cost, ev.screen([cost], factor)


def _fingerprint(name, seed, screen=None):
    """sha256 of the candidates told and the final state of a grid run (engine pickles aside)."""
    ev = Evaluator([GridMetrics(N)], ("f1", "f2"))
    algo = make_algorithm(name, GridSpace(N), np.random.default_rng(seed), CFG, weights=(1.0, 2.0), screen=screen)
    told = drive(algo, ev)
    st = algo.state_dict()
    st.pop("engine", None)
    return hashlib.sha256(json.dumps([told, st], sort_keys=True).encode()).hexdigest()[:16]


# -- off: today's results --------------------------------------------------------------------

#: Fingerprints of the code before screening existed (commit 6e5f7d5), seed 11.
BEFORE = {"moea": "398ca8ac258fd67d", "evolution": "67751dda07cd0817", "random": "287e06ef63899793"}
#: The library engines', valid for the pymoo version they were taken with.
BEFORE_ENGINES = ("0.6.2", {"nsga2": "d4962b55867bf93e", "smsemoa": "a708978437bb8201"})


@pytest.mark.parametrize("name", ALL)
def test_screening_off_is_todays_search(name):
    if name in BEFORE:
        assert _fingerprint(name, 11) == BEFORE[name]
    else:
        version, prints = BEFORE_ENGINES
        if importlib.metadata.version("pymoo") != version:
            pytest.skip(f"engine fingerprints were taken with pymoo {version}")
        assert _fingerprint(name, 11) == prints[name]
    # an unscreened state holds nothing of screening (checkpoints as before)
    algo = make_algorithm(name, GridSpace(N), np.random.default_rng(0), CFG, weights=(1.0, 1.0))
    drive(algo, Evaluator([GridMetrics(N)], ("f1", "f2")), 2)
    assert not {"screen", "screened", "front"} & set(algo.state_dict())


# -- the selection rule ------------------------------------------------------------------------

def _reference_order(C, front, repeat, rng):
    """Obviously correct screen_order: keys (known infeasible, repeat, dominating front
    members, random tie) compared as tuples."""
    m = len(C)
    tie = rng.permutation(m)
    keys = []
    for i in range(m):
        bad = not all(np.isfinite(v) for v in C[i])
        count = 0
        if not bad:
            for p in front:
                if all(p[j] <= C[i][j] for j in range(len(p))):
                    count += 1
        keys.append((int(bad), int(bool(repeat[i])), count, int(tie[i]), i))
    return [k[-1] for k in sorted(keys)]


@pytest.mark.parametrize("trial", range(40))
def test_screen_order_equals_the_reference(trial):
    g = np.random.default_rng(trial)
    m, p, j = int(g.integers(1, 40)), int(g.integers(0, 12)), int(g.integers(1, 4))
    # small integers: many ties and equal points, where weak domination matters
    C = g.integers(0, 5, size=(m, j)).astype(float)
    C[g.random(m) < 0.1, int(g.integers(j))] = g.choice([np.nan, np.inf])
    front = g.integers(0, 5, size=(p, j)).astype(float)
    repeat = g.random(m) < 0.15
    seed = int(g.integers(1 << 30))
    got = screen_order(C, front, repeat, np.random.default_rng(seed))
    assert list(got) == _reference_order(C, front, repeat, np.random.default_rng(seed))


def test_screen_order_by_hand():
    front = np.array([[1.0, 5.0], [3.0, 3.0], [5.0, 1.0]])
    C = np.array([[0.0, 9.0],   # 0: no member is cheaper in both: enters whatever its accuracy
                  [3.0, 3.0],   # 1: equal to a member: weakly dominated by it (count 1)
                  [6.0, 6.0],   # 2: dominated by all three
                  [np.nan, 0],  # 3: known infeasible
                  [4.0, 4.0]])  # 4: dominated by (3, 3) only
    order = screen_order(C, front, np.zeros(5, bool), np.random.default_rng(0))
    assert order[0] == 0 and set(order[1:3]) == {1, 4} and list(order[3:]) == [2, 3]
    # a repeat goes after every new child, before the infeasible
    order = screen_order(C, front, np.array([True, False, False, False, False]), np.random.default_rng(0))
    assert list(order[-2:]) == [0, 3]


# -- in the algorithms ---------------------------------------------------------------------------

class Spy:
    """A screen function that records every batch it is asked about."""

    def __init__(self, fn):
        self.fn, self.batches = fn, []

    def __call__(self, cands):
        self.batches.append(list(cands))
        return self.fn(cands)


@pytest.mark.parametrize("name", ALL)
def test_toy_space_keeps_the_children_least_dominated_on_cost(name):
    ev, loss, cost, screen = _toy(factor=4)
    spy = Spy(screen.fn)
    algo = make_algorithm(name, GridSpace(N), np.random.default_rng(3), CFG, weights=(1.0, 1.0, 1.0),
                          screen=Screen(spy, screen.factor, screen.cheap))
    told = drive(algo, ev, 1)
    assert spy.batches == [] and algo.screened == 0  # nothing to screen by before a front exists
    tested = 0
    while not algo.done:
        front = algo.front.copy()
        n = min(CFG.children, CFG.budget - algo.evaluations)
        kids = algo.ask()
        pool = spy.batches[-1]
        assert len(pool) == 4 * n and len(kids) == n and algo.last_screened == 3 * n
        kept = {k for k in kids}
        assert kept <= set(pool)
        # the count of front members (on all objectives) at most as costly in both cheap ones
        assert front.shape[1] == 3
        dom = {c: int(sum(np.all(f[1:] <= _cost_of(c)) for f in front)) for c in pool}
        if len(set(pool)) == len(pool) and not set(pool) & set(told):  # no repeats in the pool
            assert max(dom[c] for c in kids) <= min((dom[c] for c in pool if c not in kept), default=np.inf)
            # children that no front member dominates on cost (they enter the front
            # whatever their accuracy) are all asked, or fill the whole generation
            free = {c for c in pool if dom[c] == 0}
            assert free <= kept if len(free) <= n else kept <= free
            tested += bool(free)
        e = ev.evaluate(kids)
        algo.tell(kids, e.objectives, e.feasible)
        told += kids
    assert tested >= 1
    # the accuracy model saw exactly the evaluations; the cost of each child was computed once
    assert len(loss.calls) == len(told) == CFG.budget == algo.evaluations
    assert len(cost.calls) == len(set(cost.calls))
    assert set(cost.calls) == set(told) | {c for b in spy.batches for c in b} and len(cost.calls) > CFG.budget
    assert algo.screened == sum(len(b) for b in spy.batches) - (CFG.budget - CFG.population)
    # the front kept for screening is the front of everything told
    from cosearch.pareto import pareto_mask
    F = ev.evaluate(told).objectives
    assert {tuple(f) for f in F[pareto_mask(F)]} == {tuple(f) for f in algo.front}


def test_constraints_and_infeasible_costs_screen_first():
    # area = b > 4 is infeasible: the screen says so before any accuracy is paid for
    ev, loss, cost, screen = _toy(factor=8, constraints=[Constraint("area", 4.0)])
    C = screen.fn([(1, 2), (1, 9)])
    assert np.array_equal(C[0], [1.0, 3.0]) and np.isnan(C[1]).all()
    algo = make_algorithm("moea", GridSpace(N), np.random.default_rng(0), CFG, screen=screen)
    told = drive(algo, ev)
    late = told[CFG.population:]
    assert all(b <= 4 for _, b in late)  # 5 in 21 feasible: 8 draws nearly always hold n of them
    assert sum(b <= 4 for _, b in told[:CFG.population]) < CFG.population


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_run(name):
    def go(seed):
        ev, _, _, screen = _toy()
        algo = make_algorithm(name, GridSpace(N), np.random.default_rng(seed), CFG, weights=(1, 1, 1), screen=screen)
        return drive(algo, ev), algo.screened
    a, b, c = go(5), go(5), go(6)
    assert a == b and a[1] > 0
    assert a[0] != c[0]
    # and screening changes what is evaluated
    ev = Evaluator([Loss(), Cost()], ("loss", "c1", "c2"))
    plain = drive(make_algorithm(name, GridSpace(N), np.random.default_rng(5), CFG, weights=(1, 1, 1)), ev)
    assert plain[:CFG.population] == a[0][:CFG.population] and plain != a[0]


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_with_screening(name):
    ev, _, _, screen = _toy()
    a = make_algorithm(name, GridSpace(N), np.random.default_rng(7), CFG, weights=(1, 1, 1), screen=screen)
    drive(a, ev, 3)
    state = json.loads(json.dumps(a.state_dict()))
    assert state["screen"] == {"factor": 4, "cheap": [1, 2]} and state["screened"] == a.screened > 0
    ev2, _, _, screen2 = _toy()
    ev2.load_cache_state(ev.cache_state())
    b = make_algorithm(name, GridSpace(N), np.random.default_rng(999), CFG, weights=(1, 1, 1), screen=screen2)
    b.load_state_dict(state)
    while not a.done:
        ca, cb = a.ask(), b.ask()
        assert ca == cb and a.last_screened == b.last_screened
        e = ev.evaluate(ca)
        a.tell(ca, e.objectives, e.feasible)
        b.tell(cb, e.objectives, e.feasible)
    assert b.done and a.screened == b.screened
    # settings must match: no screen, or another factor, is refused
    for other in (None, Screen(screen.fn, 5, screen.cheap)):
        c = make_algorithm(name, GridSpace(N), np.random.default_rng(0), CFG, weights=(1, 1, 1), screen=other)
        with pytest.raises(ValueError, match="screening"):
            c.load_state_dict(state)


def _fields(c):
    return {"a": c[0], "b": c[1]}


@pytest.mark.parametrize("name", ["moea", "nsga2"] if "nsga2" in ALL else ["moea"])
def test_run_search_resumes_exactly_with_screening(tmp_path, name):
    def go(out, max_generations=None, seed=4):
        ev, _, _, screen = _toy()
        algo = make_algorithm(name, GridSpace(N), np.random.default_rng(seed), CFG, screen=screen)
        return run_search(out, algo, ev, row_fields=_fields, seed=seed, max_generations=max_generations)

    full = go(tmp_path / "a")
    assert full.complete and full.screened > 0 and len(full.keys) == CFG.budget
    part = go(tmp_path / "b", max_generations=3)
    assert not part.complete
    rest = go(tmp_path / "b", seed=123)
    assert rest.keys == full.keys and rest.screened == full.screened
    assert rest.hv_history == full.hv_history

    def table(d):
        return [{k: v for k, v in r.items() if k not in EXCLUDED_FROM_EQUALITY} for r in read_results(d)]
    assert table(tmp_path / "a") == table(tmp_path / "b")
    ck = json.loads((tmp_path / "b" / CHECKPOINT).read_text())
    assert ck["algorithm"]["screened"] == full.screened


def test_generation_info_reports_the_screened(tmp_path):
    ev, _, _, screen = _toy(factor=3)
    algo = make_algorithm("random", GridSpace(N), np.random.default_rng(0), CFG, screen=screen)
    infos = []
    run_search(tmp_path, algo, ev, row_fields=_fields, on_generation=infos.append)
    assert infos[0].screened == 0
    assert [i.screened for i in infos] == [0] + [2 * 9] * 6  # 70 = 16 + 6 x 9
    assert sum(i.screened for i in infos) == algo.screened


# -- settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, 33, -1, True, 2.0, "8"])
def test_search_config_screen_is_validated(bad):
    with pytest.raises(ValueError, match=f"SearchConfig.screen must be an integer in 1..{SCREEN_MAX}") as e:
        SearchConfig(screen=bad)
    assert str(e.value).endswith(f"got {bad!r}")


def test_screen_settings():
    # on by default, with NSGA-II (issue 17's race)
    assert (SearchConfig().screen, SearchConfig().algorithm) == (8, "nsga2")
    with pytest.raises(ValueError, match="screen 4 needs a cost objective"):
        SearchConfig(screen=4, objectives=("logloss",), weights=(1.0,))
    with pytest.raises(ValueError, match="set screen = 1"):
        SearchConfig(objectives=("logloss",), weights=(1.0,))
    cfg = RunConfig.from_dict({"search": {"screen": 1}})
    assert cfg.to_dict()["search"]["screen"] == 1  # recorded in run.json with the config
    with pytest.raises(ValueError, match="factor"):
        Screen(lambda c: c, 1, (0,))
    with pytest.raises(ValueError, match="cheap"):
        Screen(lambda c: c, 4, ())
    ev, loss, _, _ = _toy()
    with pytest.raises(ValueError, match="none of the objectives"):
        c = Cost()
        Evaluator([loss, c], ("loss",)).screen([c], 4)  # no objective is a cost
    with pytest.raises(ValueError, match="not one of this evaluator's providers"):
        ev.screen([Cost()], 4)


def test_pipeline_records_and_uses_the_screen(tmp_path):
    """The tiny run of test_cli with ``screen = 3``: its cost provider screens."""
    from cosearch.cli import main
    from tests.cosearch.test_cli import TINY
    cfgp = tmp_path / "tiny.toml"
    assert "[verify]\n" in TINY and "[search]\n" in TINY
    cfgp.write_text(TINY.replace("[search]\n", "[search]\nscreen = 3\n")
                    .replace("[verify]\ntop_k = 2\n", "[verify]\nbaselines = false\ntop_k = 0\n"))
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfgp), "--out", str(out), "--cache", str(tmp_path / "cache"),
                 "--quiet"]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["search"]["screen"] == 3
    ck = json.loads((out / CHECKPOINT).read_text())
    # budget 12: population 6, then two generations of 3 children, each chosen from 9
    assert len(read_results(out)) == 12 and ck["algorithm"]["screened"] == 12
    assert ck["algorithm"]["screen"]["factor"] == 3
    # every screened child was costed into the cache, and no more than that
    assert 12 < len(ck["cache"][1]) <= 12 + 12 and len(ck["cache"][0]) <= 12
    assert "screening x3: 12 more children" in (out / "summary.md").read_text()
