"""Matrix-multiply FLOPs (2 m n k per product), the quantity that
``torch.utils.flop_counter.FlopCounterMode`` counts: :func:`flops` counts them from the
shapes, :func:`measured_flops` runs the model under the counter."""
from __future__ import annotations

import torch
from torch import nn

from nasrec.baselines import DLRM, DCNv2, DeepFM
from nasrec.data import Schema
from nasrec.model import NasRecModel, live_mask
from nasrec.ops import HEAD_DIM, Attention, DotProduct, SigmoidGating


def _lin(m: nn.Module, rows: int) -> int:
    return 2 * rows * m.in_features * m.out_features


def flops(model: nn.Module, batch_size: int) -> int:
    """Matrix-multiply FLOPs of one forward pass on ``batch_size`` samples, from the
    shapes (what ``FlopCounterMode`` counts: 2 m n k per product, nothing else).
    Defined for a plain ``NasRecModel`` (``NasRecModel.plain``, pruned or not), DLRM,
    DeepFM and DCN-v2. (AutoInt and a NasRecModel that is not plain call
    ``scaled_dot_product_attention``, which ``FlopCounterMode`` counts as 0 on CPU in
    torch 2.13; the plain form writes its attention out as two matmuls for that reason.)"""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    B = batch_size
    if isinstance(model, NasRecModel):
        if not model.is_plain:
            raise ValueError("count FLOPs of a NasRecModel via to_prunable(model)")
        e = model.emb_dim
        total = _lin(model.head, B)
        for b, c, live in zip(model.blocks, model.path, live_mask(model.path)):
            if not live:  # not run
                continue
            dop, sop = b.dense_ops[c.dense_ops[0]], b.sparse_ops[c.sparse_ops[0]]
            if isinstance(dop, DotProduct):
                t = dop.field_proj.out_features + 1
                total += (_lin(dop.dense_proj, B) + _lin(dop.field_proj, B * e) + 2 * B * t * t * e
                          + _lin(dop.out, B))
            elif isinstance(dop, SigmoidGating):
                total += _lin(dop.gate, B) + _lin(dop.proj, B)
            else:
                total += _lin(dop.lin if c.dense_ops[0] == "fc" else dop.proj, B)
            t = c.tokens
            total += _lin(sop.lin, B * e)
            if isinstance(sop, Attention):
                h = sop.o.in_features // HEAD_DIM
                total += (_lin(sop.qkv, B * t) + _lin(sop.o, B * t) + _lin(sop.fc1, B * t) + _lin(sop.fc2, B * t)
                          + 2 * (2 * B * h * t * t * HEAD_DIM))
            if c.interact:
                total += _lin(b.d2s.lin, B)
            if c.fm:
                total += _lin(b.fm.lin, B)
        return total
    if isinstance(model, (DLRM, DeepFM, DCNv2)):
        total = sum(_lin(m, B) for m in model.modules() if isinstance(m, nn.Linear))
        if isinstance(model, DLRM):
            n = model.embedding.offsets.numel() + 1
            total += 2 * B * n * n * model.embedding.table.embedding_dim
        return total
    raise ValueError(f"no analytic FLOP count for {type(model).__name__}; use measured_flops")


@torch.no_grad()
def measured_flops(model: nn.Module, schema: Schema, batch_size: int) -> int:
    """FLOPs that ``FlopCounterMode`` records for one forward pass on zeros."""
    from torch.utils.flop_counter import FlopCounterMode
    device = next(model.parameters()).device
    dense = torch.zeros(batch_size, schema.n_dense, device=device)
    ids = torch.zeros(batch_size, schema.n_id_columns, dtype=torch.int64, device=device)
    was = model.training
    model.eval()
    with FlopCounterMode(display=False) as fc:
        model(dense, ids)
    model.train(was)
    return int(fc.get_total_flops())
