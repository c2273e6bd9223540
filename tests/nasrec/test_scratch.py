import json
import logging
from dataclasses import replace

import numpy as np
import pytest

from nasrec import scratch
from nasrec.modelio import load_model
from nasrec.scratch import TruthCache, TruthRecipe, truth_key
from nasrec.space import sample

RECIPE = TruthRecipe(steps=3, batch_size=64)


def _no_training(*a, **k):
    raise AssertionError("trained although the result was cached")


def test_truth_is_cached_by_data_model_recipe_and_seed(tiny_data, tmp_path, monkeypatch):
    cache = TruthCache(tmp_path)
    spec = sample(np.random.default_rng(0))
    a = cache.get_or_train(spec, tiny_data, RECIPE, 0, save_model=True)
    assert np.isfinite(a["test_logloss"]) and a["test_logloss"] > 0 and 0 <= a["test_auc"] <= 1 and a["model"] == f"arch:{spec.hash}"
    model, info = load_model(a["model_file"])
    assert info["arch"] == spec.to_json()
    monkeypatch.setattr(scratch, "train_truth", _no_training)
    b = cache.get_or_train(spec, tiny_data, RECIPE, 0, save_model=True)
    assert b == a
    # another seed or recipe is another truth
    monkeypatch.undo()
    c = cache.get_or_train(spec, tiny_data, TruthRecipe(steps=4, batch_size=64), 0)
    d = cache.get_or_train("dlrm", tiny_data, RECIPE, 1)
    assert c["recipe"]["steps"] == 4 and d["model"] == "baseline:dlrm" and d["seed"] == 1
    assert len(list(tmp_path.glob("truth-*.json"))) == 3


def test_a_validation_only_recipe_skips_the_test_split(tiny_data, tmp_path):
    from dataclasses import replace
    cache = TruthCache(tmp_path)
    full = cache.get_or_train("dlrm", tiny_data, RECIPE, 0)
    quick = cache.get_or_train("dlrm", tiny_data, replace(RECIPE, test=False), 0)
    assert np.isnan(quick["test_logloss"]) and np.isnan(quick["test_auc"]) and np.isfinite(full["test_logloss"])
    # the same training, measured on the same validation rows, kept as another entry
    assert quick["val_logloss"] == pytest.approx(full["val_logloss"], rel=1e-6)
    assert quick["recipe"]["test"] is False and "test" not in full["recipe"]
    assert len(list(tmp_path.glob("truth-*.json"))) == 2
    with pytest.raises(ValueError, match="TruthRecipe.test"):
        TruthRecipe(test="no")


@pytest.mark.parametrize("damage", ["truncate", "edit", "model"])
def test_damaged_entry_warns_once_and_is_rebuilt(tiny_data, tmp_path, caplog, damage):
    cache = TruthCache(tmp_path)
    first = cache.get_or_train("dlrm", tiny_data, RECIPE, 0, save_model=True)
    entry = next(tmp_path.glob("truth-*.json"))
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:40])
    elif damage == "edit":  # valid JSON, but not what was written
        d = json.loads(entry.read_text())
        d["result"]["test_logloss"] = 0.1
        entry.write_text(json.dumps(d))
    else:
        model = next(tmp_path.glob("truth-*.pt"))
        model.write_bytes(model.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="nasrec"):
        again = cache.get_or_train("dlrm", tiny_data, RECIPE, 0, save_model=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(tmp_path) in warnings[0] and "\n" not in warnings[0]
    assert again["test_logloss"] == pytest.approx(first["test_logloss"], abs=1e-6)
    assert cache.get(truth_key(tiny_data.content_hash, "dlrm", RECIPE, 0), need_model=True) is not None


def test_recipe_needs_fresh_rows(tiny_data):
    with pytest.raises(ValueError, match="fresh training rows"):
        scratch.train_truth("dlrm", tiny_data, TruthRecipe(steps=100, batch_size=512), 0)
    with pytest.raises(ValueError, match="steps"):
        TruthRecipe(steps=0)
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        scratch.model_key("nope")


def test_baselines_train_with_their_own_lr_and_schedule(monkeypatch):
    from nasrec import baselines
    from nasrec.train import TrainConfig, _lr_factor
    monkeypatch.setitem(baselines.TRAINING, "dlrm", {"lr": 0.01, "schedule": "constant"})
    spec = sample(np.random.default_rng(1))
    r = TruthRecipe()
    assert r.for_model(spec) is r and r.for_model("autoint") == r and "autoint" not in baselines.TRAINING
    d = r.for_model("dlrm")
    assert (d.lr, d.schedule, d.steps) == (0.01, "constant", r.steps)
    assert truth_key("h", "dlrm", r, 0)["recipe"] == {**r.to_dict(), "lr": 0.01, "schedule": "constant"}
    # the shared (cosine) recipe keeps the key it had before schedules existed
    assert "schedule" not in truth_key("h", spec, r, 0)["recipe"]
    cfg = d.train_config(0)
    assert [_lr_factor(s, cfg) for s in (0, 100, 249)] == [1.0, 1.0, 1.0]
    assert _lr_factor(249, r.train_config(0)) < 0.01
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="linear")


def test_a_baselines_adagrad_eps_has_its_own_key_and_reaches_training(monkeypatch):
    """``eps`` in ``TRAINING`` replaces the shared Adagrad eps for that baseline only; keys
    written before eps existed (the default 1e-2) stay the same."""
    from nasrec import baselines
    monkeypatch.setitem(baselines.TRAINING, "dlrm", {"lr": 0.01, "schedule": "constant", "eps": 1e-10})
    r = TruthRecipe()
    assert "eps" not in r.to_dict() and r.train_config(0).eps == 1e-2
    d = r.for_model("dlrm")
    assert d.eps == 1e-10 and d.train_config(3).eps == 1e-10
    assert truth_key("h", "dlrm", r, 0)["recipe"]["eps"] == 1e-10
    # the baseline's own eps wins over the shared one; an architecture's follows the recipe
    assert truth_key("h", "dlrm", r, 0) == truth_key("h", "dlrm", replace(r, eps=1e-6), 0)
    spec = sample(np.random.default_rng(1))
    assert truth_key("h", spec, replace(r, eps=1e-6), 0)["recipe"] == {**r.to_dict(), "eps": 1e-6}
    with pytest.raises(ValueError, match="eps must be > 0, got 0"):
        TruthRecipe(eps=0)


def test_the_recipes_gradient_clipping_reaches_training_and_its_key(tiny_data, monkeypatch):
    """``clip`` goes into the key unless it is NASRec's 5.0 (keys written before it existed
    stay the same), reaches the training loop's clipping, and must be positive."""
    from nasrec import train
    assert "clip" not in TruthRecipe(clip=5.0).to_dict()
    spec = sample(np.random.default_rng(1))
    assert truth_key("h", spec, TruthRecipe(clip=1.0), 0)["recipe"]["clip"] == 1.0
    assert truth_key("h", spec, TruthRecipe(clip=1.0), 0) != truth_key("h", spec, TruthRecipe(clip=5.0), 0)
    seen = []
    real = train.nn.utils.clip_grad_norm_
    monkeypatch.setattr(train.nn.utils, "clip_grad_norm_",
                        lambda params, max_norm: seen.append(max_norm) or real(params, max_norm))
    scratch.train_truth(spec, tiny_data, replace(RECIPE, clip=0.25), 0)
    assert seen == [0.25] * RECIPE.steps
    with pytest.raises(ValueError, match="clip must be > 0, got -1"):
        TruthRecipe(clip=-1)


def test_jobs_report_each_training_and_respect_the_deadline(tiny_data, tmp_path):
    cache = TruthCache(tmp_path)
    cache.get_or_train("dlrm", tiny_data, RECIPE, 0)
    jobs = [("dlrm", 0), ("dlrm", 1), ("dlrm", 2)]
    # past deadline: only the cached job has a result, nothing trains
    got = cache.get_or_train_jobs(jobs, tiny_data, RECIPE, deadline=0.0,
                                  on_start=lambda m, s: pytest.fail("started after the deadline"))
    assert got[0]["seed"] == 0 and got[1] is None and got[2] is None
    started, done = [], []
    got = cache.get_or_train_jobs(jobs, tiny_data, RECIPE, on_start=lambda m, s: started.append(s),
                                  on_done=lambda i, r: done.append((i, r["seed"])))
    assert started == [1, 2] and done == [(1, 1), (2, 2)] and [r["seed"] for r in got] == [0, 1, 2]


def test_training_queue_starts_by_priority_within_its_limit(tiny_data, tmp_path):
    from nasrec.scratch import TrainingQueue
    cache = TruthCache(tmp_path)
    cached = cache.get_or_train("dlrm", tiny_data, RECIPE, 0)
    started = []
    # limit 0 holds every job until the limit is raised
    with TrainingQueue(cache, tiny_data, RECIPE, workers=2, threads=1, limit=0,
                       on_start=lambda m, s: started.append((m, s))) as queue:
        assert queue.busy_threads == 0
        hit = queue.submit("dlrm", 0)
        # the cached job is answered at once and never starts
        assert hit.done() and hit.result() == cached
        late = queue.submit("dlrm", 3, priority=5)
        early = [queue.submit("dlrm", s, priority=1) for s in (1, 2)]
        assert not late.done() and started == []
        assert queue.busy_threads == 0  # waiting jobs beyond the limit claim no thread
        queue.set_limit(1)
        assert queue.busy_threads == 1  # one job running or about to start, one thread each
        results = [f.result() for f in early + [late]]
    assert [r["seed"] for r in results] == [1, 2, 3] and queue.busy_threads == 0
    assert started == [("dlrm", 1), ("dlrm", 2), ("dlrm", 3)]
    assert cache.get(truth_key(tiny_data.content_hash, "dlrm", RECIPE, 3)) == results[2]


def test_training_queue_close_answers_waiting_jobs_with_none(tiny_data, tmp_path):
    from nasrec.scratch import TrainingQueue
    cache = TruthCache(tmp_path)
    queue = TrainingQueue(cache, tiny_data, RECIPE, workers=1, deadline=0.0,
                          on_start=lambda m, s: pytest.fail("started after the deadline"))
    past = queue.submit("dlrm", 0)
    assert past.result(timeout=60) is None
    queue.close()
    with pytest.raises(RuntimeError, match="after close"):
        queue.submit("dlrm", 1)
    with pytest.raises(ValueError, match="workers"):
        TrainingQueue(cache, tiny_data, RECIPE, workers=0)


def test_tune_settings_parse_eps_and_clip_and_reject_bad_ones():
    """``baselines_peer --tune SCHEDULE:LR[:EPS[:CLIP[:FAN_IN]]]``: eps, clip and fan-in
    default to the recipe's; a bad setting is one error naming it."""
    from benchmarks.baselines_peer import _tune_recipe
    r = TruthRecipe()
    assert _tune_recipe(r, "constant:0.0035:1e-10") == replace(r, schedule="constant", lr=0.0035, eps=1e-10)
    assert _tune_recipe(r, "cosine:0.12").eps == r.eps and _tune_recipe(r, "cosine:0.12").clip == r.clip
    assert _tune_recipe(r, "cosine:0.12:0.01:2.5") == replace(r, lr=0.12, eps=0.01, clip=2.5)
    assert _tune_recipe(r, "cosine:0.12:0.01:5:64") == replace(r, lr=0.12, eps=0.01, lr_fan_in=64)
    for bad in ("cosine", "cosine:x", "cosine:0.1:0", "linear:0.1", "cosine:0.1:1e-10:0",
                "cosine:0.1:1e-10:1:2:3", "cosine:0.1:1e-10:1:-2", "cosine:0.1:1e-10:1:1.5"):
        with pytest.raises(ValueError, match=f"--tune '{bad}'"):
            _tune_recipe(r, bad)


def test_fan_in_scaled_learning_rates_group_by_factor_and_spare_embeddings():
    """``lr_fan_in`` n: a 2-D weight of fan-in f trains at lr x min(1, n / f); embedding
    tables, biases and other 1-D parameters keep lr; 0 gives the one plain group."""
    import torch
    from torch import nn

    from nasrec.train import TrainConfig, param_groups
    net = nn.Sequential(nn.Embedding(50, 128), nn.Linear(128, 48), nn.Linear(48, 1024), nn.Linear(1024, 1))
    plain = param_groups(net, TrainConfig(lr=0.04))
    assert len(plain) == 1 and [id(p) for p in plain[0]["params"]] == [id(p) for p in net.parameters()]
    groups = param_groups(net, TrainConfig(lr=0.04, lr_fan_in=64))
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert len(lr_of) == len(list(net.parameters()))
    assert lr_of[id(net[0].weight)] == pytest.approx(0.04)   # embedding table (128 wide)
    assert lr_of[id(net[1].weight)] == pytest.approx(0.02)   # 0.04 x 64 / 128
    assert lr_of[id(net[2].weight)] == pytest.approx(0.04)   # fan-in 48 <= 64
    assert lr_of[id(net[3].weight)] == pytest.approx(0.04 * 64 / 1024)
    assert all(lr_of[id(m.bias)] == pytest.approx(0.04) for m in net[1:])
    # the schedule scales every group's own lr: during the warm-up each group keeps its
    # factor; Adagrad's first step moves the wide layer by at most that group's lr
    from nasrec.train import _optimizer
    cfg = TrainConfig(lr=0.04, lr_fan_in=64, steps=20, warmup_fraction=0.5)
    opt, sched = _optimizer(param_groups(net, cfg), cfg)
    x = torch.randint(0, 50, (32,))
    before = net[3].weight.detach().clone()
    net(x).sum().backward()
    first = [g["lr"] for g in opt.param_groups]
    opt.step()
    sched.step()
    moved = (net[3].weight.detach() - before).abs().max().item()
    assert 0 < moved <= first[-1] * (1 + 1e-6) and first[-1] == pytest.approx(0.04 * 64 / 1024 / 10)
    for g, f0 in zip(opt.param_groups, first):
        assert g["lr"] == pytest.approx(2 * f0)  # warm-up step 2 of 10
    # supernet cache keys and checkpoints written before the field existed still match
    assert "lr_fan_in" not in TrainConfig().to_dict() and TrainConfig(lr_fan_in=8).to_dict()["lr_fan_in"] == 8
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match=f"lr_fan_in must be an integer >= 0, got {bad}"):
            TrainConfig(lr_fan_in=bad)


def test_fan_in_learning_rates_reach_the_truth_key_and_training(tiny_data, monkeypatch):
    """The default (0) leaves keys as they were; a value gets its own key and reaches the
    optimiser's groups; supernet training refuses it."""
    from nasrec import train
    spec = sample(np.random.default_rng(1))
    assert "lr_fan_in" not in TruthRecipe().to_dict()
    assert truth_key("h", spec, TruthRecipe(lr_fan_in=64), 0)["recipe"]["lr_fan_in"] == 64
    assert truth_key("h", spec, TruthRecipe(lr_fan_in=64), 0) != truth_key("h", spec, TruthRecipe(), 0)
    # baselines keep one learning rate (and their keys) unless their own settings differ
    for name in ("dlrm", "dcnv2"):
        assert TruthRecipe(lr_fan_in=64).for_model(name).lr_fan_in == 0
        assert truth_key("h", name, TruthRecipe(lr_fan_in=64), 0) == truth_key("h", name, TruthRecipe(), 0)
    assert TruthRecipe(lr_fan_in=64).for_model(spec).lr_fan_in == 64
    seen = []
    real = train.param_groups
    monkeypatch.setattr(train, "param_groups", lambda m, cfg: seen.append(cfg.lr_fan_in) or real(m, cfg))
    result, _ = scratch.train_truth(spec, tiny_data, replace(RECIPE, lr_fan_in=16), 0)
    assert seen == [16] and result["recipe"]["lr_fan_in"] == 16
    sn = train.build_supernet(tiny_data.schema, "full", 0)
    with pytest.raises(ValueError, match="lr_fan_in applies to standalone models"):
        train.train_supernet(sn, tiny_data.split("train"), train.TrainConfig(steps=1, lr_fan_in=16))
