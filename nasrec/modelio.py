"""Model files: a trained or pruned model's weights with its ArchSpec JSON (or baseline
name) and the data schema, written atomically and read back as an ordinary module.

Kinds: ``arch`` (a NasRecModel as built), ``pruned-arch`` (a NasRecModel in its plain
form, ``NasRecModel.plain``, whose weights may be pruned), ``baseline``. Files of kind
``prunable-arch`` came from the earlier second implementation (``PrunableNasRec``, plain
layers named per block); they load as a pruned-arch NasRecModel with the same outputs."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nasrec.baselines import build_baseline
from nasrec.data import Schema
from nasrec.embedding import pack_tables, unpack_tables
from nasrec.model import NasRecModel
from nasrec.prune import _fix_attrs
from nasrec.space import ArchSpec
from nasrec.util import atomic_torch_save, seeded_torch

MODEL_FORMAT = "nasrec-model"
MODEL_VERSION = 1
#: The shared embedding table's state-dict key in NasRecModel.
_TABLE_KEY = "embedding.table.weight"
#: ``prunable-arch`` files: layer name inside a block -> its name in NasRecModel's block.
_LEGACY_LAYERS = {
    "fc_lin": "dense_ops.fc.lin", "fc_ln": "dense_ops.fc.ln",
    "dp": "dense_ops.dot.dense_proj", "dp_ln": "dense_ops.dot.dense_ln", "fp": "dense_ops.dot.field_proj",
    "fp_ln": "dense_ops.dot.field_ln", "out": "dense_ops.dot.out", "out_ln": "dense_ops.dot.out_ln",
    "gate": "dense_ops.gating.gate", "proj": "dense_ops.{dense}.proj", "ln": "dense_ops.{dense}.ln",
    "sum_il": "dense_ops.sum.left_pos", "sum_ir": "dense_ops.sum.right_pos",
    "tok_lin": "sparse_ops.{sparse}.lin", "tok_ln": "sparse_ops.{sparse}.ln",
    "qkv": "sparse_ops.attention.qkv", "o": "sparse_ops.attention.o", "attn_ln": "sparse_ops.attention.attn_ln",
    "ffn1": "sparse_ops.attention.fc1", "ffn2": "sparse_ops.attention.fc2", "ffn_ln": "sparse_ops.attention.fc_ln",
    "d2s_lin": "d2s.lin", "d2s_ln": "d2s.ln", "fm_lin": "fm.lin", "fm_ln": "fm.ln",
}

def _schema_dict(schema: Schema) -> dict:
    return schema.to_dict()


def save_model(model: nn.Module, path, *, schema: Schema, meta: dict | None = None) -> Path:
    """Write a trained or pruned model (NasRecModel, plain or not, or a baseline) to
    ``path`` (temporary file + rename). :func:`load_model` reads it back.

    An architecture with per-field embedding choices stores its table as it would be
    deployed (``nasrec.embedding.pack_tables``): each field's used columns in its
    precision, int8 with a scale per row, dropped fields absent."""
    path = Path(path)
    if isinstance(model, NasRecModel):
        kind, arch, name = "pruned-arch" if model.is_plain else "arch", model.spec.to_json(), None
    else:
        name = next((k for k, cls in _baseline_classes().items() if type(model) is cls), None)
        if name is None:
            raise ValueError(f"cannot save a {type(model).__name__}")
        kind, arch = "baseline", None
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    packed = None
    if kind == "arch" and model.spec.embedding is not None:
        # the embedding as it is stored: per-field prefixes in their own precisions
        emb = model.spec.embedding
        packed = pack_tables(sd.pop(_TABLE_KEY), schema.cardinalities, emb.dims, emb.precisions)
    state = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "kind": kind, "arch": arch, "baseline": name,
             "schema": _schema_dict(schema), "state_dict": sd, "embedding_tables": packed, "meta": meta or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(state, path)
    return path


def _baseline_classes() -> dict:
    from nasrec.baselines import BASELINES
    return BASELINES


def load_model(path, device="cpu") -> tuple[nn.Module, dict]:
    """(model, file dict) from a file written by :func:`save_model`; a pruned model
    comes back at its pruned sizes as an ordinary module."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is bad input
        raise ValueError(f"{path}: not a model file ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a nasrec model file (write one with `nasrec train --save-model`)")
    if state.get("version") != MODEL_VERSION:
        raise ValueError(f"{path}: unsupported model file version {state.get('version')!r}")
    schema = Schema.from_dict(state["schema"])
    kind = state["kind"]
    if kind == "arch":
        with seeded_torch(0):
            model = NasRecModel(ArchSpec.from_json(state["arch"]), schema)
    elif kind in ("pruned-arch", "prunable-arch"):
        with seeded_torch(0):
            model = NasRecModel(ArchSpec.from_json(state["arch"]), schema).plain()
    elif kind == "baseline":
        model = build_baseline(state["baseline"], schema, 0)
    else:
        raise ValueError(f"{path}: unknown model kind {kind!r}")
    sd = state["state_dict"]
    if kind == "prunable-arch":
        sd = _legacy_state(sd, model)
    if state.get("embedding_tables") is not None:
        if kind != "arch" or model.spec.embedding is None:
            raise ValueError(f"{path}: packed embedding tables belong to an architecture with embedding choices")
        table = model.embedding.table.weight
        sd = dict(sd, **{_TABLE_KEY: unpack_tables(state["embedding_tables"], schema.cardinalities,
                                                   table.shape[1])})
    named = dict(model.named_parameters())
    named.update(dict(model.named_buffers()))
    for k, v in sd.items():
        if k in named and named[k].shape != v.shape:
            named[k].data = torch.empty_like(v)
    _fix_attrs(model)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the model ({str(e).splitlines()[0]})") from None
    return model.to(device), dict(state, schema=schema)


def _legacy_state(sd: dict, model: NasRecModel) -> dict:
    """A ``prunable-arch`` state dict under NasRecModel's names."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "blocks" and len(parts) >= 3 and parts[2] in _LEGACY_LAYERS:
            c = model.path[int(parts[1])]
            layer = _LEGACY_LAYERS[parts[2]].format(dense=c.dense_ops[0], sparse=c.sparse_ops[0])
            k = ".".join(["blocks", parts[1], layer] + parts[3:])
        out[k] = v
    return out
