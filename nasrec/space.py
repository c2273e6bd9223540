"""The NASRec search space and its one architecture type, ``ArchSpec``.

Source for every number here: Zhang et al., "NASRec", WWW 2023, and the official
code facebookresearch/NasRec (``nasrec/supernet/supernet.py``, ``ops_config_lib``).
An ``ArchSpec`` serialises to exactly the JSON shape of the official configs
(``{"micro": [...], "macro": [...], "num_blocks": 7, "use_layernorm": 1, "config": ...}``).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, replace

import numpy as np

DENSE_OPS = ("fc", "dot", "gating", "sum")
SPARSE_OPS = ("attention", "efc")
#: Dense operators that read the two single inputs ``dense_left_idx`` / ``dense_right_idx``.
BINARY_OPS = ("gating", "sum")
NUM_BLOCKS = 7  # NASRec: 7 choice blocks
MAX_INPUTS = 4  # NASRec: at most 4 inputs per selector (1 + Binomial(min(i, 3), 0.5))
#: Widths from NASRec's ops_config_lib (``dense_node_dims`` / ``sparse_node_dims``).
DENSE_WIDTHS = (16, 32, 64, 128, 256, 512, 768, 1024)
SPARSE_TOKENS = (16, 32, 48, 64)
MACRO_FIELDS = ("dense_idx", "sparse_idx", "dense_left_idx", "dense_right_idx")
MICRO_FIELDS = ("dense_op", "sparse_op", "dense_width", "sparse_tokens",
                "dense_sparse_interact", "deep_fm")


@dataclass(frozen=True)
class SearchSpace:
    """One NASRec search space; ``config`` is the name the official JSON uses for it.

    ``operators`` lists dense then sparse operators in the order that the official
    ``active_nodes`` indices refer to.
    """

    name: str
    config: str
    dense_ops: tuple[str, ...]
    sparse_ops: tuple[str, ...]
    dense_widths: tuple[int, ...] = DENSE_WIDTHS
    sparse_tokens: tuple[int, ...] = SPARSE_TOKENS
    num_blocks: int = NUM_BLOCKS
    max_inputs: int = MAX_INPUTS

    def __post_init__(self):
        for op in self.dense_ops:
            if op not in DENSE_OPS:
                raise ValueError(f"dense_ops: unknown operator {op!r}")
        for op in self.sparse_ops:
            if op not in SPARSE_OPS:
                raise ValueError(f"sparse_ops: unknown operator {op!r}")
        if not self.dense_ops or not self.sparse_ops:
            raise ValueError(f"space {self.name!r}: needs at least one dense and one sparse op")
        if self.num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {self.num_blocks}")
        if self.max_inputs < 1:
            raise ValueError(f"max_inputs must be >= 1, got {self.max_inputs}")
        if not self.dense_widths or min(self.dense_widths) < 1:
            raise ValueError(f"dense_widths must be positive, got {self.dense_widths}")
        if not self.sparse_tokens or min(self.sparse_tokens) < 1:
            raise ValueError(f"sparse_tokens must be positive, got {self.sparse_tokens}")

    @property
    def operators(self) -> tuple[str, ...]:
        return self.dense_ops + self.sparse_ops

    @property
    def max_width(self) -> int:
        return max(self.dense_widths)

    @property
    def max_tokens(self) -> int:
        return max(self.sparse_tokens)


# NASRec-Full ("xlarge") and NASRec-Small ("autoctr"), official ops_config_lib.
FULL = SearchSpace("full", "xlarge", ("fc", "dot", "gating", "sum"), ("attention", "efc"))
SMALL = SearchSpace("small", "autoctr", ("fc", "dot"), ("efc",))
SPACES = {s.name: s for s in (FULL, SMALL)}
_BY_CONFIG = {s.config: s for s in (FULL, SMALL)}


def get_space(name: str) -> SearchSpace:
    """The space called ``name`` ('full'/'small', or the official 'xlarge'/'autoctr')."""
    space = SPACES.get(name) or _BY_CONFIG.get(name)
    if space is None:
        raise ValueError(f"unknown search space {name!r}; known: {sorted(SPACES) + sorted(_BY_CONFIG)}")
    return space


@dataclass(frozen=True)
class BlockSpec:
    """One choice block: input selectors (macro) and operator choices (micro).

    Index 0 of a selector is the raw input; index j >= 1 is the output of block j-1.
    The order of indices is kept as written (official files are unsorted) but does
    not change the model: inputs are always concatenated in ascending index order.
    """

    dense_idx: tuple[int, ...]
    sparse_idx: tuple[int, ...]
    dense_left_idx: int
    dense_right_idx: int
    dense_op: str
    sparse_op: str
    dense_width: int
    sparse_tokens: int
    dense_sparse_interact: bool
    deep_fm: bool


#: Per-field embedding dimensions of the extended space (0 drops the field) and the
#: published space's single dimension (NASRec: 16 for every field).
EMB_DIM_CHOICES = (0, 4, 8, 16, 32, 64)
PUBLISHED_EMB_DIM = 16
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class EmbeddingSpace:
    """Choices of the embedding side: a dimension and a storage precision per field."""

    dims: tuple[int, ...] = EMB_DIM_CHOICES
    precisions: tuple[str, ...] = PRECISIONS

    def __post_init__(self):
        object.__setattr__(self, "dims", tuple(self.dims))
        object.__setattr__(self, "precisions", tuple(self.precisions))
        # a repeated choice would be drawn more often than the others
        if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in self.dims) \
                or len(set(self.dims)) != len(self.dims):
            raise ValueError(f"dims must be distinct integers, got {list(self.dims)}")
        if not self.dims or min(self.dims) < 0 or max(self.dims) < 1:
            raise ValueError(f"dims must be non-negative with at least one positive choice, got {self.dims}")
        if len(set(self.precisions)) != len(self.precisions):
            raise ValueError(f"precisions must be distinct, got {list(self.precisions)}")
        for p in self.precisions:
            if p not in PRECISIONS:
                raise ValueError(f"precisions: unknown precision {p!r} (known: {', '.join(PRECISIONS)})")
        if not self.precisions:
            raise ValueError("precisions must not be empty")

    @property
    def max_dim(self) -> int:
        return max(self.dims)


EMBEDDING_SPACE = EmbeddingSpace()


@dataclass(frozen=True)
class EmbeddingSpec:
    """Per-field embedding dimension (0: the field is dropped) and storage precision."""

    dims: tuple[int, ...]
    precisions: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "dims", tuple(self.dims))
        object.__setattr__(self, "precisions", tuple(self.precisions))
        if not self.dims:
            raise ValueError("embedding: dims must name one dimension per field")
        if len(self.precisions) != len(self.dims):
            raise ValueError(f"embedding: {len(self.dims)} dims but {len(self.precisions)} precisions")
        for f, (d, p) in enumerate(zip(self.dims, self.precisions)):
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
                raise ValueError(f"embedding field {f}: dim must be a non-negative integer, got {d!r}")
            if p not in PRECISIONS:
                raise ValueError(f"embedding field {f}: precision must be one of {', '.join(PRECISIONS)}, got {p!r}")
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))
        if max(self.dims) == 0:
            raise ValueError("embedding: every field is dropped (all dims are 0)")

    @classmethod
    def published(cls, n_fields: int) -> "EmbeddingSpec":
        """NASRec's own choice: every field at 16 dimensions in fp32."""
        return cls((PUBLISHED_EMB_DIM,) * n_fields, ("fp32",) * n_fields)

    @property
    def n_fields(self) -> int:
        return len(self.dims)

    @property
    def kept_fields(self) -> tuple[int, ...]:
        return tuple(f for f, d in enumerate(self.dims) if d > 0)

    def to_dict(self) -> dict:
        return {"dims": list(self.dims), "precision": list(self.precisions)}

    @classmethod
    def from_dict(cls, d) -> "EmbeddingSpec":
        if not isinstance(d, dict) or not isinstance(d.get("dims"), list):
            raise ValueError("embedding: expected an object with a 'dims' list")
        prec = d.get("precision", ["fp32"] * len(d["dims"]))
        if not isinstance(prec, list):
            raise ValueError(f"embedding: precision must be a list, got {prec!r}")
        return cls(tuple(d["dims"]), tuple(prec))


@dataclass(frozen=True)
class ArchSpec:
    """One NASRec architecture: ``space.num_blocks`` blocks of a named space. Immutable.

    ``embedding`` (optional) extends the published space with a dimension and a
    precision per field; None is the published space (every field 16-dim, fp32), and
    the JSON and the hash are then exactly those of the published shape.
    """

    blocks: tuple[BlockSpec, ...]
    space: str = "full"
    embedding: EmbeddingSpec | None = None

    def __post_init__(self):
        space = get_space(self.space)
        object.__setattr__(self, "space", space.name)
        if len(self.blocks) != space.num_blocks:
            raise ValueError(f"blocks: expected {space.num_blocks}, got {len(self.blocks)}")
        for i, b in enumerate(self.blocks):
            _validate_block(i, b, space)
        if self.embedding is not None and not isinstance(self.embedding, EmbeddingSpec):
            raise ValueError(f"embedding must be an EmbeddingSpec or None, got {self.embedding!r}")

    @property
    def search_space(self) -> SearchSpace:
        return get_space(self.space)

    def to_dict(self) -> dict:
        """The official NASRec config shape (``micro``, ``macro``, ...)."""
        space = self.search_space
        ops = space.operators
        micro = [{"active_nodes": [ops.index(b.dense_op), ops.index(b.sparse_op)],
                  "dense_in_dims": b.dense_width, "sparse_in_dims": b.sparse_tokens,
                  "dense_sparse_interact": int(b.dense_sparse_interact),
                  "deep_fm": int(b.deep_fm)} for b in self.blocks]
        macro = [{"dense_idx": list(b.dense_idx), "sparse_idx": list(b.sparse_idx),
                  "dense_left_idx": [b.dense_left_idx], "dense_right_idx": [b.dense_right_idx]}
                 for b in self.blocks]
        out = {"micro": micro, "macro": macro, "num_blocks": space.num_blocks,
               "use_layernorm": 1, "config": space.config}
        if self.embedding is not None:
            out["embedding"] = self.embedding.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def live_blocks(self) -> tuple[bool, ...]:
        """Whether each block's output can reach the head: the last block, and every
        block that a live block reads (left/right inputs only for binary operators)."""
        live = [False] * len(self.blocks)
        live[-1] = True
        for i in range(len(self.blocks) - 1, -1, -1):
            if live[i]:
                b = self.blocks[i]
                reads = set(b.dense_idx) | set(b.sparse_idx)
                if b.dense_op in BINARY_OPS:
                    reads |= {b.dense_left_idx, b.dense_right_idx}
                for j in reads:
                    if j >= 1:
                        live[j - 1] = True
        return tuple(live)

    def canonical(self) -> "ArchSpec":
        """The equivalent architecture in its canonical form: selectors sorted, the
        binary-op inputs of blocks whose dense operator is not binary set to 0 (they are
        not read), and every block that nothing reads (``live_blocks``) replaced by the
        space's smallest block on the raw input. Models, the supernet and the profiler
        build and run this form (dead blocks are built but never run), so equivalent
        architectures get the same weights, score and cost."""
        space = self.search_space
        dead = BlockSpec((0,), (0,), 0, 0, space.dense_ops[0], space.sparse_ops[0], min(space.dense_widths),
                         min(space.sparse_tokens), False, False)
        blocks = []
        for b, live in zip(self.blocks, self.live_blocks()):
            if not live:
                blocks.append(dead)
                continue
            binary = b.dense_op in BINARY_OPS
            blocks.append(replace(b, dense_idx=tuple(sorted(b.dense_idx)), sparse_idx=tuple(sorted(b.sparse_idx)),
                                  dense_left_idx=b.dense_left_idx if binary else 0,
                                  dense_right_idx=b.dense_right_idx if binary else 0))
        return replace(self, blocks=tuple(blocks))

    def canonical_json(self) -> str:
        """Form that equivalent architectures share: the JSON of :meth:`canonical`, with
        the precision of dropped fields set to fp32 (nothing is stored), keys sorted, no
        whitespace."""
        d = self.canonical().to_dict()
        if "embedding" in d:
            e = d["embedding"]
            e["precision"] = [p if dim else "fp32" for dim, p in zip(e["dims"], e["precision"])]
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @functools.cached_property
    def hash(self) -> str:
        """sha256 (hex) of the canonical JSON; equal for equivalent architectures.
        Computed once per instance (about 0.2 ms: the search asks for it many times per
        candidate); the instance is immutable, so the cached value cannot go stale."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: dict) -> "ArchSpec":
        if not isinstance(d, dict):
            raise ValueError(f"architecture must be a JSON object, got {type(d).__name__}")
        for key in ("micro", "macro"):
            if not isinstance(d.get(key), list):
                raise ValueError(f"architecture: missing or non-list field {key!r}")
        space = get_space(str(d.get("config", "xlarge")))
        if int(d.get("use_layernorm", 1)) != 1:
            raise ValueError(f"use_layernorm: only 1 is supported, got {d['use_layernorm']!r}")
        if "num_blocks" in d and d["num_blocks"] != len(d["micro"]):
            raise ValueError(f"num_blocks: {d['num_blocks']!r} but {len(d['micro'])} micro entries")
        if len(d["micro"]) != len(d["macro"]):
            raise ValueError(f"micro has {len(d['micro'])} blocks but macro has {len(d['macro'])}")
        blocks = tuple(_block_from_dict(i, mi, ma, space)
                       for i, (mi, ma) in enumerate(zip(d["micro"], d["macro"])))
        embedding = EmbeddingSpec.from_dict(d["embedding"]) if d.get("embedding") is not None else None
        return cls(blocks, space.name, embedding)

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"bad architecture JSON: {e}") from None
        return cls.from_dict(d)


def _int(block: int, field: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"block {block}: {field} must be an integer, got {value!r}")
    return int(value)


def _single(block: int, field: str, value) -> int:
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"block {block}: {field} must hold exactly one index, got {value!r}")
        value = value[0]
    return _int(block, field, value)


def _block_from_dict(i: int, micro: dict, macro: dict, space: SearchSpace) -> BlockSpec:
    if not isinstance(micro, dict) or not isinstance(macro, dict):
        raise ValueError(f"block {i}: micro and macro entries must be objects")
    for key in ("active_nodes", "dense_in_dims", "sparse_in_dims"):
        if key not in micro:
            raise ValueError(f"block {i}: micro is missing {key!r}")
    for key in MACRO_FIELDS:
        if key not in macro:
            raise ValueError(f"block {i}: macro is missing {key!r}")
    nodes = micro["active_nodes"]
    if not isinstance(nodes, list) or len(nodes) != 2:
        raise ValueError(f"block {i}: active_nodes must be [dense op, sparse op], got {nodes!r}")
    ops = space.operators
    names = []
    for field, idx in zip(("dense_op", "sparse_op"), nodes):
        idx = _int(i, "active_nodes", idx)
        if not 0 <= idx < len(ops):
            raise ValueError(f"block {i}: active_nodes index {idx} outside {space.name} operators")
        names.append(ops[idx])
    for field in ("dense_idx", "sparse_idx"):
        if not isinstance(macro[field], list):
            raise ValueError(f"block {i}: {field} must be a list, got {macro[field]!r}")
    flags = []
    for field in ("dense_sparse_interact", "deep_fm"):
        v = _int(i, field, micro.get(field, 0))
        if v not in (0, 1):
            raise ValueError(f"block {i}: {field} must be 0 or 1, got {v!r}")
        flags.append(bool(v))
    return BlockSpec(
        dense_idx=tuple(_int(i, "dense_idx", v) for v in macro["dense_idx"]),
        sparse_idx=tuple(_int(i, "sparse_idx", v) for v in macro["sparse_idx"]),
        dense_left_idx=_single(i, "dense_left_idx", macro["dense_left_idx"]),
        dense_right_idx=_single(i, "dense_right_idx", macro["dense_right_idx"]),
        dense_op=names[0], sparse_op=names[1],
        dense_width=_int(i, "dense_in_dims", micro["dense_in_dims"]),
        sparse_tokens=_int(i, "sparse_in_dims", micro["sparse_in_dims"]),
        dense_sparse_interact=flags[0], deep_fm=flags[1])


def _validate_block(i: int, b: BlockSpec, space: SearchSpace) -> None:
    for field in ("dense_idx", "sparse_idx"):
        idx = getattr(b, field)
        if not isinstance(idx, tuple) or not idx:
            raise ValueError(f"block {i}: {field} must be a non-empty tuple, got {idx!r}")
        if len(idx) > space.max_inputs:
            raise ValueError(f"block {i}: {field} has {len(idx)} inputs, at most {space.max_inputs}")
        if len(set(idx)) != len(idx):
            raise ValueError(f"block {i}: {field} repeats an index: {idx!r}")
        for v in idx:
            if not 0 <= v <= i:
                raise ValueError(f"block {i}: {field} index {v} must lie in 0..{i} (no forward links)")
    for field in ("dense_left_idx", "dense_right_idx"):
        v = getattr(b, field)
        if not 0 <= v <= i:
            raise ValueError(f"block {i}: {field} index {v} must lie in 0..{i} (no forward links)")
    if b.dense_op not in space.dense_ops:
        raise ValueError(f"block {i}: dense_op {b.dense_op!r} not in {space.name} space {space.dense_ops}")
    if b.sparse_op not in space.sparse_ops:
        raise ValueError(f"block {i}: sparse_op {b.sparse_op!r} not in {space.name} space {space.sparse_ops}")
    if b.dense_width not in space.dense_widths:
        raise ValueError(f"block {i}: dense_width {b.dense_width} not in {space.dense_widths}")
    if b.sparse_tokens not in space.sparse_tokens:
        raise ValueError(f"block {i}: sparse_tokens {b.sparse_tokens} not in {space.sparse_tokens}")
    for field in ("dense_sparse_interact", "deep_fm"):
        if not isinstance(getattr(b, field), bool):
            raise ValueError(f"block {i}: {field} must be a bool, got {getattr(b, field)!r}")


def _draw_inputs(i: int, rng: np.random.Generator, space: SearchSpace) -> tuple[int, ...]:
    # NASRec any-path: 1 + Binomial(min(i, 3), 0.5) inputs, drawn without replacement.
    n = 1 + int(rng.binomial(min(i, space.max_inputs - 1), 0.5))
    return tuple(int(v) for v in rng.choice(i + 1, size=n, replace=False))


def _draw_field(field: str, i: int, rng: np.random.Generator, space: SearchSpace):
    if field in ("dense_idx", "sparse_idx"):
        return _draw_inputs(i, rng, space)
    if field in ("dense_left_idx", "dense_right_idx"):
        return int(rng.integers(i + 1))
    choices = {"dense_op": space.dense_ops, "sparse_op": space.sparse_ops,
               "dense_width": space.dense_widths, "sparse_tokens": space.sparse_tokens,
               "dense_sparse_interact": (False, True), "deep_fm": (False, True)}[field]
    return choices[int(rng.integers(len(choices)))]


def sample(rng: np.random.Generator, space: SearchSpace = FULL, n_fields: int | None = None,
           embedding_space: EmbeddingSpace = EMBEDDING_SPACE) -> ArchSpec:
    """A uniformly drawn architecture (any-path inputs, uniform micro choices).

    With ``n_fields``, also a per-field embedding choice from ``embedding_space``
    (the extended space); without, the published space.
    """
    blocks = tuple(BlockSpec(**{f: _draw_field(f, i, rng, space) for f in MACRO_FIELDS + MICRO_FIELDS})
                   for i in range(space.num_blocks))
    embedding = sample_embedding(rng, n_fields, embedding_space) if n_fields is not None else None
    return ArchSpec(blocks, space.name, embedding)


def sample_embedding(rng: np.random.Generator, n_fields: int,
                     space: EmbeddingSpace = EMBEDDING_SPACE) -> EmbeddingSpec:
    """Uniform per-field dimensions and precisions (re-drawn while every field is dropped)."""
    if n_fields < 1:
        raise ValueError(f"n_fields must be >= 1, got {n_fields}")
    for _ in range(64):
        dims = tuple(int(space.dims[int(rng.integers(len(space.dims)))]) for _ in range(n_fields))
        if max(dims) > 0:
            break
    else:
        dims = (space.max_dim,) + dims[1:]
    precisions = tuple(space.precisions[int(rng.integers(len(space.precisions)))] for _ in range(n_fields))
    return EmbeddingSpec(dims, precisions)


def _mutate_embedding(emb: EmbeddingSpec, rng: np.random.Generator, space: EmbeddingSpace) -> EmbeddingSpec:
    """Re-draw one field's dimension or precision to a different allowed value."""
    f = int(rng.integers(emb.n_fields))
    dims, precisions = list(emb.dims), list(emb.precisions)
    if rng.random() < 0.5 or len(space.precisions) < 2:
        others = [d for d in space.dims if d != dims[f]]
        if sum(1 for d in dims if d > 0) == 1 and dims[f] > 0:
            others = [d for d in others if d > 0]  # never drop the last field
        if others:
            dims[f] = int(others[int(rng.integers(len(others)))])
    else:
        others = [p for p in space.precisions if p != precisions[f]]
        precisions[f] = others[int(rng.integers(len(others)))]
    return EmbeddingSpec(tuple(dims), tuple(precisions))


def mutate(spec: ArchSpec, rng: np.random.Generator, n_mutations: int = 1,
           embedding_space: EmbeddingSpace = EMBEDDING_SPACE) -> ArchSpec:
    """NASRec mutation, ``n_mutations`` times: re-draw one macro selector or one micro
    choice of one random block, to a value different from the current one where the
    field has more than one possible value. A spec with an ``embedding`` treats it as
    one more block: each mutation changes one field's dimension or precision with
    probability 1 / (blocks + 1)."""
    if n_mutations < 1:
        raise ValueError(f"n_mutations must be >= 1, got {n_mutations}")
    space = spec.search_space
    fields = MACRO_FIELDS + MICRO_FIELDS
    blocks = list(spec.blocks)
    embedding = spec.embedding
    for _ in range(n_mutations):
        if embedding is not None and rng.integers(len(blocks) + 1) == len(blocks):
            embedding = _mutate_embedding(embedding, rng, embedding_space)
            continue
        i = int(rng.integers(len(blocks)))
        field = fields[int(rng.integers(len(fields)))]
        old = getattr(blocks[i], field)
        new = old
        # Block 0 has a single possible input; a few re-draws suffice elsewhere.
        for _ in range(32):
            new = _draw_field(field, i, rng, space)
            if new != old:
                break
        blocks[i] = dataclasses.replace(blocks[i], **{field: new})
    return ArchSpec(tuple(blocks), spec.space, embedding)


def crossover(a: ArchSpec, b: ArchSpec, rng: np.random.Generator) -> ArchSpec:
    """Uniform crossover: every field of every block, and every embedding field's
    (dimension, precision) pair, taken from ``a`` or ``b`` with probability 1/2. Any
    mix is valid because a block's choices are checked against its position alone; a
    child that would drop every field keeps ``a``'s embedding. The parents must share
    the space and the embedding layout."""
    if a.space != b.space or len(a.blocks) != len(b.blocks):
        raise ValueError(f"crossover: parents from different spaces ({a.space!r}, {b.space!r})")
    ea, eb = a.embedding, b.embedding
    if (ea is None) != (eb is None) or (ea is not None and ea.n_fields != eb.n_fields):
        raise ValueError("crossover: parents have different embedding layouts")
    fields = MACRO_FIELDS + MICRO_FIELDS
    take_a = rng.random((len(a.blocks), len(fields))) < 0.5
    blocks = tuple(BlockSpec(**{f: getattr(ba if take_a[i, j] else bb, f) for j, f in enumerate(fields)})
                   for i, (ba, bb) in enumerate(zip(a.blocks, b.blocks)))
    embedding = ea
    if ea is not None:
        pick = rng.random(ea.n_fields) < 0.5
        dims = tuple(x if p else y for x, y, p in zip(ea.dims, eb.dims, pick))
        if max(dims) > 0:
            embedding = EmbeddingSpec(dims, tuple(x if p else y for x, y, p in
                                                  zip(ea.precisions, eb.precisions, pick)))
    return ArchSpec(blocks, a.space, embedding)


def load_arch(path) -> ArchSpec:
    """Read an architecture JSON file (official NASRec shape)."""
    with open(path, encoding="utf-8") as f:
        return ArchSpec.from_json(f.read())
