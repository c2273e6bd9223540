"""Physical address <-> (channel, rank, bank group, bank, row, column) under a mapping string.

Addresses are byte addresses. The lowest ``log2(line_bytes)`` bits select a byte
within one burst and are dropped; the rest, the line number, is a mixed-radix
number whose digits are the fields, from least to most significant in the reverse
order of the mapping string (``co`` counts bursts). With power-of-two sizes the
digits are plain bit fields.

Channels may be any count, so the channel digit is taken modulo the channel count:
``channel = (line // lines_below_ch) % channels``. This modulo interleave is a
bijection from ``[0, capacity_bytes)`` onto the DRAM locations for any count, with no
holes and no aliases, sends consecutive blocks of ``lines_below_ch`` lines round-robin
over the channels, and equals the bit-field mapping when the count is a power of two.
An XOR-hashed channel (channel bits XOR higher bits) spreads strided streams better,
but is a bijection only for power-of-two counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _engine as E
from .config import DramOrg, parse_mapping

__all__ = ["DecodedAddresses", "decode", "encode", "controller_fields"]


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
    """(field, stride in lines, number of values) from the least significant field up."""
    sizes = org.field_sizes()
    out = []
    stride = 1
    for name in reversed(parse_mapping(org.address_mapping)):
        out.append((name, stride, sizes[name]))
        stride *= sizes[name]
    return out


def _is_pow2(n: int) -> bool:
    return n & (n - 1) == 0


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
    line = addr >> (int(org.line_bytes).bit_length() - 1)
    fields = {}
    for name, stride, size in _layout(org):
        if _is_pow2(stride) and _is_pow2(size):  # shifts and masks: the common, faster case
            fields[name] = (line >> (stride.bit_length() - 1)) & (size - 1)
        else:
            fields[name] = (line // stride) % size
    return DecodedAddresses(channel=fields["ch"], rank=fields["ra"], bankgroup=fields["bg"],
                            bank=fields["ba"], row=fields["ro"], column=fields["co"], line=line)


def controller_fields(addresses, org: DramOrg) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a controller reads of each byte address: (channel, bank index
    ``(rank * bankgroups + bankgroup) * banks_per_group + bank``, row, line), int64 (n,).

    The same fields as :func:`decode`, in one compiled pass: a long trace then allocates
    four arrays instead of a dozen temporaries.
    """
    addr = np.asarray(addresses)
    if addr.dtype.kind not in "iu":
        raise ValueError(f"addresses must be integers, got dtype {addr.dtype}")
    if addr.ndim != 1:
        raise ValueError(f"addresses must be one-dimensional, got shape {addr.shape}")
    addr = np.ascontiguousarray(addr, np.int64)
    layout = {name: (stride, size) for name, stride, size in _layout(org)}
    fields = ("ch", "ra", "bg", "ba", "ro")
    stride = np.array([layout[k][0] for k in fields], np.int64)
    size = np.array([layout[k][1] for k in fields], np.int64)
    pow2 = [_is_pow2(int(a)) and _is_pow2(int(b)) for a, b in zip(stride, size)]
    shift = np.array([int(a).bit_length() - 1 if p else -1 for a, p in zip(stride, pow2)], np.int64)
    mask = np.where(pow2, size - 1, 0).astype(np.int64)
    n = len(addr)
    channel, bank, row, line = (np.empty(n, np.int64) for _ in range(4))
    bad = E._split_addresses(addr, int(org.line_bytes).bit_length() - 1, org.capacity_bytes,
                             shift, mask, stride, size, channel, bank, row, line)
    if bad >= 0:  # name the address decode() names
        if addr.min() < 0:
            raise ValueError(f"negative address {int(addr.min())}")
        raise ValueError(f"address {int(addr.max()):#x} is beyond the capacity of {org.capacity_bytes:#x} bytes")
    return channel, bank, row, line


def encode(org: DramOrg, *, channel=0, rank=0, bankgroup=0, bank=0, row=0, column=0) -> np.ndarray:
    """Byte address of the first byte of the given burst(s); arguments broadcast."""
    values = {"ch": channel, "ra": rank, "bg": bankgroup, "ba": bank, "ro": row, "co": column}
    line = np.zeros(np.broadcast(*[np.asarray(v) for v in values.values()]).shape, np.int64)
    for name, stride, size in _layout(org):
        v = np.asarray(values[name], dtype=np.int64)
        if v.size and (v.min() < 0 or v.max() >= size):
            raise ValueError(f"{name} value out of range 0..{size - 1}")
        line = line + v * stride
    return line * org.line_bytes
