"""Multi-hot fields: the synthetic generator, the schema, pooled embeddings (issue 7)."""

import numpy as np
import pytest
import torch

from nasrec.baselines import build_baseline
from nasrec.data import MLPERF_POOLING, Dataset, Schema, SyntheticConfig, generate_synthetic, log_loss
from nasrec.model import FieldEmbedding, NasRecModel
from nasrec.space import sample
from nasrec.supernet import Supernet

POOLING = (3, 1, 2, 5, 1, 4)


@pytest.fixture(scope="module")
def multi_hot(tmp_path_factory):
    cfg = SyntheticConfig(rows=4000, n_sparse=6, max_cardinality=500, fm_pairs=4, higher_order_terms=2,
                          pooling=POOLING, seed=3)
    return generate_synthetic(cfg, tmp_path_factory.mktemp("mh") / "data")


def test_pooling_factors_match_the_configuration(multi_hot):
    ds = Dataset(multi_hot.path)
    assert ds.schema.pooling == POOLING and ds.schema.n_id_columns == sum(POOLING)
    split = ds.split("train")
    assert split.sparse.shape[1] == sum(POOLING)
    cols = np.cumsum((0,) + POOLING)
    for f, card in enumerate(ds.schema.cardinalities):
        block = split.sparse[:, cols[f]:cols[f + 1]]
        assert block.min() >= 1 and block.max() < card  # ids of that field only
    # bags hold several different ids: the lookups are real, not copies
    assert np.mean(split.sparse[:, 0] != split.sparse[:, 1]) > 0.3


def test_bayes_log_loss_matches_the_teachers_own_probabilities(multi_hot):
    split = Dataset(multi_hot.path).split("test")
    assert Dataset(multi_hot.path).bayes_logloss["test"] == pytest.approx(log_loss(split.label, split.prob), abs=0.02)


def test_one_hot_data_is_unchanged_by_the_multi_hot_code(tmp_path):
    a = generate_synthetic(SyntheticConfig(rows=500, n_sparse=5, seed=1), tmp_path / "a")
    b = generate_synthetic(SyntheticConfig(rows=500, n_sparse=5, seed=1, pooling=(1,) * 5), tmp_path / "b")
    assert a.content_hash == b.content_hash and a.schema.pooling is None


def test_mlperf_mix_has_one_size_per_criteo_field():
    assert len(MLPERF_POOLING) == 26 and sum(MLPERF_POOLING) == 214
    SyntheticConfig(pooling=MLPERF_POOLING)  # validates against the 26 default fields
    with pytest.raises(ValueError, match="each of the 26 fields"):
        SyntheticConfig(pooling=(1, 2))
    with pytest.raises(ValueError, match="pooling must give"):
        Schema(3, (4, 5), (1, 0))


def test_embedding_pools_each_fields_bag():
    schema = Schema(2, (10, 20, 30), (2, 1, 3))
    emb = FieldEmbedding(schema)
    ids = torch.tensor([[1, 2, 5, 1, 1, 4]])
    out = emb(ids)
    t = emb.table.weight
    assert out.shape == (1, 3, 16)
    torch.testing.assert_close(out[0, 0], (t[1] + t[2]) / 2)
    torch.testing.assert_close(out[0, 1], t[10 + 5])
    torch.testing.assert_close(out[0, 2], (2 * t[30 + 1] + t[30 + 4]) / 3)


@pytest.mark.parametrize("name", ["dlrm", "deepfm", "dcnv2", "autoint", "xdeepfm"])
def test_baselines_and_nasrec_models_run_on_multi_hot_ids(multi_hot, name):
    ds = Dataset(multi_hot.path)
    split = ds.split("val", max_rows=16)
    dense, ids = torch.from_numpy(split.dense), torch.from_numpy(split.sparse).long()
    assert build_baseline(name, ds.schema, seed=0)(dense, ids).shape == (16,)
    spec = sample(np.random.default_rng(0))
    assert NasRecModel(spec, ds.schema)(dense, ids).shape == (16,)
    net = Supernet(ds.schema)
    assert net(dense, ids, spec).shape == (16,)
    sub = net.extract(spec)
    torch.testing.assert_close(sub.eval()(dense, ids), net.eval()(dense, ids, spec), rtol=1e-5, atol=1e-5)


def test_sum_bags_in_the_embedding_and_the_elastic_embedding():
    from nasrec.space import EmbeddingSpec
    schema = Schema(2, (10, 20, 30), (2, 1, 3), bag="sum")
    assert Schema.from_dict(schema.to_dict()) == schema
    assert "bag" not in Schema(2, (10, 20, 30), (2, 1, 3)).to_dict()  # mean: files as before
    ids = torch.tensor([[1, 2, 5, 1, 1, 4]])
    emb = FieldEmbedding(schema)
    t = emb.table.weight
    out = emb(ids)
    torch.testing.assert_close(out[0, 0], t[1] + t[2])
    torch.testing.assert_close(out[0, 2], 2 * t[30 + 1] + t[30 + 4])
    elastic = FieldEmbedding(schema, max_dim=64)
    t = elastic.table.weight
    out = elastic(ids, EmbeddingSpec((16, 16, 16), ("fp32",) * 3))
    torch.testing.assert_close(out[0, 2], (2 * t[30 + 1] + t[30 + 4])[:16])
    with pytest.raises(ValueError, match="bag must be one of mean, sum, got 'max'"):
        Schema(2, (10,), bag="max")


def test_sum_bag_teacher_sums_the_rows(tmp_path):
    kw = dict(rows=8000, n_sparse=6, max_cardinality=500, fm_pairs=4, higher_order_terms=2, pooling=POOLING, seed=3)
    mean = generate_synthetic(SyntheticConfig(**kw), tmp_path / "mean")
    total = generate_synthetic(SyntheticConfig(**kw, bag="sum"), tmp_path / "sum")
    assert total.schema.bag == "sum" and mean.schema.bag == "mean"
    a, b = mean.split("test"), total.split("test")
    np.testing.assert_array_equal(a.sparse, b.sparse)  # same bags, different teacher pooling
    assert not np.allclose(a.prob, b.prob)
    parts = [total.split(k) for k in ("train", "val", "test")]
    y, p = np.concatenate([s.label for s in parts]), np.concatenate([s.prob for s in parts])
    assert total.bayes_logloss["all"] == pytest.approx(log_loss(y, p), abs=0.01)
