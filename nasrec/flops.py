"""Matrix-multiply FLOPs (2 m n k per product), the quantity that
``torch.utils.flop_counter.FlopCounterMode`` counts: :func:`flops` counts them from the
shapes, :func:`measured_flops` runs the model under the counter."""
from __future__ import annotations

import torch
from torch import nn

from nasrec.baselines import DLRM, DCNv2, DeepFM
from nasrec.data import Schema
from nasrec.model import NasRecModel
from nasrec.prune import HEAD_DIM, PrunableNasRec

def _lin(m: nn.Linear, rows: int) -> int:
    return 2 * rows * m.in_features * m.out_features


def flops(model: nn.Module, batch_size: int) -> int:
    """Matrix-multiply FLOPs of one forward pass on ``batch_size`` samples, from the
    shapes (what ``FlopCounterMode`` counts: 2 m n k per product, nothing else).
    Defined for :class:`PrunableNasRec`, DLRM, DeepFM and DCN-v2. (AutoInt and the
    unconverted ``NasRecModel`` call ``scaled_dot_product_attention``, which
    ``FlopCounterMode`` counts as 0 on CPU in torch 2.13; :class:`PrunableNasRec`
    writes its attention out as two matmuls for that reason.)"""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    B = batch_size
    if isinstance(model, PrunableNasRec):
        e = model.emb_dim
        total = _lin(model.head, B)
        for b in model.blocks:
            if b.dense_op == "fc":
                total += _lin(b.fc_lin, B)
            elif b.dense_op == "dot":
                t = b.fp.out_features + 1
                total += _lin(b.dp, B) + _lin(b.fp, B * e) + 2 * B * t * t * e + _lin(b.out, B)
            elif b.dense_op == "gating":
                total += _lin(b.gate, B) + _lin(b.proj, B)
            else:
                total += _lin(b.proj, B)
            t = b.tok_lin.out_features
            total += _lin(b.tok_lin, B * e)
            if b.sparse_op == "attention":
                h = b.o.in_features // HEAD_DIM
                total += (_lin(b.qkv, B * t) + _lin(b.o, B * t) + _lin(b.ffn1, B * t) + _lin(b.ffn2, B * t)
                          + 2 * (2 * B * h * t * t * HEAD_DIM))
            if b.interact:
                total += _lin(b.d2s_lin, B)
            if b.fm:
                total += _lin(b.fm_lin, B)
        return total
    if isinstance(model, NasRecModel):
        raise ValueError("count FLOPs of a NasRecModel via to_prunable(model)")
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
