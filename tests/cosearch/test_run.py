import json

import os

import numpy as np
import pytest

from cosearch.executor import InProcess, ProcessPool
from cosearch.objectives import Evaluator
from cosearch.run import CHECKPOINT, EXCLUDED_FROM_EQUALITY, RESULTS, read_results, run_search
from cosearch.search import EvolutionConfig, make_algorithm
from tests.cosearch.conftest import ArchStandIn, standin_evaluator

CFG = EvolutionConfig(budget=60, population=12, sample_size=4, children=8)


def _fields(c):
    return {"arch_hash": c.arch.hash[:16], "arch": c.arch.to_json(), "hw": c.hw.label}


def _go(out, space, evaluator=None, seed=0, max_generations=None, name="moea"):
    algo = make_algorithm(name, space, np.random.default_rng(seed), CFG, weights=(1.0, 1.0))
    return run_search(out, algo, evaluator or standin_evaluator(), row_fields=_fields, seed=seed,
                      max_generations=max_generations)


def _table(out):
    return [{k: v for k, v in r.items() if k not in EXCLUDED_FROM_EQUALITY} for r in read_results(out)]


def test_resume_after_interruption_matches_uninterrupted(tmp_path, co_space):
    full = _go(tmp_path / "a", co_space)
    assert full.complete and len(full.keys) == 60
    # stopped after two generations, then resumed to the end
    part = _go(tmp_path / "b", co_space, max_generations=2)
    assert not part.complete
    rest = _go(tmp_path / "b", co_space, seed=12345)  # the checkpoint's RNG state wins over the new seed
    assert rest.keys == full.keys
    assert np.array_equal(rest.objectives, full.objectives)
    assert rest.hv_history == full.hv_history
    assert _table(tmp_path / "a") == _table(tmp_path / "b")


def test_kill_during_evaluation_then_resume(tmp_path, co_space):
    class Dies(ArchStandIn):
        def __init__(self, after):
            self.left = after

        def __call__(self, cands):
            self.left -= 1
            if self.left < 0:
                raise KeyboardInterrupt  # as if the process were killed mid-generation
            return super().__call__(cands)

    full = _go(tmp_path / "a", co_space)
    with pytest.raises(KeyboardInterrupt):
        _go(tmp_path / "b", co_space, evaluator=Evaluator([Dies(3)], ("logloss", "latency_s")))
    ck = json.loads((tmp_path / "b" / CHECKPOINT).read_text())
    assert 0 < ck["rows"] < 60
    # a table written after the checkpoint (killed between the two writes) is truncated on resume
    with open(tmp_path / "b" / RESULTS, "a") as f:
        f.write("99,999,0,junk\n")
    rest = _go(tmp_path / "b", co_space)
    assert rest.keys == full.keys
    assert _table(tmp_path / "a") == _table(tmp_path / "b")


def test_cache_avoids_recomputation(co_space):
    class Counting(ArchStandIn):
        names = ("logloss",)
        calls = 0

        def key(self, c):
            return c.arch.hash

        def __call__(self, cands):
            Counting.calls += len(cands)
            return super().__call__(cands)[:, :1]

    ev = Evaluator([Counting()], ("logloss",))
    rng = np.random.default_rng(0)
    c = co_space.sample(rng)
    variants = [c, co_space.mutate(c, rng, 1), c]
    ev.evaluate(variants)
    distinct_archs = len({v.arch.hash for v in variants})
    assert Counting.calls == distinct_archs
    ev.evaluate(variants)
    assert Counting.calls == distinct_archs


def test_results_do_not_depend_on_worker_count(tmp_path, co_space):
    one = _go(tmp_path / "one", co_space, evaluator=standin_evaluator(InProcess()))
    pool = ProcessPool(2)
    try:
        two = _go(tmp_path / "two", co_space, evaluator=standin_evaluator(pool))
    finally:
        pool.close()
    assert one.keys == two.keys
    assert np.array_equal(one.objectives, two.objectives)
    assert _table(tmp_path / "one") == _table(tmp_path / "two")


@pytest.mark.slow  # starting a local Ray instance takes half a minute on 2 cores
def test_ray_executor_matches_in_process(tmp_path, co_space):
    if not os.environ.get("COSEARCH_REQUIRE_RAY"):  # CI's slow step installs Ray and sets it
        pytest.importorskip("ray")
    from cosearch.executor import RayExecutor
    import ray
    ex = RayExecutor(2)
    try:
        r = _go(tmp_path / "ray", co_space, evaluator=standin_evaluator(ex))
    finally:
        ray.shutdown()
    one = _go(tmp_path / "one", co_space)
    assert r.keys == one.keys and np.array_equal(r.objectives, one.objectives)


def test_checkpoint_from_other_settings_refused(tmp_path, co_space):
    _go(tmp_path / "a", co_space, max_generations=1)
    algo = make_algorithm("moea", co_space, np.random.default_rng(0),
                          EvolutionConfig(budget=61, population=12, sample_size=4, children=8))
    with pytest.raises(ValueError, match="different search settings"):
        run_search(tmp_path / "a", algo, standin_evaluator(), row_fields=_fields)


def test_search_threads_leave_the_cores_of_trainings_beside_it():
    import torch
    from types import SimpleNamespace
    from cosearch.pipeline import _CoreShare
    before = torch.get_num_threads()
    queue = SimpleNamespace(busy_threads=1)
    torch.set_num_threads(3)
    try:
        share = _CoreShare(SimpleNamespace(queue=queue))
        assert torch.get_num_threads() == 2
        seen = []
        hook = share.wrap(seen.append)
        queue.busy_threads = 5  # more than the cores: the search keeps one thread
        hook("gen")
        assert torch.get_num_threads() == 1 and seen == ["gen"]
        queue.busy_threads = 0  # the trainings are done: every thread back
        hook("gen")
        assert torch.get_num_threads() == 3
        queue.busy_threads = 2
        hook("gen")
        share.restore()
        assert torch.get_num_threads() == 3
        _CoreShare(None)  # no trainings: nothing changes
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
