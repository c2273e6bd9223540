"""A slow, obviously correct reference of the text-trace reader.

This is pimsim's line-by-line reader as it was before the compiled byte parser: Python's
text mode splits the lines (universal newlines), ``str.split`` the fields, ``int`` parses
the numbers. It shares no code with pimsim; the tests require both to agree exactly, in
what they accept and in the error they raise.
"""

from __future__ import annotations

from pathlib import Path


def read_trace_reference(path) -> tuple[list[int], list[bool], list[int]]:
    path = Path(path)
    addresses, writes, arrivals = [], [], []
    with path.open("r", encoding="utf-8") as fh:
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
    return addresses, writes, arrivals
