"""Damaged cache entries (data set, supernet) are rebuilt with one warning naming the file."""
import logging
import tomllib

import pytest

from cosearch.config import RunConfig
from cosearch.pipeline import ensure_dataset, ensure_supernet

CFG = RunConfig.from_dict(tomllib.loads("""
seed = 1
[data]
rows = 10000
max_cardinality = 300
[supernet]
space = "small"
steps = 2
batch_size = 64
embeddings = "published"
"""))


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_data_set_is_generated_again(tmp_path, caplog, damage):
    ds = ensure_dataset(CFG, tmp_path)
    f = ds.path / "sparse.npy"
    raw = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        f.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    else:
        f.unlink()
    with caplog.at_level(logging.WARNING):
        again = ensure_dataset(CFG, tmp_path)
    w = _warnings(caplog)
    assert len(w) == 1 and str(ds.path) in w[0] and "\n" not in w[0]
    assert again.content_hash == ds.content_hash and f.read_bytes() == raw
    caplog.clear()
    ensure_dataset(CFG, tmp_path)
    assert not _warnings(caplog)


@pytest.mark.parametrize("damage", ["truncate", "stamp"])
def test_damaged_supernet_is_trained_again(tmp_path, caplog, damage):
    ds = ensure_dataset(CFG, tmp_path)
    _, path = ensure_supernet(CFG, ds, tmp_path)
    good = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(good[:1000])
    else:
        path.with_name(path.name + ".sha256").unlink()
    with caplog.at_level(logging.WARNING):
        _, again = ensure_supernet(CFG, ds, tmp_path)
    w = _warnings(caplog)
    assert again == path and len(w) == 1 and str(path) in w[0] and "\n" not in w[0]
    caplog.clear()
    ensure_supernet(CFG, ds, tmp_path)
    assert not _warnings(caplog)


def test_a_supernet_of_another_network_revision_is_not_reused(tmp_path, monkeypatch):
    import nasrec.model
    ds = ensure_dataset(CFG, tmp_path)
    _, path = ensure_supernet(CFG, ds, tmp_path)
    monkeypatch.setattr(nasrec.model, "NETWORK_REVISION", nasrec.model.NETWORK_REVISION + 1)
    _, other = ensure_supernet(CFG, ds, tmp_path)
    assert other != path and path.is_file() and other.is_file()
