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
