"""Rank agreement between a scorer and the truth: Kendall tau-b with a bootstrap
interval, Spearman rho, top-k overlap. Lower scores are better on both sides."""
from __future__ import annotations

import numpy as np


def kendall_tau(a, b) -> float:
    """Kendall tau-b of two equal-length sequences (O(n^2), fine for tens of items)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    i, j = np.triu_indices(len(a), 1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n_a, n_b = np.count_nonzero(da), np.count_nonzero(db)
    if n_a == 0 or n_b == 0:
        return float("nan")
    return float((da * db).sum() / np.sqrt(n_a * n_b))


def _ranks(x: np.ndarray) -> np.ndarray:
    """0-based ranks, ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=float)
    _, group, counts = np.unique(x, return_inverse=True, return_counts=True)
    return np.bincount(group, weights=r)[group] / counts[group]


def spearman(a, b) -> float:
    """Spearman rho: Pearson correlation of the (tie-averaged) ranks."""
    ra, rb = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def top_k_overlap(score, truth, k: int = 10) -> int:
    """How many of the truly best ``k`` the scorer also puts in its best ``k``."""
    score, truth = np.asarray(score, dtype=float), np.asarray(truth, dtype=float)
    k = min(k, len(truth))
    return len(set(np.argsort(score, kind="mergesort")[:k]) & set(np.argsort(truth, kind="mergesort")[:k]))


def kendall_ci(a, b, rng: np.random.Generator, n_boot: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of Kendall tau over resampled items."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    taus = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        t = kendall_tau(a[idx], b[idx])
        if not np.isnan(t):
            taus.append(t)
    if not taus:
        return float("nan"), float("nan")
    lo, hi = np.quantile(taus, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def agreement(score, truth, rng: np.random.Generator, k: int = 10) -> dict:
    """All of the above in one dict (``kendall_tau``, ``kendall_lo``, ``kendall_hi``,
    ``spearman``, ``top{k}_overlap``, ``n``)."""
    lo, hi = kendall_ci(score, truth, rng)
    return {"kendall_tau": kendall_tau(score, truth), "kendall_lo": lo, "kendall_hi": hi,
            "spearman": spearman(score, truth), f"top{k}_overlap": top_k_overlap(score, truth, k),
            "n": len(np.asarray(truth))}


def arch_features(spec, params: int) -> dict:
    """Hand-made description of an architecture for a learned ranker: operator counts
    over the live blocks, interaction flags, widths, raw-input reads, depth and
    log parameter count (``params`` of the standalone model)."""
    s = spec.canonical()
    live = s.live_blocks()
    blocks = [b for b, on in zip(s.blocks, live) if on]
    depth = [0] * len(s.blocks)
    for i, b in enumerate(s.blocks):
        reads = set(b.dense_idx) | set(b.sparse_idx)
        depth[i] = 1 + max((depth[j - 1] for j in reads if j >= 1), default=0)
    space = s.search_space
    f = {"n_live": len(blocks), "depth": depth[-1], "log2_params": float(np.log2(params)),
         "log2_width": float(np.log2(sum(b.dense_width for b in blocks))),
         "tokens": sum(b.sparse_tokens for b in blocks),
         "last_log2_width": float(np.log2(s.blocks[-1].dense_width)),
         "interact": sum(b.dense_sparse_interact for b in blocks), "deep_fm": sum(b.deep_fm for b in blocks),
         "raw_sparse": sum(0 in b.sparse_idx for b in blocks), "raw_dense": sum(0 in b.dense_idx for b in blocks)}
    for op in space.dense_ops + space.sparse_ops:
        f[f"op_{op}"] = sum(op in (b.dense_op, b.sparse_op) for b in blocks)
    return f


def rank_with_params(score, params) -> np.ndarray:
    """Label-free blend ``[n]``: the mean of the score's rank and the parameter count's
    rank (lower first in both), so a smaller model wins a tie of scores."""
    return (_ranks(np.asarray(score, dtype=float)) + _ranks(np.log2(np.asarray(params, dtype=float)))) / 2


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float):
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    beta = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return lambda q: ((q - mu) / sd) @ beta + y.mean()


RIDGE_ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def loo_ridge(x, y, alphas=RIDGE_ALPHAS) -> np.ndarray:
    """Leave-one-out predictions ``[n]`` of a ridge regression on standardised ``x``
    ``[n, f]``: each item is predicted by a fit that never saw it, with the penalty
    chosen by an inner leave-one-out over the remaining items only."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(y)
    out = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        xi, yi = x[keep], y[keep]
        err = []
        for a in alphas:
            e = 0.0
            for j in range(len(yi)):
                inner = np.arange(len(yi)) != j
                e += (_ridge(xi[inner], yi[inner], a)(xi[j:j + 1])[0] - yi[j]) ** 2
            err.append(e)
        out[i] = _ridge(xi, yi, alphas[int(np.argmin(err))])(x[i:i + 1])[0]
    return out
