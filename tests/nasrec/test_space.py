import json
from pathlib import Path

import numpy as np
import pytest

from nasrec.space import (FULL, EmbeddingSpec, MACRO_FIELDS, MICRO_FIELDS, SMALL, ArchSpec, load_arch, mutate,
                          sample)

CONFIGS = sorted(Path("/work/shared/nasrec-configs").glob("*.json"))
if not CONFIGS:
    CONFIGS = sorted((Path(__file__).resolve().parents[3] / "shared" / "nasrec-configs").glob("*.json"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_official_config_loads_unchanged_and_round_trips(path):
    raw = json.loads(path.read_text())
    spec = load_arch(path)
    assert spec.space == ("small" if raw["config"] == "autoctr" else "full")
    out = spec.to_dict()
    # Every field of the official file except the search-time score comes back identically.
    assert {k: v for k, v in raw.items() if k != "test_loss"} == out
    assert ArchSpec.from_json(spec.to_json()) == spec


def test_official_active_nodes_map_to_space_operators():
    spec = load_arch(next(p for p in CONFIGS if p.name == "ea_criteo_kaggle_xlarge_best_1shot.json"))
    # Block 0 is [2, 4]: Gating and Attention in the Full space.
    assert (spec.blocks[0].dense_op, spec.blocks[0].sparse_op) == ("gating", "attention")
    assert spec.blocks[6].dense_left_idx == 6


def test_sample_is_valid_deterministic_and_respects_space():
    a = [sample(np.random.default_rng(3), SMALL) for _ in range(2)]
    assert a[0] == a[1] and a[0].hash == a[1].hash
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = sample(rng, SMALL)
        assert all(b.dense_op in ("fc", "dot") and b.sparse_op == "efc" for b in s.blocks)
        assert all(1 <= len(b.dense_idx) <= 4 and max(b.dense_idx) <= i for i, b in enumerate(s.blocks))


def test_hash_ignores_selector_order_but_not_content():
    spec = sample(np.random.default_rng(1), FULL)
    d = spec.to_dict()
    k = next(i for i, m in enumerate(d["macro"]) if len(m["sparse_idx"]) > 1)
    d["macro"][k]["sparse_idx"] = list(reversed(d["macro"][k]["sparse_idx"]))
    reordered = ArchSpec.from_dict(d)
    assert reordered != spec and reordered.hash == spec.hash
    d["micro"][3]["dense_in_dims"] = 16 if d["micro"][3]["dense_in_dims"] != 16 else 32
    assert ArchSpec.from_dict(d).hash != spec.hash
    assert len(spec.hash) == 64


def test_hash_ignores_inputs_that_are_not_read():
    from dataclasses import replace
    from nasrec.space import BINARY_OPS, EmbeddingSpec
    spec = sample(np.random.default_rng(3), FULL)
    blocks = list(spec.blocks)
    i = 4
    for op, same in (("fc", True), ("gating", False)):
        blocks[i] = replace(blocks[i], dense_op=op, dense_left_idx=0, dense_right_idx=0)
        a = ArchSpec(tuple(blocks), spec.space)
        blocks[i] = replace(blocks[i], dense_left_idx=3, dense_right_idx=2)
        b = ArchSpec(tuple(blocks), spec.space)
        assert (a.hash == b.hash) is same, op
    assert "gating" in BINARY_OPS
    dropped = [ArchSpec(spec.blocks, spec.space, EmbeddingSpec((0, 16), (p, "fp32"))) for p in ("int8", "fp32")]
    assert dropped[0].hash == dropped[1].hash
    kept = [ArchSpec(spec.blocks, spec.space, EmbeddingSpec((8, 16), (p, "fp32"))) for p in ("int8", "fp32")]
    assert kept[0].hash != kept[1].hash


def test_mutate_changes_exactly_one_field_of_one_block():
    rng = np.random.default_rng(5)
    for _ in range(40):
        spec = sample(rng)
        child = mutate(spec, rng)
        diffs = [(i, f) for i, (a, b) in enumerate(zip(spec.blocks, child.blocks))
                 for f in MACRO_FIELDS + MICRO_FIELDS if getattr(a, f) != getattr(b, f)]
        assert len(diffs) <= 1
        if diffs and diffs[0][0] == 0:
            assert diffs[0][1] not in ("dense_idx", "sparse_idx", "dense_left_idx", "dense_right_idx")


def _official():
    return json.loads(next(p for p in CONFIGS if "criteo_kaggle_xlarge" in p.name).read_text())


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["macro"][2].update(dense_idx=[3]), ["block 2", "dense_idx"]),
    (lambda d: d["macro"][4].update(dense_right_idx=[5]), ["block 4", "dense_right_idx"]),
    (lambda d: d["micro"][1].update(dense_in_dims=100), ["block 1", "dense_width"]),
    (lambda d: d["micro"][5].update(sparse_in_dims=8), ["block 5", "sparse_tokens"]),
    (lambda d: d["micro"][3].update(active_nodes=[4, 5]), ["block 3", "dense_op"]),
    (lambda d: d["micro"][0].update(active_nodes=[0, 9]), ["block 0", "active_nodes"]),
    (lambda d: d["macro"][5].update(sparse_idx=[1, 2, 3, 4, 5]), ["block 5", "sparse_idx"]),
    (lambda d: d["micro"][2].update(deep_fm=2), ["block 2", "deep_fm"]),
    (lambda d: d.update(config="huge"), ["huge"]),
])
def test_invalid_specs_name_block_and_field(edit, words):
    d = _official()
    edit(d)
    with pytest.raises(ValueError) as e:
        ArchSpec.from_dict(d)
    for w in words:
        assert w in str(e.value)


def test_bad_json_is_a_value_error():
    with pytest.raises(ValueError, match="bad architecture JSON"):
        ArchSpec.from_json("{not json")
    with pytest.raises(ValueError, match="micro"):
        ArchSpec.from_json('{"macro": []}')


# ---- the extended space: per-field embedding dimension and precision (issue 7) -------------

def test_published_specs_keep_their_json_and_hash():
    spec = sample(np.random.default_rng(3))
    assert spec.embedding is None and "embedding" not in spec.to_dict()
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec and again.hash == spec.hash
    assert "embedding" not in json.loads(spec.canonical_json())


def test_embedding_choices_round_trip_and_change_the_hash():
    rng = np.random.default_rng(0)
    spec = sample(rng, n_fields=26)
    assert spec.embedding.n_fields == 26 and max(spec.embedding.dims) > 0
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec and again.hash == spec.hash
    published = ArchSpec(spec.blocks, spec.space)
    assert published.hash != spec.hash
    explicit = ArchSpec(spec.blocks, spec.space, EmbeddingSpec.published(26))
    assert explicit.embedding.dims == (16,) * 26 and explicit.hash != published.hash


@pytest.mark.parametrize("emb, match", [
    ({"dims": [0, 0]}, "every field is dropped"),
    ({"dims": [16, 12, -1]}, "field 2: dim must be a non-negative integer"),
    ({"dims": [16, 8], "precision": ["fp32", "bf8"]}, "field 1: precision must be one of"),
    ({"dims": [16, 8], "precision": ["fp32"]}, "2 dims but 1 precisions"),
    ({"size": 3}, "'dims' list"),
])
def test_bad_embedding_choices_name_the_field(emb, match):
    d = sample(np.random.default_rng(1)).to_dict()
    d["embedding"] = emb
    with pytest.raises(ValueError, match=match):
        ArchSpec.from_dict(d)


def test_mutation_reaches_the_embedding_and_never_drops_every_field():
    rng = np.random.default_rng(7)
    spec = sample(rng, n_fields=4)
    only_one = ArchSpec(spec.blocks, spec.space, EmbeddingSpec((0, 0, 8, 0), ("fp32",) * 4))
    changed_embedding = 0
    for _ in range(200):
        child = mutate(only_one, rng)
        assert max(child.embedding.dims) > 0
        if child.embedding != only_one.embedding:
            changed_embedding += 1
            assert child.blocks == only_one.blocks
    # one chance in (blocks + 1) = 1/8 per mutation
    assert 10 <= changed_embedding <= 50
    published = sample(rng)
    assert all(mutate(published, rng).embedding is None for _ in range(20))


def _with_dead_block(seed0: int = 0):
    """A random NASRec-Full spec with a block that nothing reads, and that block's index."""
    rng = np.random.default_rng(seed0)
    for _ in range(200):
        spec = sample(rng, FULL)
        dead = [i for i, live in enumerate(spec.live_blocks()) if not live]
        if dead:
            return spec, dead[0]
    raise AssertionError("no spec with a dead block in 200 draws")


def test_blocks_nobody_reads_do_not_change_hash_weights_or_output(tiny_data):
    from dataclasses import replace
    import torch
    from nasrec.model import NasRecModel
    from nasrec.util import seeded_torch
    spec, i = _with_dead_block()
    assert spec.live_blocks()[-1] and not spec.live_blocks()[i]
    blocks = list(spec.blocks)
    blocks[i] = replace(blocks[i], dense_op="dot", sparse_op="attention", dense_width=1024, sparse_tokens=64,
                        dense_sparse_interact=True, deep_fm=True)
    other = ArchSpec(tuple(blocks), spec.space)
    assert other.hash == spec.hash and other.to_json() != spec.to_json()
    assert other.canonical() == spec.canonical()
    with seeded_torch(0):
        a = NasRecModel(spec, tiny_data.schema)
    with seeded_torch(0):
        b = NasRecModel(other, tiny_data.schema)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    d, s, _ = next(tiny_data.split("val").batches(32))
    assert torch.equal(a(d, s), b(d, s))
    # a live block's change is a different architecture
    j = len(blocks) - 1
    blocks[j] = replace(blocks[j], dense_width=16 if blocks[j].dense_width != 16 else 32)
    assert ArchSpec(tuple(blocks), spec.space).hash != spec.hash
