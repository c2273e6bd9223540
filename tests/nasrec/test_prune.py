import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nasrec.baselines import build_baseline
from nasrec.cli import main
from nasrec.model import NasRecModel
from nasrec.flops import flops, measured_flops
from nasrec.modelio import load_model, save_model
from nasrec.prune import PruneConfig, apply_keep, count_params, l1_scores, prune, prune_spec, to_prunable
from nasrec.space import ArchSpec, BlockSpec
from nasrec.util import seeded_torch

from .test_space import CONFIGS


def _block(di, si, l, r, dop, sop, w, t, inter, fm):
    return BlockSpec(di, si, l, r, dop, sop, w, t, inter, fm)


#: Every operator and both mergers, small widths; blocks 4 and 5 read left/right of
#: different widths (gating wider left, sum wider right) and some blocks are read by
#: nobody else (dead dense outputs are pruned first by L1).
ALL_OPS = ArchSpec((
    _block((0,), (0,), 0, 0, "fc", "efc", 64, 16, True, False),
    _block((0, 1), (1,), 0, 1, "dot", "attention", 32, 16, False, True),
    _block((1,), (0, 2), 1, 1, "gating", "efc", 32, 32, True, True),
    _block((2, 3), (3,), 1, 0, "gating", "attention", 16, 16, True, False),
    _block((4,), (1, 4), 0, 3, "sum", "efc", 64, 16, False, True),
    _block((5,), (5,), 5, 1, "sum", "attention", 32, 16, True, False),
    _block((6, 3), (6,), 6, 6, "dot", "efc", 16, 16, True, True),
), "full")


@pytest.fixture(scope="module")
def splits(tiny_data):
    return tiny_data.split("train"), tiny_data.split("val")


def _batch(tiny_data, n=64):
    d, s, _ = next(tiny_data.split("val").batches(n))
    return d, s


def _models(schema):
    with seeded_torch(3):
        nas = NasRecModel(ALL_OPS, schema)
    return {"nasrec": nas, "dlrm": build_baseline("dlrm", schema, 3)}


def test_all_ops_arch_covers_every_operator():
    ops = {b.dense_op for b in ALL_OPS.blocks} | {b.sparse_op for b in ALL_OPS.blocks}
    assert ops == {"fc", "dot", "gating", "sum", "attention", "efc"}


@pytest.mark.parametrize("path", [p for p in CONFIGS if "criteo" in p.name], ids=lambda p: p.stem)
def test_conversion_of_official_configs_is_exact(path, tiny_data):
    """The plain form drops gate weights, adds Sum positions and writes attention out:
    same outputs, and FLOPs counted as the counter measures them (blocks that nothing
    reads do not run)."""
    from nasrec.space import load_arch
    with seeded_torch(0):
        m = NasRecModel(load_arch(path), tiny_data.schema).eval()
    p = to_prunable(m).eval()
    d, s = _batch(tiny_data)
    torch.testing.assert_close(p(d, s), m(d, s), rtol=1e-5, atol=1e-5)
    assert type(p) is NasRecModel and p.is_plain and not m.is_plain
    assert p.to_archspec().hash == m.spec.hash
    assert flops(p, 3) == measured_flops(p, tiny_data.schema, 3)
    with pytest.raises(ValueError, match="to_prunable"):
        prune_spec(m)
    with pytest.raises(ValueError, match="to_prunable"):
        flops(m, 3)


def test_plain_gates_keep_only_what_meets_no_padding(tiny_data):
    m = _models(tiny_data.schema)["nasrec"]
    p = to_prunable(m)
    gate = p.blocks[2].dense_ops.gating  # left: block 0 (64 wide), right: block 0
    assert gate.gate.weight.shape == (64, 64)
    gate = p.blocks[3].dense_ops.gating  # left: block 0 (64), right: raw dense input
    n = tiny_data.schema.n_dense
    assert gate.gate.weight.shape == (n, 64) and gate.proj.weight.shape == (16, n)
    torch.testing.assert_close(gate.gate.weight, m.blocks[3].dense_ops.gating.gate.weight[:n, :64])
    assert sum(q.numel() for q in p.parameters()) < sum(q.numel() for q in m.parameters())


def test_keeping_every_unit_changes_nothing(tiny_data):
    m = to_prunable(_models(tiny_data.schema)["nasrec"]).eval()
    spec = prune_spec(m)
    p = apply_keep(m, {g: torch.arange(u.size) for g, u in spec.groups.items()}).eval()
    d, s = _batch(tiny_data)
    assert torch.equal(p(d, s), m(d, s))
    assert p.path == m.path and p.describe() == m.describe()


@pytest.mark.parametrize("name", ["nasrec", "dlrm"])
def test_ratio_zero_returns_an_equivalent_model(name, tiny_data):
    model = _models(tiny_data.schema)[name].eval()
    pruned, rows = prune(model, PruneConfig(0.0))
    pruned.eval()
    d, s = _batch(tiny_data)
    torch.testing.assert_close(pruned(d, s), model(d, s), rtol=1e-5, atol=1e-5)
    assert len(rows) == 1 and rows[0]["params"] == count_params(pruned)["params"]
    assert pruned is not model  # a copy; the input is untouched


def test_pruning_units_that_nothing_reads_is_exact(tiny_data):
    """Zero the columns that read a head / a DLRM neuron, prune exactly those: same outputs."""
    d, s = _batch(tiny_data)
    m = to_prunable(_models(tiny_data.schema)["nasrec"]).eval()
    with torch.no_grad():
        m.blocks[1].sparse_ops.attention.o.weight[:, 2:6] = 0.0  # heads 1 and 2 of block 1 (head dim 2)
    keep = {"h1": torch.tensor([0, 3, 4, 5, 6, 7])}
    p = apply_keep(m, keep).eval()
    attn = p.blocks[1].sparse_ops.attention
    assert attn.qkv.out_features == 3 * 6 * 2 and attn.o.in_features == 12
    torch.testing.assert_close(p(d, s), m(d, s), rtol=1e-5, atol=1e-6)

    dl = _models(tiny_data.schema)["dlrm"].eval()
    with torch.no_grad():
        dl.top[2].weight[:, 100:300] = 0.0
    k = torch.cat([torch.arange(100), torch.arange(300, 512)])
    p = apply_keep(dl, {"top.0": k}).eval()
    assert p.top[0].out_features == 312 and p.top[2].in_features == 312
    torch.testing.assert_close(p(d, s), dl(d, s), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["l1", "mask"])
@pytest.mark.parametrize("schedule", ["oneshot", "progressive"])
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("name", ["nasrec", "dlrm"])
def test_pruned_shapes_are_consistent_and_flops_match(name, method, schedule, scope, splits, tiny_data):
    train, val = splits
    model = _models(tiny_data.schema)[name]
    before = prune_spec(to_prunable(model))
    cfg = PruneConfig(0.5, method=method, schedule=schedule, scope=scope, steps=2, finetune_steps=2,
                      mask_steps=2, batch_size=64, seed=1)
    pruned, rows = prune(model, cfg, train, val)
    assert len(rows) == 1 + (2 if schedule == "progressive" else 1)
    assert [r["target_ratio"] for r in rows][-1] == pytest.approx(0.5)
    d, s = _batch(tiny_data, 32)
    out = pruned.eval()(d, s)
    assert out.shape == (32,) and torch.isfinite(out).all()
    after = prune_spec(pruned)
    for kind in {u.kind for u in before.groups.values()}:
        n0 = sum(u.size for u in before.groups.values() if u.kind == kind)
        n1 = sum(u.size for u in after.groups.values() if u.kind == kind)
        assert n1 < n0, kind
        if scope == "layer":
            for g, u in before.groups.items():
                if u.kind == kind:
                    assert after.groups[g].size == max(1, round(u.size * 0.5)), g
        else:
            assert n1 == round(n0 * 0.5), kind
    # measured FLOPs equal the analytic count, and both shrink
    assert flops(pruned, 5) == measured_flops(pruned, tiny_data.schema, 5)
    assert rows[-1]["flops_per_sample"] < rows[0]["flops_per_sample"]
    assert rows[-1]["params"] < rows[0]["params"]
    assert all(math.isfinite(r["val_logloss"]) for r in rows)


@pytest.mark.parametrize("name", ["dlrm", "deepfm", "dcnv2"])
def test_analytic_flops_equal_measured_for_baselines(name, tiny_data):
    m = build_baseline(name, tiny_data.schema, 0)
    assert flops(m, 7) == measured_flops(m, tiny_data.schema, 7) > 0
    spec = prune_spec(m)
    p = apply_keep(m, {g: torch.arange(max(1, u.size // 3)) for g, u in spec.groups.items()})
    assert flops(p, 7) == measured_flops(p, tiny_data.schema, 7) < flops(m, 7)


def test_no_analytic_count_where_the_counter_misses_attention(tiny_data):
    with pytest.raises(ValueError, match="measured_flops"):
        flops(build_baseline("autoint", tiny_data.schema, 0), 2)


def test_analytic_flops_equal_measured_for_every_nasrec_group_pruned(tiny_data):
    m = to_prunable(_models(tiny_data.schema)["nasrec"])
    spec = prune_spec(m)
    gen = torch.Generator().manual_seed(5)
    keep = {g: torch.randperm(u.size, generator=gen)[:max(1, u.size // 3)] for g, u in spec.groups.items()}
    p = apply_keep(m, keep)
    assert flops(p, 3) == measured_flops(p, tiny_data.schema, 3)
    assert p.emb_dim == 5 and p.embedding.table.weight.shape[1] == 5
    assert p(*_batch(tiny_data, 4)).shape == (4,)


def test_l1_prunes_the_units_nothing_reads(tiny_data):
    dl = build_baseline("dlrm", tiny_data.schema, 0)
    with torch.no_grad():
        dl.top[2].weight[:, 40:50] = 0.0  # neurons 40..49 of top.0 are read by nobody
    scores = l1_scores(dl)
    assert (scores["top.0"][40:50] == 0).all() and (scores["top.0"][:40] > 0).all()
    p, _ = prune(dl, PruneConfig(10 / 512, kinds=("neurons",), finetune_steps=0))
    kept = p.top[0].weight
    assert kept.shape[0] == 502
    torch.testing.assert_close(kept, torch.cat([dl.top[0].weight[:40], dl.top[0].weight[50:]]))


def test_global_scope_removes_the_lowest_scores_anywhere(tiny_data):
    m = to_prunable(_models(tiny_data.schema)["nasrec"])
    spec = prune_spec(m)
    with torch.no_grad():
        m.blocks[0].sparse_ops.efc.ln.weight[:8] = 1e-4  # 8 weak tokens in block 0
    cfg = PruneConfig(8 / sum(u.size for u in spec.groups.values() if u.kind == "tokens"),
                      scope="global", kinds=("tokens",), finetune_steps=0)
    p, _ = prune(m, cfg)
    assert p.blocks[0].sparse_ops.efc.lin.out_features == 8 and p.path[0].tokens == 8
    assert [c.tokens for c in p.path[1:]] == [c.tokens for c in m.path[1:]]


def test_describe_and_archspec(tiny_data, splits):
    m = to_prunable(_models(tiny_data.schema)["nasrec"])
    assert m.describe()["fits_space"] and m.to_archspec().hash == ALL_OPS.hash
    p = apply_keep(m, {"w0": torch.arange(32), "t1": torch.arange(8)})
    d = p.describe()
    assert d["micro"][0]["dense_in_dims"] == 32 and d["micro"][1]["sparse_in_dims"] == 8
    assert not d["fits_space"] and p.to_archspec() is None  # 8 tokens is not in the space
    q = apply_keep(m, {"w0": torch.arange(32)})
    assert q.to_archspec().blocks[0].dense_width == 32


def test_save_and_load_round_trip(tmp_path, tiny_data):
    m = to_prunable(_models(tiny_data.schema)["nasrec"])
    spec = prune_spec(m)
    p = apply_keep(m, {g: torch.arange(max(1, u.size // 2)) for g, u in spec.groups.items()}).eval()
    path = save_model(p, tmp_path / "m.pt", schema=tiny_data.schema, meta={"x": 1})
    q, info = load_model(path)
    d, s = _batch(tiny_data)
    torch.testing.assert_close(q.eval()(d, s), p(d, s))
    assert info["meta"] == {"x": 1} and info["kind"] == "pruned-arch" and flops(q, 2) == flops(p, 2)
    assert type(q) is NasRecModel and q.path == p.path
    path = save_model(m.eval(), tmp_path / "r0.pt", schema=tiny_data.schema)  # plain, nothing pruned
    torch.testing.assert_close(load_model(path)[0].eval()(d, s), m(d, s))
    dl = apply_keep(build_baseline("dlrm", tiny_data.schema, 0), {"emb": torch.arange(6)}).eval()
    save_model(dl, tmp_path / "d.pt", schema=tiny_data.schema)
    q, _ = load_model(tmp_path / "d.pt")
    torch.testing.assert_close(q.eval()(d, s), dl(d, s))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a model file"):
        load_model(tmp_path / "junk.pt")


def test_files_of_the_earlier_prunable_model_still_load():
    """A pruned model saved by the earlier second implementation (PrunableNasRec, kind
    'prunable-arch', written by that code) loads as a NasRecModel giving its logits."""
    m, info = load_model(Path(__file__).parent / "data" / "prunable_arch_v1.pt")
    meta = info["meta"]
    assert type(m) is NasRecModel and info["kind"] == "prunable-arch" and m.spec.hash == ALL_OPS.hash
    with torch.no_grad():
        out = m.eval()(torch.tensor(meta["dense"]), torch.tensor(meta["ids"]))
    torch.testing.assert_close(out, torch.tensor(meta["logits"]), rtol=1e-6, atol=1e-6)
    assert m.emb_dim == 8 and flops(m, 2) == measured_flops(m, info["schema"], 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"ratio": -0.1}, "ratio"), ({"ratio": 1.0}, "ratio"), ({"ratio": float("nan")}, "ratio"),
    ({"ratio": True}, "ratio"), ({"ratio": 0.5, "method": "random"}, "unknown pruning method"),
    ({"ratio": 0.5, "schedule": "cubic"}, "schedule"), ({"ratio": 0.5, "scope": "net"}, "scope"),
    ({"ratio": 0.5, "kinds": ("filters",)}, "unit kind"), ({"ratio": 0.5, "steps": 0}, "steps"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PruneConfig(**kwargs)


def test_progressive_ratios_compound_to_the_target():
    r = PruneConfig(0.75, schedule="progressive", steps=2).step_ratios()
    assert r == pytest.approx([0.5, 0.75])
    assert PruneConfig(0.75).step_ratios() == [0.75]


@pytest.fixture(scope="module")
def saved_dlrm(tmp_path_factory, tiny_data):
    out = tmp_path_factory.mktemp("cli")
    assert main(["train", str(tiny_data.path), "--baseline", "dlrm", "--steps", "3", "--batch-size", "64",
                 "--out", str(out / "r.json"), "--save-model", str(out / "dlrm.pt"), "--quiet"]) == 0
    return out / "dlrm.pt"


def test_cli_prune_writes_models_and_table(saved_dlrm, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "p"
    assert main(["prune", str(saved_dlrm), "--ratio", "0", "0.5", "--method", "mask", "--schedule", "progressive",
                 "--steps", "2", "--finetune-steps", "2", "--mask-steps", "2", "--batch-size", "64",
                 "--out", str(out), "--quiet", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    df = pd.read_csv(out / "prune.csv")
    assert str(out / "prune.csv") in printed
    assert {"val_logloss", "flops_per_sample", "params", "ratio", "seed", "test_logloss"} <= set(df.columns)
    assert (df["seed"] == 3).all() and len(df) == 1 + 3
    last = df[df["ratio"] == 0.5].iloc[-1]
    first = df[df["ratio"] == 0].iloc[0]
    assert last["flops_per_sample"] < first["flops_per_sample"]
    files = sorted(out.glob("model_*.pt"))
    assert len(files) == 2 and all(str(f) in printed for f in files)
    m, info = load_model(files[-1])
    assert count_params(m)["params"] == last["params"] and info["meta"]["pruning"]["ratio"] == 0.5


@pytest.mark.parametrize("extra, match", [
    (["--ratio", "1.5"], "--ratio"), (["--ratio", "abc"], "--ratio"), (["--ratio", "-0.2"], "--ratio"),
    (["--ratio", "0.5", "--method", "random"], "unknown pruning method"),
    (["--ratio", "0.5", "--schedule", "weird"], "schedule"),
    (["--ratio", "0.5", "--kinds", "neurons,bogus"], "unit kind"),
    ([], "--ratio"),
])
def test_cli_prune_bad_input_is_one_line_and_status_2(saved_dlrm, extra, match, capsys, tmp_path):
    capsys.readouterr()
    assert main(["prune", str(saved_dlrm), "--out", str(tmp_path / "o")] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasrec:") and err.count("\n") == 1 and match in err
    assert "Traceback" not in err


def test_cli_prune_missing_model_is_status_2(tmp_path, capsys):
    assert main(["prune", str(tmp_path / "nope.pt"), "--ratio", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model file not found" in err


@pytest.mark.parametrize("name", ["nasrec", "dlrm"])
def test_gates_fold_exactly_into_the_parameters(name, tiny_data):
    """The gated model the mask method trains equals the model with gates folded in."""
    from nasrec.prune import _gate_plan, _gate_scale
    m = to_prunable(_models(tiny_data.schema)[name]).eval()
    spec = prune_spec(m)
    named = dict(m.named_parameters())
    gen = torch.Generator().manual_seed(0)
    gates = {g: torch.rand(u.size, generator=gen) for g, u in spec.groups.items()}
    scale = _gate_scale(_gate_plan(spec, list(gates), named, "cpu"), gates)
    assert set(scale) and all(n in named for n in scale)
    d, s = _batch(tiny_data)
    gated = torch.func.functional_call(m, {n: p * scale[n] if n in scale else p for n, p in named.items()}, (d, s))
    with torch.no_grad():
        for n, v in scale.items():
            named[n].mul_(v)
    torch.testing.assert_close(m(d, s), gated)
    assert not torch.allclose(gated, _models(tiny_data.schema)[name].eval()(d, s))


@pytest.mark.parametrize("name", ["nasrec", "dlrm"])
def test_cosearch_profiler_sees_the_pruned_shapes(name, tiny_data):
    """The forward profiler's matrix products add up to the analytic count of the pruned model."""
    module_workload = pytest.importorskip("cosearch.profile").module_workload
    m = to_prunable(_models(tiny_data.schema)[name])
    spec = prune_spec(m)
    p = apply_keep(m, {g: torch.arange(max(1, u.size // 2)) for g, u in spec.groups.items()})
    B = 4
    w = module_workload(p, (torch.zeros(B, tiny_data.schema.n_dense),
                            torch.zeros(B, tiny_data.schema.n_sparse, dtype=torch.int64)), tiny_data.schema)
    assert sum(layer.flops for layer in w.dense if layer.op == "gemm") == flops(p, B) < flops(m, B)
    assert {t.dim for t in w.tables} == {p.embedding.table.embedding_dim} == {spec.groups["emb"].size // 2}
