"""Elastic per-field embeddings and simulated storage precision (issue 7)."""

import numpy as np
import pytest
import torch

from nasrec.data import Schema, SyntheticConfig, generate_synthetic
from nasrec.embedding import INT8_LEVELS, quantize, table_bytes
from nasrec.model import EMB_INIT_STD, FieldEmbedding
from nasrec.ops import EMB_DIM
from nasrec.space import EMBEDDING_SPACE, SMALL, ArchSpec, EmbeddingSpec, sample
from nasrec.supernet import Supernet
from nasrec.train import TrainConfig, build_supernet, load_checkpoint, train_supernet

SCHEMA = Schema(n_dense=3, cardinalities=(5, 7, 11, 13))


def ids(batch=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, c, (batch,), generator=g) for c in SCHEMA.cardinalities], 1)


def test_rows_start_near_zero():
    # Adagrad's first updates, not the initial rows, set the embedding scale (see FieldEmbedding)
    big = Schema(n_dense=1, cardinalities=(3000, 2000))
    for emb in (FieldEmbedding(big), FieldEmbedding(big, max_dim=64)):
        w = emb.table.weight.detach()
        assert abs(w.mean().item()) < 0.05 * EMB_INIT_STD
        assert w.std().item() == pytest.approx(EMB_INIT_STD, rel=0.02)


def test_published_spec_is_the_plain_embedding():
    emb = FieldEmbedding(SCHEMA, max_dim=64)
    x = ids()
    plain = emb(x, None)
    assert plain.shape == (6, 4, EMB_DIM)
    torch.testing.assert_close(emb(x, EmbeddingSpec.published(4)), plain, rtol=0, atol=0)
    torch.testing.assert_close(plain, emb.table(emb.row_ids(x))[..., :EMB_DIM])


def test_dims_use_prefixes_and_dropped_fields_give_zero_tokens():
    emb = FieldEmbedding(SCHEMA, max_dim=64)
    x = ids()
    spec = EmbeddingSpec((0, 8, 16, 64), ("fp32",) * 4)
    out = emb(x, spec)
    assert out.shape == (6, 4, EMB_DIM)
    assert torch.all(out[:, 0] == 0)
    rows = emb.table(emb.row_ids(x))
    torch.testing.assert_close(out[:, 1], rows[:, 1, :8] @ emb.proj[1, :8])
    torch.testing.assert_close(out[:, 2], rows[:, 2, :16])
    # columns beyond a field's dimension do not matter to it
    with torch.no_grad():
        emb.table.weight[:, 8:16] += 1.0
    torch.testing.assert_close(emb(x, spec)[:, 1], out[:, 1])


def test_gradients_reach_only_the_used_slices():
    emb = FieldEmbedding(SCHEMA, max_dim=32)
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
    emb = FieldEmbedding(SCHEMA, max_dim=32)
    with pytest.raises(ValueError, match="3 fields, the data has 4"):
        emb(ids(), EmbeddingSpec((8, 8, 8), ("fp32",) * 3))
    with pytest.raises(ValueError, match="exceeds this table's 32"):
        emb(ids(), EmbeddingSpec((64, 8, 8, 8), ("fp32",) * 4))
    with pytest.raises(ValueError, match="need an elastic embedding"):
        FieldEmbedding(SCHEMA)(ids(), EmbeddingSpec((8, 8, 8, 8), ("fp32",) * 4))
    with pytest.raises(ValueError, match="needs an embedding spec"):
        FieldEmbedding(SCHEMA, max_dim=8)(ids())


def test_table_bytes_follow_precision():
    cards = SCHEMA.cardinalities
    assert table_bytes(cards, (16,) * 4, ("fp32",) * 4) == 4 * table_bytes(cards, (16,) * 4, ("int8",) * 4)


# ---- the elastic supernet ------------------------------------------------------------------

def batch(schema, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(n, schema.n_dense, generator=g)
    cols = [torch.randint(0, c, (n, p), generator=g) for c, p in zip(schema.cardinalities, schema.lookups)]
    return dense, torch.cat(cols, 1)


def test_published_choices_reproduce_the_published_model_exactly():
    torch.manual_seed(0)
    net = Supernet(SCHEMA, embedding_space=EMBEDDING_SPACE).eval()
    spec = sample(np.random.default_rng(2))
    same = ArchSpec(spec.blocks, spec.space, EmbeddingSpec.published(SCHEMA.n_sparse))
    dense, x = batch(SCHEMA)
    torch.testing.assert_close(net(dense, x, same), net(dense, x, spec), rtol=0, atol=0)
    torch.testing.assert_close(net.extract(same).eval()(dense, x), net(dense, x, spec), rtol=1e-6, atol=1e-6)


def test_a_subnet_with_mixed_embeddings_equals_its_standalone_model():
    torch.manual_seed(1)
    net = Supernet(SCHEMA, embedding_space=EMBEDDING_SPACE).eval()
    rng = np.random.default_rng(4)
    dense, x = batch(SCHEMA, seed=3)
    for _ in range(3):
        spec = sample(rng, n_fields=SCHEMA.n_sparse)
        model = net.extract(spec).eval()
        assert model.embedding.table.embedding_dim == max(spec.embedding.dims)
        torch.testing.assert_close(model(dense, x), net(dense, x, spec), rtol=1e-5, atol=1e-5)


def test_a_plain_supernet_refuses_embedding_choices():
    net = Supernet(SCHEMA)
    spec = sample(np.random.default_rng(0), n_fields=SCHEMA.n_sparse)
    dense, x = batch(SCHEMA)
    with pytest.raises(ValueError, match="build it with an embedding_space"):
        net(dense, x, spec)


def test_elastic_multi_hot_supernet_trains_and_reloads(tmp_path):
    cfg = SyntheticConfig(rows=600, n_sparse=4, max_cardinality=50, fm_pairs=2, higher_order_terms=1,
                          pooling=(2, 1, 3, 1), seed=0)
    ds = generate_synthetic(cfg, tmp_path / "d")
    net = build_supernet(ds.schema, "small", seed=0, embedding_space=EMBEDDING_SPACE)
    before = net.embedding.proj.detach().clone()
    hist = train_supernet(net, ds.split("train"), TrainConfig(steps=6, batch_size=64, seed=0),
                          checkpoint=tmp_path / "ck.pt")
    assert not torch.equal(before, net.embedding.proj)  # the projections learn
    again, state = load_checkpoint(tmp_path / "ck.pt")
    assert again.embedding_space == EMBEDDING_SPACE and again.schema == ds.schema
    spec = sample(np.random.default_rng(5), SMALL, n_fields=4)
    dense, x = batch(ds.schema)
    torch.testing.assert_close(again.eval()(dense, x, spec), net.eval()(dense, x, spec))
    assert hist["seed"] == 0



def test_saved_model_stores_reduced_precision_tables(tmp_path):
    from nasrec.embedding import pack_tables, unpack_tables
    from nasrec.modelio import load_model, save_model
    torch.manual_seed(5)
    net = Supernet(SCHEMA, embedding_space=EMBEDDING_SPACE).eval()
    blocks = sample(np.random.default_rng(6)).blocks
    emb = EmbeddingSpec((64, 0, 8, 16), ("int8", "fp32", "fp16", "int8"))
    model = net.extract(ArchSpec(blocks, "full", emb)).eval()
    dense, x = batch(SCHEMA, seed=2)
    path = save_model(model, tmp_path / "m.pt", schema=SCHEMA)
    raw = torch.load(path, weights_only=True)
    assert "embedding.table.weight" not in raw["state_dict"]
    packed = {e["field"]: e for e in raw["embedding_tables"]}
    assert sorted(packed) == [0, 2, 3]  # the dropped field is not stored
    assert packed[0]["rows"].dtype == torch.int8 and packed[0]["rows"].shape == (5, 64)
    assert packed[2]["rows"].dtype == torch.float16 and packed[2]["rows"].shape == (11, 8)
    assert packed[3]["scale"].shape == (13,)
    stored = sum(e["rows"].numel() * e["rows"].element_size() for e in packed.values())
    assert stored == table_bytes(SCHEMA.cardinalities, emb.dims, emb.precisions)
    loaded, _ = load_model(path)
    torch.testing.assert_close(loaded.eval()(dense, x), model(dense, x), rtol=1e-5, atol=1e-6)
    # unpacked values are what quantize() gives on lookup
    table = model.embedding.table.weight.detach()
    back = unpack_tables(pack_tables(table, SCHEMA.cardinalities, emb.dims, emb.precisions),
                         SCHEMA.cardinalities, 64)
    torch.testing.assert_close(back[:5], quantize(table[:5], "int8"), rtol=0, atol=1e-7)
    assert torch.all(back[5:12] == 0)
    with pytest.raises(ValueError, match="field 2 has shape"):
        bad = pack_tables(table, SCHEMA.cardinalities, emb.dims, emb.precisions)
        bad[1]["rows"] = bad[1]["rows"][:3]
        unpack_tables(bad, SCHEMA.cardinalities, 64)
