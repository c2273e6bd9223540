"""The race benchmark's statistics (benchmarks/cosearch_synthetic.py): the bootstrap
interval of a mean over seeds, and the evaluations a curve needs to reach a target."""
import numpy as np
import pytest

from benchmarks.cosearch_synthetic import _save, evals_to_reach, mean_ci


def test_the_bootstrap_interval_holds_the_mean_and_shrinks_with_the_spread():
    rng = np.random.default_rng(0)
    wide = mean_ci([0.1, 0.5, 0.3, 0.9, 0.2], rng)
    narrow = mean_ci([0.40, 0.41, 0.39, 0.40, 0.40], rng)
    assert wide[0] < np.mean([0.1, 0.5, 0.3, 0.9, 0.2]) < wide[1]
    assert narrow[1] - narrow[0] < 0.1 * (wide[1] - wide[0])
    # the interval of a mean lies within the values' range; a constant gives a point
    assert 0.1 <= wide[0] and wide[1] <= 0.9
    assert mean_ci([0.3] * 5, rng) == pytest.approx((0.3, 0.3))
    # the same generator state gives the same interval
    assert mean_ci([1.0, 2.0, 4.0], np.random.default_rng(7)) == mean_ci([1.0, 2.0, 4.0], np.random.default_rng(7))


def test_evaluations_to_reach_a_target():
    curve = [(8, 0.1), (16, 0.3), (24, 0.3), (32, 0.5)]
    assert evals_to_reach(curve, 0.3) == 16
    assert evals_to_reach(curve, 0.05) == 8
    assert evals_to_reach(curve, 0.5) == 32
    assert evals_to_reach(curve, 0.51) is None


def test_a_saved_run_is_whole_or_absent(tmp_path):
    path = tmp_path / "race" / "moea-seed0.pkl"
    _save({"F": np.ones((2, 3)), "seconds": 1.5}, path)
    import pickle
    with open(path, "rb") as f:
        back = pickle.load(f)
    assert back["seconds"] == 1.5 and back["F"].shape == (2, 3)
    assert [p.name for p in path.parent.iterdir()] == ["moea-seed0.pkl"]  # no temporary file left
