"""Elastic per-field embeddings: a dimension and a storage precision per field.

One table per model holds every field at the largest dimension of the embedding
space; a field of dimension ``d`` uses the first ``d`` columns of its rows (elastic
width, so a supernet scores any per-field choice without retraining). Fields whose
dimension differs from the operators' token width (``EMB_DIM``) are projected to it
by a per-field matrix, of which a ``d``-dimensional field uses the first ``d`` rows;
a field at ``EMB_DIM`` is used as it is, so the published space (every field 16-dim,
fp32) is the plain embedding. A dropped field (dimension 0) gives a zero token: the
token count stays that of the schema, so the supernet and a standalone model agree
exactly.

Precision is simulated on lookup (quantise, then dequantise), with a straight-through
gradient: fp16 rounds to half precision; int8 stores each row as
``round(x / s)`` in [-127, 127] with ``s = max|x| / 127`` per row, so the error of any
element is at most ``s / 2 = max|row| / 254``.
"""
from __future__ import annotations

import torch
from torch import nn

from nasrec.data import Schema
from nasrec.ops import EMB_DIM
from nasrec.space import EmbeddingSpec

__all__ = ["quantize", "ElasticEmbedding", "INT8_LEVELS"]

INT8_LEVELS = 127  # symmetric int8: [-127, 127]


def quantize(x: torch.Tensor, precision: str) -> torch.Tensor:
    """``x`` as stored in ``precision`` and read back, rows along the last axis.

    Gradients pass straight through (the rounding is treated as identity).
    """
    if precision == "fp32":
        return x
    if precision == "fp16":
        q = x.to(torch.float16).to(x.dtype)
    elif precision == "int8":
        scale = x.detach().abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / INT8_LEVELS
        q = torch.round(x / scale).clamp(-INT8_LEVELS, INT8_LEVELS) * scale
    else:
        raise ValueError(f"unknown precision {precision!r} (fp32, fp16, int8)")
    return x + (q - x).detach()


class ElasticEmbedding(nn.Module):
    """``forward(ids [B, F] int64, spec: EmbeddingSpec | None) -> [B, F, EMB_DIM]``.

    ``spec`` None is the published space: the first ``EMB_DIM`` columns, fp32.
    Field id 0 means missing, as everywhere in nasrec.
    """

    def __init__(self, schema: Schema, max_dim: int = 64, dim: int = EMB_DIM):
        super().__init__()
        if max_dim < dim:
            raise ValueError(f"max_dim {max_dim} must be at least the token width {dim}")
        self.n_fields, self.max_dim, self.dim = schema.n_sparse, max_dim, dim
        cards = torch.tensor((0,) + schema.cardinalities[:-1], dtype=torch.int64)
        self.register_buffer("offsets", torch.cumsum(cards, 0), persistent=False)
        self.table = nn.Embedding(sum(schema.cardinalities), max_dim)
        # the same small uniform init as the plain FieldEmbedding (DLRM's sqrt(1/n) scale)
        nn.init.uniform_(self.table.weight, -0.05, 0.05)
        # per-field projections to the token width; scaled so a projected token has about
        # the variance of an unprojected one
        self.proj = nn.Parameter(torch.randn(self.n_fields, max_dim, dim) / dim ** 0.5)

    def forward(self, ids: torch.Tensor, spec: EmbeddingSpec | None = None) -> torch.Tensor:
        x = self.table(ids + self.offsets)  # [B, F, max_dim]
        if spec is None:
            return x[..., :self.dim]
        if spec.n_fields != self.n_fields:
            raise ValueError(f"embedding spec has {spec.n_fields} fields, the data has {self.n_fields}")
        if max(spec.dims) > self.max_dim:
            raise ValueError(f"embedding dim {max(spec.dims)} exceeds this table's {self.max_dim}")
        out = x.new_zeros(x.shape[0], self.n_fields, self.dim)
        groups: dict[tuple[int, str], list[int]] = {}
        for f, (d, p) in enumerate(zip(spec.dims, spec.precisions)):
            if d > 0:
                groups.setdefault((d, p), []).append(f)
        for (d, p), fields in groups.items():
            idx = torch.tensor(fields, device=x.device)
            xf = quantize(x[:, idx, :d], p)
            if d != self.dim:
                xf = torch.einsum("bfd,fde->bfe", xf, self.proj[idx, :d, :])
            out[:, idx] = xf
        return out

    def table_bytes(self, spec: EmbeddingSpec | None, cardinalities) -> int:
        """Bytes of the tables ``spec`` stores (per-row int8 scales not counted)."""
        if spec is None:
            return sum(int(c) for c in cardinalities) * self.dim * 4
        size = {"fp32": 4, "fp16": 2, "int8": 1}
        return sum(int(c) * d * size[p] for c, d, p in zip(cardinalities, spec.dims, spec.precisions))
