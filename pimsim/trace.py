"""Memory traces: the text format ``<hex address> <READ|WRITE> <arrival cycle>``.

Also reads embedding indices stored as ``.npz`` in the FBGEMM convention.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Trace", "read_trace", "write_trace", "read_indices_npz"]


@dataclass(frozen=True)
class Trace:
    """Requests in file order: byte addresses, write flags and arrival cycles, each shape (n,)."""

    addresses: np.ndarray
    is_write: np.ndarray
    arrival_cycles: np.ndarray

    def __post_init__(self) -> None:
        addr = np.asarray(self.addresses, dtype=np.int64)
        wr = np.asarray(self.is_write, dtype=np.bool_)
        arr = np.asarray(self.arrival_cycles, dtype=np.int64)
        if not (addr.ndim == wr.ndim == arr.ndim == 1) or not (len(addr) == len(wr) == len(arr)):
            raise ValueError(
                f"Trace arrays must be 1-D and of equal length, got {addr.shape}, {wr.shape}, {arr.shape}")
        if len(addr) and addr.min() < 0:
            raise ValueError(f"Trace.addresses: negative address {int(addr.min())}")
        if len(arr) and arr.min() < 0:
            raise ValueError(f"Trace.arrival_cycles: negative arrival cycle {int(arr.min())}")
        object.__setattr__(self, "addresses", addr)
        object.__setattr__(self, "is_write", wr)
        object.__setattr__(self, "arrival_cycles", arr)

    def __len__(self) -> int:
        return len(self.addresses)


def read_trace(path: str | os.PathLike) -> Trace:
    """Parse a text trace; a bad line raises ``ValueError`` naming the file and line number."""
    path = Path(path)
    addresses, writes, arrivals = [], [], []
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read trace {str(path)!r}: {exc.strerror}") from None
    with fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = text.split()
            if len(parts) != 3:
                raise ValueError(f"{path}:{lineno}: expected '<hex address> <READ|WRITE> <cycle>', got {line.strip()!r}")
            addr_s, op, cyc_s = parts
            try:
                addr = int(addr_s, 16)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: bad hex address {addr_s!r}") from None
            op_u = op.upper()
            if op_u not in ("READ", "WRITE"):
                raise ValueError(f"{path}:{lineno}: operation must be READ or WRITE, got {op!r}")
            try:
                cyc = int(cyc_s, 10)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: bad arrival cycle {cyc_s!r}") from None
            if addr < 0 or cyc < 0:
                raise ValueError(f"{path}:{lineno}: address and cycle must be non-negative")
            addresses.append(addr)
            writes.append(op_u == "WRITE")
            arrivals.append(cyc)
    if not addresses:
        raise ValueError(f"{path}: trace holds no requests")
    return Trace(np.array(addresses, np.int64), np.array(writes, np.bool_), np.array(arrivals, np.int64))


def write_trace(trace: Trace, path: str | os.PathLike) -> None:
    """Write a text trace atomically (temporary file, then rename)."""
    path = Path(path)
    ops = np.where(trace.is_write, "WRITE", "READ")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for a, op, c in zip(trace.addresses.tolist(), ops.tolist(), trace.arrival_cycles.tolist()):
                fh.write(f"0x{a:x} {op} {c}\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_indices_npz(path: str | os.PathLike) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-table ``(indices, offsets)`` from an ``.npz``.

    Keys ``indices_<t>`` and ``offsets_<t>`` for tables t = 0, 1, ...; or a single
    ``indices``/``offsets`` pair. Offsets follow FBGEMM: length batch + 1, bag b is
    ``indices[offsets[b]:offsets[b + 1]]``.
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read indices {str(path)!r}: {exc}") from None
    with data:
        keys = set(data.files)
        if {"indices", "offsets"} <= keys:
            pairs = [(data["indices"], data["offsets"])]
        else:
            pairs = []
            t = 0
            while f"indices_{t}" in keys:
                if f"offsets_{t}" not in keys:
                    raise ValueError(f"{path}: 'indices_{t}' has no matching 'offsets_{t}'")
                pairs.append((data[f"indices_{t}"], data[f"offsets_{t}"]))
                t += 1
            if not pairs:
                raise ValueError(f"{path}: expected keys 'indices'/'offsets' or 'indices_0'/'offsets_0', got {sorted(keys)}")
    out = []
    batch = None
    for t, (idx, off) in enumerate(pairs):
        idx = np.asarray(idx)
        off = np.asarray(off)
        if idx.dtype.kind not in "iu" or off.dtype.kind not in "iu":
            raise ValueError(f"{path}: table {t}: indices and offsets must be integer arrays")
        if off.ndim != 1 or len(off) < 2 or off[0] != 0 or off[-1] != len(idx) or np.any(np.diff(off) < 0):
            raise ValueError(f"{path}: table {t}: offsets must start at 0, not decrease and end at len(indices)={len(idx)}")
        if len(idx) and idx.min() < 0:
            raise ValueError(f"{path}: table {t}: negative index {int(idx.min())}")
        if batch is None:
            batch = len(off) - 1
        elif len(off) - 1 != batch:
            raise ValueError(f"{path}: table {t}: batch size {len(off) - 1} differs from table 0's {batch}")
        out.append((idx.astype(np.int64), off.astype(np.int64)))
    return out
