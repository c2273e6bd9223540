import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from cosearch.profile import Precision, TableSpec, arch_workload, gemm_signature, module_workload
from pimsim.dense import GLUE_KINDS
from nasrec import FULL, SMALL, ArchSpec, EmbeddingSpec, NasRecModel, Schema, build_baseline, BASELINES, sample
from nasrec.util import seeded_torch

SCHEMA = Schema(5, (7, 30, 3, 100, 12, 9))
B = 8


def _inputs(schema=SCHEMA, batch=B):
    g = torch.Generator().manual_seed(0)
    dense = torch.rand(batch, schema.n_dense, generator=g)
    ids = torch.stack([torch.randint(0, c, (batch,), generator=g) for c in schema.cardinalities], 1)
    return dense, ids


def _torch_flops(model, inputs):
    """torch's own count. Its FLOP counter has no formula for the fused CPU attention
    kernel, so attention runs in the math backend here (two bmm, counted)."""
    model.eval()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        model(*inputs)
    return fc.get_total_flops()


def _gemm_flops(w):
    return sum(l.flops for l in w.dense if l.op == "gemm")


@pytest.mark.parametrize("space", [FULL, SMALL])
@pytest.mark.parametrize("seed", range(6))
def test_analytic_matches_hooks_and_torch_flops(space, seed):
    spec = sample(np.random.default_rng([seed, 7]), space)
    with seeded_torch(0):
        model = NasRecModel(spec, SCHEMA)
    inputs = _inputs()
    a = arch_workload(spec, SCHEMA, batch_size=B)
    h = module_workload(model, inputs, SCHEMA)
    assert gemm_signature(a) == gemm_signature(h)
    assert a.tables == h.tables
    assert len(a.tables) == SCHEMA.n_sparse
    assert _gemm_flops(a) == _torch_flops(model, inputs) == _gemm_flops(h)
    # softmax of attention appears in both, with the same sizes
    sm = lambda w: sorted((l.rows, l.cols) for l in w.dense if l.op == "softmax")
    assert sm(a) == sm(h)
    # the transposing copies before products of transposed inputs, with the same sizes
    strided = lambda w: sorted(l.elements for l in w.dense if getattr(l, "strided", False))
    assert strided(a) == strided(h)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_flops_match_torch(name):
    model = build_baseline(name, SCHEMA, 0)
    inputs = _inputs()
    w = module_workload(model, inputs, SCHEMA)
    assert _gemm_flops(w) == _torch_flops(model, inputs) > 0
    assert w.batch_size == B
    # every baseline reads every field's table at least once
    assert sum(t.dim == 16 for t in w.tables) == SCHEMA.n_sparse


def test_flops_scale_with_batch_and_precision():
    spec = sample(np.random.default_rng(3), FULL)
    w1 = arch_workload(spec, SCHEMA, batch_size=4)
    w2 = arch_workload(spec, SCHEMA, batch_size=8, tables=TableSpec(Precision.INT8))
    assert w2.dense_flops == 2 * w1.dense_flops
    assert {t.bytes_per_element for t in w2.tables} == {1}
    assert w1.weight_bytes == w2.weight_bytes > 0


def test_weight_flags_and_parts():
    spec = sample(np.random.default_rng(5), FULL)
    w = arch_workload(spec, SCHEMA, batch_size=B)
    parts = {l.part for l in w.dense if getattr(l, "kind", "") not in GLUE_KINDS}
    assert "head" in parts and parts <= {"fc", "dot", "gating", "sum", "efc", "attention", "merger", "head"}
    assert {l.part for l in w.dense} - parts <= {"glue", "embedding"}
    for l in w.dense:
        if l.op == "gemm" and not l.weights:
            assert l.part in ("dot", "attention")


def test_bad_batch_size():
    spec = sample(np.random.default_rng(0), SMALL)
    with pytest.raises(ValueError, match="batch_size"):
        arch_workload(spec, SCHEMA, batch_size=0)


def test_analytic_profile_is_fast():
    import time
    rng = np.random.default_rng(0)
    specs = [sample(rng, FULL) for _ in range(200)]
    t = time.perf_counter()
    for s in specs:
        arch_workload(s, SCHEMA)
    assert (time.perf_counter() - t) / len(specs) < 0.01  # well over a thousand per second in practice


@pytest.mark.parametrize("seed", range(2))
def test_pruned_models_profile_like_torch(seed, tmp_path):
    """A pruned model (nasrec.prune: ordinary smaller modules) is profiled from its
    real shapes, through a model file as `cosearch query MODEL.pt` reads it."""
    prune = pytest.importorskip("nasrec.prune")
    spec = sample(np.random.default_rng([seed, 11]), FULL)
    with seeded_torch(0):
        model = NasRecModel(spec, SCHEMA)
    pruned, _ = prune.prune(model, prune.PruneConfig(ratio=0.5, finetune_steps=0))
    from nasrec.flops import flops
    from nasrec.modelio import load_model, save_model
    path = save_model(pruned, tmp_path / "m.pt", schema=SCHEMA)
    loaded, state = load_model(path)
    inputs = _inputs()
    w = module_workload(loaded, inputs, state["schema"])
    full = module_workload(model, inputs, SCHEMA)
    assert _gemm_flops(w) == _torch_flops(loaded, inputs) == flops(loaded, B)
    assert 0 < _gemm_flops(w) < _gemm_flops(full)


# ---- per-field embedding choices and multi-hot fields (issue 7) --------------------------------


def _with_embedding(spec, dims, precisions):
    return ArchSpec(spec.blocks, spec.space, EmbeddingSpec(dims, precisions))


@pytest.mark.parametrize("seed", range(3))
def test_embedding_choices_profile_like_torch(seed):
    spec = _with_embedding(sample(np.random.default_rng([seed, 9]), FULL),
                           (0, 8, 16, 64, 4, 16), ("fp32", "int8", "fp16", "fp32", "int8", "fp32"))
    with seeded_torch(0):
        model = NasRecModel(spec, SCHEMA)
    a = arch_workload(spec, SCHEMA, batch_size=B)
    assert _gemm_flops(a) == _torch_flops(model, _inputs())
    assert [t.dim for t in a.tables] == [8, 16, 64, 4, 16]  # the dropped field has no table
    assert [t.bytes_per_element for t in a.tables] == [1, 2, 4, 1, 4]
    h = module_workload(model, _inputs(), SCHEMA)  # the hook profiler knows the choices too
    assert h.tables == a.tables
    assert _gemm_flops(h) == _gemm_flops(a)


def test_dropping_a_field_removes_its_lookups():
    spec = sample(np.random.default_rng(1), FULL)
    keep = _with_embedding(spec, (16,) * 6, ("fp32",) * 6)
    drop = _with_embedding(spec, (16, 0, 16, 0, 16, 16), ("fp32",) * 6)
    wk, wd = arch_workload(keep, SCHEMA, batch_size=B), arch_workload(drop, SCHEMA, batch_size=B)
    lookups = lambda w: sum(t.pooling for t in w.tables) * w.batch_size  # noqa: E731
    assert lookups(wk) - lookups(wd) == 2 * B
    assert [t.rows for t in wd.tables] == [7, 3, 12, 9]


def test_published_choices_profile_as_the_published_space():
    spec = sample(np.random.default_rng(2), FULL)
    same = _with_embedding(spec, (16,) * 6, ("fp32",) * 6)
    a, b = arch_workload(spec, SCHEMA, batch_size=B), arch_workload(same, SCHEMA, batch_size=B)
    # the same arithmetic; only the glue differs, as the elastic embedding's eager code does
    compute = lambda w: [l for l in w.dense if getattr(l, "kind", "") not in GLUE_KINDS]  # noqa: E731
    assert a.tables == b.tables and compute(a) == compute(b)


def test_int8_tables_cost_a_quarter_of_fp32_in_pimsim():
    import pimsim

    schema = Schema(5, (100_000,) * 6)
    spec = sample(np.random.default_rng(3), FULL)
    fp32 = arch_workload(_with_embedding(spec, (64,) * 6, ("fp32",) * 6), schema, batch_size=64)
    int8 = arch_workload(_with_embedding(spec, (64,) * 6, ("int8",) * 6), schema, batch_size=64)
    assert 4 * int8.embedding_bytes == fp32.embedding_bytes
    host = pimsim.with_overrides("ddr4-2400", {"host.cache_bytes": 0})  # every lookup to DRAM
    r32, r8 = pimsim.simulate(fp32.embeddings, host, seed=0), pimsim.simulate(int8.embeddings, host, seed=0)
    # 256 B fp32 rows take four 64 B bursts, int8 rows one (below 64 B a row still takes a burst)
    assert 4 * r8.dram_bursts == r32.dram_bursts and 4 * r8.channel_bytes == r32.channel_bytes


def test_multi_hot_fields_become_pooled_tables():
    schema = Schema(5, (7, 30, 3, 100, 12, 9), (3, 1, 2, 1, 5, 1))
    w = arch_workload(sample(np.random.default_rng(4), FULL), schema, batch_size=B)
    assert [t.pooling for t in w.tables] == [3, 1, 2, 1, 5, 1]


def test_blocks_nobody_reads_cost_nothing():
    """The profiler, like the model, skips blocks whose output reaches nothing: the
    workload of a spec equals that of its canonical form, and no layer of the dead
    block appears."""
    import numpy as np
    from nasrec import sample
    rng = np.random.default_rng(0)
    for _ in range(200):
        spec = sample(rng)
        dead = [i for i, live in enumerate(spec.live_blocks()) if not live]
        if dead:
            break
    w = arch_workload(spec, SCHEMA, batch_size=8)
    assert w.dense == arch_workload(spec.canonical(), SCHEMA, batch_size=8).dense
    assert not any(layer.name.startswith(f"blocks.{dead[0]}.") for layer in w.dense)
    assert any(layer.name.startswith(f"blocks.{len(spec.blocks) - 1}.") for layer in w.dense)


def _dispatches(w):
    """(kernels, calls) an eager runtime dispatches: compute layers and copies, and calls."""
    calls = sum(getattr(l, "kind", "") == "call" for l in w.dense)
    return len(w.dense) - calls, calls


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("multi_hot", [False, True])
def test_analytic_glue_matches_what_eager_torch_dispatches(seed, multi_hot):
    """Both profilers list the same number of kernels and of kernel-less calls (module
    calls, views, weight slices) that the eager forward pass makes, with the published
    embedding and with per-field dims and precisions (every precision present)."""
    schema = Schema(5, (7, 30, 3, 100, 12, 9), (1, 2, 1, 3, 1, 1) if multi_hot else None)
    spec = sample(np.random.default_rng([seed, 13]), FULL if seed % 2 else SMALL)
    if seed >= 2:
        spec = _with_embedding(spec, (8, 4, 0, 16, 32, 4), ("fp32", "int8", "fp16", "fp16", "int8", "fp32"))
    with seeded_torch(0):
        model = NasRecModel(spec, schema)
    g = torch.Generator().manual_seed(0)
    ids = torch.cat([torch.randint(0, c, (B, p), generator=g) for c, p in zip(schema.cardinalities, schema.lookups)], 1)
    h = module_workload(model, (torch.rand(B, schema.n_dense, generator=g), ids), schema)
    a = arch_workload(spec, schema, batch_size=B)
    assert _dispatches(a) == _dispatches(h)
    assert _dispatches(a)[1] > len(a.dense) // 3  # eager glue is a large part of what runs


def test_profiles_say_what_each_small_operator_is():
    spec = sample(np.random.default_rng(6), FULL)
    for w in (arch_workload(spec, SCHEMA, batch_size=B), module_workload(build_baseline("autoint", SCHEMA, 0),
                                                                          _inputs(), SCHEMA)):
        kinds = {l.kind for l in w.dense if l.op == "elementwise"}
        assert {"activation", "add", "call", "copy"} <= kinds
    a = arch_workload(spec, SCHEMA, batch_size=B)
    assert all(l.kind == "layernorm" for l in a.dense if l.op == "elementwise" and l.ops_per_element == 5)
