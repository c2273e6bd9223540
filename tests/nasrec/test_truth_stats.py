"""The truth's agreement over three or more seeds (benchmarks/task_truth.py
``seed_agreement``), against hand computation."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks._rank import kendall_tau
from benchmarks.task_truth import seed_agreement
from nasrec.scratch import TruthRecipe

DS = SimpleNamespace(content_hash="f" * 64)


def _frame(x, seeds):
    return pd.DataFrame([{"model": f"arch:{a}", "seed": s, "test_logloss": x[a, k]}
                         for a in range(len(x)) for k, s in enumerate(seeds)])


def _assert_split_agreement(r, x, k, splits):
    """``mean{k}_*`` of ``r`` equal hand computation over ``splits`` (pairs of seed-column lists)."""
    taus = [kendall_tau(x[:, a].mean(1), x[:, b].mean(1)) for a, b in splits]
    noise = [np.std(x[:, a].mean(1) - x[:, b].mean(1), ddof=1) / np.sqrt(2) for a, b in splits]
    assert r[f"mean{k}_kendall_mean"] == pytest.approx(np.mean(taus))
    assert r[f"mean{k}_kendall_min"] == pytest.approx(min(taus)) and r[f"mean{k}_kendall_max"] == pytest.approx(max(taus))
    assert r[f"mean{k}_noise_std"] == pytest.approx(np.mean(noise))
    assert r[f"mean{k}_arch_std"] == pytest.approx(np.std(x.mean(1), ddof=1))
    assert r[f"mean{k}_ratio"] == pytest.approx(r[f"mean{k}_arch_std"] / r[f"mean{k}_noise_std"])


def test_three_seeds_give_the_median_truth_and_every_pair():
    rng = np.random.default_rng(5)
    x = rng.normal(0.515, 0.004, (12, 1)) + rng.normal(0, 0.002, (12, 3))
    x[3, 1] += 0.02  # one poor basin
    r = seed_agreement(_frame(x, (0, 4, 9)), DS, TruthRecipe(), [0, 4, 9])
    pairs = [kendall_tau(x[:, 0], x[:, 1]), kendall_tau(x[:, 0], x[:, 2]), kendall_tau(x[:, 1], x[:, 2])]
    med = np.median(x, axis=1)
    assert r["seeds"] == "0 4 9" and r["archs"] == 12
    assert r["pair_kendall_min"] == pytest.approx(min(pairs)) and r["pair_kendall_mean"] == pytest.approx(np.mean(pairs))
    assert r["median_truth_best"] == pytest.approx(med.min()) and r["median_truth_worst"] == pytest.approx(med.max())
    assert r["archs_range_over_0.005"] == int(((x.max(1) - x.min(1)) > 0.005).sum()) >= 1
    assert r["seed_std_per_arch_max"] == pytest.approx(x[3].std(ddof=1))
    assert np.isnan(r["mean2_kendall_mean"])  # a two-seed truth needs four seeds to be checked


def test_four_seeds_measure_two_seed_truths_against_each_other():
    rng = np.random.default_rng(6)
    x = rng.normal(0.515, 0.004, (10, 1)) + rng.normal(0, 0.002, (10, 4))
    r = seed_agreement(_frame(x, range(4)), DS, TruthRecipe(), [0, 1, 2, 3])
    _assert_split_agreement(r, x, 2, (([0, 1], [2, 3]), ([0, 2], [1, 3]), ([0, 3], [1, 2])))
    # averaging two seeds halves the noise variance: about 0.002 / sqrt 2 here
    assert 0.0008 < r["mean2_noise_std"] < 0.0022
    assert r["mean2_splits"] == 3 and r["mean3_splits"] == 0 and np.isnan(r["mean3_kendall_mean"])


def test_six_seeds_measure_three_seed_truths_over_every_split():
    rng = np.random.default_rng(7)
    x = rng.normal(0.515, 0.004, (14, 1)) + rng.normal(0, 0.002, (14, 6))
    r = seed_agreement(_frame(x, range(6)), DS, TruthRecipe(), list(range(6)))
    # the ten ways to split six seeds into two threes, each once
    splits = [([0, a, b], [c for c in range(1, 6) if c not in (a, b)]) for a in range(1, 6) for b in range(a + 1, 6)]
    assert r["mean3_splits"] == len(splits) == 10
    _assert_split_agreement(r, x, 3, splits)
    # the two-seed check still uses the first four seeds only
    m2 = [kendall_tau(x[:, [0, j]].mean(1), x[:, [k for k in (1, 2, 3) if k != j]].mean(1)) for j in (1, 2, 3)]
    assert r["mean2_kendall_mean"] == pytest.approx(np.mean(m2))
    # averaging three seeds: noise about 0.002 / sqrt 3
    assert 0.0006 < r["mean3_noise_std"] < 0.0018


def test_supernet_quality_keeps_a_variant_judged_against_another_truth():
    from benchmarks.supernet_quality import merge_rows
    old = [{"variant": "short-50", "truth": float("nan"), "data": "d", "score": 1},  # before the column
           {"variant": "short-50", "truth": "mean of seeds 0 1, lr_fan_in 64", "data": "d", "score": 2},
           {"variant": "short-50", "truth": "mean of seeds 0 1", "data": "other", "score": 3},
           {"variant": "params", "truth": "mean of seeds 0 1", "data": "d", "score": 4}]
    new = [{"variant": "short-50", "truth": "mean of seeds 0 1", "data": "d", "score": 5}]
    # only the row judged against the same truth on the same data is measured again
    assert [r["score"] for r in merge_rows(old, new)] == [2, 3, 4, 5]
    again = [{"variant": "short-50", "truth": "mean of seeds 0 1, lr_fan_in 64", "data": "d", "score": 6}]
    assert [r["score"] for r in merge_rows(old, again)] == [1, 3, 4, 6]
