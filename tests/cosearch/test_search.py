import json
from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import pytest

from cosearch.config import DEFAULT
from cosearch.pipeline import search_space
from nasrec.space import MACRO_FIELDS, MICRO_FIELDS

from cosearch.pareto import Normalization, hypervolume
from cosearch.search import EvolutionConfig, make_algorithm
from cosearch.objectives import Evaluator
from tests.cosearch.conftest import GridMetrics, GridSpace, standin_evaluator

N = 21


def _run(name, seed, budget=240, space=None, evaluator=None, survival="elitist"):
    space = space or GridSpace(N)
    ev = evaluator or Evaluator([GridMetrics(N)], ("f1", "f2"))
    algo = make_algorithm(name, space, np.random.default_rng(seed),
                          EvolutionConfig(budget=budget, population=24, sample_size=6, children=12,
                                          survival=survival),
                          weights=(1.0, 1.0))
    cands, F = [], []
    while not algo.done:
        c = algo.ask()
        e = ev.evaluate(c)
        algo.tell(c, e.objectives, e.feasible)
        cands += c
        F.append(e.objectives)
    return algo, cands, np.concatenate(F)


def _grid_hv(cands):
    F = np.array([[a, (N - 1 - a) + 2 * b] for a, b in cands], dtype=float)
    return hypervolume(F, Normalization((0.0, 0.0), (N - 1.0, 3 * (N - 1.0))))


def test_moea_finds_known_front():
    algo, cands, F = _run("moea", 0)
    found = {a for a, b in cands if b == 0}
    assert len(found) >= 0.8 * N  # the front is the N points with b == 0
    true_hv = _grid_hv([(a, 0) for a in range(N)])
    assert _grid_hv(cands) >= 0.97 * true_hv
    assert algo.evaluations == 240 and len(cands) == 240


@pytest.mark.parametrize("survival", ["elitist", "age"])
def test_moea_beats_random_on_average(survival):
    moea = np.mean([_grid_hv(_run("moea", s, budget=120, survival=survival)[1]) for s in range(4)])
    rand = np.mean([_grid_hv(_run("random", s, budget=120)[1]) for s in range(4)])
    assert moea > rand


def test_elitist_survival_keeps_the_best_and_age_the_newest():
    # one generation of 24 then one of 12 children: the population holds 24 of 36
    from cosearch.pareto import non_dominated_sort
    for survival in ("elitist", "age"):
        algo, told, F = _run("moea", 5, budget=36, survival=survival)
        key = algo.space.key
        kept = {key(c) for c, _, _ in algo.population}
        assert len(kept) == 24
        if survival == "age":
            assert kept == {key(c) for c in told[12:]}
        else:
            rank = non_dominated_sort(F)
            worst_kept = max(rank[i] for i, c in enumerate(told) if key(c) in kept)
            # nobody of a better front than the worst kept member was dropped
            assert all(key(c) in kept for i, c in enumerate(told) if rank[i] < worst_kept)


def test_survival_is_validated():
    with pytest.raises(ValueError, match="survival.*'oldest'"):
        EvolutionConfig(survival="oldest")


def test_scalarised_evolution_minimises_the_sum():
    algo, cands, F = _run("evolution", 1)
    # a / ra + (N - 1 - a + 2 b) / rb with range ra < rb: the unique optimum is (0, 0)
    norm = algo.normalization
    assert norm.upper[0] - norm.lower[0] < norm.upper[1] - norm.lower[1]
    assert (0, 0) in cands
    # found within a small budget for every seed (random search covers 120 of 441 points)
    assert all((0, 0) in _run("evolution", s, budget=120)[1] for s in range(4))


def test_no_duplicates_and_budget_respected():
    algo, cands, _ = _run("moea", 2, budget=100)
    keys = [f"{a},{b}" for a, b in cands]
    assert len(set(keys)) == len(keys) == 100
    assert algo.ask() == []


def test_ask_tell_protocol_errors():
    algo = make_algorithm("random", GridSpace(), np.random.default_rng(0), EvolutionConfig(budget=10, population=4,
                                                                                             sample_size=2, children=2))
    with pytest.raises(ValueError, match="without a preceding"):
        algo.tell([], np.zeros((0, 2)), [])
    c = algo.ask()
    with pytest.raises(ValueError, match="twice"):
        algo.ask()
    with pytest.raises(ValueError, match="exactly the candidates"):
        algo.tell(c[::-1], np.zeros((4, 2)), np.ones(4))
    with pytest.raises(ValueError, match="rng"):
        make_algorithm("moea", GridSpace(), 0, EvolutionConfig())
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_algorithm("nsga9", GridSpace(), np.random.default_rng(0), EvolutionConfig())
    with pytest.raises(ValueError, match="sample_size"):
        EvolutionConfig(population=4, sample_size=8)


@pytest.mark.parametrize("survival", ["elitist", "age"])
@pytest.mark.parametrize("name", ["moea", "evolution", "random"])
def test_state_dict_round_trip_continues_identically(name, survival):
    import json
    cfg = EvolutionConfig(budget=90, population=20, sample_size=5, children=10, survival=survival)
    space, ev = GridSpace(), Evaluator([GridMetrics()], ("f1", "f2"))
    a = make_algorithm(name, space, np.random.default_rng(7), cfg, weights=(1.0, 2.0))
    for _ in range(3):
        c = a.ask()
        e = ev.evaluate(c)
        a.tell(c, e.objectives, e.feasible)
    state = json.loads(json.dumps(a.state_dict()))
    b = make_algorithm(name, space, np.random.default_rng(999), cfg, weights=(1.0, 2.0))
    b.load_state_dict(state)
    while not a.done:
        ca, cb = a.ask(), b.ask()
        assert ca == cb
        e = ev.evaluate(ca)
        a.tell(ca, e.objectives, e.feasible)
        b.tell(cb, e.objectives, e.feasible)
    assert b.done


def test_infeasible_never_selected_over_feasible():
    class Half(GridMetrics):
        names = ("f1", "f2", "area")

        def __call__(self, cands):
            F = super().__call__(cands)
            return np.c_[F, [float(a >= 10) for a, _ in cands]]

    from cosearch.objectives import Constraint
    ev = Evaluator([Half()], ("f1", "f2"), [Constraint("area", 0.5)])
    algo, cands, _ = _run("moea", 3, evaluator=ev, survival="age")
    late = cands[-48:]
    assert np.mean([a < 10 for a, _ in late]) > 0.6  # random search: 10 / 21
    # elitist: with more than a population's worth of feasible points seen, no infeasible
    # member survives
    algo, cands, _ = _run("moea", 3, evaluator=ev)
    assert sum(a < 10 for a, _ in cands) > 24
    assert all(ok and c[0] < 10 for c, _, ok in algo.population)


def test_co_space_search_with_standin(co_space):
    algo, cands, F = _run("moea", 0, budget=96, space=co_space, evaluator=standin_evaluator())
    assert len({c.key for c in cands}) == 96
    assert {c.hw.embeddings for c in cands} == {"host", "nmp"}
    # hardware choice matters to the stand-in latency (nmp and int8 are faster at equal
    # quality): the front holds them far more often than uniform sampling would (1/2, 1/3)
    from cosearch.pareto import pareto_mask
    front = [c for c, m in zip(cands, pareto_mask(F)) if m]
    assert np.mean([c.hw.embeddings == "nmp" for c in front]) > 0.65
    assert np.mean([c.hw.precision.value == "int8" for c in front]) > 0.6


@pytest.mark.parametrize("name", ["moea", "random"])
def test_duplicates_only_when_the_space_is_exhausted(name):
    # a 2 x 2 grid has 4 candidates: a budget of 6 must repeat exactly 2 of them
    algo, cands, _ = _run(name, 0, budget=6, space=GridSpace(2), evaluator=Evaluator([GridMetrics(2)], ("f1", "f2")))
    assert len({tuple(c) for c in cands}) == 4 and algo.duplicates == 2


def test_equivalent_hardware_is_one_key():
    """Overrides that repeat the preset's own value configure the same hardware."""
    import pimsim
    from cosearch.hardware import HardwareKnobs
    ranks = pimsim.load_hardware("recnmp").org.ranks
    same = HardwareKnobs("recnmp", "nmp", "host", ranks=ranks)
    assert same.key == HardwareKnobs("recnmp", "nmp", "host", ranks=0).key
    assert HardwareKnobs("recnmp", "nmp", "host", ranks=ranks // 2).key != same.key
    assert HardwareKnobs("recnmp", "host", "host", host_rows_max=1000).key == HardwareKnobs("recnmp", "host", "host").key


def _gemm(hw):
    return hw.gemm, hw.crossbar_size, hw.adc_bits


def test_crossover_takes_every_gene_from_a_parent():
    space = search_space(DEFAULT, SimpleNamespace(n_sparse=8))  # the default co-search space
    rng = np.random.default_rng(0)
    knob_fields = [f.name for f in fields(type(space.sample(rng).hw))]
    from_a, total, crossbar = 0, 0, 0
    for _ in range(60):
        a, b = space.sample(rng), space.sample(rng)
        c = space.crossover(a, b, rng)
        assert space.decode(json.loads(json.dumps(space.encode(c)))) == c
        for i, blk in enumerate(c.arch.blocks):
            for f in MACRO_FIELDS + MICRO_FIELDS:
                v = getattr(blk, f)
                assert v in (getattr(a.arch.blocks[i], f), getattr(b.arch.blocks[i], f))
                if getattr(a.arch.blocks[i], f) != getattr(b.arch.blocks[i], f):
                    from_a += v == getattr(a.arch.blocks[i], f)
                    total += 1
        ea, eb, ec = a.arch.embedding, b.arch.embedding, c.arch.embedding
        for f in range(ec.n_fields):  # a field's dimension travels with its precision
            assert (ec.dims[f], ec.precisions[f]) in ((ea.dims[f], ea.precisions[f]), (eb.dims[f], eb.precisions[f]))
        for f in knob_fields:
            assert getattr(c.hw, f) in (getattr(a.hw, f), getattr(b.hw, f))
        # the GEMM placement moves with its crossbar settings, and pimsim accepts the mix
        assert _gemm(c.hw) in (_gemm(a.hw), _gemm(b.hw))
        assert space.valid(c.hw)
        crossbar += c.hw.gemm == "crossbar"
    assert 0.35 < from_a / total < 0.65 and crossbar > 0
