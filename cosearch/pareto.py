"""Pareto tools for minimisation: non-dominated sorting, crowding, normalisation,
hypervolume.

Hypervolume is computed by ``moocore`` (the library pymoo itself calls) on
objectives normalised by a recorded :class:`Normalization`: objective i maps
``lower[i] -> 0`` and ``upper[i] -> 1``; the reference point is ``1 + margin``
in every normalised objective (``REF_MARGIN`` = 0.1 by default), and only points
that strictly dominate it count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["dominates", "non_dominated_sort", "pareto_mask", "crowding_distance", "Normalization",
           "hypervolume", "REF_MARGIN"]

REF_MARGIN = 0.1


def _as_matrix(F) -> np.ndarray:
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise ValueError(f"objectives must be a 2-d array [points, objectives], got shape {F.shape}")
    return F


def dominates(a, b) -> bool:
    """True when ``a`` is no worse than ``b`` in every objective and better in one."""
    a, b = np.asarray(a), np.asarray(b)
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated_sort(F) -> np.ndarray:
    """Pareto rank of every point, ``[n]`` ints: 0 for the non-dominated front, 1 for
    the front once those are removed, and so on. Points with a NaN are ranked last."""
    F = _as_matrix(F)
    n = len(F)
    ranks = np.full(n, -1, dtype=np.int64)
    ok = ~np.isnan(F).any(axis=1)
    idx = np.flatnonzero(ok)
    G = F[idx]
    # dom[i, j]: point i dominates point j
    le = (G[:, None, :] <= G[None, :, :]).all(axis=2)
    lt = (G[:, None, :] < G[None, :, :]).any(axis=2)
    dom = le & lt
    count = dom.sum(axis=0)  # number of points dominating j
    remaining = np.ones(len(idx), dtype=bool)
    for r in range(len(idx) + 1):
        front = remaining & (count == 0)
        if not front.any():
            break
        ranks[idx[front]] = r
        remaining &= ~front
        count = count - dom[front].sum(axis=0)
    ranks[~ok] = r
    return ranks


def pareto_mask(F) -> np.ndarray:
    """``[n]`` bool: the non-dominated points (rank 0)."""
    return non_dominated_sort(F) == 0


def crowding_distance(F) -> np.ndarray:
    """NSGA-II crowding distance of each point within its own set ``F`` (one front):
    infinite for the extremes of any objective, else the sum over objectives of the
    normalised gap between its neighbours."""
    F = _as_matrix(F)
    n, k = F.shape
    d = np.zeros(n)
    if n <= 2:
        d[:] = np.inf
        return d
    for j in range(k):
        order = np.argsort(F[:, j], kind="stable")
        f = F[order, j]
        span = f[-1] - f[0]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0:
            d[order[1:-1]] += (f[2:] - f[:-2]) / span
    return d


@dataclass(frozen=True)
class Normalization:
    """Linear map of each objective: ``(f - lower) / (upper - lower)``."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def __post_init__(self):
        lo = tuple(float(v) for v in self.lower)
        hi = tuple(float(v) for v in self.upper)
        if len(lo) != len(hi) or not lo:
            raise ValueError(f"normalisation: lower {lo} and upper {hi} must have the same non-zero length")
        for a, b in zip(lo, hi):
            if not (np.isfinite(a) and np.isfinite(b) and b > a):
                raise ValueError(f"normalisation: need finite lower < upper, got {a} and {b}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    def __call__(self, F) -> np.ndarray:
        F = _as_matrix(F)
        if F.shape[1] != len(self.lower):
            raise ValueError(f"normalisation has {len(self.lower)} objectives, points have {F.shape[1]}")
        lo, hi = np.array(self.lower), np.array(self.upper)
        return (F - lo) / (hi - lo)

    @classmethod
    def from_points(cls, F) -> "Normalization":
        """Bounds from the finite points of ``F``: column minimum and maximum (a
        column without spread gets upper = lower + max(1e-12, 1e-6 |lower|))."""
        F = _as_matrix(F)
        F = F[np.isfinite(F).all(axis=1)]
        if not len(F):
            raise ValueError("normalisation: no finite points to take bounds from")
        lo, hi = F.min(axis=0), F.max(axis=0)
        hi = np.where(hi > lo, hi, lo + np.maximum(1e-12, 1e-6 * np.abs(lo)))
        return cls(tuple(lo), tuple(hi))

    def to_dict(self) -> dict:
        return {"lower": list(self.lower), "upper": list(self.upper)}


def hypervolume(F, normalization: Normalization | None = None, margin: float = REF_MARGIN) -> float:
    """Hypervolume (minimisation) of the points ``F`` after ``normalization`` (if
    given), against the reference point ``1 + margin`` in every objective. Points
    with NaN/inf or not strictly better than the reference in every objective add
    nothing; an empty set has hypervolume 0."""
    import moocore

    F = _as_matrix(F)
    if normalization is not None:
        F = normalization(F)
    ref = np.full(F.shape[1], 1.0 + margin)
    F = F[np.isfinite(F).all(axis=1)]
    F = F[(F < ref).all(axis=1)]
    if not len(F):
        return 0.0
    return float(moocore.hypervolume(F, ref=ref))
