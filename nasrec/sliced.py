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
            # A parameter read more than once: sum the slices into one full gradient.
            p = recs[0][0]
            g = torch.zeros_like(p)
            for _, index, grad in recs:
                g[index] += grad
            sliced.append((p, (slice(None),), g))
        recorded = {id(p) for p, _, _ in sliced}
        dense = [(p, (slice(None),), p.grad) for group in self.param_groups for p in group["params"]
                 if p.grad is not None and id(p) not in recorded]
        items = sliced + dense
        if not items:
            return torch.zeros(())
        total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for _, _, g in items]))
        if max_norm is not None:
            coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # as clip_grad_norm_
            for _, _, g in items:
                g.mul_(coef)
        groups = {id(p): group for group in self.param_groups for p in group["params"]}
        for p, index, g in items:
            group = groups.get(id(p))
            if group is None:
                raise ValueError("a recorded parameter is not managed by this optimizer")
            if group["weight_decay"] or group["maximize"]:
                raise ValueError("step_recorded supports neither weight_decay nor maximize")
            state = self.state[p]
            state["step"] += 1
            step = float(state["step"])  # a CPU tensor in torch's Adagrad
            clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
            acc = state["sum"][index]
            acc.addcmul_(g, g, value=1)
            std = acc.sqrt().add_(group["eps"])
            p.detach()[index].addcdiv_(g, std, value=-clr)
        return total
