"""The host validation's summary: latency errors and ranks, and energy only where measured."""
import math

import pytest

from benchmarks.host_validation import summarize


def _row(model, batch, measured_s, predicted_s, measured_j=float("nan"), predicted_j=1.0):
    return {"runtime": "eager", "backend": "eager", "threads": 2, "batch": batch, "model": model,
            "measured_s": measured_s, "predicted_s": predicted_s, "measured_j": measured_j,
            "predicted_j": predicted_j}


def test_latency_errors_and_ranks():
    rows = [_row("a", 1, 1.0, 1.2), _row("b", 1, 2.0, 1.0), _row("c", 1, 3.0, 3.3),
            _row("a", 64, 4.0, 4.0), _row("b", 64, 5.0, 6.0), _row("c", 64, 6.0, 7.0)]
    (s,) = summarize(rows)
    assert s["points"] == 6 and s["models"] == 3 and s["groups"] == 2
    assert s["worst_ratio"] == pytest.approx(2.0) and s["worst_point"] == "b b1 t2"
    # errors 0.2, 0.5, 0.1, 0, 0.2, 1/6: the median is the mean of 1/6 and 0.2
    assert s["median_rel_error"] == pytest.approx((1 / 6 + 0.2) / 2)
    # batch 1: b is predicted fastest but measured second: rho 0.5; batch 64: 1.0
    assert s["spearman_per_batch_mean"] == pytest.approx(0.75)
    assert s["spearman_per_batch_min"] == pytest.approx(0.5)
    assert s["energy_points"] == 0 and math.isnan(s["energy_median_rel_error"])


def test_energy_is_summarised_over_the_points_that_have_it():
    rows = [_row("a", 1, 1.0, 1.0, measured_j=2.0, predicted_j=1.0),
            _row("b", 1, 2.0, 2.0, measured_j=4.0, predicted_j=5.0),
            _row("c", 1, 3.0, 3.0)]
    (s,) = summarize(rows)
    assert s["energy_points"] == 2
    assert s["energy_worst_ratio"] == pytest.approx(2.0)
    assert s["energy_median_rel_error"] == pytest.approx((0.5 + 0.25) / 2)


def test_rounds_keep_the_fastest_pass_and_record_every_pass(monkeypatch):
    import benchmarks.host_validation as hv
    passes = iter([(2.0e-3, 1.9e-3, 2.2e-3), (1.5e-3, 1.4e-3, 1.7e-3), (1.8e-3, 1.7e-3, 1.9e-3)])
    monkeypatch.setattr(hv, "_time", lambda fn, inputs, repeats, warmup: next(passes))
    row = {"round_medians_s": "", "rounds": 0}
    for _ in range(3):
        hv._measure(row, "eager", "eager", lambda *a: None, (), repeats=20, warmup=5, meter=None)
    assert row["rounds"] == 3 and row["round_medians_s"] == "0.002 0.0015 0.0018"
    assert (row["measured_s"], row["measured_p10_s"], row["measured_p90_s"]) == (1.5e-3, 1.4e-3, 1.7e-3)
    assert row["error"] == "" and row["compile_s"] == 0.0

    def broken(*a):
        raise RuntimeError("cannot compile this\nsecond line")
    monkeypatch.setattr(hv, "_time", lambda fn, inputs, repeats, warmup: fn())
    bad = {"round_medians_s": "", "rounds": 0}
    hv._measure(bad, "eager", "eager", broken, (), repeats=20, warmup=5, meter=None)
    assert bad["error"] == "RuntimeError: cannot compile this" and math.isnan(bad["measured_s"])
