"""Embedding-lookup workloads as numbers: tables, pooling, index distributions, placement."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from .config import DramOrg, _check_float, _check_int, _coerce_enum
from .mapping import encode

__all__ = ["IndexDistribution", "Placement", "EmbeddingTable", "EmbeddingWorkload",
           "EmbeddingBatch", "sample_batch", "batch_from_indices", "batch_addresses"]


class IndexDistribution(str, enum.Enum):
    UNIFORM = "uniform"
    ZIPF = "zipf"  # bounded Zipf / Pareto: P(rank k) ~ k^-alpha


class Placement(str, enum.Enum):
    CONTIGUOUS = "contiguous"  # tables back to back, rows in address order
    INTERLEAVED = "interleaved"  # consecutive rows rotate over channels, ranks and banks


@dataclass(frozen=True)
class EmbeddingTable:
    """One table: ``rows`` x ``dim`` elements of ``bytes_per_element``; ``pooling`` lookups per sample."""

    rows: int
    dim: int
    bytes_per_element: int = 4
    pooling: int = 1
    distribution: IndexDistribution = IndexDistribution.UNIFORM
    zipf_alpha: float = 1.05
    place: str = "auto"  # "auto": as the hardware's mapping says; "host" or "nmp" pins this table
    row_overhead_bytes: int = 0  # per-row extras stored with the vector, e.g. an int8 row's scale and bias

    def __post_init__(self) -> None:
        for name in ("rows", "dim", "bytes_per_element", "pooling"):
            _check_int(self, name)
        _check_int(self, "row_overhead_bytes", 0)
        _coerce_enum(self, "distribution", IndexDistribution)
        _check_float(self, "zipf_alpha")
        if self.place not in ("auto", "host", "nmp"):
            raise ValueError(f"EmbeddingTable.place must be one of auto, host, nmp, got {self.place!r}")

    @property
    def vector_bytes(self) -> int:
        """Bytes of one stored row: the vector and its per-row extras."""
        return self.dim * self.bytes_per_element + self.row_overhead_bytes


@dataclass(frozen=True)
class EmbeddingWorkload:
    """A batch of pooled embedding lookups, before indices are drawn."""

    tables: tuple[EmbeddingTable, ...]
    batch_size: int
    placement: Placement = Placement.CONTIGUOUS

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", tuple(self.tables))
        if not self.tables:
            raise ValueError("EmbeddingWorkload.tables must hold at least one table")
        for t in self.tables:
            if not isinstance(t, EmbeddingTable):
                raise ValueError(f"EmbeddingWorkload.tables must hold EmbeddingTable, got {t!r}")
        _check_int(self, "batch_size")
        _coerce_enum(self, "placement", Placement)


@dataclass(frozen=True)
class EmbeddingBatch:
    """Explicit indices per table in the FBGEMM convention: bag b of table t is
    ``indices[t][offsets[t][b]:offsets[t][b + 1]]``."""

    tables: tuple[EmbeddingTable, ...]
    indices: tuple[np.ndarray, ...]
    offsets: tuple[np.ndarray, ...]
    placement: Placement = Placement.CONTIGUOUS

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", tuple(self.tables))
        _coerce_enum(self, "placement", Placement)
        if not (len(self.tables) == len(self.indices) == len(self.offsets)) or not self.tables:
            raise ValueError("EmbeddingBatch needs one indices and one offsets array per table")
        batch = None
        for t, (tab, idx, off) in enumerate(zip(self.tables, self.indices, self.offsets)):
            if len(off) < 2 or off[0] != 0 or off[-1] != len(idx) or np.any(np.diff(off) < 0):
                raise ValueError(f"table {t}: offsets must start at 0, not decrease and end at {len(idx)}")
            if len(idx) and (idx.min() < 0 or idx.max() >= tab.rows):
                raise ValueError(f"table {t}: index out of range 0..{tab.rows - 1}")
            if batch is None:
                batch = len(off) - 1
            elif len(off) - 1 != batch:
                raise ValueError(f"table {t}: batch size {len(off) - 1} differs from table 0's {batch}")

    @property
    def batch_size(self) -> int:
        return len(self.offsets[0]) - 1

    @property
    def lookups(self) -> int:
        return int(sum(len(i) for i in self.indices))


def _zipf_indices(rng: np.random.Generator, rows: int, alpha: float, size: int) -> np.ndarray:
    """Bounded Zipf draws by inverting the continuous CDF, hot rows scattered over the table."""
    u = rng.random(size)
    if abs(alpha - 1.0) < 1e-9:
        k = np.exp(u * math.log(rows + 1.0))
    else:
        a = 1.0 - alpha
        k = ((math.pow(rows + 1.0, a) - 1.0) * u + 1.0) ** (1.0 / a)
    rank = np.minimum(np.floor(k).astype(np.int64) - 1, rows - 1)
    # a fixed bijection of [0, rows): rank r -> (r * step + shift) mod rows, so the popular
    # rows do not all share one DRAM row
    step = 2654435761 % rows or 1
    while math.gcd(step, rows) != 1:
        step += 1
    shift = int(rng.integers(0, rows))
    return (rank * step + shift) % rows


def sample_batch(workload: EmbeddingWorkload, rng: np.random.Generator) -> EmbeddingBatch:
    """Draw the indices of one batch from ``rng`` (fixed pooling per table)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    indices, offsets = [], []
    b = workload.batch_size
    for tab in workload.tables:
        size = b * tab.pooling
        if tab.distribution is IndexDistribution.UNIFORM:
            idx = rng.integers(0, tab.rows, size, dtype=np.int64)
        else:
            idx = _zipf_indices(rng, tab.rows, tab.zipf_alpha, size)
        indices.append(idx)
        offsets.append(np.arange(b + 1, dtype=np.int64) * tab.pooling)
    return EmbeddingBatch(workload.tables, tuple(indices), tuple(offsets), workload.placement)


def batch_from_indices(tables, pairs, placement: Placement = Placement.CONTIGUOUS) -> EmbeddingBatch:
    """An :class:`EmbeddingBatch` from ``(indices, offsets)`` pairs such as :func:`read_indices_npz` returns."""
    pairs = list(pairs)
    return EmbeddingBatch(tuple(tables), tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), placement)


@dataclass(frozen=True)
class BatchRequests:
    """One read burst per element, in issue order (sample-major), each an int64 array (n,)."""

    addresses: np.ndarray
    sample: np.ndarray
    table: np.ndarray
    part: np.ndarray  # burst index within its vector


def batch_addresses(batch: EmbeddingBatch, org: DramOrg) -> BatchRequests:
    """Byte address of every burst the batch reads, ordered sample by sample, table by table."""
    line = org.line_bytes
    samples, tables, rows = [], [], []
    for t, (idx, off) in enumerate(zip(batch.indices, batch.offsets)):
        counts = np.diff(off)
        samples.append(np.repeat(np.arange(len(counts), dtype=np.int64), counts))
        tables.append(np.full(len(idx), t, np.int64))
        rows.append(idx)
    sample = np.concatenate(samples)
    table = np.concatenate(tables)
    row = np.concatenate(rows)
    order = np.lexsort((table, sample))  # sample-major, then table, then lookup order
    sample, table, row = sample[order], table[order], row[order]
    vec_lines = np.array([-(-t.vector_bytes // line) for t in batch.tables], np.int64)
    if batch.placement is Placement.CONTIGUOUS:
        base = np.zeros(len(batch.tables), np.int64)
        pos = 0
        for t, tab in enumerate(batch.tables):
            base[t] = pos
            size = tab.rows * vec_lines[t] * line
            pos += -(-size // org.row_bytes) * org.row_bytes  # tables start on a DRAM row
        if pos > org.capacity_bytes:
            raise ValueError(f"the tables need {pos} bytes, more than the {org.capacity_bytes} bytes of memory")
        first = base[table] + row * vec_lines[table] * line
    else:
        first = _interleaved_addresses(batch, org, table, row, vec_lines)
    n_lines = vec_lines[table]
    reps = np.repeat(np.arange(len(row)), n_lines)
    part = np.arange(int(n_lines.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    return BatchRequests(first[reps] + part * line, sample[reps], table[reps], part)


def _interleaved_addresses(batch, org, table, row, vec_lines):
    """Row v of a table goes to unit v mod U (U = channels x ranks x banks), slot v div U."""
    units = org.channels * org.ranks * org.banks
    vpr = org.lines_per_row // vec_lines  # vectors per DRAM row
    if np.any(vpr == 0):
        raise ValueError(f"interleaved placement needs vectors of at most one DRAM row ({org.row_bytes} bytes)")
    slots = [-(-t.rows // units) for t in batch.tables]  # vectors of each table per unit
    rows_needed = np.array([-(-s // int(v)) for s, v in zip(slots, vpr)], np.int64)
    row_base = np.concatenate([[0], np.cumsum(rows_needed)[:-1]])
    if rows_needed.sum() > org.rows:
        raise ValueError(f"the tables need {int(rows_needed.sum())} DRAM rows per bank, more than {org.rows}")
    unit = row % units
    slot = row // units
    ba = unit % org.banks_per_group
    bg = (unit // org.banks_per_group) % org.bankgroups
    ra = (unit // org.banks) % org.ranks
    ch = unit // (org.banks * org.ranks)
    dram_row = row_base[table] + slot // vpr[table]
    col = (slot % vpr[table]) * vec_lines[table]
    return encode(org, channel=ch, rank=ra, bankgroup=bg, bank=ba, row=dram_row, column=col)
