"""Pareto tools for minimisation: non-dominated sorting, crowding, normalisation,
hypervolume.

Non-dominated sorting and hypervolume are ``moocore``'s (the library pymoo itself
calls; the tests keep slow, obviously correct references). Crowding distance stays
here: moocore has none, and pymoo's is only in an optional extra. Hypervolume is computed on
objectives normalised by a recorded :class:`Normalization`: objective i maps
``lower[i] -> 0`` and ``upper[i] -> 1`` (in log10 for log-scaled ones); the
reference point is ``1 + margin``
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
    the front once those are removed, and so on (``moocore.pareto_rank``); equal
    points share a rank. Points with a NaN rank after all others."""
    import moocore

    F = _as_matrix(F)
    ranks = np.zeros(len(F), dtype=np.int64)
    ok = ~np.isnan(F).any(axis=1)
    if ok.any():
        # each column replaced by its dense rank: the same comparisons, always finite
        # (moocore 0.3.2 crashes on some sets with -inf in three objectives)
        G = np.stack([np.unique(c, return_inverse=True)[1] for c in F[ok].T], axis=1).astype(np.float64)
        ranks[ok] = moocore.pareto_rank(G)
        ranks[~ok] = ranks[ok].max() + 1
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
    """Map of each objective to [0, 1] between ``lower`` and ``upper`` (original
    units): linear, or linear in log10 where ``log`` is true (for costs that span
    orders of magnitude; those need positive bounds and values)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    log: tuple[bool, ...] = ()

    def __post_init__(self):
        lo = tuple(float(v) for v in self.lower)
        hi = tuple(float(v) for v in self.upper)
        lg = tuple(bool(v) for v in self.log) or (False,) * len(lo)
        if len(lo) != len(hi) or len(lg) != len(lo) or not lo:
            raise ValueError(f"normalisation: lower {lo}, upper {hi} and log {lg} must have the same non-zero length")
        for a, b, g in zip(lo, hi, lg):
            if not (np.isfinite(a) and np.isfinite(b) and b > a):
                raise ValueError(f"normalisation: need finite lower < upper, got {a} and {b}")
            if g and a <= 0:
                raise ValueError(f"normalisation: a log-scaled objective needs lower > 0, got {a}")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        object.__setattr__(self, "log", lg)

    def __call__(self, F) -> np.ndarray:
        F = _as_matrix(F)
        if F.shape[1] != len(self.lower):
            raise ValueError(f"normalisation has {len(self.lower)} objectives, points have {F.shape[1]}")
        lg = np.array(self.log)
        lo, hi = np.array(self.lower), np.array(self.upper)
        with np.errstate(divide="ignore", invalid="ignore"):
            G = np.where(lg, np.log10(np.where(lg, np.maximum(F, 1e-300), 1.0)), F)
            lo = np.where(lg, np.log10(np.where(lg, lo, 1.0)), lo)
            hi = np.where(lg, np.log10(np.where(lg, hi, 1.0)), hi)
        return (G - lo) / (hi - lo)

    @classmethod
    def from_points(cls, F, log=(), cap=()) -> "Normalization":
        """Bounds from the finite points of ``F``: column minimum and maximum, the
        maximum lowered to ``cap[i]`` where given (not None) and above the minimum
        (e.g. log loss capped at the constant predictor's); a column without spread
        gets upper = lower + max(1e-12, 1e-6 |lower|)."""
        F = _as_matrix(F)
        F = F[np.isfinite(F).all(axis=1)]
        if not len(F):
            raise ValueError("normalisation: no finite points to take bounds from")
        lo, hi = F.min(axis=0), F.max(axis=0)
        for i, c in enumerate(cap):
            if c is not None and lo[i] < c < hi[i]:
                hi[i] = c
        hi = np.where(hi > lo, hi, lo + np.maximum(1e-12, 1e-6 * np.abs(lo)))
        return cls(tuple(lo), tuple(hi), tuple(log))

    def to_dict(self) -> dict:
        return {"lower": list(self.lower), "upper": list(self.upper), "log": list(self.log)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(tuple(d["lower"]), tuple(d["upper"]), tuple(d.get("log", ())))


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
