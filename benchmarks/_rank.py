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
