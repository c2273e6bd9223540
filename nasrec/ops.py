"""NASRec operators with elastic widths.

Every layer is built at some maximum size and used through prefixes: a call asks
for ``out_dim`` outputs (the first rows of the weight) and reads either the first
``x.shape[-1]`` input columns or an explicit list of column ranges. A supernet
builds each operator once at maximum size and slices; a standalone model builds
the same classes at exactly the sizes an ArchSpec needs and uses all of it. So the
two run the same code, and copying the sliced weights reproduces the subnet.

Shapes: dense tensors ``[B, width]``, sparse tensors ``[B, tokens, EMB_DIM]``.
Operator definitions follow REFERENCE.md / the official NASRec ``supernet/modules.py``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nasrec.sliced import take

EMB_DIM = 16  # NASRec: embedding dimension 16
D2S_TOKENS = 8  # NASRec: dense-to-sparse merger appends 8 tokens of 16 (DS_INTERACT_NUM_SPLITS)
ATTN_HEADS = 8  # NASRec: transformer layer with 8 heads
ATTN_LN_INIT = 0.17  # NASRec modules.py LN_INIT for the attention LayerNorms
HEAD_DIM = EMB_DIM // ATTN_HEADS  # pruning removes whole heads; their dimension stays

Ranges = tuple[tuple[int, int], ...]


def dot_tokens(max_width: int) -> int:
    """Operator balancing: sparse tokens are projected to round(sqrt(2 * max width))
    rows so the pairwise dot products number about the dense width (NASRec DotProduct)."""
    return round(math.sqrt(2 * max_width))


def pairwise_dots(t: torch.Tensor) -> torch.Tensor:
    """Dot products of every token pair ``[B, n, d] -> [B, n(n-1)/2]`` (strict lower
    triangle of ``t t^T``, row-major)."""
    n = t.shape[1]
    z = torch.bmm(t, t.transpose(1, 2))
    li, lj = torch.tril_indices(n, n, offset=-1, device=t.device)
    # index_select: its backward (index_add) is faster than advanced indexing's.
    return z.flatten(1).index_select(1, li * n + lj)


class ElasticLinear(nn.Module):
    """``y = x W[:out, cols]^T + b[:out]``; ``cols`` = ranges or the first x.shape[-1]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)
        self.last_slice: tuple[int, Ranges] | None = None

    # Read from the weight, so that pruning surgery (which replaces it) keeps them true.
    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    def forward(self, x: torch.Tensor, out_dim: int | None = None,
                in_ranges: Ranges | None = None) -> torch.Tensor:
        out_dim = self.out_features if out_dim is None else out_dim
        if in_ranges is None:
            in_ranges = ((0, x.shape[-1]),)
        # Remembered so that a standalone model can copy exactly the weights used.
        self.last_slice = (out_dim, in_ranges)
        rows = slice(None, out_dim)
        if len(in_ranges) == 1:
            a, b = in_ranges[0]
            w = take(self.weight, (rows, slice(a, b)))
        else:
            w = torch.cat([take(self.weight, (rows, slice(a, b))) for a, b in in_ranges], dim=1)
        b = None if self.bias is None else take(self.bias, (rows,))
        return F.linear(x, w, b)

    def sliced_state(self) -> dict:
        """The weights used by the last call, shaped for a layer built at that size."""
        out_dim, ranges = self.last_slice
        w = torch.cat([self.weight[:out_dim, a:b] for a, b in ranges], dim=1)
        state = {"weight": w.detach().clone()}
        if self.bias is not None:
            state["bias"] = self.bias[:out_dim].detach().clone()
        return state


class ElasticLayerNorm(nn.Module):
    """LayerNorm over the first ``dim`` features, with the first ``dim`` affine weights."""

    def __init__(self, max_dim: int, init_weight: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((max_dim,), init_weight))
        self.bias = nn.Parameter(torch.zeros(max_dim))
        self.last_slice: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1]
        self.last_slice = d
        return F.layer_norm(x, (d,), take(self.weight, (slice(None, d),)), take(self.bias, (slice(None, d),)))

    def sliced_state(self) -> dict:
        d = self.last_slice
        return {"weight": self.weight[:d].detach().clone(), "bias": self.bias[:d].detach().clone()}


def _pad_pair(left: torch.Tensor, right: torch.Tensor):
    m = max(left.shape[-1], right.shape[-1])
    return F.pad(left, (0, m - left.shape[-1])), F.pad(right, (0, m - right.shape[-1]))


def _fieldwise(lin: ElasticLinear, ln: ElasticLayerNorm, x: torch.Tensor, tokens: int,
               ranges: Ranges | None) -> torch.Tensor:
    """Linear + LayerNorm on the token axis: [B, N, D] -> [B, tokens, D]."""
    y = ln(lin(x.transpose(1, 2), tokens, ranges))
    return y.transpose(1, 2)


class FC(nn.Module):
    """Linear, LayerNorm, ReLU on the concatenated dense inputs."""

    def __init__(self, in_features: int, max_width: int):
        super().__init__()
        self.lin = ElasticLinear(in_features, max_width, bias=False)
        self.ln = ElasticLayerNorm(max_width)

    def forward(self, dense, dense_ranges, sparse, sparse_ranges, left, right, width):
        return F.relu(self.ln(self.lin(dense, width, dense_ranges)))


class DotProduct(nn.Module):
    """Dense input projected to one 16-d token, sparse tokens projected on the field
    axis to ``dot_tokens(max_width)`` rows, pairwise dot products (strict lower
    triangle), Linear + LayerNorm to the width."""

    def __init__(self, in_features: int, in_tokens: int, max_width: int, n_rows: int):
        super().__init__()
        self.dense_proj = ElasticLinear(in_features, EMB_DIM, bias=False)
        self.dense_ln = ElasticLayerNorm(EMB_DIM)
        self.field_proj = ElasticLinear(in_tokens, n_rows, bias=False)
        self.field_ln = ElasticLayerNorm(n_rows)
        n_pairs = (n_rows + 1) * n_rows // 2
        self.out = ElasticLinear(n_pairs, max_width, bias=False)
        self.out_ln = ElasticLayerNorm(max_width)

    def forward(self, dense, dense_ranges, sparse, sparse_ranges, left, right, width):
        # all rows of both projections: the supernet builds them at these sizes too,
        # and a pruned model at fewer (embedding dimensions, rows)
        x = self.dense_ln(self.dense_proj(dense, None, dense_ranges))
        y = _fieldwise(self.field_proj, self.field_ln, sparse, None, sparse_ranges)
        t = torch.cat([x.unsqueeze(1), y], dim=1)  # [B, n_rows + 1, 16]
        return self.out_ln(self.out(pairwise_dots(t), width))


class SigmoidGating(nn.Module):
    """``LayerNorm(Linear(right * sigmoid(Linear(left))))``, left/right zero-padded to
    equal width (official update of 09/24/2022).

    Gate columns past the left width only read padding and gate rows past the right
    width are only multiplied by it, so after ``trim`` the gate is exactly
    ``[right, left]`` and nothing is padded."""

    def __init__(self, max_in: int, max_width: int):
        super().__init__()
        self.gate = ElasticLinear(max_in, max_in)
        self.proj = ElasticLinear(max_in, max_width)
        self.ln = ElasticLayerNorm(max_width)

    def forward(self, dense, dense_ranges, sparse, sparse_ranges, left, right, width):
        # Padded to the wider input, as published, but never past the gate's own size:
        # square in the supernet and a standalone model, none once trimmed.
        m = max(left.shape[-1], right.shape[-1])
        n_in, n_out = min(m, self.gate.in_features), min(m, self.gate.out_features)
        left = F.pad(left, (0, n_in - left.shape[-1]))
        right = F.pad(right, (0, n_out - right.shape[-1]))
        g = torch.sigmoid(self.gate(left, n_out))
        return self.ln(self.proj(right * g, width))

    @torch.no_grad()
    def trim(self, left_width: int, right_width: int) -> None:
        """Drop the weights that only ever meet zero padding: gate ``[right, left]``,
        projection ``[width, right]``."""
        self.gate.weight = nn.Parameter(self.gate.weight[:right_width, :left_width].clone())
        self.gate.bias = nn.Parameter(self.gate.bias[:right_width].clone())
        self.proj.weight = nn.Parameter(self.proj.weight[:, :right_width].clone())


class Sum(nn.Module):
    """Zero-pad left/right to equal width, add, Linear, LayerNorm.

    After pruning, left and right keep different units, so each input is added at
    explicit positions (``left_pos``/``right_pos``, set by ``place``) of the
    projection's input instead of at its first columns."""

    def __init__(self, max_in: int, max_width: int):
        super().__init__()
        self.proj = ElasticLinear(max_in, max_width, bias=False)
        self.ln = ElasticLayerNorm(max_width)
        self.register_buffer("left_pos", None)
        self.register_buffer("right_pos", None)

    def forward(self, dense, dense_ranges, sparse, sparse_ranges, left, right, width):
        if self.left_pos is None:
            left, right = _pad_pair(left, right)
            u = left + right
        else:
            u = left.new_zeros(left.shape[0], self.proj.in_features)
            u = u.index_add(1, self.left_pos, left).index_add(1, self.right_pos, right)
        return self.ln(self.proj(u, width))

    def place(self, left_pos: torch.Tensor, right_pos: torch.Tensor) -> None:
        """Add left and right at these columns of the projection's input (int64 ``[wl]``, ``[wr]``)."""
        self.left_pos, self.right_pos = left_pos, right_pos


class EFC(nn.Module):
    """Linear on the field axis to the token count, LayerNorm, ReLU."""

    def __init__(self, in_tokens: int, max_tokens: int):
        super().__init__()
        self.lin = ElasticLinear(in_tokens, max_tokens, bias=False)
        self.ln = ElasticLayerNorm(max_tokens)

    def forward(self, sparse, sparse_ranges, tokens):
        return F.relu(_fieldwise(self.lin, self.ln, sparse, tokens, sparse_ranges))


class Attention(nn.Module):
    """Field-axis Linear + LayerNorm to the token count, then a transformer layer:
    8-head self-attention with residual and LayerNorm, two FC with residual and LayerNorm.

    Heads of ``HEAD_DIM`` dimensions, as many as the output projection reads (8 unless
    pruned). ``explicit``: the two attention products as matmuls, which
    ``FlopCounterMode`` and matmul hooks see on every backend (it counts
    ``scaled_dot_product_attention`` as 0 on CPU); the default is the fused kernel."""

    def __init__(self, in_tokens: int, max_tokens: int):
        super().__init__()
        self.lin = ElasticLinear(in_tokens, max_tokens, bias=False)
        self.ln = ElasticLayerNorm(max_tokens)
        self.qkv = ElasticLinear(EMB_DIM, 3 * EMB_DIM)
        self.o = ElasticLinear(EMB_DIM, EMB_DIM)
        self.attn_ln = ElasticLayerNorm(EMB_DIM, ATTN_LN_INIT)
        self.fc1 = ElasticLinear(EMB_DIM, EMB_DIM)
        self.fc2 = ElasticLinear(EMB_DIM, EMB_DIM)
        self.fc_ln = ElasticLayerNorm(EMB_DIM, ATTN_LN_INIT)
        self.explicit = False

    def forward(self, sparse, sparse_ranges, tokens):
        x = _fieldwise(self.lin, self.ln, sparse, tokens, sparse_ranges)  # [B, T, 16]
        b, t, _ = x.shape
        h = self.o.in_features // HEAD_DIM
        q, k, v = self.qkv(x).view(b, t, 3, h, HEAD_DIM).permute(2, 0, 3, 1, 4)
        if self.explicit:
            # q is scaled before the product: an element-wise pass over [B, H, T, HEAD_DIM],
            # not over the T x T scores.
            a = torch.softmax(torch.matmul(q * HEAD_DIM ** -0.5, k.transpose(-1, -2)), dim=-1)
            a = torch.matmul(a, v)
        else:
            a = F.scaled_dot_product_attention(q, k, v)
        x = self.attn_ln(x + self.o(a.transpose(1, 2).reshape(b, t, h * HEAD_DIM)))
        return self.fc_ln(x + self.fc2(F.relu(self.fc1(x))))


class DenseToSparse(nn.Module):
    """Merger: dense output -> Linear + LayerNorm to 8 x 16, appended as 8 tokens."""

    def __init__(self, max_width: int):
        super().__init__()
        self.lin = ElasticLinear(max_width, D2S_TOKENS * EMB_DIM, bias=False)
        self.ln = ElasticLayerNorm(D2S_TOKENS * EMB_DIM)

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        return self.ln(self.lin(dense)).view(dense.shape[0], D2S_TOKENS, -1)


class FMToDense(nn.Module):
    """Merger: factorisation-machine term of the sparse tokens ([B, 16]),
    Linear + LayerNorm to the dense width, added to the dense output."""

    def __init__(self, max_width: int):
        super().__init__()
        self.lin = ElasticLinear(EMB_DIM, max_width, bias=False)
        self.ln = ElasticLayerNorm(max_width)

    def forward(self, sparse: torch.Tensor, width: int) -> torch.Tensor:
        fm = sparse.sum(1) ** 2 - (sparse ** 2).sum(1)
        return self.ln(self.lin(fm, width))


DENSE_OP_CLASSES = {"fc": FC, "dot": DotProduct, "gating": SigmoidGating, "sum": Sum}
SPARSE_OP_CLASSES = {"efc": EFC, "attention": Attention}
