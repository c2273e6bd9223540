"""Elastic per-field embeddings and simulated storage precision (issue 7)."""

import pytest
import torch

from nasrec.data import Schema
from nasrec.embedding import INT8_LEVELS, ElasticEmbedding, quantize
from nasrec.ops import EMB_DIM
from nasrec.space import EmbeddingSpec

SCHEMA = Schema(n_dense=3, cardinalities=(5, 7, 11, 13))


def ids(batch=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, c, (batch,), generator=g) for c in SCHEMA.cardinalities], 1)


def test_published_spec_is_the_plain_embedding():
    emb = ElasticEmbedding(SCHEMA, max_dim=64)
    x = ids()
    plain = emb(x, None)
    assert plain.shape == (6, 4, EMB_DIM)
    torch.testing.assert_close(emb(x, EmbeddingSpec.published(4)), plain, rtol=0, atol=0)
    torch.testing.assert_close(plain, emb.table(x + emb.offsets)[..., :EMB_DIM])


def test_dims_use_prefixes_and_dropped_fields_give_zero_tokens():
    emb = ElasticEmbedding(SCHEMA, max_dim=64)
    x = ids()
    spec = EmbeddingSpec((0, 8, 16, 64), ("fp32",) * 4)
    out = emb(x, spec)
    assert out.shape == (6, 4, EMB_DIM)
    assert torch.all(out[:, 0] == 0)
    rows = emb.table(x + emb.offsets)
    torch.testing.assert_close(out[:, 1], rows[:, 1, :8] @ emb.proj[1, :8])
    torch.testing.assert_close(out[:, 2], rows[:, 2, :16])
    # columns beyond a field's dimension do not matter to it
    with torch.no_grad():
        emb.table.weight[:, 8:16] += 1.0
    torch.testing.assert_close(emb(x, spec)[:, 1], out[:, 1])


def test_gradients_reach_only_the_used_slices():
    emb = ElasticEmbedding(SCHEMA, max_dim=32)
    spec = EmbeddingSpec((4, 0, 16, 8), ("fp32", "fp32", "int8", "fp16"))
    emb(ids(), spec).sum().backward()
    g = emb.table.weight.grad
    assert torch.all(g[:, 16:] == 0)
    assert torch.any(g[:, :4] != 0)
    assert torch.all(emb.proj.grad[1] == 0) and torch.all(emb.proj.grad[2] == 0)  # dropped; unprojected
    assert torch.any(emb.proj.grad[0, :4] != 0) and torch.all(emb.proj.grad[0, 4:] == 0)


def test_quantisation_error_is_bounded_as_documented():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 32, generator=g) * 3
    q8 = quantize(x, "int8")
    bound = x.abs().amax(1, keepdim=True) / (2 * INT8_LEVELS)
    assert torch.all((q8 - x).abs() <= bound + 1e-6)
    assert len(torch.unique(q8[0] / (x[0].abs().max() / INT8_LEVELS)).round()) <= 2 * INT8_LEVELS + 1
    q16 = quantize(x, "fp16")
    assert torch.all((q16 - x).abs() <= x.abs() * 2 ** -11 + 1e-12)
    assert torch.equal(quantize(x, "fp32"), x)
    with pytest.raises(ValueError, match="unknown precision"):
        quantize(x, "int4")


def test_straight_through_gradient():
    x = torch.randn(4, 8, requires_grad=True)
    quantize(x, "int8").sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_bad_specs_are_refused():
    emb = ElasticEmbedding(SCHEMA, max_dim=32)
    with pytest.raises(ValueError, match="3 fields, the data has 4"):
        emb(ids(), EmbeddingSpec((8, 8, 8), ("fp32",) * 3))
    with pytest.raises(ValueError, match="exceeds this table's 32"):
        emb(ids(), EmbeddingSpec((64, 8, 8, 8), ("fp32",) * 4))
    with pytest.raises(ValueError, match="max_dim"):
        ElasticEmbedding(SCHEMA, max_dim=8)


def test_table_bytes_follow_precision():
    emb = ElasticEmbedding(SCHEMA, max_dim=64)
    fp32 = emb.table_bytes(EmbeddingSpec((16,) * 4, ("fp32",) * 4), SCHEMA.cardinalities)
    int8 = emb.table_bytes(EmbeddingSpec((16,) * 4, ("int8",) * 4), SCHEMA.cardinalities)
    assert fp32 == 4 * int8 == emb.table_bytes(None, SCHEMA.cardinalities)
