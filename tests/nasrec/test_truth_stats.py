"""The resampling estimate of how well a from-scratch truth repeats
(benchmarks/_rank.py ``truth_repeatability``), checked against direct simulation of a
known noise model."""
import numpy as np
import pytest

from benchmarks._rank import kendall_tau, truth_repeatability


def _direct(centre, draw, r, how, rng, n_sim=400):
    """Mean Kendall of two independent ``r``-seed truths drawn from the true model."""
    agg = np.median if how == "median" else np.mean
    taus = [kendall_tau(centre + agg(draw(rng, (len(centre), r)), axis=1),
                        centre + agg(draw(rng, (len(centre), r)), axis=1)) for _ in range(n_sim)]
    return float(np.mean(taus))


def _poor_basins(rng, shape):
    """Gaussian noise plus a rare poor basin: 1 training in 20 loses 0.02."""
    return rng.normal(0, 0.001, shape) + 0.02 * (rng.random(shape) < 0.05)


def _estimate_and_truth(draw, sample_seed, n_sim=200):
    rng = np.random.default_rng(sample_seed)
    centre = rng.normal(0.515, 0.004, 40)
    x = centre[:, None] + draw(rng, (40, 3))
    est = {(r["seeds_per_truth"], r["how"]): r
           for r in truth_repeatability(x, np.random.default_rng(100 + sample_seed), n_sim=n_sim)}
    truth = {key: _direct(centre, draw, *key, np.random.default_rng(200 + sample_seed), n_sim) for key in est}
    return est, truth


@pytest.mark.parametrize("draw", [lambda rng, shape: rng.normal(0, 0.002, shape), _poor_basins],
                         ids=["gaussian", "poor-basins"])
def test_the_estimate_from_three_seeds_matches_the_true_models_repeatability(draw):
    samples = [_estimate_and_truth(draw, s) for s in range(4)]
    for key in samples[0][0]:
        est = np.array([e[key]["kendall_mean"] for e, _ in samples])
        truth = np.array([t[key] for _, t in samples])
        # one sample of 40 x 3 trainings holds only a few poor basins, so single
        # estimates vary with how many it caught; on average they must be right
        assert abs(est.mean() - truth.mean()) < 0.1, (key, est, truth)
        for e, _ in samples:
            assert e[key]["kendall_lo"] <= e[key]["kendall_mean"] <= e[key]["kendall_hi"]


def test_more_seeds_repeat_better_and_the_median_resists_poor_basins():
    est, _ = _estimate_and_truth(lambda rng, shape: rng.normal(0, 0.002, shape), 0)
    assert est[(1, "mean")]["kendall_mean"] < est[(2, "mean")]["kendall_mean"] < est[(3, "mean")]["kendall_mean"]
    assert est[(3, "mean")]["noise_std"] < est[(1, "mean")]["noise_std"]
    for s in range(3):
        est, _ = _estimate_and_truth(_poor_basins, s)
        assert est[(3, "median")]["kendall_mean"] > est[(3, "mean")]["kendall_mean"] + 0.05
        assert est[(3, "median")]["noise_std"] < est[(3, "mean")]["noise_std"]


def test_one_seed_gives_a_clear_error():
    with pytest.raises(ValueError, match="got 1"):
        truth_repeatability(np.zeros((5, 1)), np.random.default_rng(0))


def test_seed_agreement_reports_the_median_truth_and_every_pair_of_seeds():
    from types import SimpleNamespace

    import pandas as pd

    from benchmarks.task_truth import seed_agreement
    from nasrec.scratch import TruthRecipe

    rng = np.random.default_rng(5)
    x = rng.normal(0.515, 0.004, (12, 1)) + rng.normal(0, 0.002, (12, 3))
    x[3, 1] += 0.02  # one poor basin
    df = pd.DataFrame([{"model": f"arch:{a}", "seed": s, "test_logloss": x[a, k]}
                       for a in range(12) for k, s in enumerate((0, 4, 9))])
    rows = seed_agreement(df, SimpleNamespace(content_hash="f" * 64), TruthRecipe(), [0, 4, 9],
                          np.random.default_rng(0))
    assert [(r["seeds_per_truth"], r["how"]) for r in rows] == [(1, "mean"), (2, "mean"), (3, "mean"), (3, "median")]
    pairs = [kendall_tau(x[:, 0], x[:, 1]), kendall_tau(x[:, 0], x[:, 2]), kendall_tau(x[:, 1], x[:, 2])]
    med = np.median(x, axis=1)
    r = rows[0]
    assert r["seeds"] == "0 4 9" and r["archs"] == 12
    assert r["pair_kendall_min"] == pytest.approx(min(pairs)) and r["pair_kendall_mean"] == pytest.approx(np.mean(pairs))
    assert r["median_truth_best"] == pytest.approx(med.min()) and r["median_truth_worst"] == pytest.approx(med.max())
    assert r["archs_range_over_0.005"] == int(((x.max(1) - x.min(1)) > 0.005).sum()) >= 1


def test_four_seeds_measure_two_seed_means_against_each_other_directly():
    from types import SimpleNamespace

    import pandas as pd

    from benchmarks.task_truth import seed_agreement
    from nasrec.scratch import TruthRecipe

    rng = np.random.default_rng(6)
    x = rng.normal(0.515, 0.004, (10, 1)) + rng.normal(0, 0.002, (10, 4))
    df = pd.DataFrame([{"model": f"arch:{a}", "seed": s, "test_logloss": x[a, s]} for a in range(10) for s in range(4)])
    ds = SimpleNamespace(content_hash="e" * 64)
    r = seed_agreement(df, ds, TruthRecipe(), [0, 1, 2, 3], np.random.default_rng(0))[0]
    direct = [kendall_tau(x[:, a].mean(1), x[:, b].mean(1)) for a, b in
              (([0, 1], [2, 3]), ([0, 2], [1, 3]), ([0, 3], [1, 2]))]
    assert r["direct_mean2_kendall_mean"] == pytest.approx(np.mean(direct))
    assert r["direct_mean2_kendall_min"] == pytest.approx(min(direct))
    three = seed_agreement(df[df.seed < 3], ds, TruthRecipe(), [0, 1, 2], np.random.default_rng(0))[0]
    assert np.isnan(three["direct_mean2_kendall_mean"])
