from dataclasses import replace

import numpy as np
import pytest
import torch

from nasrec.baselines import BASELINES, build_baseline
from nasrec.model import NasRecModel
from nasrec.space import FULL, SMALL, load_arch, sample
from nasrec.train import (SupernetScorer, TrainConfig, auc, build_supernet, evaluate,
                          load_checkpoint, train_model, train_supernet)

from .test_space import CONFIGS


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    sn = build_supernet(tiny_data.schema, "full", seed=0)
    ck = tmp_path_factory.mktemp("ck") / "supernet.pt"
    hist = train_supernet(sn, tiny_data.split("train"), TrainConfig(steps=12, batch_size=128),
                          checkpoint=ck)
    return sn, ck, hist


@pytest.mark.parametrize("space", [FULL, SMALL], ids=["full", "small"])
def test_subnet_forward_equals_standalone_with_copied_weights(tiny_data, trained, space):
    sn = trained[0] if space is FULL else build_supernet(tiny_data.schema, "small", seed=1)
    sn.eval()
    d, s, _ = next(tiny_data.split("val").batches(64))
    rng = np.random.default_rng(11)
    specs = [sample(rng, space) for _ in range(4)]
    specs += [load_arch(p) for p in CONFIGS if (load_arch(p).space == space.name)][:1]
    for spec in specs:
        model = sn.extract(spec)
        model.eval()
        assert isinstance(model, NasRecModel)
        n_sub = sum(p.numel() for p in model.parameters())
        assert n_sub < sum(p.numel() for p in sn.parameters())
        with torch.no_grad():
            torch.testing.assert_close(model(d, s), sn(d, s, spec), rtol=1e-5, atol=1e-5)


def test_standalone_model_is_trainable_and_beats_constant(tiny_data):
    spec = sample(np.random.default_rng(2), SMALL)
    model = NasRecModel(spec, tiny_data.schema)
    hist = train_model(model, tiny_data.split("train"), TrainConfig(steps=40, batch_size=128, lr=0.05))
    assert np.mean(hist["train_losses"][-10:]) < np.mean(hist["train_losses"][:5])
    res = evaluate(model, tiny_data.split("val"))
    assert res["data"].endswith(":val") and 0 < res["logloss"] < 1.0 and 0 <= res["auc"] <= 1


def test_supernet_training_records_and_checkpoint_round_trip(tiny_data, trained):
    sn, ck, hist = trained
    assert len(hist["train_losses"]) == 12 and hist["seed"] == 0 and hist["data"].endswith(":train")
    loaded, state = load_checkpoint(ck)
    assert state["step"] == 12
    spec = sample(np.random.default_rng(4))
    d, s, _ = next(tiny_data.split("val").batches(32))
    sn.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(d, s, spec), sn(d, s, spec))
    assert not list(ck.parent.glob(".*tmp"))  # atomic write leaves no temp file


def test_supernet_training_is_deterministic_per_seed(tiny_data):
    cfg = TrainConfig(steps=4, batch_size=64, seed=3)
    losses = []
    for _ in range(2):
        sn = build_supernet(tiny_data.schema, "small", seed=3)
        losses.append(train_supernet(sn, tiny_data.split("train"), cfg)["train_losses"])
    assert losses[0] == losses[1]


def test_scorer_batch_api_is_order_independent(tiny_data, trained):
    sn = trained[0]
    scorer = SupernetScorer(sn, tiny_data.split("train"), tiny_data.split("val"), finetune_steps=3,
                            batch_size=128)
    rng = np.random.default_rng(9)
    specs = [sample(rng) for _ in range(3)]
    a = scorer.score(specs)
    b = scorer.score(specs[::-1])[::-1]
    assert a.shape == (3,) and np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b)
    r = scorer.evaluate(specs[0])
    assert r["hash"] == specs[0].hash and r["data"].endswith(":val")
    before = sn.head.weight.detach().clone()
    scorer.score(specs[:1])
    assert torch.equal(before, sn.head.weight)  # fine-tuning never touches the supernet


def test_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    p = np.round(rng.random(300), 1)  # many ties
    pos, neg = p[y], p[~y]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert auc(y, p) == pytest.approx(brute)
    assert auc(y, y.astype(float)) == 1.0


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_shapes_and_gradients(tiny_data, name):
    model = build_baseline(name, tiny_data.schema, seed=0)
    d, s, y = next(tiny_data.split("train").batches(32))
    out = model(d, s)
    assert out.shape == (32,)
    torch.nn.functional.binary_cross_entropy_with_logits(out, y).backward()
    table = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)][0]
    assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        build_baseline("nope", tiny_data.schema, 0)


def test_kendall_tau_matches_definition():
    from benchmarks._rank import kendall_tau
    a = [1, 2, 3, 4, 5]
    assert kendall_tau(a, a) == 1.0 and kendall_tau(a, a[::-1]) == -1.0
    # One discordant pair out of 10: (9 - 1) / 10.
    assert kendall_tau(a, [1, 2, 3, 5, 4]) == pytest.approx(0.8)


def test_rank_with_params_breaks_score_ties_by_size():
    """The label-free blend averages the two ranks: equal scores are ordered by size,
    and a score that agrees with size keeps its order."""
    from benchmarks._rank import rank_with_params
    r = rank_with_params([0.5, 0.5, 0.5], [300, 100, 200])
    assert list(np.argsort(r)) == [1, 2, 0]
    assert list(rank_with_params([0.1, 0.2, 0.3], [1, 2, 3])) == [0.0, 1.0, 2.0]
    # opposite orders of score and size tie everywhere
    assert len(set(rank_with_params([0.1, 0.2, 0.3], [3, 2, 1]))) == 1


def test_supernet_resume_continues_step_and_optimizer(tiny_data, tmp_path):
    ck = tmp_path / "a.pt"
    sn = build_supernet(tiny_data.schema, "small", seed=2)
    train_supernet(sn, tiny_data.split("train"), TrainConfig(steps=4, batch_size=64, seed=2),
                   checkpoint=ck, checkpoint_every=2)
    loaded, state = load_checkpoint(ck)
    assert state["step"] == 4
    hist = train_supernet(loaded, tiny_data.split("train"), TrainConfig(steps=7, batch_size=64, seed=2),
                          checkpoint=ck, resume=state)
    assert len(hist["train_losses"]) == 3
    _, state = load_checkpoint(ck)
    assert state["step"] == 7
    # The embedding table is used at every step: its Adagrad step count carries on.
    steps = [float(v["step"]) for v in state["optimizer"]["state"].values()]
    assert max(steps) == 7


@pytest.mark.parametrize("space,extended", [("full", False), ("small", False), ("full", True)])
def test_fair_paths_spread_operators_evenly(tiny_data, space, extended):
    from nasrec.space import EmbeddingSpace
    es = EmbeddingSpace((0, 8, 16), ("fp32", "int8")) if extended else None
    sn = build_supernet(tiny_data.schema, space, seed=0, embedding_space=es)
    rng = np.random.default_rng(5)
    n = len(sn.space.dense_ops)
    for _ in range(5):
        paths = sn.sample_paths(rng, 0.0, n)
        assert len(paths) == n
        from nasrec.model import live_mask
        live = [live_mask(p) for p in paths]
        for i in range(sn.space.num_blocks):
            # every dense operator at most once per block; sparse operators at most equally
            # often (exactly, where no path's block is dead: dead blocks are canonical and never run)
            dense = [p[i].dense_ops[0] for p, lv in zip(paths, live) if lv[i]]
            sparse = [p[i].sparse_ops[0] for p, lv in zip(paths, live) if lv[i]]
            assert len(set(dense)) == len(dense)
            assert max((sparse.count(o) for o in sn.space.sparse_ops), default=0) <= n // len(sn.space.sparse_ops)
            if all(lv[i] for lv in live):
                assert sorted(dense) == sorted(sn.space.dense_ops)
        assert all((p.embedding is not None) == extended for p in paths)
    assert len(sn.sample_paths(rng, 1.0, n)) == 1  # the warm-up path alone
    # one path per step draws what the single-path sampler draws
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    assert sn.sample_paths(a, 0.0, 1)[0] == sn.sample_path(b, 0.0)


def test_paths_per_step_must_divide_the_batch():
    with pytest.raises(ValueError, match="batch_size 100 is not divisible by paths_per_step 3"):
        TrainConfig(batch_size=100, paths_per_step=3)
    with pytest.raises(ValueError, match="paths_per_step must be >= 1, got 0"):
        TrainConfig(paths_per_step=0)


@pytest.mark.parametrize("paths_per_step", [1, 2])
def test_sampler_trains_only_the_architectures_it_draws(tiny_data, tmp_path, paths_per_step):
    sn = build_supernet(tiny_data.schema, "full", seed=3)
    rng0 = np.random.default_rng(5)
    spec = sample(rng0, FULL)
    spec = replace(spec, blocks=tuple(replace(b, dense_op="fc", sparse_op="efc") for b in spec.blocks))
    before = {k: v.clone() for k, v in sn.state_dict().items()}
    calls = []

    def only_this(rng):
        assert isinstance(rng, np.random.Generator)
        calls.append(1)
        return spec
    ck = tmp_path / "s.pt"
    train_supernet(sn, tiny_data.split("train"), TrainConfig(steps=3, batch_size=64, seed=0,
                                                             full_path_fraction=0.0,
                                                             paths_per_step=paths_per_step),
                   sampler=only_this, checkpoint=ck)
    assert len(calls) == 3 * paths_per_step
    after = sn.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # operators the architecture never uses keep their initial weights
    assert not any(f".{op}." in k for k in changed for op in ("dot", "gating", "sum", "attention"))
    assert any(".dense_ops.fc." in k for k in changed) and any(".sparse_ops.efc." in k for k in changed)
    assert load_checkpoint(ck)[1]["meta"]["sampler"] == "only_this"


def test_supernet_paths_variants_draw_what_they_say(tiny_data, tmp_path):
    import pandas as pd
    from benchmarks.supernet_paths import VARIANTS, _setup, main
    rng = np.random.default_rng(0)
    specs = [sample(rng, FULL) for _ in range(3)]
    train = tiny_data.split("train")
    drawn = {}
    for v in VARIANTS:
        split, lr, paths, sampler = _setup(v, specs, train, 0.03)
        assert lr == (0.01 if v == "random-lr0.01" else 0.03)
        assert paths == (4 if v == "random-paths4" else 1)
        assert (sampler is None) == (v.startswith("random") and v != "random-logged")
        if sampler is not None:
            drawn[v] = [sampler(np.random.default_rng(k)) for k in range(40)]
        if v == "random-bayes":
            assert np.array_equal(split.label, train.prob.astype(np.float32))
            assert not np.array_equal(split.label, train.label)
        else:
            assert split is train
    assert {s.hash for s in drawn["fixed"]} == {specs[0].hash}
    assert all(s.blocks[-1] == specs[0].blocks[-1] for s in drawn["fixed-last"])
    assert len({s.blocks[0] for s in drawn["fixed-last"]}) > 1
    assert 1 < len({s.hash for s in drawn["pool8"]}) <= 8
    assert len({s.hash for s in drawn["random-logged"]}) == 40
    from benchmarks.supernet_paths import _write_steps
    _, _, _, logged = _setup("random-logged", specs, train, 0.03)
    picked = [logged(np.random.default_rng(k)) for k in range(3)]
    out = _write_steps(logged.drawn, [0.7, 0.6, 0.5], 0, "d", tmp_path)
    rows = pd.read_csv(out)
    assert list(rows["loss"]) == [0.7, 0.6, 0.5]
    assert list(rows["last_width"]) == [s.blocks[-1].dense_width for s in picked]
    assert all(1 <= n <= len(picked[0].blocks) for n in rows["live_blocks"])
    assert main(["--variants", "random,nope"]) == 2
