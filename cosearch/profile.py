"""Models as pimsim workloads: what one inference batch asks of the hardware.

Two profilers produce the same :class:`pimsim.dense.Workload`:

- :func:`arch_workload`: analytic, from an ``ArchSpec`` and a dataset ``Schema``,
  mirroring ``nasrec.model.NasRecModel`` layer by layer (microseconds per call).
- :func:`module_workload`: any torch model of this project (baselines, standalone
  or pruned NASRec models), by running one forward pass under a dispatch mode that
  records every matrix product, attention, embedding lookup and element-wise op.

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
    """Dequantisation of reduced-precision rows and projections of fields not at EMB_DIM."""
    if embedding is None:
        return
    L.name, L.part = "embedding", "embedding_proj"
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

    def ew(self, elements, tag, ops=1, inputs=1):
        self.out.append(Elementwise(elements=elements, ops_per_element=ops, inputs=inputs,
                                    name=f"{self.name}.{tag}", part=self.part))

    def ln(self, elements, tag):
        self.ew(elements, tag, ops=LAYERNORM_OPS)


def _fc(L: _Layers, k: int, w: int) -> None:
    L.gemm(L.b, w, k, "lin")
    L.ln(L.b * w, "ln")
    L.ew(L.b * w, "relu")


def _dot(L: _Layers, dense_in: int, sparse_in: int, w: int, rows: int) -> None:
    b = L.b
    L.gemm(b, EMB_DIM, dense_in, "dense_proj")
    L.ln(b * EMB_DIM, "dense_ln")
    L.gemm(b * EMB_DIM, rows, sparse_in, "field_proj")
    L.ln(b * EMB_DIM * rows, "field_ln")
    t = rows + 1
    L.gemm(t, t, EMB_DIM, "pairs", weights=False, count=b)
    L.gemm(b, w, t * (t - 1) // 2, "out")
    L.ln(b * w, "out_ln")


def _gating(L: _Layers, m: int, w: int) -> None:
    L.gemm(L.b, m, m, "gate")
    L.ew(L.b * m, "sigmoid")
    L.ew(L.b * m, "mul", inputs=2)
    L.gemm(L.b, w, m, "proj")
    L.ln(L.b * w, "ln")


def _sum(L: _Layers, m: int, w: int) -> None:
    L.ew(L.b * m, "add", inputs=2)
    L.gemm(L.b, w, m, "proj")
    L.ln(L.b * w, "ln")


def _efc(L: _Layers, sparse_in: int, t: int) -> None:
    L.gemm(L.b * EMB_DIM, t, sparse_in, "lin")
    L.ln(L.b * EMB_DIM * t, "ln")
    L.ew(L.b * EMB_DIM * t, "relu")


def _attention(L: _Layers, sparse_in: int, t: int) -> None:
    b, d, h = L.b, EMB_DIM, ATTN_HEADS
    hd = d // h
    L.gemm(b * d, t, sparse_in, "lin")
    L.ln(b * d * t, "ln")
    L.gemm(b * t, 3 * d, d, "qkv")
    L.gemm(t, t, hd, "scores", weights=False, count=b * h)
    L.out.append(Softmax(rows=b * h * t, cols=t, name=f"{L.name}.softmax", part=L.part))
    L.gemm(t, hd, t, "context", weights=False, count=b * h)
    L.gemm(b * t, d, d, "o")
    L.ew(b * t * d, "residual", inputs=2)
    L.ln(b * t * d, "attn_ln")
    L.gemm(b * t, d, d, "fc1")
    L.ew(b * t * d, "relu")
    L.gemm(b * t, d, d, "fc2")
    L.ew(b * t * d, "residual2", inputs=2)
    L.ln(b * t * d, "fc_ln")


def arch_workload(spec: ArchSpec, schema: Schema, *, batch_size: int = 256,
                  tables: TableSpec = TableSpec(), name: str = "") -> Workload:
    """The workload of ``NasRecModel(spec, schema)`` on one batch of ``batch_size`` samples."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    L = _Layers(batch_size)
    _embedding_layers(L, schema, spec.embedding)
    rows = dot_tokens(spec.search_space.max_width)
    widths, tokens = [schema.n_dense], [schema.n_sparse]
    canon = spec.canonical()  # what NasRecModel builds; blocks that nothing reads do not run
    for i, (blk, live) in enumerate(zip(canon.blocks, canon.live_blocks())):
        if not live:
            widths.append(blk.dense_width)
            tokens.append(blk.sparse_tokens + D2S_TOKENS * blk.dense_sparse_interact)
            continue
        dense_in = sum(widths[j] for j in set(blk.dense_idx))
        sparse_in = sum(tokens[j] for j in set(blk.sparse_idx))
        w, t = blk.dense_width, blk.sparse_tokens
        L.name, L.part = f"blocks.{i}.{blk.dense_op}", blk.dense_op
        if blk.dense_op == "fc":
            _fc(L, dense_in, w)
        elif blk.dense_op == "dot":
            _dot(L, dense_in, sparse_in, w, rows)
        elif blk.dense_op == "gating":
            _gating(L, max(widths[blk.dense_left_idx], widths[blk.dense_right_idx]), w)
        else:
            _sum(L, max(widths[blk.dense_left_idx], widths[blk.dense_right_idx]), w)
        L.name, L.part = f"blocks.{i}.{blk.sparse_op}", blk.sparse_op
        if blk.sparse_op == "efc":
            _efc(L, sparse_in, t)
        else:
            _attention(L, sparse_in, t)
        L.part = "merger"
        if blk.dense_sparse_interact:
            L.name = f"blocks.{i}.d2s"
            L.gemm(batch_size, D2S_TOKENS * EMB_DIM, w, "lin")
            L.ln(batch_size * D2S_TOKENS * EMB_DIM, "ln")
        if blk.deep_fm:
            L.name = f"blocks.{i}.fm"
            L.ew(batch_size * t * EMB_DIM, "square")
            L.out.append(Reduction(elements=2 * batch_size * t * EMB_DIM, outputs=2 * batch_size * EMB_DIM,
                                   name=f"{L.name}.sums", part="merger"))
            L.ew(batch_size * EMB_DIM, "fm", ops=2, inputs=2)
            L.gemm(batch_size, w, EMB_DIM, "lin")
            L.ln(batch_size * w, "ln")
            L.ew(batch_size * w, "add", inputs=2)
        widths.append(w)
        tokens.append(t + D2S_TOKENS * blk.dense_sparse_interact)
    L.name, L.part = "head", "head"
    L.gemm(batch_size, 1, widths[-1] + tokens[-1] * EMB_DIM, "lin")
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


def _packet(op) -> str:
    return op.overloadpacket.__name__.rstrip("_")


class _Recorder(TorchDispatchMode):
    """Records the layers of the aten ops a forward pass runs."""

    def __init__(self, weight_ptrs: set, embeddings: dict, owner):
        super().__init__()
        self.weight_ptrs, self.embeddings, self.owner = weight_ptrs, embeddings, owner
        self.layers: list[Layer] = []
        self.lookups: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []

    def _is_weight(self, t) -> bool:
        return isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() in self.weight_ptrs

    def _gemm(self, m, n, k, weights, count, tag):
        name, part = self.owner()
        self.layers.append(Gemm(m=int(m), n=int(n), k=int(k), weights=bool(weights), count=int(count),
                                name=f"{name}.{tag}", part=part))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        p = _packet(func)
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
            self.layers.append(Softmax(rows=count * s_q, cols=s_k, name=f"{name}.softmax", part=part))
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
                                           name=f"{name}.layer_norm", part=part))
        elif p in ("sum", "mean") and isinstance(out, torch.Tensor) and out.numel() < args[0].numel():
            name, part = self.owner()
            self.layers.append(Reduction(elements=int(args[0].numel()), outputs=max(1, int(out.numel())),
                                         name=f"{name}.{p}", part=part))
        elif p in _EW_OPS and isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
            name, part = self.owner()
            n_in = sum(isinstance(a, torch.Tensor) and a.numel() > 1 for a in args) or 1
            self.layers.append(Elementwise(elements=int(out.numel()), inputs=int(n_in),
                                           name=f"{name}.{p}", part=part))
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

    def pre(mod, _args):
        stack.append((names.get(id(mod), type(mod).__name__), mod))

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
    rec = _Recorder(weight_ptrs, {}, owner)
    try:
        with torch.no_grad(), rec:
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
