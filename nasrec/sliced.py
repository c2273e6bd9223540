"""Sliced supernet updates: gradients and Adagrad steps on the used weight slices only.

A sampled subnet reads prefixes/column ranges of the supernet's maximum-size
weights. Through plain autograd, every used parameter gets a full-size gradient
that is zero outside the slice, and gradient clipping and Adagrad then sweep the
whole supernet (tens of millions of numbers) at every step. Inside
``recording(rec)`` the elastic layers instead read each slice as a detached leaf
view of the parameter; after ``backward`` the leaves hold exactly the non-zero
part of the full gradient, and ``SlicedAdagrad.step_recorded`` clips and applies
Adagrad on those slices in place. With zero gradient elsewhere, torch's Adagrad
leaves the rest of a parameter and of its accumulator unchanged, so this is the
same update, computed on the part that changes.
"""
from __future__ import annotations

import contextlib

import torch

_ACTIVE: list["SliceRecorder"] = []


class SliceRecorder:
    """Collects ``(parameter, index, leaf)`` for every slice read in one forward pass."""

    def __init__(self):
        self.records: list[tuple[torch.nn.Parameter, tuple, torch.Tensor]] = []

    def take(self, param: torch.nn.Parameter, index: tuple) -> torch.Tensor:
        leaf = param.detach()[index].requires_grad_(param.requires_grad)
        self.records.append((param, index, leaf))
        return leaf


@contextlib.contextmanager
def recording(rec: SliceRecorder):
    """Elastic layers read parameter slices through ``rec`` inside this block."""
    _ACTIVE.append(rec)
    try:
        yield rec
    finally:
        _ACTIVE.pop()


def take(param: torch.nn.Parameter, index: tuple) -> torch.Tensor:
    """``param[index]``: an autograd view normally, a recorded leaf inside ``recording``."""
    if _ACTIVE:
        return _ACTIVE[-1].take(param, index)
    return param[index]


def _extents(shape, index):
    """Per-dimension (start, stop) of a tuple of step-1 slices into ``shape``, or None
    for any other index."""
    if not all(isinstance(i, slice) and i.step in (None, 1) for i in index):
        return None
    return [i.indices(n)[:2] for i, n in zip(index, shape)] + [(0, n) for n in shape[len(index):]]


def _disjoint(boxes) -> bool:
    """Whether extents (from ``_extents``; None = unknown) share no element."""
    if any(b is None for b in boxes):
        return False
    return all(any(a1 <= b0 or b1 <= a0 for (a0, a1), (b0, b1) in zip(p, q))
               for k, p in enumerate(boxes) for q in boxes[:k])


def _sum_over_box(shape, recs, boxes) -> tuple[tuple, torch.Tensor]:
    """``(box, g)``: the gradients ``recs`` (param, index, grad) summed over the
    smallest box of slices holding every index (all of ``shape`` if an index is not
    made of step-1 slices); ``g`` has the box's shape."""
    if any(b is None for b in boxes):
        g = recs[0][2].new_zeros(shape)
        for _, index, grad in recs:
            g[index] += grad
        return (slice(None),) * len(shape), g
    lo = [min(b[d][0] for b in boxes) for d in range(len(shape))]
    hi = [max(b[d][1] for b in boxes) for d in range(len(shape))]
    g = recs[0][2].new_zeros([h - l for l, h in zip(lo, hi)])
    for (_, _, grad), b in zip(recs, boxes):
        g[tuple(slice(a - l, e - l) for (a, e), l in zip(b, lo))] += grad
    return tuple(slice(l, h) for l, h in zip(lo, hi)), g


class SlicedAdagrad(torch.optim.Adagrad):
    """``torch.optim.Adagrad`` (same state and checkpoints) that can also step on
    recorded slices (``step_recorded``); ``step`` is the ordinary full update."""

    @torch.no_grad()
    def step_recorded(self, rec: SliceRecorder, max_norm: float | None = None) -> torch.Tensor:
        """Clip the gradient (recorded slices plus ordinary ``.grad``) to ``max_norm``
        like ``clip_grad_norm_`` and apply one Adagrad step. Returns the total norm
        (a tensor, so that no device synchronisation is forced)."""
        self._opt_called = True  # what the LR scheduler's wrapper of ``step`` records
        by_param: dict[int, list] = {}
        for p, index, leaf in rec.records:
            if leaf.grad is not None:
                by_param.setdefault(id(p), []).append((p, index, leaf.grad))
        sliced: list[tuple[torch.nn.Parameter, tuple, torch.Tensor]] = []
        for recs in by_param.values():
            if len(recs) == 1:
                sliced.append(recs[0])
                continue
            p = recs[0][0]
            boxes = [_extents(p.shape, index) for _, index, _ in recs]
            if _disjoint(boxes):  # Adagrad is element-wise: disjoint slices update independently
                sliced.extend(recs)
            else:  # overlapping reads: one summed gradient over their bounding box
                sliced.append((p, *_sum_over_box(p.shape, recs, boxes)))
        recorded = {id(p) for p, _, _ in sliced}
        dense = [(p, (slice(None),), p.grad) for group in self.param_groups for p in group["params"]
                 if p.grad is not None and id(p) not in recorded]
        items = sliced + dense
        if not items:
            return torch.zeros(())
        grads = [g for _, _, g in items]
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        if max_norm is not None:
            coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # as clip_grad_norm_
            torch._foreach_mul_(grads, coef)
        groups = {id(p): group for group in self.param_groups for p in group["params"]}
        by_group: dict[tuple, tuple] = {}  # (group, lr) -> params, sums, grads, eps
        stepped: set[int] = set()
        for p, index, g in items:
            group = groups.get(id(p))
            if group is None:
                raise ValueError("a recorded parameter is not managed by this optimizer")
            if group["weight_decay"] or group["maximize"]:
                raise ValueError("step_recorded supports neither weight_decay nor maximize")
            state = self.state[p]
            if id(p) not in stepped:  # one step per parameter, however many slices it has
                state["step"] += 1
                stepped.add(id(p))
            # With lr_decay, parameters may be at different steps: their own learning rate.
            clr = group["lr"] / (1 + (float(state["step"]) - 1) * group["lr_decay"])
            bucket = by_group.setdefault((id(group), clr), ([], [], [], group["eps"]))
            bucket[0].append(p.detach()[index])
            bucket[1].append(state["sum"][index])
            bucket[2].append(g)
        for (_, clr), (params, accs, gs, eps) in by_group.items():
            torch._foreach_addcmul_(accs, gs, gs, value=1)
            std = torch._foreach_sqrt(accs)
            torch._foreach_add_(std, eps)
            torch._foreach_addcdiv_(params, gs, std, value=-clr)
        return total
