"""The embedding side in the co-search: per-field choices, multi-hot data, table placement (issue 7)."""

import csv
import json
import tomllib

import numpy as np
import pytest

from cosearch.cli import main
from cosearch.config import RunConfig
from cosearch.hardware import HardwareKnobs, KnobSpace
from cosearch.objectives import Candidate, CoSpace, PimsimCost
from cosearch import hwmodel
from nasrec import SMALL, Schema, sample

from .test_cli import TINY

EXTENDED = TINY.replace('[supernet]\n', '[supernet]\nembeddings = "extended"\n').replace(
    '[data]\n', '[data]\npooling = "mlperf"\n').replace(
    '[hardware]\n', '[hardware]\nhost_rows_max = [0, 1000]\n')


def test_extended_space_samples_and_mutates_embedding_choices():
    space = CoSpace(SMALL, KnobSpace(), n_fields=5)
    rng = np.random.default_rng(0)
    c = space.sample(rng)
    assert c.arch.embedding is not None and c.arch.embedding.n_fields == 5
    children = [space.mutate(c, rng, 3) for _ in range(40)]
    assert all(k.arch.embedding is not None for k in children)
    assert any(k.arch.embedding != c.arch.embedding for k in children)
    assert CoSpace(SMALL, KnobSpace()).sample(rng).arch.embedding is None


def test_host_rows_max_pins_small_tables_to_the_host():
    schema = Schema(3, (50, 5000, 200_000, 30))
    cost = PimsimCost(schema, hwmodel.query, hwmodel.build_hardware, batch_size=16)
    arch = sample(np.random.default_rng(1), SMALL)
    plain = Candidate(arch, HardwareKnobs("recnmp", embeddings="nmp"))
    pinned = Candidate(arch, HardwareKnobs("recnmp", embeddings="nmp", host_rows_max=5000))
    assert [t.place for t in cost.workload(plain).tables] == ["auto"] * 4
    assert [t.place for t in cost.workload(pinned).tables] == ["host", "host", "auto", "host"]
    assert "host<=5000" in pinned.hw.label and plain.key != pinned.key
    a, b = cost([plain, pinned])
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and not np.array_equal(a, b)
    # with every table on the host already, pinning changes nothing: one key, one cost
    on_host = [Candidate(arch, HardwareKnobs("recnmp", embeddings="host", host_rows_max=n)) for n in (0, 5000)]
    assert on_host[0].key == on_host[1].key
    np.testing.assert_array_equal(*cost(on_host))
    with pytest.raises(ValueError, match="host_rows_max"):
        HardwareKnobs("recnmp", host_rows_max=-1)
    with pytest.raises(ValueError, match="host_rows_max"):
        KnobSpace(host_rows_max=(0, -5))


@pytest.mark.parametrize("section, text, needle", [
    ("supernet", 'embeddings = "everything"', "embeddings"),
    ("supernet", "embedding_dims = [-4, 8]", r"embedding_dims must be non-negative .*-4"),
    ("supernet", "embedding_dims = [0]", "embedding_dims must be non-negative with at least one positive"),
    ("supernet", "embedding_dims = [8, 8]", r"embedding_dims must be distinct integers, got \[8, 8\]"),
    ("supernet", "embedding_dims = [4.5]", r"embedding_dims must be distinct integers, got \[4.5\]"),
    ("supernet", 'embedding_precisions = ["fp8"]', "embedding_precisions: unknown precision 'fp8'"),
    ("supernet", "embedding_precisions = []", "embedding_precisions must not be empty"),
    ("supernet", "lr = 0", "lr"),
    ("data", 'pooling = "lots"', "pooling"),
])
def test_bad_embedding_settings(section, text, needle):
    with pytest.raises(ValueError, match=needle):
        RunConfig.from_dict(tomllib.loads(f"[{section}]\n{text}\n"))


def test_tiny_extended_multi_hot_run(tmp_path, capsys):
    cfgp = tmp_path / "ext.toml"
    cfgp.write_text(EXTENDED)
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfgp), "--out", str(out), "--cache", str(tmp_path / "cache"),
                 "--quiet"]) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 12
    archs = [json.loads(r["arch"]) for r in rows]
    assert all(len(a["embedding"]["dims"]) == 26 for a in archs)
    assert {r["hw_host_rows_max"] for r in rows} <= {"0", "1000"}
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["supernet"]["embeddings"] == "extended" and meta["config"]["data"]["pooling"] == "mlperf"


def test_hook_profiler_reads_multi_hot_tables():
    import torch
    from cosearch.profile import arch_workload, module_workload
    from nasrec import NasRecModel, build_baseline
    schema = Schema(3, (40, 70, 9), (3, 1, 2))
    g = torch.Generator().manual_seed(0)
    dense = torch.rand(4, 3, generator=g)
    ids = torch.cat([torch.randint(0, c, (4, p), generator=g) for c, p in zip(schema.cardinalities, schema.lookups)], 1)
    w = module_workload(build_baseline("dlrm", schema, 0), (dense, ids), schema)
    assert [t.pooling for t in w.tables] == [3, 1, 2]
    spec = sample(np.random.default_rng(2), SMALL)
    hooked = module_workload(NasRecModel(spec, schema), (dense, ids), schema)
    assert hooked.tables == arch_workload(spec, schema, batch_size=4).tables


def test_the_joint_space_is_the_default_and_published_stays_selectable():
    from cosearch.pipeline import search_space
    schema = Schema(3, (50, 5000, 200_000, 30))
    default = RunConfig()
    assert default.supernet.embeddings == "extended"
    assert len(default.hardware.host_rows_max) > 1  # table placement is searched too
    space = search_space(default, schema)
    assert space.n_fields == 4
    # per-field precisions are the architecture's; no hardware-wide duplicate of them
    assert [p.value for p in space.knobs.precisions] == ["fp32"]
    c = space.sample(np.random.default_rng(0))
    assert c.arch.embedding is not None and c.hw.precision.value == "fp32"
    published = RunConfig.from_dict({"supernet": {"embeddings": "published"}})
    space = search_space(published, schema)
    assert space.n_fields is None and len(space.knobs.precisions) == 3
    assert space.sample(np.random.default_rng(0)).arch.embedding is None


def test_the_embedding_choices_come_from_the_config():
    """By default no field is dropped (the supernet cannot score a dropped field); a
    config that allows 0 gets it, the supernet's cache key follows the choices, and a
    run written before the setting existed resumes with the old choices, 0 included."""
    from cosearch.pipeline import _with_added_settings, search_space
    schema = Schema(3, (50, 5000, 200_000, 30, 7, 900))
    rng = np.random.default_rng(0)
    default = search_space(RunConfig(), schema)
    seen = {d for _ in range(200) for d in default.sample(rng).arch.embedding.dims}
    assert seen == {4, 8, 16, 32, 64}
    c = default.sample(rng)
    mutated = {d for _ in range(200) for d in default.mutate(c, rng, 3).arch.embedding.dims}
    assert 0 not in mutated
    narrow = RunConfig.from_dict({"supernet": {"embedding_dims": [16, 0], "embedding_precisions": ["int8"]}})
    space = search_space(narrow, schema)
    archs = [space.sample(rng).arch.embedding for _ in range(100)]
    assert {d for e in archs for d in e.dims} == {0, 16}
    assert {p for e in archs for p in e.precisions} == {"int8"}
    assert narrow.supernet.embedding_space().dims == (0, 16)  # sorted: the supernet's widest is the last
    old = RunConfig().to_dict()
    del old["supernet"]["embedding_dims"]
    assert RunConfig.from_dict(_with_added_settings(old)).supernet.embedding_dims == (0, 4, 8, 16, 32, 64)


def test_the_supernet_cache_key_follows_the_embedding_choices(tmp_path, monkeypatch):
    from cosearch import pipeline
    built, paths = [], []

    class _Stop(Exception):
        pass

    def fake_train(sn, split, tc, quiet, checkpoint):
        paths.append(checkpoint)
        raise _Stop
    monkeypatch.setattr("nasrec.train.build_supernet",
                        lambda schema, space, seed, embedding_space=None: built.append(embedding_space))
    monkeypatch.setattr("nasrec.train.train_supernet", fake_train)

    class _Data:
        content_hash, schema = "0" * 64, Schema(3, (50, 70))

        def split(self, name):
            return None
    for dims in ([4, 8], [0, 4, 8], [8, 4]):
        with pytest.raises(_Stop):
            pipeline.ensure_supernet(RunConfig.from_dict({"supernet": {"embedding_dims": dims}}), _Data(), tmp_path)
    assert [e.dims for e in built] == [(4, 8), (0, 4, 8), (4, 8)]
    assert paths[0] != paths[1] and paths[0] == paths[2]


def test_table_rows_scale_costs_larger_deployed_tables():
    from cosearch.profile import TableSpec, arch_workload, module_workload
    from nasrec import NasRecModel, build_baseline
    import torch
    schema = Schema(3, (50, 5000, 20_000, 30))
    arch = sample(np.random.default_rng(2), SMALL)
    small = arch_workload(arch, schema, batch_size=32)
    big = arch_workload(arch, schema, batch_size=32, tables=TableSpec(rows_scale=1000))
    assert [t.rows for t in big.tables] == [1000 * t.rows for t in small.tables]
    assert big.dense == small.dense  # the model is the same; only the deployed tables grow
    dense = torch.rand(4, 3)
    ids = torch.stack([torch.randint(0, c, (4,)) for c in schema.cardinalities], 1)
    for model in (NasRecModel(arch, schema), build_baseline("deepfm", schema, 0)):
        w1 = module_workload(model, (dense, ids), schema)
        w2 = module_workload(model, (dense, ids), schema, tables=TableSpec(rows_scale=7))
        assert [t.rows for t in w2.tables] == [7 * t.rows for t in w1.tables]
    # tables that fit the host's cache at the data's size no longer do when scaled up
    cost = [PimsimCost(schema, hwmodel.query, hwmodel.build_hardware, batch_size=32, tables=TableSpec(rows_scale=s))
            for s in (1, 1000)]
    c = Candidate(arch, HardwareKnobs("recnmp", embeddings="host"))
    lat = [float(pc([c])[0, 0]) for pc in cost]
    assert lat[1] > lat[0]
    with pytest.raises(ValueError, match="rows_scale must be a positive integer, got 0"):
        TableSpec(rows_scale=0)
    with pytest.raises(ValueError, match="table_rows_scale"):
        RunConfig.from_dict({"inference": {"table_rows_scale": 0}})
