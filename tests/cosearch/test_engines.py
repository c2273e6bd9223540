"""Library engines (cosearch.engines): pymoo's NSGA-II and SMS-EMOA behind ask/tell."""
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

if not os.environ.get("CI"):  # CI installs the moea extra: there a missing pymoo fails
    pytest.importorskip("pymoo")

from cosearch.config import DEFAULT, SearchConfig
from cosearch.objectives import Constraint, Evaluator
from cosearch.pareto import Normalization, hypervolume
from cosearch.pipeline import search_space
from cosearch.run import CHECKPOINT, EXCLUDED_FROM_EQUALITY, read_results, run_search
from cosearch.search import ENGINE_NAMES, EvolutionConfig, make_algorithm
from tests.cosearch.conftest import ArchStandIn, GridMetrics, GridSpace, drive, standin_evaluator

N = 21
SMALL_RUN = EvolutionConfig(budget=60, population=12, sample_size=4, children=8)


class HalfFeasible(GridMetrics):
    """The grid, with every candidate of a >= 10 infeasible (area 1 > limit 0.5)."""

    names = ("f1", "f2", "area")

    def __call__(self, cands):
        return np.c_[super().__call__(cands), [float(a >= 10) for a, _ in cands]]


def _grid_evaluator():
    return Evaluator([HalfFeasible(N)], ("f1", "f2"), [Constraint("area", 0.5)])


def _grid_hv(cands):
    F = np.array([[a, (N - 1 - a) + 2 * b] for a, b in cands], dtype=float)
    return hypervolume(F, Normalization((0.0, 0.0), (N - 1.0, 3 * (N - 1.0))))


def _default_space():
    """The default co-search space (NASRec-Full, per-field embeddings of 8 fields, the
    default hardware knobs with pimsim's validity check)."""
    return search_space(DEFAULT, SimpleNamespace(n_sparse=8))


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_engine_finds_the_grid_front_and_beats_random(name):
    cfg = EvolutionConfig(budget=120, population=24, sample_size=6, children=12)
    ev = Evaluator([GridMetrics(N)], ("f1", "f2"))
    algo = make_algorithm(name, GridSpace(N), np.random.default_rng(0), cfg)
    cands = drive(algo, ev)
    assert len(cands) == len(set(cands)) == 120 and algo.ask() == []
    assert sum(b == 0 for _, b in cands) >= 0.8 * N  # the front: the N points with b == 0
    for seed in (1, 2):
        engine = drive(make_algorithm(name, GridSpace(N), np.random.default_rng(seed), cfg), ev)
        rand = drive(make_algorithm("random", GridSpace(N), np.random.default_rng(seed), cfg), ev)
        assert _grid_hv(engine) > _grid_hv(rand)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_randomness_only_from_the_run_seed(name, monkeypatch):
    real = np.random.default_rng

    def seeded_only(seed=None):
        if seed is None:  # pymoo makes one where a caller forgets its random_state
            raise AssertionError("an unseeded generator was made")
        return real(seed)
    monkeypatch.setattr(np.random, "default_rng", seeded_only)

    def run(seed, global_seed):
        np.random.seed(global_seed)
        before = np.random.get_state()[1].copy()
        algo = make_algorithm(name, GridSpace(N), real(seed), SMALL_RUN)
        cands = drive(algo, _grid_evaluator())
        assert np.array_equal(np.random.get_state()[1], before)  # global state untouched
        return cands

    a = run(3, global_seed=1)
    assert any(x >= 10 for x, _ in a)  # infeasible candidates took part (the CV branches)
    assert run(3, global_seed=2) == a
    assert run(4, global_seed=1) != a


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_state_round_trip_at_every_generation(name):
    ev = _grid_evaluator()
    ref = drive(make_algorithm(name, GridSpace(N), np.random.default_rng(7), SMALL_RUN), ev)
    n_gen = 1 + (SMALL_RUN.budget - SMALL_RUN.population) // SMALL_RUN.children
    for stop in range(n_gen):
        for pending in (False, True) if stop in (0, 2) else (False,):  # pending: asked, not told
            a = make_algorithm(name, GridSpace(N), np.random.default_rng(7), SMALL_RUN)
            done = drive(a, ev, stop)
            if pending:
                asked = a.ask()
            state = json.loads(json.dumps(a.state_dict()))
            b = make_algorithm(name, GridSpace(N), np.random.default_rng(999), SMALL_RUN)
            b.load_state_dict(state)
            if pending:
                assert b.pending == asked
                e = ev.evaluate(asked)
                b.tell(asked, e.objectives, e.feasible)
                done += asked
            assert done + drive(b, ev) == ref, (stop, pending)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_real_candidates_survive_the_state_exactly(name):
    space = _default_space()
    a = make_algorithm(name, space, np.random.default_rng(0), SMALL_RUN)
    drive(a, standin_evaluator(), 2)
    b = make_algorithm(name, space, np.random.default_rng(1), SMALL_RUN)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    pop_a = [ind.X[0].c for ind in a.algorithm.pop]
    pop_b = [ind.X[0].c for ind in b.algorithm.pop]
    assert pop_a == pop_b and len(pop_a) == SMALL_RUN.population
    assert np.array_equal(a.algorithm.pop.get("F"), b.algorithm.pop.get("F"))
    # and the space's own encoding, which the pending ask and the results use
    for c in pop_a:
        d = json.loads(json.dumps(space.encode(c)))
        assert space.decode(d) == c and space.key(space.decode(d)) == space.key(c)


def _fields(c):
    return {"arch_hash": c.arch.hash[:16], "arch": c.arch.to_json(), "hw": c.hw.label}


def _table(out):
    return [{k: v for k, v in r.items() if k not in EXCLUDED_FROM_EQUALITY} for r in read_results(out)]


def _search(out, name, space, evaluator=None, seed=0, max_generations=None):
    algo = make_algorithm(name, space, np.random.default_rng(seed), SMALL_RUN, log=(False, True))
    return run_search(out, algo, evaluator or standin_evaluator(), row_fields=_fields, seed=seed,
                      max_generations=max_generations)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_stopped_at_any_generation_then_resumed_equals_uninterrupted(tmp_path, name):
    """T2 in-process, on real candidates: runs stopped after the first, a middle and the
    last but one generation (every generation: the grid test above), and one killed
    during an evaluation, resume to the uninterrupted run's results table."""
    space = _default_space()
    full = _search(tmp_path / "full", name, space)
    assert full.complete and len(set(full.keys)) == SMALL_RUN.budget
    n_gen = len(full.hv_history)
    for stop in sorted({1, n_gen // 2, n_gen - 1}):
        out = tmp_path / f"stop{stop}"
        assert not _search(out, name, space, max_generations=stop).complete
        rest = _search(out, name, space, seed=12345)  # the checkpoint's state wins over the new seed
        assert rest.keys == full.keys and rest.hv_history == full.hv_history
        assert _table(out) == _table(tmp_path / "full")

    class Dies(ArchStandIn):
        left = 3

        def __call__(self, cands):
            Dies.left -= 1
            if Dies.left < 0:
                raise KeyboardInterrupt  # as if the process were killed mid-generation
            return super().__call__(cands)
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path / "killed", name, space, evaluator=Evaluator([Dies()], ("logloss", "latency_s")))
    assert _search(tmp_path / "killed", name, space).keys == full.keys
    assert _table(tmp_path / "killed") == _table(tmp_path / "full")


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_state_from_another_library_version_refused(name):
    a = make_algorithm(name, GridSpace(N), np.random.default_rng(0), SMALL_RUN)
    drive(a, _grid_evaluator(), 1)
    state = a.state_dict()
    assert state["engine"]["library"] == "pymoo"
    assert state["engine"]["version"] == importlib.metadata.version("pymoo")
    state["engine"]["version"] = "0.0.1"
    b = make_algorithm(name, GridSpace(N), np.random.default_rng(0), SMALL_RUN)
    with pytest.raises(ValueError, match=r"written with pymoo 0\.0\.1.*pip install pymoo==0\.0\.1"):
        b.load_state_dict(state)


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_cli_refuses_a_resume_across_library_versions(tmp_path, capsys):
    from cosearch.cli import main
    from cosearch.pipeline import RUN_FILE
    from cosearch.run import CHECKPOINT
    cfg = replace(DEFAULT, search=replace(DEFAULT.search, algorithm="nsga2"))
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_FILE).write_text(json.dumps({"version": 1, "config": cfg.to_dict(), "cache_dir": str(tmp_path),
                                            "engine": {"library": "pymoo", "version": "0.0.1"}}))
    (run / CHECKPOINT).write_text("{}")
    assert main(["resume", str(run), "--quiet"]) == 2
    assert "run with pymoo 0.0.1" in _err(capsys)


def test_missing_library_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from cosearch.cli import main
    real = importlib.metadata.version

    def without_pymoo(dist):
        if dist == "pymoo":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)
    monkeypatch.setattr(importlib.metadata, "version", without_pymoo)
    with pytest.raises(ValueError, match=r"'smsemoa' needs pymoo.*pip install"):
        make_algorithm("smsemoa", GridSpace(N), np.random.default_rng(0), SMALL_RUN)
    cfgp = tmp_path / "c.toml"
    cfgp.write_text('[search]\nalgorithm = "nsga2"\n')
    assert main(["run", "--config", str(cfgp), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    line = _err(capsys)
    assert "'nsga2' needs pymoo" in line and "pip install" in line
    assert not (tmp_path / "o").exists()  # refused before any work


def test_engines_have_their_own_survival():
    with pytest.raises(ValueError, match="survival 'age'.*'nsga2'"):
        SearchConfig(algorithm="nsga2", survival="age")
    with pytest.raises(ValueError, match="survival 'age'"):
        make_algorithm("smsemoa", GridSpace(N), np.random.default_rng(0), EvolutionConfig(survival="age"))


class _Sleepy(ArchStandIn):
    """The stand-in, slow enough to be killed mid-run (sleeping changes no value)."""

    def __call__(self, cands):
        time.sleep(0.05 * len(cands))
        return super().__call__(cands)


def sleepy_search(out, name):
    """The run that the SIGKILL test starts in a subprocess."""
    _search(Path(out), name, _default_space(), evaluator=Evaluator([_Sleepy()], ("logloss", "latency_s")))


@pytest.mark.slow  # two interpreters importing torch, numba and pymoo
@pytest.mark.parametrize("name, delay_s", [("nsga2", 0.0), ("smsemoa", 0.8)])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, name, delay_s):
    """T2 with a real kill: SIGKILL the search process after its first checkpoint (and a
    delay, to land elsewhere in the run), resume in this process, compare."""
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from tests.cosearch.test_engines import "
                             "sleepy_search; sleepy_search(sys.argv[1], sys.argv[2])", str(killed), name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 300
        while not (killed / CHECKPOINT).is_file():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(delay_s)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert len(read_results(killed)) < SMALL_RUN.budget
    space = _default_space()
    assert _search(killed, name, space).complete
    _search(tmp_path / "ref", name, space)
    assert _table(killed) == _table(tmp_path / "ref")
