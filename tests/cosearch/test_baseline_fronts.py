"""Baselines on their best hardware: the configurations they are costed on, and their own cost fronts."""

import numpy as np
import pytest

from cosearch.config import RunConfig
from cosearch.hardware import HardwareKnobs, KnobSpace, knob_sample
from cosearch.pipeline import MAX_BASELINE_HARDWARE, baseline_hardware, cost_front, equal_freedom


def test_a_small_knob_space_is_costed_whole_with_the_default_first():
    space = KnobSpace(families=("recnmp",), embeddings=("host", "nmp"), gemm=("host", "crossbar"),
                      crossbar_sizes=(64, 128), adc_bits=(8,))
    combos = list(space.combinations())
    assert space.size() == len(combos) == 2 * (1 + 2) * 3
    assert len({k.key for k in combos}) == len(combos)
    default = HardwareKnobs("recnmp")
    got, sampled = knob_sample(space, np.random.default_rng(0), 100, first=(default,))
    assert not sampled and got[0] == default and len(got) == len(combos) + 1
    assert {k.key for k in got[1:]} == {k.key for k in combos}
    # invalid ones are left out; the default counts once however often it is listed
    got, _ = knob_sample(space, np.random.default_rng(0), 100, valid=lambda k: k.gemm == "host",
                         first=(default, default))
    assert [k.gemm for k in got] == ["host"] * 7


def test_a_large_knob_space_is_sampled_within_the_budget_by_the_seed():
    hw = {"families": ["recnmp", "recnmp-isaac"], "embeddings": ["host", "nmp"], "gemm": ["host"],
          "ranks": [0, 2, 4, 8], "host_rows_max": [0, 1000, 100000]}
    cfg = RunConfig.from_dict({"seed": 7, "hardware": hw})
    assert cfg.hardware.size() == 144 > MAX_BASELINE_HARDWARE
    knobs, sampled = baseline_hardware(cfg)
    assert sampled and len(knobs) == MAX_BASELINE_HARDWARE
    assert knobs[0] == HardwareKnobs(cfg.baselines.hardware) and len({k.key for k in knobs}) == len(knobs)
    assert baseline_hardware(cfg)[0] == knobs  # the same seed, the same sample
    assert baseline_hardware(RunConfig.from_dict({"seed": 8, "hardware": hw}))[0] != knobs
    # spaces too large to list are drawn from, still bounded and distinct
    got, sampled = knob_sample(cfg.hardware, np.random.default_rng(1), 10, enumerate_max=10)
    assert sampled and len(got) == 10 and len({k.key for k in got}) == 10
    with pytest.raises(ValueError, match="limit must be a positive integer, got 0"):
        knob_sample(cfg.hardware, np.random.default_rng(1), 0)


def _dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def test_the_cost_front_is_the_non_dominated_points_once_each():
    rng = np.random.default_rng(3)
    P = rng.integers(1, 6, size=(40, 2)).astype(float)
    P[[4, 9], 0] = np.nan
    on = cost_front(P)
    ok = [i for i in range(len(P)) if np.isfinite(P[i]).all()]
    expected = {tuple(P[i]) for i in ok if not any(_dominates(P[j], P[i]) for j in ok)}
    assert {tuple(P[i]) for i in np.flatnonzero(on)} == expected and on.sum() == len(expected)
    assert not on[[4, 9]].any()
    assert not cost_front(np.full((3, 2), np.nan)).any()
    assert cost_front(np.zeros((0, 2))).shape == cost_front([]).shape == (0,)


def test_equal_freedom_finds_each_baselines_best_hardware_and_who_beats_it():
    fronts = [{"model": "dlrm", "hardware": h, "default_hw": d, "on_front": f, "latency_s": lat,
               "energy_per_sample_j": e}
              for h, d, f, lat, e in [("a", 1, 0, 3.0, 3.0), ("b", 0, 1, 1.0, 4.0), ("c", 0, 1, 2.0, 2.0),
                                      ("d", 0, 0, float("nan"), float("nan"))]]
    front = [{"verified": 1, "test_logloss": 0.40, "latency_s": 0.5, "energy_per_sample_j": 5.0},
             {"verified": 1, "test_logloss": 0.40, "latency_s": 1.5, "energy_per_sample_j": 1.0},
             {"verified": 1, "test_logloss": 0.50, "latency_s": 0.1, "energy_per_sample_j": 0.1},
             {"verified": 0, "test_logloss": float("nan"), "latency_s": 0.1, "energy_per_sample_j": 0.1}]
    (row,) = equal_freedom(front, [{"model": "dlrm", "test_logloss": 0.45}], fronts)
    assert (row["latency_default_s"], row["latency_best_s"], row["latency_best_hw"]) == (3.0, 1.0, "b")
    assert (row["energy_default_j"], row["energy_best_j"], row["energy_best_hw"]) == (3.0, 2.0, "c")
    assert row["front_points"] == 2 and row["hardware_costed"] == 4
    # as accurate and faster than 1.0 s: one; as accurate and below 2.0 J: one (the less accurate do not count)
    assert (row["searched_better_latency"], row["searched_better_energy"]) == (1, 1)
    (row,) = equal_freedom(front, [{"model": "dlrm"}], fronts)  # no test log loss: no comparison
    assert np.isnan(row["searched_better_latency"])
