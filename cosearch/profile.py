"""Models as pimsim workloads: what one inference batch asks of the hardware.

Two profilers produce the same :class:`pimsim.dense.Workload`:

- :func:`arch_workload`: analytic, from an ``ArchSpec`` and a dataset ``Schema``,
  mirroring ``nasrec.model.NasRecModel`` layer by layer (microseconds per call).
- :func:`module_workload`: any torch model of this project (baselines, standalone
  or pruned NASRec models), by running one forward pass under a dispatch mode that
  records every matrix product, attention, embedding lookup and element-wise op.

Both also list the glue an eager forward pass dispatches between those layers, as
element-wise layers of kind "copy" (concatenation, padding, index arithmetic, the copy a
product of a transposed input makes) and "call" (module calls, views, weight slices),
with the same counts from either profiler; a host charges them only with ``glue_ops``.

Embedding tables come from the schema: one table per categorical field with the
schema's lookups per sample (multi-hot fields pool several); an ArchSpec's
per-field embedding choices set each table's dimension and precision, and drop
the tables of dropped fields. Every dense layer holds whole-batch sizes
(an FC layer on batch B is ``Gemm(m=B, n=out, k=in)``).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from nasrec.data import Schema
from nasrec.model import NasRecModel
from nasrec.ops import ATTN_HEADS, D2S_TOKENS, EMB_DIM, dot_tokens
from nasrec.space import ArchSpec, EmbeddingSpec
from pimsim.dense import Elementwise, Gemm, Layer, Reduction, Softmax, Workload
from pimsim.workload import EmbeddingTable

__all__ = ["Precision", "TableSpec", "schema_tables", "arch_workload", "module_workload",
           "gemm_signature", "LAYERNORM_OPS"]

#: Operations per element of a LayerNorm (mean, variance, normalise, scale, shift).
LAYERNORM_OPS = 5


class Precision(str, enum.Enum):
    """Storage precision of the embedding tables."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"

    @property
    def bytes(self) -> int:
        return {"fp32": 4, "fp16": 2, "int8": 1}[self.value]


@dataclass(frozen=True)
class TableSpec:
    """How the embedding tables are stored and read: precision, index distribution and
    ``rows_scale``, a multiplier on every table's rows, to cost a deployment whose
    tables are larger than the data set a model was trained on (production tables hold
    millions to billions of rows; a synthetic training set far fewer)."""

    precision: Precision = Precision.FP32
    distribution: str = "uniform"
    zipf_alpha: float = 1.05
    rows_scale: int = 1

    def __post_init__(self):
        object.__setattr__(self, "precision", Precision(self.precision))
        if isinstance(self.rows_scale, bool) or not isinstance(self.rows_scale, int) or self.rows_scale < 1:
            raise ValueError(f"rows_scale must be a positive integer, got {self.rows_scale!r}")
        if self.distribution not in ("uniform", "zipf"):
            raise ValueError(f"distribution must be 'uniform' or 'zipf', got {self.distribution!r}")
        if not self.zipf_alpha > 0:
            raise ValueError(f"zipf_alpha must be > 0, got {self.zipf_alpha!r}")

    def table(self, rows: int, dim: int, pooling: int, bytes_per_element: int | None = None) -> EmbeddingTable:
        """The pimsim table of a field with ``rows`` rows in the data (scaled by
        ``rows_scale``), at ``bytes_per_element`` (default: this spec's precision)."""
        if bytes_per_element is None:
            bytes_per_element = self.precision.bytes
        return EmbeddingTable(rows=int(rows) * self.rows_scale, dim=dim, bytes_per_element=bytes_per_element,
                              pooling=int(pooling), distribution=self.distribution, zipf_alpha=self.zipf_alpha)


@lru_cache(maxsize=256)
def schema_tables(schema: Schema, tables: TableSpec = TableSpec(), dim: int = EMB_DIM,
                  embedding: EmbeddingSpec | None = None) -> tuple[EmbeddingTable, ...]:
    """One ``rows x dim`` table per categorical field, ``schema.lookups[f]`` lookups per sample.

    With ``embedding`` (an ArchSpec's per-field choices), each field has its own
    dimension and precision, and a dropped field (dimension 0) has no table at all.
    """
    if embedding is None:
        return tuple(tables.table(c, dim, p) for c, p in zip(schema.cardinalities, schema.lookups))
    if embedding.n_fields != schema.n_sparse:
        raise ValueError(f"the architecture chooses embeddings for {embedding.n_fields} fields, "
                         f"the data has {schema.n_sparse}")
    return tuple(tables.table(c, d, p, Precision(q).bytes) for c, p, d, q in
                 zip(schema.cardinalities, schema.lookups, embedding.dims, embedding.precisions) if d > 0)


def _embedding_layers(L: "_Layers", schema: Schema, embedding: EmbeddingSpec | None) -> None:
    """The lookup's dispatch, dequantisation of reduced-precision rows, projections of
    fields not at EMB_DIM, and the glue that ``FieldEmbedding`` runs around them."""
    b = L.b
    L.name, L.part = "embedding", "embedding"
    L.call("module")
    L.copy(b * schema.n_id_columns, "row_ids")
    L.call("table.module", 2)  # the table's module call and its lookup (the gather is the embedding stage)
    multi_hot = schema.pooling is not None
    if embedding is None:
        if multi_hot:
            _pool_glue(L, b * schema.n_id_columns * EMB_DIM, b * schema.n_sparse * EMB_DIM)
        return
    L.part = "embedding_proj"
    groups: dict[int, int] = {}
    dequant = 0
    for d, q, p in zip(embedding.dims, embedding.precisions, schema.lookups):
        if d == 0:
            continue
        if q == "int8":
            dequant += L.b * p * d  # one multiply by the row's scale per element read
        if d != EMB_DIM:
            groups[d] = groups.get(d, 0) + 1
    if dequant:
        L.ew(dequant, "dequant")
    for d, count in sorted(groups.items()):
        L.gemm(L.b, EMB_DIM, d, f"proj{d}", count=count)
    _elastic_glue(L, schema, embedding, bool(dequant))


def _pool_glue(L: "_Layers", read: int, pooled: int) -> None:
    """``FieldEmbedding.pool`` of multi-hot rows: zeros, index_add, a view, the mean's multiply."""
    L.copy(pooled, "pool.new_zeros")
    L.copy(read, "pool.index_add")
    L.call("pool.view")
    L.copy(pooled, "pool.mul")


def _elastic_glue(L: "_Layers", schema: Schema, embedding: EmbeddingSpec, dequant_listed: bool) -> None:
    """The kernels and calls of ``FieldEmbedding._elastic`` beyond the layers listed:
    per (dim, precision) group a gather of its columns, the simulated precision's
    round trip, multi-hot pooling, the projection's weight gather and a scatter into the
    output. Kernels the eager code runs for arithmetic already listed once (the int8
    dequantisation, one projection per dimension) are listed again only per extra group."""
    b = L.b
    L.copy(b * schema.n_sparse * EMB_DIM, "new_zeros")
    groups: dict[tuple[int, str], list[int]] = {}
    for f, (d, q) in enumerate(zip(embedding.dims, embedding.precisions)):
        if d > 0:
            groups.setdefault((d, q), []).append(f)
    seen_dims, first_int8 = set(), dequant_listed
    for (d, q), fields in groups.items():
        cols = sum(schema.lookups[f] for f in fields)
        read = b * cols * d
        L.call("to", 2)
        L.copy(read, "gather")
        if q == "fp16":
            L.copy(read, "fp16.round_trip", 4)  # to half, back, the straight-through sub and add
            L.call("detach")
        elif q == "int8":
            # abs, amax, clamp_min, two divisions, round, clamp, multiply, sub, add
            L.copy(read, "int8.round_trip", 9 if first_int8 else 10)
            first_int8 = False
            L.call("detach", 2)
        if schema.pooling is not None:
            L.copy(b * len(fields) * d, "pool.new_zeros")
            L.call("to")
            L.copy(read, "pool.index_add")
            L.call("to")
            L.call("pool.view")
            L.copy(b * len(fields) * d, "pool.mul")
        if d != EMB_DIM:
            L.copy(len(fields) * d * EMB_DIM, "proj.gather")
            if d in seen_dims:
                L.copy(b * len(fields) * EMB_DIM, "proj.bmm")  # one listed projection per dimension
            seen_dims.add(d)
        L.copy(b * len(fields) * EMB_DIM, "scatter")


class _Layers:
    """Collects layers of one batch ``b`` under a current name prefix and part label."""

    def __init__(self, b: int):
        self.b = b
        self.out: list[Layer] = []
        self.name = ""
        self.part = "dense"

    def gemm(self, m, n, k, tag, weights=True, count=1):
        self.out.append(Gemm(m=m, n=n, k=k, weights=weights, count=count,
                             name=f"{self.name}.{tag}", part=self.part))

    def ew(self, elements, tag, ops=1, inputs=1, kind="elementwise"):
        self.out.append(Elementwise(elements=elements, ops_per_element=ops, inputs=inputs,
                                    name=f"{self.name}.{tag}", part=self.part, kind=kind))

    def ln(self, elements, tag):
        self.ew(elements, tag, ops=LAYERNORM_OPS, kind="layernorm")

    def relu(self, elements, tag="relu"):
        self.ew(elements, tag, kind="activation")

    def call(self, tag, n=1):
        """``n`` Python-level calls that launch no kernel (module calls, views, weight slices)."""
        for _ in range(n):
            self.out.append(Elementwise(elements=1, ops_per_element=0, kind="call",
                                        name=f"{self.name}.{tag}", part=self.part))

    def copy(self, elements, tag, n=1, strided=False):
        """``n`` kernels that the eager code runs beyond the arithmetic listed (copies,
        index arithmetic, and the few arithmetic kernels this profile folds into one layer);
        ``strided``: a transposed view made contiguous."""
        for _ in range(n):
            self.out.append(Elementwise(elements=max(1, int(elements)), ops_per_element=0, kind="copy",
                                        name=f"{self.name}.{tag}", part=self.part, strided=strided))

    def linear(self, m, n, k, tag, bias):
        """An ``ElasticLinear``: its module call, the weight (and bias) slices, the product."""
        self.call(f"{tag}.module")
        self.call(f"{tag}.slice", 2 if bias else 1)
        self.gemm(m, n, k, tag)

    def layernorm(self, elements, tag):
        """An ``ElasticLayerNorm``: its module call, two parameter slices, the normalisation."""
        self.call(f"{tag}.module")
        self.call(f"{tag}.slice", 2)
        self.ln(elements, tag)


def _fc(L: _Layers, k: int, w: int) -> None:
    L.call("module")
    L.linear(L.b, w, k, "lin", bias=False)
    L.layernorm(L.b * w, "ln")
    L.relu(L.b * w)


def _pairwise_glue(L: _Layers, t: int) -> None:
    """``nasrec.ops.pairwise_dots`` around its product: transpose, then the lower
    triangle's indices (tril_indices, unbind, flatten, two integer kernels) and gather."""
    pairs = t * (t - 1) // 2
    L.copy(2 * pairs, "tril_indices")
    L.call("unbind")
    L.call("flatten")
    L.copy(pairs, "index_mul")
    L.copy(pairs, "index_add")
    L.copy(L.b * pairs, "index_select")


def _dot(L: _Layers, dense_in: int, sparse_in: int, w: int, rows: int, relayout: bool) -> None:
    b = L.b
    L.call("module")
    L.linear(b, EMB_DIM, dense_in, "dense_proj", bias=False)
    L.layernorm(b * EMB_DIM, "dense_ln")
    L.call("transpose")
    if relayout:
        L.copy(b * EMB_DIM * sparse_in, "field_proj.layout_copy", strided=True)
    L.linear(b * EMB_DIM, rows, sparse_in, "field_proj", bias=False)
    L.layernorm(b * EMB_DIM * rows, "field_ln")
    t = rows + 1
    L.call("transpose")
    L.call("unsqueeze")
    L.copy(b * t * EMB_DIM, "cat")
    L.call("transpose")
    L.gemm(t, t, EMB_DIM, "pairs", weights=False, count=b)
    _pairwise_glue(L, t)
    L.linear(b, w, t * (t - 1) // 2, "out", bias=False)
    L.layernorm(b * w, "out_ln")


def _gating(L: _Layers, m: int, w: int) -> None:
    L.call("module")
    L.copy(L.b * m, "pad_left")
    L.copy(L.b * m, "pad_right")
    L.linear(L.b, m, m, "gate", bias=True)
    L.ew(L.b * m, "sigmoid", kind="activation")
    L.ew(L.b * m, "mul", inputs=2)
    L.linear(L.b, w, m, "proj", bias=True)
    L.layernorm(L.b * w, "ln")


def _sum(L: _Layers, m: int, w: int) -> None:
    L.call("module")
    L.copy(L.b * m, "pad_left")
    L.copy(L.b * m, "pad_right")
    L.ew(L.b * m, "add", inputs=2, kind="add")
    L.linear(L.b, w, m, "proj", bias=False)
    L.layernorm(L.b * w, "ln")


def _efc(L: _Layers, sparse_in: int, t: int, relayout: bool) -> None:
    L.call("module")
    L.call("transpose")
    if relayout:
        L.copy(L.b * EMB_DIM * sparse_in, "lin.layout_copy", strided=True)
    L.linear(L.b * EMB_DIM, t, sparse_in, "lin", bias=False)
    L.layernorm(L.b * EMB_DIM * t, "ln")
    L.call("transpose")
    L.relu(L.b * EMB_DIM * t)


def _attention(L: _Layers, sparse_in: int, t: int, relayout: bool) -> None:
    b, d, h = L.b, EMB_DIM, ATTN_HEADS
    hd = d // h
    L.call("module")
    L.call("transpose")
    if relayout:
        L.copy(b * d * sparse_in, "lin.layout_copy", strided=True)
    L.linear(b * d, t, sparse_in, "lin", bias=False)
    L.layernorm(b * d * t, "ln")
    L.call("transpose")
    L.copy(b * t * d, "qkv.layout_copy", strided=True)  # its input is always a transposed view
    L.linear(b * t, 3 * d, d, "qkv", bias=True)
    # the input is a transposed view, so torch adds the bias in a kernel of its own
    L.copy(b * t * 3 * d, "qkv.bias")
    L.call("split_heads", 3)  # view, permute, unbind
    L.gemm(t, t, hd, "scores", weights=False, count=b * h)
    L.out.append(Softmax(rows=b * h * t, cols=t, name=f"{L.name}.softmax", part=L.part, queries=t))
    L.gemm(t, hd, t, "context", weights=False, count=b * h)
    L.call("merge_heads", 2)  # transpose, reshape
    L.linear(b * t, d, d, "o", bias=True)
    L.ew(b * t * d, "residual", inputs=2, kind="add")
    L.layernorm(b * t * d, "attn_ln")
    L.linear(b * t, d, d, "fc1", bias=True)
    L.relu(b * t * d)
    L.linear(b * t, d, d, "fc2", bias=True)
    L.ew(b * t * d, "residual2", inputs=2, kind="add")
    L.layernorm(b * t * d, "fc_ln")


def arch_workload(spec: ArchSpec, schema: Schema, *, batch_size: int = 256,
                  tables: TableSpec = TableSpec(), name: str = "") -> Workload:
    """The workload of ``NasRecModel(spec, schema)`` on one batch of ``batch_size`` samples."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    L = _Layers(batch_size)
    L.name, L.part = "model", "glue"
    L.call("module")
    _embedding_layers(L, schema, spec.embedding)
    rows = dot_tokens(spec.search_space.max_width)
    widths, tokens = [schema.n_dense], [schema.n_sparse]
    # whether each sparse output is laid out token-major: EFC returns a transposed view, and a
    # product on the field axis of an input that is laid out so must first copy it
    token_major = [True]
    canon = spec.canonical()  # what NasRecModel builds; blocks that nothing reads do not run
    for i, (blk, live) in enumerate(zip(canon.blocks, canon.live_blocks())):
        if not live:
            widths.append(blk.dense_width)
            tokens.append(blk.sparse_tokens + D2S_TOKENS * blk.dense_sparse_interact)
            token_major.append(True)
            continue
        dense_in = sum(widths[j] for j in set(blk.dense_idx))
        sparse_in = sum(tokens[j] for j in set(blk.sparse_idx))
        w, t = blk.dense_width, blk.sparse_tokens
        # a concatenation is laid out anew; a single input keeps its producer's layout
        relayout = len(blk.sparse_idx) > 1 or token_major[blk.sparse_idx[0]]
        L.name, L.part = f"blocks.{i}", "glue"
        if len(blk.dense_idx) > 1:
            L.copy(batch_size * dense_in, "dense_cat")
        if len(blk.sparse_idx) > 1:
            L.copy(batch_size * sparse_in * EMB_DIM, "sparse_cat")
        L.call("module")
        L.name, L.part = f"blocks.{i}.{blk.dense_op}", blk.dense_op
        if blk.dense_op == "fc":
            _fc(L, dense_in, w)
        elif blk.dense_op == "dot":
            _dot(L, dense_in, sparse_in, w, rows, relayout)
        elif blk.dense_op == "gating":
            _gating(L, max(widths[blk.dense_left_idx], widths[blk.dense_right_idx]), w)
        else:
            _sum(L, max(widths[blk.dense_left_idx], widths[blk.dense_right_idx]), w)
        L.copy(batch_size * w, "block_sum")  # Block.forward's sum() over operators starts from 0 + d
        L.name, L.part = f"blocks.{i}.{blk.sparse_op}", blk.sparse_op
        if blk.sparse_op == "efc":
            _efc(L, sparse_in, t, relayout)
        else:
            _attention(L, sparse_in, t, relayout)
        L.copy(batch_size * t * EMB_DIM, "block_sum")
        L.part = "merger"
        if blk.dense_sparse_interact:
            L.name = f"blocks.{i}.d2s"
            L.call("module")
            L.linear(batch_size, D2S_TOKENS * EMB_DIM, w, "lin", bias=False)
            L.layernorm(batch_size * D2S_TOKENS * EMB_DIM, "ln")
            L.call("view")
        if blk.deep_fm:
            L.name = f"blocks.{i}.fm"
            L.call("module")
            L.ew(batch_size * t * EMB_DIM, "square")
            L.out.append(Reduction(elements=2 * batch_size * t * EMB_DIM, outputs=2 * batch_size * EMB_DIM,
                                   name=f"{L.name}.sums", part="merger"))
            L.ew(batch_size * EMB_DIM, "fm", ops=2, inputs=2)
            # eager runs the FM term as two sums, two squares and a subtraction
            L.copy(batch_size * EMB_DIM, "fm.kernels", 2)
            L.linear(batch_size, w, EMB_DIM, "lin", bias=False)
            L.layernorm(batch_size * w, "ln")
            L.ew(batch_size * w, "add", inputs=2, kind="add")
        if blk.dense_sparse_interact:
            L.name = f"blocks.{i}"
            L.copy(batch_size * (t + D2S_TOKENS) * EMB_DIM, "d2s_cat")
        widths.append(w)
        tokens.append(t + D2S_TOKENS * blk.dense_sparse_interact)
        token_major.append(blk.sparse_op == "attention" or blk.dense_sparse_interact)
    L.name, L.part = "head", "head"
    if not token_major[-1]:
        # EFC's output is a transposed view: flattening it copies
        L.copy(batch_size * tokens[-1] * EMB_DIM, "flatten")
    else:
        L.call("flatten")
    L.copy(batch_size * (widths[-1] + tokens[-1] * EMB_DIM), "cat")
    L.linear(batch_size, 1, widths[-1] + tokens[-1] * EMB_DIM, "lin", bias=True)
    L.call("squeeze")
    return Workload(batch_size=batch_size, tables=schema_tables(schema, tables, embedding=spec.embedding),
                    dense=tuple(L.out), name=name or f"arch:{spec.hash[:16]}")


def gemm_signature(workload: Workload) -> list[tuple[int, int, int, int, bool]]:
    """Sorted ``(m, n, k, count, weights)`` of every Gemm, for comparing profilers.

    A Gemm of ``count`` products with m rows equals one of ``count * m`` rows when it
    multiplies a stationary weight, so weight Gemms are folded to count 1."""
    out = []
    for layer in workload.dense:
        if isinstance(layer, Gemm):
            if layer.weights:
                out.append((layer.m * layer.count, layer.n, layer.k, 1, True))
            else:
                out.append((layer.m, layer.n, layer.k, layer.count, False))
    return sorted(out)


# --- hook profiler -------------------------------------------------------------

_aten = torch.ops.aten
_SDPA = tuple(getattr(_aten, n) for n in (
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_attention_math") if hasattr(_aten, n))
# Element-wise aten ops counted as one operation per output element, by name.
_EW_OPS = {"relu", "sigmoid", "tanh", "add", "sub", "mul", "div", "pow", "exp", "gelu", "neg", "rsqrt",
           "sqrt", "threshold_backward", "clamp", "where", "hardtanh"}
# ... and which of them are activations or sums of two tensors (for host fusion rules)
_ACTIVATIONS = {"relu", "sigmoid", "tanh", "gelu", "threshold_backward", "clamp", "hardtanh"}
_SUMS = {"add", "sub"}
# aten ops that return a view: a Python-level call running only these launches no kernel
_VIEW_OPS = {"view", "_unsafe_view", "alias", "t", "transpose", "permute", "unsqueeze", "squeeze", "expand",
             "slice", "select", "unbind", "split", "split_with_sizes", "chunk", "narrow", "as_strided", "detach",
             "_reshape_alias", "unflatten", "view_as", "expand_as", "lift_fresh", "diagonal", "movedim"}
# aten copies that a compute call runs before its arithmetic (a non-contiguous input made contiguous)
_LAYOUT_COPIES = {"clone", "copy_", "_to_copy", "contiguous"}
# Python-level tensor calls that read metadata only: too cheap to count as a call
_METADATA_CALLS = {"__get__", "size", "dim", "numel", "stride", "is_floating_point", "is_contiguous", "data_ptr",
                   "element_size", "storage_offset", "untyped_storage", "__len__", "__format__", "__repr__",
                   "__hash__", "__index__"}


def _packet(op) -> str:
    return op.overloadpacket.__name__.rstrip("_")


class _Recorder(TorchDispatchMode):
    """Records the layers of the aten ops a forward pass runs."""

    def __init__(self, weight_ptrs: set, embeddings: dict, owner):
        super().__init__()
        self.weight_ptrs, self.embeddings, self.owner = weight_ptrs, embeddings, owner
        self.layers: list[Layer] = []
        self.lookups: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []
        self.aten: list[str] = []  # packets run since the current Python-level call began

    def _is_weight(self, t) -> bool:
        return isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() in self.weight_ptrs

    def _gemm(self, m, n, k, weights, count, tag):
        name, part = self.owner()
        self.layers.append(Gemm(m=int(m), n=int(n), k=int(k), weights=bool(weights), count=int(count),
                                name=f"{name}.{tag}", part=part))

    def glue(self, kind: str, elements: int, tag: str, strided: bool = False) -> None:
        name, part = self.owner()
        self.layers.append(Elementwise(elements=max(1, int(elements)), ops_per_element=0, kind=kind,
                                       name=f"{name}.{tag}", part=part, strided=strided))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        p = _packet(func)
        self.aten.append(p)
        if p in ("mm", "addmm"):
            a, b = (args[1], args[2]) if p == "addmm" else (args[0], args[1])
            self._gemm(a.shape[0], b.shape[1], a.shape[1], self._is_weight(b) or self._is_weight(a), 1, p)
        elif p in ("bmm", "baddbmm"):
            a, b = (args[1], args[2]) if p == "baddbmm" else (args[0], args[1])
            self._gemm(a.shape[1], b.shape[2], a.shape[2], False, a.shape[0], p)
        elif func in _SDPA or p.startswith("_scaled_dot_product"):
            q, k, v = args[:3]
            *lead, s_q, d = q.shape
            s_k, d_v = k.shape[-2], v.shape[-1]
            count = int(torch.tensor(lead).prod()) if lead else 1
            self._gemm(s_q, s_k, d, False, count, "scores")
            name, part = self.owner()
            self.layers.append(Softmax(rows=count * s_q, cols=s_k, name=f"{name}.softmax", part=part, queries=s_q))
            self._gemm(s_q, d_v, s_k, False, count, "context")
        elif p == "convolution":
            x, w = args[0], args[1]
            if w.dim() != 3 or w.shape[2] != 1 or int(kwargs.get("groups", args[8] if len(args) > 8 else 1)) != 1:
                raise ValueError(f"module_workload: only 1-d convolutions of kernel 1 are supported, got weight {tuple(w.shape)}")
            self._gemm(x.shape[0] * x.shape[2], w.shape[0], w.shape[1], True, 1, "conv1x1")
        elif p == "embedding":
            w, ids = args[0], args[1]
            self.lookups.append((w.untyped_storage().data_ptr(), tuple(w.shape), tuple(ids.shape)))
        elif p in ("native_layer_norm", "layer_norm"):
            name, part = self.owner()
            self.layers.append(Elementwise(elements=int(args[0].numel()), ops_per_element=LAYERNORM_OPS,
                                           name=f"{name}.layer_norm", part=part, kind="layernorm"))
        elif p in ("sum", "mean") and isinstance(out, torch.Tensor) and out.numel() < args[0].numel():
            name, part = self.owner()
            self.layers.append(Reduction(elements=int(args[0].numel()), outputs=max(1, int(out.numel())),
                                         name=f"{name}.{p}", part=part))
        elif p in _EW_OPS and isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
            name, part = self.owner()
            n_in = sum(isinstance(a, torch.Tensor) and a.numel() > 1 for a in args) or 1
            kind = ("activation" if p in _ACTIVATIONS else "add" if p in _SUMS and n_in == 2 else "elementwise")
            self.layers.append(Elementwise(elements=int(out.numel()), inputs=int(n_in),
                                           name=f"{name}.{p}", part=part, kind=kind))
        return out


def _numel(out) -> int:
    if isinstance(out, torch.Tensor):
        return int(out.numel())
    if isinstance(out, (tuple, list)):
        return sum(_numel(o) for o in out)
    return 0


class _Calls(TorchFunctionMode):
    """Records the glue of an eager forward pass: every Python-level torch call that
    makes no layer of its own, as a "copy" when it runs a kernel (concatenation,
    padding, index arithmetic) or a "call" when it only makes views."""

    def __init__(self, rec: _Recorder):
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _METADATA_CALLS:
            return func(*args, **(kwargs or {}))
        rec = self.rec
        n_layers, outer = len(rec.layers), rec.aten
        rec.aten = []
        try:
            out = func(*args, **(kwargs or {}))
            ran = rec.aten
        finally:
            rec.aten = outer
        if len(rec.layers) > n_layers:
            if any(p in _LAYOUT_COPIES for p in ran):
                # a product of a transposed input copies it first (matmul's reshape): a kernel of its own
                first = next((a for a in args if isinstance(a, torch.Tensor)), None)
                rec.glue("copy", _numel(first), "layout_copy", strided=True)
        else:
            kernels = [p for p in ran if p not in _VIEW_OPS]
            # what an in-place call (a setitem) writes is its last argument
            elements = _numel(out) or _numel(args[-1] if args else None)
            # a lookup's gather is the embedding stage's to cost; its dispatch is a call
            if kernels and elements and "embedding" not in ran:
                rec.glue("copy", elements, name.strip("_"))
            else:
                rec.glue("call", 1, name.strip("_") or "call")
        return out


_NASREC_PARTS = {"FC": "fc", "DotProduct": "dot", "SigmoidGating": "gating", "Sum": "sum", "EFC": "efc",
                 "Attention": "attention", "DenseToSparse": "merger", "FMToDense": "merger"}


def _part_of(path: list[tuple[str, nn.Module]]) -> str:
    """Part label: the innermost NASRec operator class on the path, else the first
    child's name below the root ('head', 'bottom', 'top', 'cross', ...)."""
    for _, mod in reversed(path):
        part = _NASREC_PARTS.get(type(mod).__name__)
        if part:
            return part
    if len(path) > 1:
        first = path[1][0].split(".")[-1]
        return "head" if first in ("head", "out") else first
    return "dense"


def module_workload(model: nn.Module, inputs: tuple, schema: Schema, *,
                    tables: TableSpec = TableSpec(), name: str = "") -> Workload:
    """Profile one forward pass ``model(*inputs)`` (batch = ``inputs[0].shape[0]``).

    Records every matrix product (mm/addmm as weight Gemms when one operand is a
    parameter, bmm and attention as activation Gemms, kernel-1 convolutions), softmax
    inside attention, LayerNorm, reductions and element-wise arithmetic. Embedding
    lookups become tables: a lookup into one table holding all of the schema's
    fields (``FieldEmbedding``-style, ids ``[B, n_fields]``) becomes the schema's
    per-field tables at the looked-up dim (a NasRecModel with per-field embedding
    choices: at its chosen dims and precisions); any other table is kept whole with its
    lookups per sample as pooling. Runs under ``torch.no_grad`` in eval mode.
    """
    if not inputs or not isinstance(inputs[0], torch.Tensor) or inputs[0].dim() < 1:
        raise ValueError("module_workload: inputs must be a tuple of tensors, batch first")
    batch = int(inputs[0].shape[0])
    names = {id(m): n for n, m in model.named_modules()}
    stack: list[tuple[str, nn.Module]] = []

    rec = None  # set once the recorded pass begins

    def pre(mod, _args):
        stack.append((names.get(id(mod), type(mod).__name__), mod))
        if rec is not None:
            rec.glue("call", 1, "module")  # an eager module call runs Python, no kernel

    def post(mod, _args, _out):
        stack.pop()

    def owner():
        return (stack[-1][0] or "model") if stack else "model", _part_of(stack)

    handles = []
    for mod in model.modules():
        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    weight_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)  # a first pass builds what a model caches (the elastic embedding's groups)
        rec = _Recorder(weight_ptrs, {}, owner)
        with torch.no_grad(), rec, _Calls(rec):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    total_rows = sum(schema.cardinalities)
    # an elastic NasRecModel reads its shared table at the widest dim; what it stores
    # and moves per field are its ArchSpec's dims and precisions
    embedding = model.spec.embedding if isinstance(model, NasRecModel) else None
    out_tables: list[EmbeddingTable] = []
    for _, (rows, dim), ids_shape in rec.lookups:
        if rows == total_rows and len(ids_shape) == 2 and ids_shape[1] == schema.n_id_columns:
            out_tables.extend(schema_tables(schema, tables, dim, embedding))
        else:
            n = 1
            for s in ids_shape:
                n *= s
            out_tables.append(tables.table(rows, dim, max(1, n // batch)))
    return Workload(batch_size=batch, tables=tuple(out_tables), dense=tuple(rec.layers),
                    name=name or type(model).__name__)
