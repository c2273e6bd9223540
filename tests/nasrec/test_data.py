import numpy as np
import pytest

from nasrec.data import (Dataset, SyntheticConfig, binary_entropy, generate_synthetic, log_loss,
                         prepare_real, stratified_split)


def test_synthetic_deterministic_and_seed_sensitive(tmp_path):
    cfg = SyntheticConfig(rows=2000, max_cardinality=100, chunk_rows=512, seed=1)
    a = generate_synthetic(cfg, tmp_path / "a")
    b = generate_synthetic(cfg, tmp_path / "b")
    c = generate_synthetic(SyntheticConfig(rows=2000, max_cardinality=100, chunk_rows=512, seed=2),
                           tmp_path / "c")
    assert a.content_hash == b.content_hash != c.content_hash
    np.testing.assert_array_equal(a.split("train").sparse, b.split("train").sparse)
    with pytest.raises(ValueError, match="exists"):
        generate_synthetic(cfg, tmp_path / "a")


def test_synthetic_schema_ctr_splits_and_bayes_loss(tmp_path):
    cfg = SyntheticConfig(rows=30000, n_dense=5, n_sparse=8, max_cardinality=500, seed=3)
    ds = generate_synthetic(cfg, tmp_path / "d")
    assert ds.schema.n_dense == 5 and ds.schema.n_sparse == 8
    assert abs(ds.meta["ctr"] - 0.25) < 0.02
    sizes = [len(ds.split(s)) for s in ("train", "val", "test")]
    assert sizes == [24000, 3000, 3000]
    tr = ds.split("train")
    assert tr.sparse.min() >= 1 and (tr.sparse.max(0) < np.array(ds.schema.cardinalities)).all()
    # The Bayes log loss is the teacher's own expected loss; its empirical loss agrees.
    assert abs(log_loss(tr.label, tr.prob) - ds.bayes_logloss["train"]) < 0.015
    assert ds.bayes_logloss["train"] == pytest.approx(binary_entropy(tr.prob).mean(), rel=1e-6)
    # Long tails: the most frequent value of a wide field takes far more than 1/cardinality.
    f = int(np.argmax(ds.schema.cardinalities))
    top = np.bincount(tr.sparse[:, f]).max() / len(tr)
    assert top > 20 / ds.schema.cardinalities[f]


def test_stratified_split_keeps_ratio_and_partitions():
    y = (np.random.default_rng(0).random(1000) < 0.2).astype(np.float32)
    s = stratified_split(y)
    all_idx = np.sort(np.concatenate(list(s.values())))
    np.testing.assert_array_equal(all_idx, np.arange(1000))
    assert [len(s[k]) for k in ("train", "val", "test")] == pytest.approx([800, 100, 100], abs=2)
    for k in s:
        assert abs(y[s[k]].mean() - y.mean()) < 0.02


def _criteo_line(rng, label):
    dense = [str(int(v)) if v >= 0 else "" for v in rng.integers(-3, 50, 13)]
    sparse = [f"{int(v):08x}" if v % 7 else "" for v in rng.integers(0, 2**32, 26)]
    return "\t".join([str(label)] + dense + sparse) + "\n"


def test_criteo_reader(tmp_path):
    rng = np.random.default_rng(0)
    lines = [_criteo_line(rng, i % 2) for i in range(40)]
    lines[5] = "1\t2\t3\n"  # too few fields
    parts9 = lines[9].split("\t")
    parts9[1] = "x1"  # non-integer dense value
    lines[9] = "\t".join(parts9)
    lines.append("1" + "\t" * 13 + "\t" * 26 + "\n")  # all missing: valid
    (tmp_path / "train.txt").write_text("".join(lines))
    ds = prepare_real("criteo", tmp_path / "train.txt", tmp_path / "out", vocab_size=1000)
    assert ds.meta["malformed_lines"] == 2 and ds.meta["rows"] == 39
    assert ds.schema.n_dense == 13 and ds.schema.n_sparse == 26
    parts = lines[0].rstrip("\n").split("\t")
    row = ds.split("train")
    full = np.concatenate([ds.split(s).dense for s in ("train", "val", "test")])
    x = [int(t) if t else 0 for t in parts[1:14]]
    expected = np.log(np.maximum(x, 0) + 1).astype(np.float32)
    assert any(np.allclose(r, expected) for r in full)
    sp = np.concatenate([ds.split(s).sparse for s in ("train", "val", "test")])
    ids = [int(t, 16) % 999 + 1 if t else 0 for t in parts[14:]]
    assert any((r == ids).all() for r in sp)
    assert (sp[-1] == 0).all() or (sp == 0).all(1).any()
    assert row.label.dtype == np.float32


AVAZU_HEADER = ("id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,"
                "app_category,device_id,device_ip,device_model,device_type,device_conn_type,C14,C15,"
                "C16,C17,C18,C19,C20,C21\n")


def test_avazu_reader(tmp_path):
    rows = [AVAZU_HEADER]
    for i in range(30):
        vals = [str(10**18 + i), str(i % 3 == 0), "14102100", "1005", "0", "1fbe01fe", "f3845767",
                "28905ebd", "ecad2386", "7801e8d9", "07d7df22", "a99f214a", "ddd2926e", "44956a24",
                "1", "2", "15706", "320", "50", "1722", "0", "35", "-1", "79"]
        vals[1] = "1" if i % 3 == 0 else "0"
        rows.append(",".join(vals) + "\n")
    rows.append("broken,line\n")
    (tmp_path / "train").write_text("".join(rows))
    ds = prepare_real("avazu", tmp_path / "train", tmp_path / "out", vocab_size=10_000)
    assert ds.meta["malformed_lines"] == 1 and ds.meta["rows"] == 30
    assert ds.schema.n_dense == 1 and ds.schema.n_sparse == 23
    tr = ds.split("train")
    assert (tr.dense == 0).all()  # the pseudo dense feature
    assert (tr.sparse[:, 2] == 1005 % 9999 + 1).all()  # C1 decimal
    assert (tr.sparse[:, 4] == int("1fbe01fe", 16) % 2147483647 % 9999 + 1).all()  # site_id hex
    with pytest.raises(ValueError, match="Avazu"):
        (tmp_path / "bad").write_text("a,b\n1,2\n")
        prepare_real("avazu", tmp_path / "bad", tmp_path / "out2")


def test_kdd_reader(tmp_path):
    lines = []
    for i in range(30):
        lines.append("\t".join([str(i % 4), "3", "4298118681424644510", "7686695", "385", "2", "1",
                                "1497", "3", "20", "5", str(i % 5)]) + "\n")
    lines.append("0\t1\n")
    (tmp_path / "training.txt").write_text("".join(lines))
    (tmp_path / "userid_profile.txt").write_text("1\t1\t3\n2\t2\t5\n")
    ds = prepare_real("kdd", tmp_path, tmp_path / "out", vocab_size=1000)
    assert ds.meta["malformed_lines"] == 1 and ds.meta["rows"] == 30
    assert ds.schema.n_dense == 3 and ds.schema.n_sparse == 10
    assert ds.meta["ctr"] == pytest.approx(22 / 30)  # clicks > 0 -> 1
    sp = np.concatenate([ds.split(s).sparse for s in ("train", "val", "test")])
    assert set(np.unique(sp[:, 8])) == {1 + 1, 2 + 1, 0 % 999 + 1}  # gender: user 1, 2, unknown "0"
    d = ds.split("train").dense
    np.testing.assert_allclose(d[0], np.log([4, 3, 2]), rtol=1e-6)  # impression, depth, position
    with pytest.raises(ValueError, match="user profile"):
        (tmp_path / "k2").mkdir()
        (tmp_path / "k2" / "training.txt").write_text(lines[0])
        prepare_real("kdd", tmp_path / "k2", tmp_path / "out3")


def test_batches_shapes_types_and_cover_split(tiny_data):
    tr = tiny_data.split("train")
    seen = 0
    for d, s, y in tr.batches(1000, np.random.default_rng(0)):
        assert d.shape[1] == 13 and s.shape[1] == 26 and s.dtype.is_floating_point is False
        assert str(s.dtype) == "torch.int64" and d.dtype == y.dtype
        seen += len(y)
    assert seen == len(tr)
    with pytest.raises(ValueError):
        Dataset(tiny_data.path / "nope")
