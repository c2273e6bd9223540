"""Blocks and networks shared by the supernet and standalone NASRec models.

``NasRecModel`` builds one ArchSpec as an ordinary ``nn.Module`` at exactly the
widths it needs; ``nasrec.supernet.Supernet`` builds the same blocks at maximum size.
Structured pruning (``nasrec.prune``) removes units from a NasRecModel's weights
(``NasRecModel.plain`` first drops the ones that never matter); the network and its
forward stay this one.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from torch import nn

from nasrec.data import Schema
from nasrec.ops import (ATTN_HEADS, D2S_TOKENS, DENSE_OP_CLASSES, EMB_DIM, HEAD_DIM, SPARSE_OP_CLASSES,
                        Attention, DenseToSparse, DotProduct, ElasticLinear, FMToDense, Ranges, SigmoidGating,
                        Sum, dot_tokens)
from nasrec.embedding import quantize
from nasrec.space import BINARY_OPS, ArchSpec, EmbeddingSpec, SearchSpace

#: Standard deviation of every embedding row at initialisation.
EMB_INIT_STD = 1e-4
#: Bumped when a change of the network or of its initialisation changes what training
#: produces, so that supernets cached by the old network are not reused
#: (2: N(0, 1e-4) embedding rows instead of U(-0.05, 0.05)).
NETWORK_REVISION = 2


class FieldEmbedding(nn.Module):
    """All categorical fields in one table with per-field row offsets.

    ``forward(ids [B, L] int64) -> [B, F, dim]`` with ``L = schema.n_id_columns``;
    id 0 of each field means missing. Multi-hot fields (``schema.pooling``) own
    consecutive columns whose vectors are averaged (``schema.bag`` "mean") or summed
    ("sum") into the field's one vector.
    """

    def __init__(self, schema: Schema, dim: int = EMB_DIM, max_dim: int | None = None):
        super().__init__()
        cards = torch.tensor((0,) + schema.cardinalities[:-1], dtype=torch.int64)
        self.register_buffer("offsets", torch.cumsum(cards, 0), persistent=False)
        self.multi_hot = schema.pooling is not None
        lookups = torch.tensor(schema.lookups, dtype=torch.int64)
        field_of_col = torch.repeat_interleave(torch.arange(schema.n_sparse), lookups)
        # what each field's rows are multiplied by when its bag is pooled (mean or sum)
        self._bag_weight = 1.0 / lookups.to(torch.float32) if schema.bag == "mean" else torch.ones(len(lookups))
        if self.multi_hot:
            self.register_buffer("field_of_col", field_of_col, persistent=False)
            self.register_buffer("col_offsets", self.offsets[field_of_col], persistent=False)
            self.register_buffer("inv_lookups", self._bag_weight.clone(), persistent=False)
        self.n_fields, self.dim = schema.n_sparse, dim
        self._cols = [torch.nonzero(field_of_col == f).flatten() for f in range(schema.n_sparse)]
        self._lookups = schema.lookups
        self._groups: dict = {}
        # elastic: one table at max_dim, per-field prefixes and projections (nasrec.embedding)
        self.elastic = max_dim is not None
        self.max_dim = max_dim if self.elastic else dim
        self.table = nn.Embedding(sum(schema.cardinalities), self.max_dim)
        # N(0, 1e-4) as deepctr-torch: a near-zero start lets Adagrad's first, sign-like
        # updates set the scale (N(0, 1) saturates the FM terms). Against the earlier
        # U(-0.05, 0.05) it took the four best truth architectures from 0.5116-0.5137 to
        # about 0.508-0.510 test log loss (issue 14's notes, 2026-12-01).
        nn.init.normal_(self.table.weight, 0.0, EMB_INIT_STD)
        if self.elastic:
            # scaled so a projected token has about the variance of an unprojected one
            self.proj = nn.Parameter(torch.randn(schema.n_sparse, self.max_dim, dim) / dim ** 0.5)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Per-column rows ``[B, L, ...]`` -> per-field means or sums ``[B, F, ...]`` (one-hot: as is)."""
        if not self.multi_hot:
            return x
        out = x.new_zeros((x.shape[0], self.n_fields) + tuple(x.shape[2:]))
        out.index_add_(1, self.field_of_col, x)
        return out * self.inv_lookups.view((1, -1) + (1,) * (x.dim() - 2))

    def row_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of the shared table that ``ids`` name."""
        return ids + (self.col_offsets if self.multi_hot else self.offsets)

    def forward(self, ids: torch.Tensor, spec: EmbeddingSpec | None = None) -> torch.Tensor:
        rows = self.table(self.row_ids(ids))
        if spec is None:
            if self.max_dim < self.dim:
                raise ValueError(f"this embedding holds {self.max_dim} dims; it needs an embedding spec")
            x = self.pool(rows)
            return x[..., :self.dim] if self.elastic else x
        if not self.elastic:
            raise ValueError("per-field embedding choices need an elastic embedding (build with max_dim)")
        return self._elastic(rows, spec)

    def _group_index(self, spec: EmbeddingSpec):
        """Per (dim, precision) group: its fields, their columns, each column's field within it."""
        key = (spec.dims, spec.precisions)
        if key not in self._groups:
            if spec.n_fields != self.n_fields:
                raise ValueError(f"embedding spec has {spec.n_fields} fields, the data has {self.n_fields}")
            if max(spec.dims) > self.max_dim:
                raise ValueError(f"embedding dim {max(spec.dims)} exceeds this table's {self.max_dim}")
            groups = {}
            for f, (d, p) in enumerate(zip(spec.dims, spec.precisions)):
                if d > 0:
                    groups.setdefault((d, p), []).append(f)
            out = []
            for (d, p), fields in groups.items():
                cols = torch.cat([self._cols[f] for f in fields])
                local = torch.repeat_interleave(torch.arange(len(fields)),
                                                torch.tensor([self._lookups[f] for f in fields]))
                fields = torch.tensor(fields)
                out.append((d, p, fields, cols, local, self._bag_weight[fields]))
            self._groups[key] = out
        return self._groups[key]

    def _elastic(self, rows: torch.Tensor, spec: EmbeddingSpec) -> torch.Tensor:
        out = rows.new_zeros(rows.shape[0], self.n_fields, self.dim)
        dev = rows.device
        for d, p, fields, cols, local, inv in self._group_index(spec):
            fields, cols = fields.to(dev), cols.to(dev)
            x = quantize(rows[:, cols, :d], p)  # stored precision, read back
            if self.multi_hot:
                pooled = x.new_zeros(x.shape[0], len(fields), d)
                x = pooled.index_add_(1, local.to(dev), x) * inv.to(dev).view(1, -1, 1)
            if d != self.dim:
                x = torch.einsum("bfd,fde->bfe", x, self.proj[fields, :d])
            out[:, fields] = x
        return out

    def load_prefix(self, other: "FieldEmbedding") -> None:
        """Copy ``other``'s table and projections, cut to this embedding's sizes."""
        with torch.no_grad():
            self.table.weight.copy_(other.table.weight[:, :self.max_dim])
            if self.elastic:
                self.proj.copy_(other.proj[:, :self.max_dim])


@dataclass(frozen=True)
class Choice:
    """What one block runs: an ArchSpec block, or several operators at once (warm-up)."""

    dense_idx: tuple[int, ...]
    sparse_idx: tuple[int, ...]
    left: int
    right: int
    dense_ops: tuple[str, ...]
    sparse_ops: tuple[str, ...]
    width: int
    tokens: int
    interact: bool
    fm: bool


class Path(tuple):
    """The per-block Choices of one forward pass, and its embedding choice
    (``embedding``: an EmbeddingSpec, or None for the published embedding)."""

    def __new__(cls, choices, embedding: EmbeddingSpec | None = None):
        obj = super().__new__(cls, choices)
        obj.embedding = embedding
        return obj


def path_of(spec: ArchSpec) -> Path:
    """The per-block choices of an ArchSpec's canonical form (``ArchSpec.canonical``:
    inputs in ascending order, blocks that nothing reads replaced by the smallest one)."""
    spec = spec.canonical()
    return Path((Choice(tuple(sorted(b.dense_idx)), tuple(sorted(b.sparse_idx)), b.dense_left_idx,
                        b.dense_right_idx, (b.dense_op,), (b.sparse_op,), b.dense_width,
                        b.sparse_tokens, b.dense_sparse_interact, b.deep_fm) for b in spec.blocks),
                spec.embedding)


def live_mask(path) -> list[bool]:
    """Whether each block of ``path`` can reach the head (as ``ArchSpec.live_blocks``)."""
    live = [False] * len(path)
    live[-1] = True
    for i in range(len(path) - 1, -1, -1):
        if live[i]:
            c = path[i]
            reads = set(c.dense_idx) | set(c.sparse_idx)
            if any(op in BINARY_OPS for op in c.dense_ops):
                reads |= {c.left, c.right}
            for j in reads:
                if j >= 1:
                    live[j - 1] = True
    return live


class Block(nn.Module):
    """One choice block holding the operators in ``dense_ops``/``sparse_ops``.

    Inputs: dense ``[B, dense_in]``, sparse ``[B, sparse_in, 16]`` (each with weight
    column ranges, or None for all), left/right ``[B, <= binary_in]``.
    Outputs: dense ``[B, width]`` and sparse ``[B, tokens (+8 if interact), 16]``.
    """

    def __init__(self, dense_in: int, sparse_in: int, binary_in: int, max_width: int,
                 max_tokens: int, dense_ops, sparse_ops, d2s: bool, fm: bool, dot_rows: int):
        super().__init__()
        built = {}
        for op in dense_ops:
            if op == "dot":
                built[op] = DotProduct(dense_in, sparse_in, max_width, dot_rows)
            elif op in BINARY_OPS:
                built[op] = DENSE_OP_CLASSES[op](binary_in, max_width)
            else:
                built[op] = DENSE_OP_CLASSES[op](dense_in, max_width)
        self.dense_ops = nn.ModuleDict(built)
        self.sparse_ops = nn.ModuleDict({op: SPARSE_OP_CLASSES[op](sparse_in, max_tokens)
                                         for op in sparse_ops})
        self.d2s = DenseToSparse(max_width) if d2s else None
        self.fm = FMToDense(max_width) if fm else None

    def forward(self, dense, dense_ranges: Ranges | None, sparse, sparse_ranges: Ranges | None,
                left, right, c: Choice):
        d = sum(self.dense_ops[op](dense, dense_ranges, sparse, sparse_ranges, left, right, c.width)
                for op in c.dense_ops)
        s = sum(self.sparse_ops[op](sparse, sparse_ranges, c.tokens) for op in c.sparse_ops)
        # As in the official block: the dense-to-sparse projection reads the dense
        # output before the FM term is added, and the FM reads the tokens before the
        # projected ones are appended.
        extra = self.d2s(d) if c.interact else None
        if c.fm:
            d = d + self.fm(s, c.width)
        if extra is not None:
            s = torch.cat([s, extra], dim=1)
        return d, s


class _Layout:
    """Where each source's features sit in a supernet weight's input columns."""

    def __init__(self, n_dense: int, n_fields: int, max_width: int, max_tokens: int):
        self.n_dense, self.n_fields = n_dense, n_fields
        self.max_width, self.max_tokens = max_width, max_tokens
        self.slot_tokens = max_tokens + D2S_TOKENS

    def dense_ranges(self, idx, widths) -> Ranges:
        return _merge(((self._d_off(j), self._d_off(j) + widths[j]) for j in idx))

    def sparse_ranges(self, idx, path) -> Ranges:
        out = []
        for j in idx:
            if j == 0:
                out.append((0, self.n_fields))
                continue
            off = self.n_fields + (j - 1) * self.slot_tokens
            c = path[j - 1]
            out.append((off, off + c.tokens))
            if c.interact:
                out.append((off + self.max_tokens, off + self.slot_tokens))
        return _merge(out)

    def head_ranges(self, c: Choice) -> Ranges:
        w, t = self.max_width, self.max_tokens
        out = [(0, c.width), (w, w + c.tokens * EMB_DIM)]
        if c.interact:
            out.append((w + t * EMB_DIM, w + self.slot_tokens * EMB_DIM))
        return _merge(out)

    def _d_off(self, j: int) -> int:
        return 0 if j == 0 else self.n_dense + (j - 1) * self.max_width


def _merge(ranges) -> Ranges:
    out: list[list[int]] = []
    for a, b in ranges:
        if out and out[-1][1] == a:
            out[-1][1] = b
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


class _Network(nn.Module):
    """Embedding, blocks, head; runs a path of Choices. ``layout`` None = exact sizes."""

    def __init__(self, schema: Schema, space: SearchSpace, emb_max_dim: int | None = None):
        super().__init__()
        self.schema, self.space = schema, space
        self.embedding = FieldEmbedding(schema, max_dim=emb_max_dim)
        self.dot_rows = dot_tokens(space.max_width)

    def _run(self, dense: torch.Tensor, ids: torch.Tensor, path, layout: _Layout | None,
             features_only: bool = False) -> torch.Tensor:
        ds = [dense]
        ss = [self.embedding(ids, getattr(path, "embedding", None))]
        for block, c, live in zip(self.blocks, path, live_mask(path)):
            if not live:  # its output reaches nothing: not run
                ds.append(None)
                ss.append(None)
                continue
            dx = ds[c.dense_idx[0]] if len(c.dense_idx) == 1 else torch.cat([ds[j] for j in c.dense_idx], 1)
            sx = ss[c.sparse_idx[0]] if len(c.sparse_idx) == 1 else torch.cat([ss[j] for j in c.sparse_idx], 1)
            dr = sr = None
            if layout is not None:
                dr = layout.dense_ranges(c.dense_idx, [0 if t is None else t.shape[1] for t in ds])
                sr = layout.sparse_ranges(c.sparse_idx, path)
            d, s = block(dx, dr, sx, sr, ds[c.left], ds[c.right], c)
            ds.append(d)
            ss.append(s)
        feats = torch.cat([ds[-1], ss[-1].flatten(1)], dim=1)
        if features_only:
            return feats
        hr = None if layout is None else layout.head_ranges(path[-1])
        return self.head(feats, None, hr).squeeze(1)


class NasRecModel(_Network):
    """A standalone NASRec model for one ArchSpec. ``forward(dense [B, n_dense],
    ids [B, n_fields]) -> logits [B]``."""

    def __init__(self, spec: ArchSpec, schema: Schema):
        emb_max_dim = max(spec.embedding.dims) if spec.embedding is not None else None
        super().__init__(schema, spec.search_space, emb_max_dim)
        self.spec = spec
        self.path = path_of(spec)
        widths = [schema.n_dense]
        tokens = [schema.n_sparse]
        blocks = []
        for c in self.path:
            blocks.append(Block(
                dense_in=sum(widths[j] for j in c.dense_idx),
                sparse_in=sum(tokens[j] for j in c.sparse_idx),
                binary_in=max(widths[c.left], widths[c.right]),
                max_width=c.width, max_tokens=c.tokens, dense_ops=c.dense_ops,
                sparse_ops=c.sparse_ops, d2s=c.interact, fm=c.fm, dot_rows=self.dot_rows))
            widths.append(c.width)
            tokens.append(c.tokens + D2S_TOKENS * c.interact)
        self.blocks = nn.ModuleList(blocks)
        self.head = ElasticLinear(widths[-1] + tokens[-1] * EMB_DIM, 1)
        self.is_plain = False  # see plain()

    def forward(self, dense: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self._run(dense, ids, self.path, None)

    def plain(self) -> NasRecModel:
        """A copy with the same outputs whose every weight is used whole, the form that
        pruning and FLOP counting read: gate rows and columns of the binary operators
        that only meet zero padding dropped, each Sum input added at explicit columns,
        attention products as matmuls. Needs the published embedding."""
        out = copy.deepcopy(self)
        out._make_plain()
        return out

    def _make_plain(self) -> None:
        if self.is_plain:
            return
        if self.spec.embedding is not None:
            raise ValueError("per-field embedding choices cannot be pruned or counted; "
                             "use an architecture with the published embedding")
        widths = [self.schema.n_dense] + [c.width for c in self.path]
        dev = self.head.weight.device
        for block, c in zip(self.blocks, self.path):
            dop = block.dense_ops[c.dense_ops[0]]
            if isinstance(dop, SigmoidGating):
                dop.trim(widths[c.left], widths[c.right])
            elif isinstance(dop, Sum):
                dop.place(torch.arange(widths[c.left], device=dev), torch.arange(widths[c.right], device=dev))
            for op in block.sparse_ops.values():
                if isinstance(op, Attention):
                    op.explicit = True
        self.is_plain = True

    def sync_sizes(self) -> None:
        """Re-read every block's width and token count from its weights (after pruning
        surgery or loading pruned weights), so that its forward uses all of them."""
        self.path = Path((replace(c, width=block_width(b, c), tokens=block_tokens(b, c))
                          for b, c in zip(self.blocks, self.path)), self.path.embedding)

    @property
    def emb_dim(self) -> int:
        """Columns of the embedding table (16 unless pruned, or the largest per-field choice)."""
        return self.embedding.table.weight.shape[1]

    def describe(self) -> dict:
        """ArchSpec-like description: the official JSON shape with the sizes read from
        the weights (``dense_in_dims``/``sparse_in_dims``, so pruned ones) plus
        ``heads``, ``dot_rows`` per block and ``emb_dim``; ``fits_space`` says whether
        it is an ArchSpec."""
        d = self.spec.to_dict()
        for m, b, c in zip(d["micro"], self.blocks, self.path):
            m["dense_in_dims"], m["sparse_in_dims"] = block_width(b, c), c.tokens
            m["heads"] = _heads(b, c)
            m["dot_rows"] = _dot_rows(b, c)
        d["emb_dim"] = self.emb_dim
        d["fits_space"] = self.to_archspec() is not None
        return d

    def to_archspec(self) -> ArchSpec | None:
        """The ArchSpec of this model if every size still lies in the search space
        (widths, token counts, 8 heads, full dot rows, 16-d embeddings), else None."""
        space = self.spec.search_space
        if self.spec.embedding is None and self.emb_dim != EMB_DIM:
            return None
        d = self.spec.to_dict()
        for m, b, c in zip(d["micro"], self.blocks, self.path):
            if _heads(b, c) not in (None, ATTN_HEADS) or _dot_rows(b, c) not in (None, self.dot_rows):
                return None
            w, t = block_width(b, c), c.tokens
            if w not in space.dense_widths or t not in space.sparse_tokens:
                return None
            m["dense_in_dims"], m["sparse_in_dims"] = w, t
        return ArchSpec.from_dict(d)


def block_width(block: Block, c: Choice) -> int:
    """Dense output width of a NasRecModel block (the size of its last LayerNorm)."""
    op = block.dense_ops[c.dense_ops[0]]
    return (op.out_ln if isinstance(op, DotProduct) else op.ln).weight.shape[0]


def block_tokens(block: Block, c: Choice) -> int:
    """Tokens that a NasRecModel block's sparse operator makes (before the merger's 8)."""
    return block.sparse_ops[c.sparse_ops[0]].ln.weight.shape[0]


def _heads(block: Block, c: Choice) -> int | None:
    op = block.sparse_ops[c.sparse_ops[0]]
    return op.o.in_features // HEAD_DIM if isinstance(op, Attention) else None


def _dot_rows(block: Block, c: Choice) -> int | None:
    op = block.dense_ops[c.dense_ops[0]]
    return op.field_proj.out_features if isinstance(op, DotProduct) else None
