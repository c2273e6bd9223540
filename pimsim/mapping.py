"""Physical address <-> (channel, rank, bank group, bank, row, column) under a mapping string.

Addresses are byte addresses. The lowest ``log2(line_bytes)`` bits select a byte
within one burst and are dropped; the fields follow from least to most
significant in the reverse order of the mapping string (``co`` counts bursts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import DramOrg, parse_mapping

__all__ = ["DecodedAddresses", "decode", "encode"]


@dataclass(frozen=True)
class DecodedAddresses:
    """Per-request fields, each an int64 array of shape (n,)."""

    channel: np.ndarray
    rank: np.ndarray
    bankgroup: np.ndarray
    bank: np.ndarray  # bank within its group
    row: np.ndarray
    column: np.ndarray  # burst index within the row
    line: np.ndarray  # address >> log2(line_bytes)


def _layout(org: DramOrg) -> list[tuple[str, int, int]]:
    """(field, shift, bits) from the least significant field up."""
    sizes = org.field_sizes()
    shift = int(org.line_bytes).bit_length() - 1
    out = []
    for name in reversed(parse_mapping(org.address_mapping)):
        bits = int(sizes[name]).bit_length() - 1
        out.append((name, shift, bits))
        shift += bits
    return out


def decode(addresses, org: DramOrg) -> DecodedAddresses:
    """Split byte addresses (array-like of non-negative ints) into DRAM fields."""
    addr = np.asarray(addresses)
    if addr.dtype.kind not in "iu":
        raise ValueError(f"addresses must be integers, got dtype {addr.dtype}")
    addr = addr.astype(np.int64, copy=False)
    if addr.size and addr.min() < 0:
        raise ValueError(f"negative address {int(addr.min())}")
    if addr.size and addr.max() >= org.capacity_bytes:
        bad = int(addr.max())
        raise ValueError(f"address {bad:#x} is beyond the capacity of {org.capacity_bytes:#x} bytes")
    fields = {}
    for name, shift, bits in _layout(org):
        fields[name] = (addr >> shift) & ((1 << bits) - 1)
    line_shift = int(org.line_bytes).bit_length() - 1
    return DecodedAddresses(channel=fields["ch"], rank=fields["ra"], bankgroup=fields["bg"],
                            bank=fields["ba"], row=fields["ro"], column=fields["co"],
                            line=addr >> line_shift)


def encode(org: DramOrg, *, channel=0, rank=0, bankgroup=0, bank=0, row=0, column=0) -> np.ndarray:
    """Byte address of the first byte of the given burst(s); arguments broadcast."""
    values = {"ch": channel, "ra": rank, "bg": bankgroup, "ba": bank, "ro": row, "co": column}
    sizes = org.field_sizes()
    addr = np.zeros(np.broadcast(*[np.asarray(v) for v in values.values()]).shape, np.int64)
    for name, shift, _bits in _layout(org):
        v = np.asarray(values[name], dtype=np.int64)
        if v.size and (v.min() < 0 or v.max() >= sizes[name]):
            raise ValueError(f"{name} value out of range 0..{sizes[name] - 1}")
        addr = addr | (v << shift)
    return addr
