import itertools

import numpy as np
import pytest

from cosearch.pareto import (Normalization, crowding_distance, dominates, hypervolume, non_dominated_sort,
                             pareto_mask)


def brute_ranks(F):
    n = len(F)
    ranks = np.full(n, -1)
    left = set(range(n))
    r = 0
    while left:
        front = {i for i in left if not any(dominates(F[j], F[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = r
        left -= front
        r += 1
    return ranks


def brute_hv(F, ref):
    """Exact union volume by coordinate compression: a grid cell counts when a point dominates it."""
    F = F[(F < ref).all(axis=1)]
    if not len(F):
        return 0.0
    grids = [np.unique(np.r_[F[:, j], ref[j]]) for j in range(F.shape[1])]
    vol = 0.0
    for cell in itertools.product(*[range(len(g) - 1) for g in grids]):
        lo = np.array([g[c] for g, c in zip(grids, cell)])
        hi = np.array([g[c + 1] for g, c in zip(grids, cell)])
        if (F <= lo).all(axis=1).any():
            vol += float(np.prod(hi - lo))
    return vol


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [2, 3, 4])
def test_sort_matches_brute_force(seed, k):
    rng = np.random.default_rng([seed, k])
    # integer points: many ties and duplicates
    F = rng.integers(0, 5, size=(40, k)).astype(float)
    assert np.array_equal(non_dominated_sort(F), brute_ranks(F))
    G = rng.random((60, k))
    assert np.array_equal(non_dominated_sort(G), brute_ranks(G))
    assert np.array_equal(pareto_mask(G), brute_ranks(G) == 0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 5])
def test_sort_with_infinities_matches_brute_force(seed, k):
    # moocore 0.3.2 crashes on some 3-objective sets holding -inf; the sort must not
    rng = np.random.default_rng([seed, k, 99])
    F = rng.integers(0, 4, size=(30, k)).astype(float)
    F[rng.random(F.shape) < 0.1] = np.inf
    F[rng.random(F.shape) < 0.1] = -np.inf
    assert np.array_equal(non_dominated_sort(F), brute_ranks(F))
    assert non_dominated_sort(np.zeros((0, k))).shape == (0,)


def test_nan_points_rank_last():
    F = np.array([[1.0, 2.0], [np.nan, 0.0], [2.0, 1.0], [3.0, 3.0]])
    r = non_dominated_sort(F)
    assert list(r) == [0, 2, 0, 1]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 3])
def test_hypervolume_matches_brute_force(seed, k):
    rng = np.random.default_rng([seed, 10 + k])
    F = rng.random((12, k)) * 1.2  # some points beyond the reference
    norm = Normalization((0.0,) * k, (1.0,) * k)
    assert hypervolume(F, norm) == pytest.approx(brute_hv(F, np.full(k, 1.1)), rel=1e-12)


def test_hypervolume_normalisation_and_empty():
    norm = Normalization((1.0, 10.0), (3.0, 30.0))
    F = np.array([[2.0, 20.0]])  # -> (0.5, 0.5)
    assert hypervolume(F, norm) == pytest.approx(0.6 * 0.6)
    assert hypervolume(np.array([[5.0, 50.0]]), norm) == 0.0
    assert hypervolume(np.zeros((0, 2)), norm) == 0.0


def test_crowding_extremes_infinite():
    F = np.array([[0.0, 3.0], [1.0, 2.0], [2.0, 1.0], [3.0, 0.0]])
    d = crowding_distance(F)
    assert np.isinf(d[[0, 3]]).all()
    assert d[1] == pytest.approx(2 / 3 + 2 / 3)


def test_normalization_validates():
    with pytest.raises(ValueError, match="lower < upper"):
        Normalization((1.0,), (1.0,))
    n = Normalization.from_points(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert n.lower == (1.0, 5.0) and n.upper[0] == 3.0 and n.upper[1] > 5.0


def test_log_normalisation_and_cap():
    n = Normalization((1e-4, 0.4), (1e-2, 0.6), (True, False))
    assert np.allclose(n(np.array([[1e-3, 0.5], [1e-4, 0.4], [1e-2, 0.6]])), [[0.5, 0.5], [0, 0], [1, 1]])
    m = Normalization.from_points(np.array([[1e-3, 0.45], [1e-1, 7.0]]), log=(True, False), cap=(None, 0.56))
    assert m.upper == (1e-1, 0.56) and m.log == (True, False)
    assert Normalization.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="lower > 0"):
        Normalization((0.0,), (1.0,), (True,))


def test_spread_pool_covers_the_cost_range():
    """``spread_pool``: each of the equal log-cost bins gives its lowest-score
    architectures, an architecture counts once (its best row), and slots that a sparse
    bin leaves go to the lowest scores of the rest."""
    from cosearch.pipeline import spread_pool
    rng = np.random.default_rng(4)
    rows = []
    for i in range(40):  # dense at the cheap end, sparse at the dear end
        lat = 10 ** (-5 + 3 * rng.random() ** 5)
        for hw in range(2):  # the same architecture on two hardware points
            rows.append({"arch_hash": f"a{i}", "logloss": str(0.5 + rng.random() * 0.1 + 0.001 * hw),
                         "latency_s": str(lat * (1 + hw))})
    objectives = ("logloss", "latency_s")
    got = spread_pool(rows, objectives, 16, bins=4)
    assert len(got) == 16 and len({r["arch_hash"] for r in got}) == 16
    best = {}
    for r in rows:
        if r["arch_hash"] not in best or float(r["logloss"]) < float(best[r["arch_hash"]]["logloss"]):
            best[r["arch_hash"]] = r
    assert all(r is best[r["arch_hash"]] for r in got)
    x = {h: np.log10(float(r["latency_s"])) for h, r in best.items()}
    edges = np.linspace(min(x.values()), max(x.values()), 5)
    bin_of = {h: min(3, int(np.searchsorted(edges, v, side="right") - 1)) for h, v in x.items()}
    chosen = {r["arch_hash"] for r in got}
    for b in range(4):
        members = sorted((h for h in best if bin_of[h] == b), key=lambda h: float(best[h]["logloss"]))
        assert members[:4] == [h for h in members if h in chosen][:4] or len(members) < 4
        assert set(members[:4]) <= chosen
    # a sparse bin's free slots went to the lowest scores left over
    left = sorted((h for h in best if h not in chosen), key=lambda h: float(best[h]["logloss"]))
    taken_extra = chosen - {h for b in range(4) for h in sorted((h for h in best if bin_of[h] == b),
                                                                  key=lambda h: float(best[h]["logloss"]))[:4]}
    n_top = sum(min(4, sum(v == b for v in bin_of.values())) for b in range(4))
    assert n_top < 16 and len(taken_extra) == 16 - n_top  # the data has a sparse bin
    if taken_extra:
        assert max(float(best[h]["logloss"]) for h in taken_extra) <= float(best[left[0]]["logloss"])
    # without a cost objective: the lowest scores
    assert [r["arch_hash"] for r in spread_pool(rows, ("logloss",), 3)] == \
        sorted(best, key=lambda h: float(best[h]["logloss"]))[:3]
