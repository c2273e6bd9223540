"""Structured pruning of trained NASRec models and baselines.

Whole units go: dense neurons (the output width of every dense operator and the
hidden neurons of baseline MLPs), EFC/attention tokens, attention heads,
Dot-Product projection rows and embedding dimensions. The result is an ordinary
smaller model of the same class (smaller linear, LayerNorm and embedding weights),
never a masked one, so a forward-hook profiler reads the pruned shapes.

How it works
------------
A searched model is pruned as the ``NasRecModel`` it is, in its plain form
(``to_prunable``: the conversion drops only gate rows and columns that can never
matter, as they meet zero padding); a pruned one is a ``NasRecModel`` with smaller
weights, running the same forward. Baselines are pruned in place of their own
classes. For either, :func:`prune_spec` describes every prunable *group* of units
and, for every parameter, which groups index each of its axes (a *layout*: a
concatenation of segments, each an outer product of axes). Pruning a set of units
then means indexing every parameter along its axes, which is one generic routine.

Criteria
--------
``l1``: a unit's score is the mean absolute weight that makes it (its row in the
producing Linear, its LayerNorm gain, its embedding column, its columns in the
attention output projection for a head) times the mean absolute weight that
reads it (its columns in every consuming Linear); a unit that nothing reads
scores 0. ``mask``: a gate per unit multiplies the parameters that make it; the
gates train with the model under an L1 penalty, are folded into those
parameters (so the gated model is exactly what is pruned) and their absolute
values rank the units.

Schedules: ``oneshot`` prunes to the target at once; ``progressive`` reaches it
in ``steps`` steps that each remove the same fraction of what is left. Each step
fine-tunes. Ratios are ``layer`` (every group loses the ratio of its units) or
``global`` (the ratio of all units of a kind, lowest scores first, anywhere).

FLOP counting lives in ``nasrec.flops`` and model files in ``nasrec.modelio``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from nasrec.baselines import DLRM
from nasrec.data import Split
from nasrec.flops import flops
from nasrec.model import NasRecModel, block_tokens, block_width
from nasrec.ops import D2S_TOKENS, HEAD_DIM, Attention, Sum
from nasrec.util import progress, seeded_torch

METHODS = ("l1", "mask")
SCHEDULES = ("oneshot", "progressive")
SCOPES = ("layer", "global")
KINDS = ("neurons", "tokens", "heads", "rows", "emb")


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class PruneConfig:
    """One pruning run.

    ``ratio``: fraction of the units of each pruned kind to remove (layer-wise: of
    every group; global: of all groups of the kind together). ``kinds``: which unit
    kinds to prune. ``steps``: number of pruning steps of the progressive schedule.
    ``finetune_steps``: training steps after every pruning step (batch
    ``batch_size``, Adagrad ``lr`` with the NASRec cosine schedule). ``mask_steps``,
    ``mask_penalty``, ``mask_lr``: gate training of the ``mask`` method (L1 penalty
    on the sum of absolute gate values; Adam on the gates).
    """

    ratio: float
    method: str = "l1"
    schedule: str = "oneshot"
    scope: str = "layer"
    kinds: tuple[str, ...] = KINDS
    steps: int = 3
    finetune_steps: int = 200
    mask_steps: int = 200
    mask_penalty: float = 1e-3
    mask_lr: float = 0.02
    batch_size: int = 512
    lr: float = 0.04
    min_keep: int = 1
    seed: int = 0

    def __post_init__(self):
        r = self.ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (0.0 <= r < 1.0):
            raise ValueError(f"ratio must be a number in [0, 1), got {r!r}")
        object.__setattr__(self, "ratio", float(r))
        if self.method not in METHODS:
            raise ValueError(f"unknown pruning method {self.method!r}; known: {', '.join(METHODS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; known: {', '.join(SCOPES)}")
        kinds = tuple(self.kinds)
        if not kinds:
            raise ValueError("kinds must name at least one unit kind")
        for k in kinds:
            if k not in KINDS:
                raise ValueError(f"unknown unit kind {k!r}; known: {', '.join(KINDS)}")
        object.__setattr__(self, "kinds", kinds)
        for name in ("steps", "batch_size", "min_keep"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("finetune_steps", "mask_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "mask_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.mask_penalty >= 0:
            raise ValueError(f"mask_penalty must be >= 0, got {self.mask_penalty}")

    def step_ratios(self) -> list[float]:
        """Cumulative ratio reached after each step (equal fraction of what is left)."""
        if self.schedule == "oneshot" or self.ratio == 0.0:
            return [self.ratio]
        n = self.steps
        return [1.0 - (1.0 - self.ratio) ** ((k + 1) / n) for k in range(n)]


# ----------------------------------------------------------------------------- model

def to_prunable(model: nn.Module) -> nn.Module:
    """A prunable copy: a ``NasRecModel`` in its plain form (``NasRecModel.plain``: the
    same network and outputs, every weight used whole); a baseline -> a deep copy."""
    if isinstance(model, NasRecModel):
        return model.plain()
    if not isinstance(model, nn.Module):
        raise ValueError(f"cannot prune a {type(model).__name__}")
    return copy.deepcopy(model)


# ----------------------------------------------------------------------------- layouts

@dataclass(frozen=True)
class Fixed:
    """An axis that is never pruned."""
    n: int


@dataclass(frozen=True)
class Group:
    """An axis whose entries are the units of a group."""
    name: str


@dataclass(frozen=True)
class Pairs:
    """The lower-triangle pairs of [dense token] + the rows of a Dot-Product group."""
    name: str


@dataclass(frozen=True)
class Union:
    """The zero-padded input of a Sum: the union of its left and right positions."""
    block: int


Segment = tuple  # of axes (outer product, first axis slowest)
Layout = tuple  # of segments (concatenated)


@dataclass(frozen=True)
class UnitGroup:
    name: str
    kind: str
    size: int


@dataclass
class PruneSpec:
    """Groups of a model and the layout of every parameter and index buffer axis.

    ``params``: parameter name -> one layout per axis. ``gates``: group -> list of
    (parameter name, axis) whose entries a gate on that group multiplies.
    """

    groups: dict[str, UnitGroup]
    params: dict[str, tuple]
    gates: dict[str, list]
    model: nn.Module = field(repr=False)


def _seg_size(seg, spec: PruneSpec) -> int:
    return math.prod(_axis_size(a, spec) for a in seg)


def _axis_size(a, spec: PruneSpec) -> int:
    if isinstance(a, Fixed):
        return a.n
    if isinstance(a, Group):
        return spec.groups[a.name].size
    if isinstance(a, Pairs):
        t = spec.groups[a.name].size + 1
        return t * (t - 1) // 2
    return _ops(spec.model, a.block)[1].proj.in_features


def _ops(model: NasRecModel, i: int):
    """(Choice, dense operator, sparse operator) of block ``i``."""
    c, b = model.path[i], model.blocks[i]
    return c, b.dense_ops[c.dense_ops[0]], b.sparse_ops[c.sparse_ops[0]]


def _union_kept(a: Union, spec: PruneSpec, keep: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(kept union positions, new left index, new right index) of a Sum block."""
    c, op, _ = _ops(spec.model, a.block)
    kl = _axis_kept(_dense_axis(spec.model, c.left), spec, keep).to(op.left_pos.device)
    kr = _axis_kept(_dense_axis(spec.model, c.right), spec, keep).to(op.left_pos.device)
    il, ir = op.left_pos[kl], op.right_pos[kr]
    u = torch.unique(torch.cat([il, ir]))  # sorted
    return u, torch.searchsorted(u, il), torch.searchsorted(u, ir)


def _axis_kept(a, spec: PruneSpec, keep: dict) -> torch.Tensor:
    """Positions (in the current axis) that survive ``keep``."""
    if isinstance(a, Fixed):
        return torch.arange(a.n)
    if isinstance(a, Group):
        return keep[a.name].cpu() if a.name in keep else torch.arange(spec.groups[a.name].size)
    if isinstance(a, Pairs):
        rows = keep[a.name].cpu() if a.name in keep else torch.arange(spec.groups[a.name].size)
        tok = torch.cat([torch.zeros(1, dtype=torch.long), rows + 1])
        li, lj = torch.tril_indices(len(tok), len(tok), offset=-1)
        ta, tb = tok[li], tok[lj]
        return ta * (ta - 1) // 2 + tb
    return _union_kept(a, spec, keep)[0].cpu()


def _layout_kept(layout, spec: PruneSpec, keep: dict) -> torch.Tensor:
    out, off = [], 0
    for seg in layout:
        pos = torch.zeros(1, dtype=torch.long)
        for a in seg:
            pos = (pos[:, None] * _axis_size(a, spec) + _axis_kept(a, spec, keep)[None, :]).flatten()
        out.append(pos + off)
        off += _seg_size(seg, spec)
    return torch.cat(out)


def _unit_index(layout, group: str, spec: PruneSpec) -> torch.Tensor:
    """For each position of a layout, the unit of ``group`` it belongs to (-1: none)."""
    out = []
    for seg in layout:
        n = _seg_size(seg, spec)
        idx = torch.full((n,), -1, dtype=torch.long)
        stride = n
        for a in seg:
            size = _axis_size(a, spec)
            stride //= size
            if isinstance(a, Group) and a.name == group:
                idx = (torch.arange(n) // stride) % size
        out.append(idx)
    return torch.cat(out)


def _dense_axis(model: NasRecModel, j: int):
    return Fixed(model.schema.n_dense) if j == 0 else Group(f"w{j - 1}")


def _nasrec_spec(model: NasRecModel) -> PruneSpec:
    groups: dict[str, UnitGroup] = {"emb": UnitGroup("emb", "emb", model.emb_dim)}
    params: dict[str, tuple] = {"embedding.table.weight": (((Fixed(model.embedding.table.num_embeddings),),),
                                                           ((Group("emb"),),))}
    gates: dict[str, list] = {"emb": [("embedding.table.weight", 1)]}
    E = ((Group("emb"),),)

    def sparse_layout(c):
        segs = []
        for j in c.sparse_idx:
            if j == 0:
                segs.append((Fixed(model.schema.n_sparse),))
            else:
                segs.append((Group(f"t{j - 1}"),))
                if model.path[j - 1].interact:
                    segs.append((Fixed(D2S_TOKENS),))
        return tuple(segs)

    def lin(name, rows, cols, bias=True):
        params[f"{name}.weight"] = (rows, cols)
        if bias:
            params[f"{name}.bias"] = (rows,)

    def ln(name, layout):
        params[f"{name}.weight"] = (layout,)
        params[f"{name}.bias"] = (layout,)

    # The order of ``params`` is the order in which l1_scores averages a unit's weights.
    for i, b in enumerate(model.blocks):
        c, dop, sop = _ops(model, i)
        p = f"blocks.{i}.dense_ops.{c.dense_ops[0]}."
        w, t = f"w{i}", f"t{i}"
        groups[w] = UnitGroup(w, "neurons", block_width(b, c))
        groups[t] = UnitGroup(t, "tokens", block_tokens(b, c))
        W, T = ((Group(w),),), ((Group(t),),)
        dense_in = tuple((_dense_axis(model, j),) for j in c.dense_idx)
        left, right = ((_dense_axis(model, c.left),),), ((_dense_axis(model, c.right),),)
        if c.dense_ops[0] == "fc":
            lin(p + "lin", W, dense_in, bias=False)
            ln(p + "ln", W)
            out_ln = p + "ln"
        elif c.dense_ops[0] == "dot":
            r = f"r{i}"
            groups[r] = UnitGroup(r, "rows", dop.field_proj.out_features)
            lin(p + "dense_proj", E, dense_in, bias=False)
            ln(p + "dense_ln", E)
            lin(p + "field_proj", ((Group(r),),), sparse_layout(c), bias=False)
            ln(p + "field_ln", ((Group(r),),))
            lin(p + "out", W, ((Pairs(r),),), bias=False)
            ln(p + "out_ln", W)
            gates[r] = [(p + "field_ln.weight", 0), (p + "field_ln.bias", 0)]
            gates["emb"] += [(p + "dense_ln.weight", 0), (p + "dense_ln.bias", 0)]
            out_ln = p + "out_ln"
        elif c.dense_ops[0] == "gating":
            lin(p + "gate", right, left)
            lin(p + "proj", W, right)
            ln(p + "ln", W)
            out_ln = p + "ln"
        else:
            lin(p + "proj", W, ((Union(i),),), bias=False)
            ln(p + "ln", W)
            out_ln = p + "ln"
        gates[w] = [(out_ln + ".weight", 0), (out_ln + ".bias", 0)]
        p = f"blocks.{i}.sparse_ops.{c.sparse_ops[0]}."
        lin(p + "lin", T, sparse_layout(c), bias=False)
        ln(p + "ln", T)
        gates[t] = [(p + "ln.weight", 0), (p + "ln.bias", 0)]
        if isinstance(sop, Attention):
            h = f"h{i}"
            groups[h] = UnitGroup(h, "heads", sop.o.in_features // HEAD_DIM)
            H = ((Group(h), Fixed(HEAD_DIM)),)
            lin(p + "qkv", ((Fixed(3), Group(h), Fixed(HEAD_DIM)),), E)
            lin(p + "o", E, H)
            ln(p + "attn_ln", E)
            lin(p + "fc1", ((Fixed(sop.fc1.out_features),),), E)
            lin(p + "fc2", E, ((Fixed(sop.fc2.in_features),),))
            ln(p + "fc_ln", E)
            gates[h] = [(p + "o.weight", 1)]
            gates["emb"] += [(p + "fc_ln.weight", 0), (p + "fc_ln.bias", 0)]
        p = f"blocks.{i}."
        if c.interact:
            DE = ((Fixed(D2S_TOKENS), Group("emb")),)
            lin(p + "d2s.lin", DE, W, bias=False)
            ln(p + "d2s.ln", DE)
            gates["emb"] += [(p + "d2s.ln.weight", 0), (p + "d2s.ln.bias", 0)]
        if c.fm:
            lin(p + "fm.lin", W, E, bias=False)
            ln(p + "fm.ln", W)
            gates[w] += [(p + "fm.ln.weight", 0), (p + "fm.ln.bias", 0)]
    last = len(model.blocks) - 1
    head_cols = [(Group(f"w{last}"),), (Group(f"t{last}"), Group("emb"))]
    if model.path[last].interact:
        head_cols.append((Fixed(D2S_TOKENS), Group("emb")))
    lin("head", ((Fixed(1),),), tuple(head_cols))
    return PruneSpec(groups, params, gates, model)


def _baseline_spec(model: nn.Module) -> PruneSpec:
    """Hidden neurons of every ``nn.Sequential`` of Linear layers (units between two
    Linear layers joined only by activations); for DLRM also the embedding dimension."""
    groups: dict[str, UnitGroup] = {}
    gates: dict[str, list] = {}
    rows: dict[str, tuple] = {}
    cols: dict[str, tuple] = {}
    for sname, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        mods = list(seq.named_children())
        lins = [(n, m) for n, m in mods if isinstance(m, nn.Linear)]
        for (na, a), (nb, b) in zip(lins[:-1], lins[1:]):
            between = [m for n, m in mods[mods.index((na, a)) + 1:mods.index((nb, b))]]
            if not all(isinstance(m, (nn.ReLU, nn.Identity, nn.Dropout, nn.Sigmoid, nn.Tanh, nn.GELU))
                       for m in between):
                continue
            g = f"{sname}.{na}"
            groups[g] = UnitGroup(g, "neurons", a.out_features)
            rows[g] = ((Group(g),),)
            cols[f"{sname}.{nb}"] = ((Group(g),),)
            gates[g] = [(f"{g}.weight", 0), (f"{g}.bias", 0)]
    if isinstance(model, DLRM):
        groups["emb"] = UnitGroup("emb", "emb", model.embedding.table.embedding_dim)
        last = [n for n, m in model.bottom.named_children() if isinstance(m, nn.Linear)][-1]
        first = [n for n, m in model.top.named_children() if isinstance(m, nn.Linear)][0]
        top0 = model.top.get_submodule(first)
        rows[f"bottom.{last}"] = ((Group("emb"),),)
        cols[f"top.{first}"] = ((Group("emb"),), (Fixed(top0.in_features - groups["emb"].size),))
        gates["emb"] = [("embedding.table.weight", 1), (f"bottom.{last}.weight", 0), (f"bottom.{last}.bias", 0)]
    params: dict[str, tuple] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and (name in rows or name in cols):
            r = rows.get(name, ((Fixed(m.out_features),),))
            params[f"{name}.weight"] = (r, cols.get(name, ((Fixed(m.in_features),),)))
            if m.bias is not None:
                params[f"{name}.bias"] = (r,)
    if "emb" in groups:
        params["embedding.table.weight"] = (((Fixed(model.embedding.table.num_embeddings),),),
                                            ((Group("emb"),),))
    return PruneSpec(groups, params, gates, model)


def prune_spec(model: nn.Module) -> PruneSpec:
    """The prunable groups of ``model`` (a plain ``NasRecModel``, see ``to_prunable``,
    or a baseline)."""
    if isinstance(model, NasRecModel):
        if not model.is_plain:
            raise ValueError("convert a NasRecModel with to_prunable() first")
        return _nasrec_spec(model)
    return _baseline_spec(model)


# ----------------------------------------------------------------------------- surgery

def _fix_attrs(module: nn.Module) -> None:
    """Make sizes that modules keep beside their weights agree with the weights again."""
    if isinstance(module, NasRecModel):
        module.sync_sizes()
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.out_features, m.in_features = m.weight.shape
        elif isinstance(m, nn.LayerNorm) and m.weight is not None:
            m.normalized_shape = (m.weight.shape[0],)
        elif isinstance(m, nn.Embedding):
            m.num_embeddings, m.embedding_dim = m.weight.shape


def apply_keep(model: nn.Module, keep: dict[str, torch.Tensor], spec: PruneSpec | None = None) -> nn.Module:
    """A copy of ``model`` keeping, for each group named in ``keep``, the units at the
    given (sorted, current) positions. The copy is an ordinary smaller model."""
    spec = spec or prune_spec(model)
    for g, k in keep.items():
        if g not in spec.groups:
            raise ValueError(f"unknown group {g!r}")
        k = torch.as_tensor(k, dtype=torch.long)
        if len(k) < 1 or len(torch.unique(k)) != len(k) or k.min() < 0 or k.max() >= spec.groups[g].size:
            raise ValueError(f"group {g}: bad kept positions {k.tolist()}")
    keep = {g: torch.sort(torch.as_tensor(k, dtype=torch.long))[0] for g, k in keep.items()}
    new = copy.deepcopy(model)
    named = dict(new.named_parameters())
    with torch.no_grad():
        for pname, layouts in spec.params.items():
            p = named[pname]
            t = p.data
            for axis, layout in enumerate(layouts):
                idx = _layout_kept(layout, spec, keep)
                if len(idx) != t.shape[axis] or not torch.equal(idx, torch.arange(t.shape[axis])):
                    t = t.index_select(axis, idx.to(t.device))
            p.data = t.contiguous()
            p.grad = None
        if isinstance(new, NasRecModel):
            for i in range(len(new.blocks)):
                op = _ops(new, i)[1]
                if isinstance(op, Sum):
                    _, il, ir = _union_kept(Union(i), spec, keep)
                    op.place(il, ir)
    _fix_attrs(new)
    return new


# ----------------------------------------------------------------------------- scores

def _mean_abs_per_unit(t: torch.Tensor, axis: int, layout, group: str, spec: PruneSpec) -> torch.Tensor | None:
    idx = _unit_index(layout, group, spec)
    if (idx < 0).all():
        return None
    n = spec.groups[group].size
    a = t.detach().abs().movedim(axis, 0).reshape(t.shape[axis], -1).mean(1).cpu()
    m = idx >= 0
    s = torch.zeros(n).index_add_(0, idx[m], a[m])
    c = torch.zeros(n).index_add_(0, idx[m], torch.ones(int(m.sum())))
    return s / c.clamp_min(1)


def l1_scores(model: nn.Module, spec: PruneSpec | None = None) -> dict[str, torch.Tensor]:
    """L1 score of every unit: mean |weight| making it x mean |weight| reading it."""
    spec = spec or prune_spec(model)
    named = dict(model.named_parameters())
    out = {}
    for g in spec.groups:
        producers = {p for p, _ in spec.gates[g] if p.endswith("weight")}
        prod, cons = [], []
        for pname, layouts in spec.params.items():
            if not pname.endswith("weight"):
                continue
            for axis, layout in enumerate(layouts):
                v = _mean_abs_per_unit(named[pname], axis, layout, g, spec)
                if v is not None:
                    (prod if pname in producers else cons).append(v)
        p = torch.stack(prod).mean(0) if prod else torch.ones(spec.groups[g].size)
        c = torch.stack(cons).mean(0) if cons else torch.zeros(spec.groups[g].size)
        out[g] = p * c
    return out


def _gate_plan(spec: PruneSpec, groups, named: dict, device) -> list:
    """(parameter, group, unit index per entry along the axis (-1: none), view shape)."""
    plan = []
    for g in groups:
        for pname, axis in spec.gates.get(g, []):
            idx = _unit_index(spec.params[pname][axis], g, spec).to(device)
            shape = [1] * named[pname].dim()
            shape[axis] = -1
            plan.append((pname, g, idx, shape))
    return plan


def _gate_scale(plan: list, gates: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parameter name -> multiplier tensor (broadcastable) from the group gates."""
    scale: dict[str, torch.Tensor] = {}
    for pname, g, idx, shape in plan:
        gv = torch.cat([gates[g], gates[g].new_ones(1)])  # index -1 -> 1 (no gate)
        v = gv[idx].view(shape)
        scale[pname] = scale[pname] * v if pname in scale else v
    return scale


def _train_masks(model: nn.Module, spec: PruneSpec, groups: list[str], train: Split, cfg: PruneConfig,
                 rng: np.random.Generator, quiet: bool) -> dict[str, torch.Tensor]:
    """Train one gate per unit (and the weights) with an L1 penalty on the gates,
    fold the gates into the parameters they scale, return |gate| per unit."""
    device = next(model.parameters()).device
    gates = {g: nn.Parameter(torch.ones(spec.groups[g].size, device=device)) for g in groups}
    named = dict(model.named_parameters())
    plan = _gate_plan(spec, groups, named, device)
    opt_w = torch.optim.Adagrad(model.parameters(), lr=cfg.lr, eps=1e-2)
    opt_g = torch.optim.Adam(gates.values(), lr=cfg.mask_lr)
    loss_fn = nn.BCEWithLogitsLoss()
    batches = train.infinite_batches(cfg.batch_size, rng, device)
    model.train()
    for _ in progress(range(cfg.mask_steps), desc="masks", quiet=quiet):
        dense, ids, y = next(batches)
        scale = _gate_scale(plan, gates)
        params = {n: (p * scale[n] if n in scale else p) for n, p in named.items()}
        logits = torch.func.functional_call(model, params, (dense, ids))
        penalty = sum(g.abs().sum() for g in gates.values())
        loss = loss_fn(logits, y) + cfg.mask_penalty * penalty
        opt_w.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt_w.step()
        opt_g.step()
    with torch.no_grad():
        scale = _gate_scale(plan, gates)
        for n, s in scale.items():
            named[n].mul_(s)
    return {g: v.detach().abs().cpu() for g, v in gates.items()}


# ----------------------------------------------------------------------------- selection

def select_units(spec: PruneSpec, scores: dict[str, torch.Tensor], targets: dict[str, int] | None,
                 kinds, ratio_of_orig: float, orig: dict[str, int], scope: str,
                 min_keep: int = 1) -> dict[str, torch.Tensor]:
    """Kept positions per group so that ``ratio_of_orig`` of the original units are
    gone (per group for 'layer', per kind over all groups for 'global')."""
    keep: dict[str, torch.Tensor] = {}
    pruned = [g for g, u in spec.groups.items() if u.kind in kinds]
    if scope == "layer":
        for g in pruned:
            n_keep = max(min(min_keep, orig[g]), round(orig[g] * (1.0 - ratio_of_orig)))
            n_keep = min(n_keep, spec.groups[g].size)
            keep[g] = torch.sort(torch.argsort(scores[g], descending=True, stable=True)[:n_keep])[0]
        return keep
    for kind in kinds:
        gs = [g for g in pruned if spec.groups[g].kind == kind]
        if not gs:
            continue
        total_orig = sum(orig[g] for g in gs)
        total_now = sum(spec.groups[g].size for g in gs)
        n_remove = max(0, total_now - round(total_orig * (1.0 - ratio_of_orig)))
        cand = sorted(((float(scores[g][u]), g, u) for g in gs for u in range(spec.groups[g].size)),
                      key=lambda x: (x[0], x[1], x[2]))
        left = {g: spec.groups[g].size for g in gs}
        dropped: dict[str, set] = {g: set() for g in gs}
        for _, g, u in cand:
            if n_remove == 0:
                break
            if left[g] <= min(min_keep, orig[g]):
                continue
            dropped[g].add(u)
            left[g] -= 1
            n_remove -= 1
        for g in gs:
            keep[g] = torch.tensor([u for u in range(spec.groups[g].size) if u not in dropped[g]], dtype=torch.long)
    return keep


# ----------------------------------------------------------------------------- driver

def count_params(model: nn.Module) -> dict:
    """Parameters: total, in embedding tables, and the rest (dense)."""
    emb = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))
    total = sum(p.numel() for p in model.parameters())
    return {"params": total, "embedding_params": emb, "dense_params": total - emb}


def _finetune(model: nn.Module, train: Split, cfg: PruneConfig, seed_offset: int, quiet: bool) -> None:
    from nasrec.train import TrainConfig, train_model
    if cfg.finetune_steps == 0:
        return
    tc = TrainConfig(steps=cfg.finetune_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                     seed=cfg.seed * 1000 + seed_offset)
    train_model(model, train, tc, quiet=quiet)


def prune(model: nn.Module, cfg: PruneConfig, train: Split | None = None, val: Split | None = None,
          *, quiet: bool = True) -> tuple[nn.Module, list[dict]]:
    """Prune ``model`` (a trained ``NasRecModel``, plain or not, or a baseline)
    by ``cfg``; returns the pruned ordinary model and one row per step (step 0 is the
    input model): target ratio, unit counts, parameters, FLOPs per sample and, when
    ``val`` is given, validation log loss and AUC. ``train`` is needed for
    fine-tuning and for the mask method."""
    from nasrec.train import evaluate
    needs_data = cfg.finetune_steps > 0 or cfg.method == "mask"
    if needs_data and cfg.ratio > 0 and train is None:
        raise ValueError("fine-tuning and the mask method need training data")
    model = to_prunable(model)
    spec = prune_spec(model)
    orig = {g: u.size for g, u in spec.groups.items()}
    rng = np.random.default_rng([cfg.seed, 6])

    def row(step: int, ratio: float) -> dict:
        s = prune_spec(model)
        r = {"step": step, "target_ratio": ratio, "method": cfg.method, "schedule": cfg.schedule,
             "scope": cfg.scope, "kinds": "+".join(cfg.kinds), "seed": cfg.seed}
        for kind in KINDS:
            r[f"{kind}"] = sum(u.size for u in s.groups.values() if u.kind == kind)
        r.update(count_params(model))
        r["flops_per_sample"] = flops(model, 1)
        if val is not None:
            ev = evaluate(model, val)
            r.update(val_logloss=ev["logloss"], val_auc=ev["auc"], data=ev["data"])
        return r

    rows = [row(0, 0.0)]
    if cfg.ratio == 0.0:
        return model, rows
    with seeded_torch(cfg.seed):
        for step, ratio in enumerate(cfg.step_ratios(), start=1):
            spec = prune_spec(model)
            if cfg.method == "l1":
                scores = l1_scores(model, spec)
            else:
                groups = [g for g, u in spec.groups.items() if u.kind in cfg.kinds]
                scores = _train_masks(model, spec, groups, train, cfg, rng, quiet)
            keep = select_units(spec, scores, None, cfg.kinds, ratio, orig, cfg.scope, cfg.min_keep)
            model = apply_keep(model, keep, spec)
            _finetune(model, train, cfg, step, quiet)
            rows.append(row(step, ratio))
    return model, rows
