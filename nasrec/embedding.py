"""Simulated storage precision of embedding rows; the elastic embedding's rules.

``nasrec.model.FieldEmbedding(schema, max_dim=...)`` is the elastic embedding: one table per model holds every field at the largest dimension of the embedding
space; a field of dimension ``d`` uses the first ``d`` columns of its rows (elastic
width, so a supernet scores any per-field choice without retraining). Fields whose
dimension differs from the operators' token width (``EMB_DIM``) are projected to it
by a per-field matrix, of which a ``d``-dimensional field uses the first ``d`` rows;
a field at ``EMB_DIM`` is used as it is, so the published space (every field 16-dim,
fp32) is the plain embedding. A dropped field (dimension 0) gives a zero token: the
token count stays that of the schema, so the supernet and a standalone model agree
exactly.

Precision is simulated on lookup (quantise, then dequantise), with a straight-through
gradient: fp16 rounds to half precision; int8 stores each row as
``round(x / s)`` in [-127, 127] with ``s = max|x| / 127`` per row, so the error of any
element is at most ``s / 2 = max|row| / 254``.
"""
from __future__ import annotations

import torch

__all__ = ["quantize", "INT8_LEVELS", "table_bytes", "pack_tables", "unpack_tables"]

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "int8": torch.int8}

INT8_LEVELS = 127  # symmetric int8: [-127, 127]


def _int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``x`` as int8 levels (float tensor of integers) and their scales ``[..., 1]``."""
    scale = x.detach().abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / INT8_LEVELS
    return torch.round(x / scale).clamp(-INT8_LEVELS, INT8_LEVELS), scale


def quantize(x: torch.Tensor, precision: str) -> torch.Tensor:
    """``x`` as stored in ``precision`` and read back, rows along the last axis.

    Gradients pass straight through (the rounding is treated as identity).
    """
    if precision == "fp32":
        return x
    if precision == "fp16":
        q = x.to(torch.float16).to(x.dtype)
    elif precision == "int8":
        levels, scale = _int8(x)
        q = levels * scale
    else:
        raise ValueError(f"unknown precision {precision!r} (fp32, fp16, int8)")
    return x + (q - x).detach()


def table_bytes(cardinalities, dims, precisions) -> int:
    """Bytes of the tables stored at these per-field dims and precisions (int8 scales not counted)."""
    return sum(int(c) * int(d) * _DTYPES[p].itemsize for c, d, p in zip(cardinalities, dims, precisions))


def pack_tables(table: torch.Tensor, cardinalities, dims, precisions) -> list[dict]:
    """Per-field tables as stored: field ``f`` keeps its rows' first ``dims[f]``
    columns in ``precisions[f]`` (int8 with a float32 scale per row); dropped fields
    are not stored. ``table``: ``[sum(cardinalities), max_dim]``, fields in order.

    Reading them back with :func:`unpack_tables` gives the values that ``quantize``
    gives on lookup, so a model keeps its predictions.
    """
    packed, start = [], 0
    for f, (c, d, prec) in enumerate(zip(cardinalities, dims, precisions)):
        rows = table[start:start + c, :d].detach().cpu().float()
        start += c
        if d == 0:
            continue
        entry = {"field": f, "dim": d, "precision": prec, "scale": None}
        if prec == "int8":
            levels, scale = _int8(rows)
            entry["rows"], entry["scale"] = levels.to(torch.int8), scale.squeeze(-1)
        elif prec in _DTYPES:
            entry["rows"] = rows.to(_DTYPES[prec])
        else:
            raise ValueError(f"unknown precision {prec!r} of field {f} (fp32, fp16, int8)")
        packed.append(entry)
    return packed


def unpack_tables(packed: list[dict], cardinalities, max_dim: int) -> torch.Tensor:
    """The ``[sum(cardinalities), max_dim]`` float32 table of :func:`pack_tables`'
    output; columns and fields that were not stored are zero."""
    starts = [0]
    for c in cardinalities:
        starts.append(starts[-1] + int(c))
    table = torch.zeros(starts[-1], max_dim)
    for e in packed:
        f, d = int(e["field"]), int(e["dim"])
        if not 0 <= f < len(cardinalities) or not 0 < d <= max_dim:
            raise ValueError(f"packed table of field {f} with dim {d} does not fit {len(cardinalities)} "
                             f"fields of at most {max_dim} dims")
        rows = e["rows"].float()
        if e["precision"] == "int8":
            rows = rows * e["scale"].float().unsqueeze(-1)
        if rows.shape != (cardinalities[f], d):
            raise ValueError(f"packed table of field {f} has shape {tuple(rows.shape)}, "
                             f"expected {(cardinalities[f], d)}")
        table[starts[f]:starts[f + 1], :d] = rows
    return table
