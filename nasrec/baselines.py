"""Hand-crafted CTR baselines on the NASRec embedding layer (``FieldEmbedding``, 16-d).

Every model maps ``(dense [B, n_dense] f32, ids [B, n_fields] i64) -> logits [B]``
and trains with the same loop as the searched models (``nasrec.train.train_model``).
Default sizes follow the papers' Criteo settings where they give one (cited inline).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasrec.data import Schema
from nasrec.model import EMB_INIT_STD, FieldEmbedding
from nasrec.ops import EMB_DIM, pairwise_dots
from nasrec.util import seeded_torch


def init_weights(model: nn.Module) -> nn.Module:
    """Xavier-uniform weights and zero biases for every Linear and Conv1d (as the official
    NASRec code and deepctr-torch initialise dense layers), N(0, 1e-4) embedding rows (as
    deepctr-torch: a small start lets Adagrad's first updates set the scale). Measured at
    the truth budget: DCN-v2 0.5142 -> 0.5104 test log loss, DeepFM unchanged (0.5127 ->
    0.5128); see ``benchmarks/results/baselines_peer*.csv``."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding) and m.embedding_dim > 1:
            nn.init.normal_(m.weight, 0.0, EMB_INIT_STD)
    return model


def mlp(sizes: tuple[int, ...], last_act: bool = True) -> nn.Sequential:
    """Linear + ReLU stack over ``sizes`` (input size first)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_act or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """DLRM (Naumov et al. 2019): bottom MLP on dense to 16, pairwise dot products of
    [bottom output, embeddings], top MLP. Sizes: DLRM Criteo Kaggle 512-256-64-16 /
    512-256-1; ``bottom``/``top`` make it larger or smaller."""

    def __init__(self, schema: Schema, bottom: tuple[int, ...] = (512, 256, 64),
                 top: tuple[int, ...] = (512, 256)):
        super().__init__()
        self.embedding = FieldEmbedding(schema)
        self.bottom = mlp((schema.n_dense,) + bottom + (EMB_DIM,))
        n = schema.n_sparse + 1
        self.top = mlp((EMB_DIM + n * (n - 1) // 2,) + top + (1,), last_act=False)

    def forward(self, dense, ids):
        x = self.bottom(dense)
        t = torch.cat([x.unsqueeze(1), self.embedding(ids)], dim=1)
        return self.top(torch.cat([x, pairwise_dots(t)], dim=1)).squeeze(1)


class _Tokens(nn.Module):
    """Embeddings plus one token per dense feature (value x learned vector): [B, n, 16]."""

    def __init__(self, schema: Schema):
        super().__init__()
        self.embedding = FieldEmbedding(schema)
        self.dense_vec = nn.Parameter(torch.randn(schema.n_dense, EMB_DIM) * 0.05)
        self.n_tokens = schema.n_sparse + schema.n_dense

    def forward(self, dense, ids):
        return torch.cat([self.embedding(ids), dense.unsqueeze(2) * self.dense_vec], dim=1)


class DeepFM(nn.Module):
    """DeepFM (Guo et al. 2017): first-order + FM second-order + DNN on the same
    embeddings. DNN 400-400-400 as in the paper's Criteo setting."""

    def __init__(self, schema: Schema, hidden: tuple[int, ...] = (400, 400, 400)):
        super().__init__()
        self.tokens = _Tokens(schema)
        self.first = nn.Embedding(sum(schema.cardinalities), 1)
        nn.init.zeros_(self.first.weight)
        self.first_dense = nn.Linear(schema.n_dense, 1)
        self.dnn = mlp((self.tokens.n_tokens * EMB_DIM,) + hidden + (1,), last_act=False)

    def forward(self, dense, ids):
        t = self.tokens(dense, ids)
        fm = 0.5 * (t.sum(1) ** 2 - (t ** 2).sum(1)).sum(1)
        emb = self.tokens.embedding
        first = emb.pool(self.first(emb.row_ids(ids))).sum((1, 2)) + self.first_dense(dense).squeeze(1)
        return first + fm + self.dnn(t.flatten(1)).squeeze(1)


class DCNv2(nn.Module):
    """DCN-v2 (Wang et al. 2021), parallel form: full-rank cross layers
    x_{l+1} = x0 * (W x_l + b) + x_l beside a deep MLP; 3 cross layers, MLP 512-256."""

    def __init__(self, schema: Schema, n_cross: int = 3, hidden: tuple[int, ...] = (512, 256)):
        super().__init__()
        self.embedding = FieldEmbedding(schema)
        d = schema.n_dense + schema.n_sparse * EMB_DIM
        self.cross = nn.ModuleList(nn.Linear(d, d) for _ in range(n_cross))
        self.deep = mlp((d,) + hidden)
        self.out = nn.Linear(d + hidden[-1], 1)

    def forward(self, dense, ids):
        x0 = torch.cat([dense, self.embedding(ids).flatten(1)], dim=1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.out(torch.cat([x, self.deep(x0)], dim=1)).squeeze(1)


class AutoInt(nn.Module):
    """AutoInt (Song et al. 2019): 3 multi-head self-attention layers (2 heads, 32-d
    attention, residual) over field tokens, flattened to a logistic output."""

    def __init__(self, schema: Schema, layers: int = 3, heads: int = 2, att_dim: int = 32):
        super().__init__()
        self.tokens = _Tokens(schema)
        self.heads, self.att_dim = heads, att_dim
        dims = [EMB_DIM] + [att_dim] * layers
        self.qkv = nn.ModuleList(nn.Linear(a, 3 * att_dim, bias=False) for a in dims[:-1])
        self.res = nn.ModuleList(nn.Linear(a, att_dim, bias=False) for a in dims[:-1])
        self.out = nn.Linear(self.tokens.n_tokens * att_dim, 1)

    def forward(self, dense, ids):
        x = self.tokens(dense, ids)
        b, n, _ = x.shape
        for qkv, res in zip(self.qkv, self.res):
            q, k, v = qkv(x).view(b, n, 3, self.heads, self.att_dim // self.heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, self.att_dim)
            x = F.relu(a + res(x))
        return self.out(x.flatten(1)).squeeze(1)


class XDeepFM(nn.Module):
    """xDeepFM (Lian et al. 2018): linear + CIN (layers 128-128, sum-pooled) + DNN 400-400.

    The CIN crosses the sparse fields' embeddings only, as deepctr-torch's xDeepFM does
    (the independent implementation of ``benchmarks/baselines_peer.py``); dense features
    reach the linear part and the DNN. (Revision 2: revision 1 also fed the dense-feature
    tokens to the CIN, at 1.7x its FLOPs.)"""

    def __init__(self, schema: Schema, cin: tuple[int, ...] = (128, 128),
                 hidden: tuple[int, ...] = (400, 400)):
        super().__init__()
        self.tokens = _Tokens(schema)
        m = self.tokens.n_tokens
        self.cin_fields = schema.n_sparse  # the first tokens are the sparse fields' embeddings
        sizes = (self.cin_fields,) + cin
        self.cin = nn.ModuleList(nn.Conv1d(self.cin_fields * h, out, 1) for h, out in zip(sizes[:-1], sizes[1:]))
        self.cin_out = nn.Linear(sum(cin), 1)
        self.linear = nn.Linear(m * EMB_DIM, 1)
        self.dnn = mlp((m * EMB_DIM,) + hidden + (1,), last_act=False)

    def forward(self, dense, ids):
        x0 = self.tokens(dense, ids)  # [B, m, D]
        pooled = self.cin_pooled(x0[:, :self.cin_fields])
        flat = x0.flatten(1)
        return (self.cin_out(torch.cat(pooled, 1)) + self.linear(flat) + self.dnn(flat)).squeeze(1)

    def cin_pooled(self, x0: torch.Tensor) -> list[torch.Tensor]:
        """Sum-pooled CIN layer outputs ``[B, H_k]`` of tokens ``x0 [B, m, D]``.

        Each layer is the paper's 1x1 convolution over the ``m x H`` outer products,
        computed as one matmul with the embedding axis leading (``[B, D, m*H] @ W^T``):
        about 30% less CPU time for the CIN's forward and backward than ``Conv1d`` on
        ``[B, m*H, D]`` (measured side by side, one thread, beside other jobs), with the
        same weights and outputs."""
        b, _, d = x0.shape
        x0t = x0.transpose(1, 2)  # [B, D, m]
        x, pooled = x0t, []
        for conv in self.cin:
            z = (x0t.unsqueeze(3) * x.unsqueeze(2)).reshape(b, d, -1)  # channel m_i * H + h_i
            x = F.relu(F.linear(z, conv.weight.squeeze(2), conv.bias))  # [B, D, H_k]
            pooled.append(x.sum(1))
        return pooled


#: Per-baseline training settings that replace the truth recipe's shared lr, schedule and
#: Adagrad eps (``nasrec.scratch.TruthRecipe.for_model``): each chosen by validation log loss at the
#: default truth budget (``benchmarks/baselines_peer.py --tune``, results in
#: ``benchmarks/results/baselines_tune.csv``). Baselines absent here use the shared recipe.
TRAINING: dict[str, dict] = {
    "dcnv2": {"lr": 0.12, "schedule": "cosine"},  # val 0.5087 (shared recipe 0.5119)
    # baselines_tune_eps_deepfm.csv: mean val over seeds 0 and 1 0.5108 (lr 0.01, eps 1e-2:
    # 0.5153); torch's default Adagrad eps 1e-10, which the independent implementation uses
    "deepfm": {"lr": 0.0035, "schedule": "constant", "eps": 1e-10},
    # baselines_tune_xdeepfm.csv (2 threads): val 0.5103 (shared recipe 0.5151)
    "xdeepfm": {"lr": 0.12, "schedule": "cosine"},
}

#: Bumped when a baseline's network changes, so that cached truth of the old network
#: is not reused (``nasrec.scratch.truth_key``); absent means revision 1.
REVISION: dict[str, int] = {"xdeepfm": 2}

BASELINES = {"dlrm": DLRM, "deepfm": DeepFM, "dcnv2": DCNv2, "autoint": AutoInt, "xdeepfm": XDeepFM}


def build_baseline(name: str, schema: Schema, seed: int) -> nn.Module:
    """Baseline ``name`` with initial weights drawn from ``seed``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    with seeded_torch(seed):
        return init_weights(BASELINES[name](schema))
