"""Memory traces, as text or as a binary ``.npz``; the format follows the file's extension.

Text (any name but ``*.npz``): one request per line, ``<hex address> <READ|WRITE> <arrival
cycle>``, fields separated by whitespace; the address in hexadecimal with or without
``0x``, the operation in any letter case, the cycle in decimal. ``#`` starts a comment
that runs to the end of the line; blank lines are skipped.

Binary (``*.npz``, as ``numpy.savez`` writes it, compressed or not): exactly three 1-D
arrays of equal length n, ``address`` (byte address, int64; any integer type holding
values in 0..2**63-1 is accepted), ``op`` (uint8: 0 = READ, 1 = WRITE; bool and other
integer types holding 0/1 are accepted) and ``cycle`` (arrival cycle, int64, as address).

Also reads embedding indices stored as ``.npz`` in the FBGEMM convention.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from ._pages import small_pages

__all__ = ["Trace", "read_trace", "write_trace", "read_indices_npz", "OP_READ", "OP_WRITE"]

OP_READ, OP_WRITE = 0, 1  # the ``op`` codes of a binary trace
_NPZ_KEYS = ("address", "op", "cycle")
_LINE_FORMAT = "'<hex address> <READ|WRITE> <cycle>'"


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


@small_pages()
def read_trace(path: str | os.PathLike) -> Trace:
    """Read a trace: ``*.npz`` as binary, any other name as text (formats: module docstring).

    Bad input raises ``ValueError`` naming the file and the bad line (text) or the
    bad array and element (binary).
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    return _read_text(path)


def write_trace(trace: Trace, path: str | os.PathLike) -> None:
    """Write a trace atomically (temporary file, then rename): ``*.npz`` as binary, else text."""
    if not isinstance(trace, Trace):
        raise ValueError(f"trace must be a pimsim Trace, got {type(trace).__name__}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if path.suffix.lower() == ".npz":
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, address=trace.addresses,
                         op=np.where(trace.is_write, OP_WRITE, OP_READ).astype(np.uint8),
                         cycle=trace.arrival_cycles)
        else:
            ops = np.where(trace.is_write, "WRITE", "READ")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for a, op, c in zip(trace.addresses.tolist(), ops.tolist(), trace.arrival_cycles.tolist()):
                    fh.write(f"0x{a:x} {op} {c}\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_text(path: Path) -> Trace:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            # one spare byte for a closing newline: the scanner then needs no end checks
            buf = np.empty(size + 1, np.uint8)
            got = fh.readinto(memoryview(buf)[:size])
    except OSError as exc:
        raise ValueError(f"cannot read trace {str(path)!r}: {exc.strerror}") from None
    buf = buf[:got + 1]
    buf[got] = 10
    high, has_cr, newlines = _byte_flags(buf[:got])
    if has_cr or high:
        data = buf[:got].tobytes()
        if high:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                lineno = data.count(b"\n", 0, exc.start) + 1
                raise ValueError(f"{path}:{lineno}: not UTF-8 text") from None
        if has_cr:  # universal newlines, as Python's text mode reads them
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            buf = np.frombuffer(data + b"\n", np.uint8)
            newlines = data.count(b"\n")
            got = len(data)
    # every request line ends with a newline, the last one perhaps with the spare byte
    cap = int(newlines) + int(got == 0 or buf[got - 1] != 10)
    addr = np.empty(cap, np.int64)
    wr = np.empty(cap, np.bool_)
    cyc = np.empty(cap, np.int64)
    pos = line = nreq = 0
    while True:
        pos, line, nreq, start, end = _scan_text(buf, pos, line, addr, wr, cyc, nreq)
        if start < 0:
            break
        request = _parse_line(buf[start:end].tobytes().decode("utf-8"), path, line)
        if request is not None:
            addr[nreq], wr[nreq], cyc[nreq] = request
            nreq += 1
    if nreq == 0:
        raise ValueError(f"{path}: trace holds no requests")
    if nreq < cap:  # blank or comment lines: shrink in place (no copy of a fresh array)
        for a in (addr, wr, cyc):
            a.resize(nreq, refcheck=False)
    return Trace(addr, wr, cyc)


def _parse_line(line: str, path: Path, lineno: int) -> tuple[int, bool, int] | None:
    """(address, is_write, cycle) of one text line, None for a blank or comment line."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    parts = text.split()
    if len(parts) != 3:
        raise ValueError(f"{path}:{lineno}: expected {_LINE_FORMAT}, got {line.strip()!r}")
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
    if addr >= 2**63 or cyc >= 2**63:
        raise ValueError(f"{path}:{lineno}: address and cycle must be below 2**63")
    return addr, op_u == "WRITE", cyc


# Byte classes of the text scanner: hex and decimal digit values (-1: none); 1 for a field separator
# (space, tab), 2 for what ends a line's fields (newline, '#').
_HEX_DIGIT = np.full(256, -1, np.int64)
_HEX_DIGIT[48:58] = np.arange(10)
_HEX_DIGIT[97:103] = np.arange(10, 16)
_HEX_DIGIT[65:71] = np.arange(10, 16)
_DEC_DIGIT = np.full(256, -1, np.int64)
_DEC_DIGIT[48:58] = np.arange(10)
_SEP = np.zeros(256, np.int64)
_SEP[[32, 9]] = 1
_SEP[[10, 35]] = 2


@njit(cache=True)
def _byte_flags(buf):
    """(any byte >= 0x80, any carriage return, how many newlines) of ``buf``."""
    high = 0
    cr = False
    newlines = 0
    for k in range(len(buf)):
        high |= buf[k]
        cr |= buf[k] == 13
        newlines += buf[k] == 10
    return high >= 0x80, cr, newlines


@njit(cache=True)
def _number(buf, j, digit, base, max_sig):
    """(value, end, ok) of the digits of ``digit`` (a byte-class table) in ``base`` from
    byte ``j``: ok when there is at least one digit and at most ``max_sig`` significant ones."""
    first = j
    while buf[j] == 48:
        j += 1
    sig = j
    v = np.int64(0)
    while digit[buf[j]] >= 0:
        v = v * base + digit[buf[j]]
        j += 1
    return v, j, j > first and j - sig <= max_sig


@njit(cache=True)
def _scan_text(buf, pos, line, addr, wr, cyc, nreq):
    """Parse plain text-trace lines of the bytes ``buf`` (uint8; lines end at byte 10,
    and so does ``buf``, so no loop needs a bounds check).

    From byte ``pos`` on, after ``line`` lines, writing requests at ``addr``, ``wr``,
    ``cyc`` [nreq:]. A plain line is ASCII: three fields separated by spaces or tabs
    (hex address with an optional 0x and at most 15 significant digits, READ or WRITE in
    any case, decimal cycle with at most 18 significant digits), then an optional ``#``
    comment; or blank or comment only. Stops before the first other line, which
    ``_parse_line`` judges. Returns (byte after the stopping line, lines so far, requests
    so far, start and end byte of the stopping line, or -1, -1 at the end of ``buf``).
    """
    n = len(buf)
    sep = _SEP
    while pos < n:
        start = pos
        line += 1
        j = pos
        while sep[buf[j]] == 1:
            j += 1
        plain = sep[buf[j]] == 2  # blank or comment only
        if not plain:
            if buf[j] == 48 and (buf[j + 1] | 32) == 120:  # 0x or 0X
                j += 2
            a, j, ok = _number(buf, j, _HEX_DIGIT, 16, 15)
            if ok and sep[buf[j]] == 1:
                while sep[buf[j]] == 1:
                    j += 1
                # the && chain stops at the first mismatch, so it never reads past a newline
                w = -1
                if ((buf[j] | 32) == 114 and (buf[j + 1] | 32) == 101 and (buf[j + 2] | 32) == 97
                        and (buf[j + 3] | 32) == 100):
                    w = 0
                    j += 4
                elif ((buf[j] | 32) == 119 and (buf[j + 1] | 32) == 114 and (buf[j + 2] | 32) == 105
                      and (buf[j + 3] | 32) == 116 and (buf[j + 4] | 32) == 101):
                    w = 1
                    j += 5
                if w >= 0 and sep[buf[j]] == 1:
                    while sep[buf[j]] == 1:
                        j += 1
                    c, j, ok = _number(buf, j, _DEC_DIGIT, 10, 18)
                    if ok:
                        while sep[buf[j]] == 1:
                            j += 1
                        # a full output (which sizing rules out) leaves the line to Python,
                        # whose store then fails loudly instead of writing out of bounds
                        if sep[buf[j]] == 2 and nreq < addr.shape[0]:
                            plain = True
                            addr[nreq] = a
                            wr[nreq] = w == 1
                            cyc[nreq] = c
                            nreq += 1
        while buf[j] != 10:
            j += 1
        if not plain:
            return j + 1, line, nreq, start, j
        pos = j + 1
    return pos, line, nreq, -1, -1


def _read_npz(path: Path) -> Trace:
    try:
        archive = np.load(path, allow_pickle=False)
    except OSError as exc:
        raise ValueError(f"cannot read trace {str(path)!r}: {exc.strerror or exc}") from None
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read trace {str(path)!r}: not an .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive of arrays {', '.join(_NPZ_KEYS)}, got a single array")
    with archive:
        keys = set(archive.files)
        if keys != set(_NPZ_KEYS):
            missing, extra = sorted(set(_NPZ_KEYS) - keys), sorted(keys - set(_NPZ_KEYS))
            raise ValueError(f"{path}: a binary trace holds exactly the arrays {', '.join(_NPZ_KEYS)}"
                             + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else ""))
        try:
            arrays = {k: archive[k] for k in _NPZ_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"cannot read trace {str(path)!r}: {exc}") from None
    n = len(arrays["address"]) if arrays["address"].ndim == 1 else -1
    for key, a in arrays.items():
        if a.ndim != 1:
            raise ValueError(f"{path}: '{key}' must be a 1-D array, got shape {a.shape}")
        if a.dtype.kind not in ("iub" if key == "op" else "iu"):
            raise ValueError(f"{path}: '{key}' must be an integer array, got dtype {a.dtype}")
        if len(a) != n:
            raise ValueError(f"{path}: arrays of different lengths: address {n}, {key} {len(a)}")
    for key, what in (("address", "address"), ("cycle", "arrival cycle")):
        a = arrays[key]
        bad = np.flatnonzero(a < 0) if a.dtype.kind == "i" else np.flatnonzero(a > np.iinfo(np.int64).max)
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"{path}: {key}[{i}] = {int(a[i])}: {what} must be in 0..2**63-1")
    op = arrays["op"]
    bad = np.flatnonzero((op != OP_READ) & (op != OP_WRITE))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"{path}: op[{i}] = {int(op[i])}: must be {OP_READ} (READ) or {OP_WRITE} (WRITE)")
    if n == 0:
        raise ValueError(f"{path}: trace holds no requests")
    return Trace(arrays["address"].astype(np.int64), op.astype(np.bool_), arrays["cycle"].astype(np.int64))


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
