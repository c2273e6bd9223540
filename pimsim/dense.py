"""Whole-inference workloads as numbers: embedding bags plus dense layers.

A dense layer is one of four shapes; attention and the NASRec operators are
written with them (cosearch's profiler does that for torch models). Every layer
holds the sizes of one whole batch: a fully connected layer on a batch of B
samples is ``Gemm(m=B, n=out, k=in)``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .config import _check_int, _coerce_enum
from .workload import EmbeddingTable, EmbeddingWorkload, Placement

__all__ = ["Gemm", "Elementwise", "Reduction", "Softmax", "Layer", "Workload", "load_workload",
           "builtin_workloads", "workload_from_dict", "ELEMENTWISE_KINDS", "GLUE_KINDS", "layer_kind"]


def _check_name(obj) -> None:
    for name in ("name", "part"):
        if not isinstance(getattr(obj, name), str):
            raise ValueError(f"{type(obj).__name__}.{name} must be a string, got {getattr(obj, name)!r}")


@dataclass(frozen=True)
class Gemm:
    """``count`` independent products (m x k) @ (k x n).

    ``weights=True``: the k x n operand is a stationary weight matrix, the same
    for every sample, so it can stay in PIM banks or crossbar cells. ``False``:
    both operands are activations (attention scores, dot-product interactions).
    """

    m: int
    n: int
    k: int
    bytes_per_element: int = 4
    weights: bool = True
    count: int = 1
    name: str = ""
    part: str = "dense"

    op = "gemm"

    def __post_init__(self) -> None:
        for f in ("m", "n", "k", "bytes_per_element", "count"):
            _check_int(self, f)
        if not isinstance(self.weights, bool):
            raise ValueError(f"Gemm.weights must be true or false, got {self.weights!r}")
        _check_name(self)

    @property
    def flops(self) -> int:
        return 2 * self.m * self.n * self.k * self.count

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k * self.count

    @property
    def weight_bytes(self) -> int:
        """Bytes of the stationary weight operand (0 for activation x activation)."""
        return self.k * self.n * self.bytes_per_element * self.count if self.weights else 0

    @property
    def in_bytes(self) -> int:
        """Activation bytes read (both operands when neither is a weight)."""
        b = self.m * self.k
        if not self.weights:
            b += self.k * self.n
        return b * self.bytes_per_element * self.count

    @property
    def out_bytes(self) -> int:
        return self.m * self.n * self.bytes_per_element * self.count


#: What an element-wise layer is, so that a host can say which kinds it fuses
#: (``[host] fuse``): "activation" (ReLU, sigmoid, ...), "layernorm", "add" (a sum of
#: two tensors, e.g. a residual), "elementwise" (any other arithmetic), and two kinds
#: that do no arithmetic, the glue between operators in an eager runtime: "copy" (moves
#: data: concatenation, padding, index gathers) and "call" (moves nothing: a view, a
#: reshape, an indexing, a module's call). Hosts charge glue only with ``glue_ops``.
ELEMENTWISE_KINDS = ("elementwise", "activation", "layernorm", "add", "copy", "call")
GLUE_KINDS = ("copy", "call")


@dataclass(frozen=True)
class Elementwise:
    """``ops_per_element`` operations on each of ``elements`` outputs, reading ``inputs`` tensors.

    ``kind``: one of :data:`ELEMENTWISE_KINDS`. Glue ("copy", "call") does no
    arithmetic; a "call" also moves no bytes. ``strided``: a copy that reads a
    transposed view into a contiguous layout (the copy before a product of a transposed
    input), which a CPU runs far below its streaming rate (``[host] strided_copy_gbps``).
    """

    elements: int
    ops_per_element: int = 1
    inputs: int = 1
    bytes_per_element: int = 4
    name: str = ""
    part: str = "dense"
    kind: str = "elementwise"
    strided: bool = False

    op = "elementwise"

    def __post_init__(self) -> None:
        if self.kind not in ELEMENTWISE_KINDS:
            raise ValueError(f"Elementwise.kind must be one of {', '.join(ELEMENTWISE_KINDS)}, got {self.kind!r}")
        for f in ("elements", "inputs", "bytes_per_element"):
            _check_int(self, f)
        _check_int(self, "ops_per_element", 0 if self.kind in GLUE_KINDS else 1)
        if not isinstance(self.strided, bool):
            raise ValueError(f"Elementwise.strided must be true or false, got {self.strided!r}")
        if self.strided and self.kind != "copy":
            raise ValueError(f"Elementwise.strided applies to kind 'copy' only, got kind {self.kind!r}")
        _check_name(self)

    @property
    def flops(self) -> int:
        return 0 if self.kind in GLUE_KINDS else self.elements * self.ops_per_element

    weight_bytes = 0

    @property
    def in_bytes(self) -> int:
        return 0 if self.kind == "call" else self.elements * self.inputs * self.bytes_per_element

    @property
    def out_bytes(self) -> int:
        return 0 if self.kind == "call" else self.elements * self.bytes_per_element


@dataclass(frozen=True)
class Reduction:
    """Sum ``elements`` inputs down to ``outputs`` values (pooling, concatenated sums)."""

    elements: int
    outputs: int
    bytes_per_element: int = 4
    name: str = ""
    part: str = "dense"

    op = "reduction"

    def __post_init__(self) -> None:
        for f in ("elements", "outputs", "bytes_per_element"):
            _check_int(self, f)
        if self.outputs > self.elements:
            raise ValueError(f"Reduction.outputs {self.outputs} exceeds its elements {self.elements}")
        _check_name(self)

    @property
    def flops(self) -> int:
        return self.elements - self.outputs

    weight_bytes = 0

    @property
    def in_bytes(self) -> int:
        return self.elements * self.bytes_per_element

    @property
    def out_bytes(self) -> int:
        return self.outputs * self.bytes_per_element


# max, subtract, exp, sum, divide per element; exp counted as one operation
SOFTMAX_OPS_PER_ELEMENT = 5


@dataclass(frozen=True)
class Softmax:
    """Softmax over the last axis of a ``rows`` x ``cols`` tensor.

    In attention, ``rows`` are the queries of all (batch, head) pairs and ``cols`` the
    keys; ``queries`` is the number of queries per pair, which a host with ``[host]
    attention_block_rows`` needs to count its blocks (0: not an attention's softmax, or
    not known; then the softmax rate applies).
    """

    rows: int
    cols: int
    bytes_per_element: int = 4
    name: str = ""
    part: str = "dense"
    queries: int = 0

    op = "softmax"

    def __post_init__(self) -> None:
        for f in ("rows", "cols", "bytes_per_element"):
            _check_int(self, f)
        _check_int(self, "queries", 0)
        if self.queries and self.rows % self.queries:
            raise ValueError(f"Softmax.rows {self.rows} is not a multiple of its queries per (batch, head) pair "
                             f"{self.queries}")
        _check_name(self)

    @property
    def flops(self) -> int:
        return SOFTMAX_OPS_PER_ELEMENT * self.rows * self.cols

    weight_bytes = 0

    @property
    def in_bytes(self) -> int:
        return self.rows * self.cols * self.bytes_per_element

    @property
    def out_bytes(self) -> int:
        return self.rows * self.cols * self.bytes_per_element


Layer = Gemm | Elementwise | Reduction | Softmax
_LAYER_TYPES = {cls.op: cls for cls in (Gemm, Elementwise, Reduction, Softmax)}


def layer_kind(layer: Layer) -> str:
    """The kind that host fusion rules read: "gemm" (a weight GEMM), "matmul" (activation
    x activation), "softmax", "reduction", or an element-wise layer's ``kind``."""
    if isinstance(layer, Gemm):
        return "gemm" if layer.weights else "matmul"
    if isinstance(layer, Elementwise):
        return layer.kind
    return layer.op


@dataclass(frozen=True)
class Workload:
    """What one inference batch asks of the hardware: embedding bags, then dense layers in order."""

    batch_size: int
    tables: tuple[EmbeddingTable, ...] = ()
    dense: tuple[Layer, ...] = ()
    placement: Placement = Placement.CONTIGUOUS
    name: str = ""

    def __post_init__(self) -> None:
        _check_int(self, "batch_size")
        object.__setattr__(self, "tables", tuple(self.tables))
        object.__setattr__(self, "dense", tuple(self.dense))
        _coerce_enum(self, "placement", Placement)
        for t in self.tables:
            if not isinstance(t, EmbeddingTable):
                raise ValueError(f"Workload.tables must hold EmbeddingTable, got {t!r}")
        for layer in self.dense:
            if not isinstance(layer, tuple(_LAYER_TYPES.values())):
                raise ValueError(f"Workload.dense must hold Gemm, Elementwise, Reduction or Softmax, got {layer!r}")
        if not self.tables and not self.dense:
            raise ValueError("Workload needs at least one embedding table or dense layer")

    @property
    def embeddings(self) -> EmbeddingWorkload | None:
        if not self.tables:
            return None
        return EmbeddingWorkload(self.tables, self.batch_size, self.placement)

    @property
    def dense_flops(self) -> int:
        return sum(layer.flops for layer in self.dense)

    @property
    def weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.dense)

    @property
    def embedding_bytes(self) -> int:
        """Bytes of all embedding tables."""
        return sum(t.rows * t.vector_bytes for t in self.tables)

    def to_dict(self) -> dict:
        """JSON-ready; :func:`workload_from_dict` reads it back."""
        dense = []
        for layer in self.dense:
            d = {"op": layer.op}
            d.update(asdict(layer))
            dense.append(d)
        tables = []
        for t in self.tables:
            d = asdict(t)
            d["distribution"] = t.distribution.value
            tables.append(d)
        return {"name": self.name, "batch_size": self.batch_size, "placement": self.placement.value,
                "tables": tables, "dense": dense}


_TABLE_KEYS = {f.name for f in fields(EmbeddingTable)} | {"count"}
_TOP_KEYS = {"name", "batch_size", "placement", "tables", "dense"}


def _entries(data: dict, key: str, label: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{label}: '{key}' must be a list of tables")
    return value


def workload_from_dict(data: dict, label: str = "workload") -> Workload:
    """Build a :class:`Workload` from the dict shape of :meth:`Workload.to_dict`.

    Entries of ``tables`` and ``dense`` may say ``count = N`` to repeat themselves;
    each ``dense`` entry names its ``op`` (gemm, elementwise, reduction, softmax).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{label}: a workload must be a table/object, got {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise ValueError(f"{label}: unknown key {key!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    tables = []
    for i, entry in enumerate(_entries(data, "tables", label)):
        entry = dict(entry)
        count = entry.pop("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{label}: tables[{i}].count must be a positive integer, got {count!r}")
        for key in entry:
            if key not in _TABLE_KEYS:
                raise ValueError(f"{label}: unknown key {key!r} in tables[{i}] "
                                 f"(allowed: {', '.join(sorted(_TABLE_KEYS))})")
        try:
            tables.extend([EmbeddingTable(**entry)] * count)
        except TypeError:
            raise ValueError(f"{label}: tables[{i}] needs at least 'rows' and 'dim'") from None
        except ValueError as exc:
            raise ValueError(f"{label}: tables[{i}]: {exc}") from None
    dense = []
    for i, entry in enumerate(_entries(data, "dense", label)):
        entry = dict(entry)
        op = entry.pop("op", None)
        cls = _LAYER_TYPES.get(op)
        if cls is None:
            raise ValueError(f"{label}: dense[{i}].op must be one of {', '.join(_LAYER_TYPES)}, got {op!r}")
        allowed = {f.name for f in fields(cls)}
        for key in entry:
            if key not in allowed:
                raise ValueError(f"{label}: unknown key {key!r} in dense[{i}] ({op}; allowed: "
                                 f"{', '.join(sorted(allowed))})")
        try:
            dense.append(cls(**entry))
        except TypeError as exc:
            raise ValueError(f"{label}: dense[{i}] ({op}): {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{label}: dense[{i}]: {exc}") from None
    try:
        return Workload(batch_size=data.get("batch_size", 0) or 0, tables=tuple(tables), dense=tuple(dense),
                        placement=data.get("placement", "contiguous"), name=str(data.get("name", "")))
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from None


def _mlp(sizes: tuple[int, ...], batch: int, part: str, bpe: int = 4) -> list[Layer]:
    """Fully connected layers ``sizes[0] -> sizes[1] -> ...`` with a ReLU after each."""
    out: list[Layer] = []
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        out.append(Gemm(m=batch, n=n, k=k, bytes_per_element=bpe, name=f"{part}.fc{i}", part=part))
        out.append(Elementwise(elements=batch * n, bytes_per_element=bpe, name=f"{part}.act{i}", part=part,
                               kind="activation"))
    return out


def _dlrm_like(name: str, batch: int, n_tables: int, rows: int, dim: int, pooling: int, dense_in: int,
               bottom: tuple[int, ...], top: tuple[int, ...]) -> Workload:
    """DLRM structure: bottom MLP on dense features, pooled bags, pairwise dot interaction, top MLP."""
    tables = (EmbeddingTable(rows=rows, dim=dim, pooling=pooling),) * n_tables
    f = n_tables + 1  # pooled bags plus the bottom MLP's output
    dense = _mlp((dense_in,) + bottom, batch, "bottom_mlp")
    dense.append(Gemm(m=f, n=f, k=dim, weights=False, count=batch, name="interaction.dot", part="interaction"))
    top_in = dim + f * (f - 1) // 2
    dense.extend(_mlp((top_in,) + top, batch, "top_mlp"))
    return Workload(batch_size=batch, tables=tables, dense=tuple(dense), name=name)


def builtin_workloads(batch: int = 256) -> dict[str, Workload]:
    """The reference workloads by name: DeepRecSys-like RM1/RM2/RM3 and a DLRM (Criteo Kaggle) shape."""
    # Tables: DeepRecSys production-like models (REFERENCE.md "Workloads"). MLP sizes: DeepRecSys
    # (Gupta et al., ISCA 2020) Table 1 as recalled: not in REFERENCE.md, so treat them as
    # representative shapes; the bottom MLP's last width equals the embedding dim, as DLRM requires.
    return {
        "rm1": _dlrm_like("rm1", batch, 8, 4_000_000, 32, 80, 256, (128, 32), (256, 64, 1)),
        "rm2": _dlrm_like("rm2", batch, 32, 500_000, 64, 120, 256, (128, 64), (512, 128, 1)),
        "rm3": _dlrm_like("rm3", batch, 10, 2_000_000, 32, 20, 2560, (512, 32), (512, 128, 1)),
        # DLRM on Criteo Kaggle (facebookresearch/dlrm's Kaggle settings as recalled: 13 dense
        # features, bottom 13-512-256-64-16, top 512-256-1, dim 16); 26 one-hot tables, rows
        # capped at 1M here (assumption: Kaggle's largest tables hold ~10M ids).
        "dlrm": _dlrm_like("dlrm", batch, 26, 1_000_000, 16, 1, 13, (512, 256, 64, 16), (512, 256, 1)),
    }


def load_workload(source: str | Workload, batch: int | None = None) -> Workload:
    """A built-in name (rm1, rm2, rm3, dlrm), a ``.toml`` or ``.json`` file, or a Workload.

    ``batch`` overrides a built-in's batch size (default 256); files state their own.
    """
    if isinstance(source, Workload):
        return source
    builtins = builtin_workloads(batch or 256)
    if source in builtins:
        return builtins[source]
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"unknown workload {source!r}: not a built-in ({', '.join(builtins)}) and not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read workload {source!r}: {exc.strerror}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: invalid JSON: {exc}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{source}: invalid TOML: {exc}") from None
    workload = workload_from_dict(data, str(source))
    if batch is not None and batch != workload.batch_size:
        raise ValueError(f"{source}: states batch_size {workload.batch_size}; a file's batch cannot be overridden")
    return workload
