"""benchmarks/truth_stability.py: the probe of a truth training's first steps."""
import numpy as np
import pytest

from benchmarks import truth_stability
from nasrec.scratch import TruthRecipe, truth_splits
from nasrec.space import sample


def test_probe_stops_after_its_steps_and_reports_the_logits(tiny_data, monkeypatch):
    forwards = []
    real_build = truth_stability.build

    def counting_build(spec, schema, seed):
        net = real_build(spec, schema, seed)
        net.register_forward_pre_hook(lambda m, a: forwards.append(m.training))
        return net

    monkeypatch.setattr(truth_stability, "build", counting_build)
    splits = truth_splits(tiny_data)
    spec = sample(np.random.default_rng(3))
    r = truth_stability.probe(spec, tiny_data, splits, TruthRecipe(steps=30, batch_size=64), 0, 12)
    # 12 probed steps, then the 13th forward ends the training (not all 30 steps)
    assert forwards == [True] * 13
    assert r["max_logit_swing"] >= r["mean_logit_swing"] > 0
    assert r["min_logit_std"] > 0
    rate = float(np.asarray(splits["train"].label, dtype=np.float64).mean())
    assert r["base_rate_logit"] == pytest.approx(np.log(rate / (1 - rate)))
    # the same seed starts from the same weights and batch
    again = truth_stability.probe(spec, tiny_data, splits, TruthRecipe(steps=30, batch_size=64), 0, 12)
    assert again["logit_mean_first"] == r["logit_mean_first"]


@pytest.mark.parametrize("argv, message", [
    (["--arch-index", "40"], "--arch-index: 40 is not in 0-39"),
    (["--probe-steps", "1"], "--probe-steps must be >= 2, got 1"),
    (["--lr-fan-in", "-3"], "lr_fan_in must be an integer >= 0, got -3"),
    (["--probe-steps", "300"], "--probe-steps 300 is longer than the recipe's 250 steps"),
])
def test_bad_arguments_are_one_line_and_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        truth_stability.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
