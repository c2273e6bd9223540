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


def test_ablation_summarises_each_variant_against_the_same_measurements():
    from benchmarks.host_ablation import summarize_variants
    pts = [{"model": m, "batch": b, "threads": t, "measured_s": meas, "good": meas * f, "off": meas * g}
           for (m, b, t, meas, f, g) in [("a", 1, 1, 1.0, 1.1, 3.0), ("b", 1, 1, 2.0, 0.9, 1.0), ("c", 1, 1, 3.0, 1.0, 1.0),
                                          ("a", 1, 2, 1.0, 1.0, 1.0), ("b", 1, 2, 2.0, 1.2, 1.0), ("c", 1, 2, 3.0, 1.0, 0.5)]]
    rows = {(r["variant"], r["threads"]): r for r in summarize_variants(pts, {"good": {}, "off": {}})}
    assert set(rows) == {(v, t) for v in ("good", "off") for t in ("both", 1, 2)}
    assert rows[("good", "both")]["worst_ratio"] == pytest.approx(1.2) and rows[("good", "both")]["points"] == 6
    assert rows[("off", "both")]["worst_ratio"] == pytest.approx(3.0)
    assert rows[("off", 1)]["worst_point"] == "a b1 t1" and rows[("off", 2)]["worst_point"] == "c b1 t2"
    # "off" predicts a slowest in the 1-thread group (3.0 against 2.0 and 3.0): the order breaks
    assert rows[("good", 1)]["spearman_per_batch_min"] == pytest.approx(1.0)
    assert rows[("off", 1)]["spearman_per_batch_min"] < 1.0


@pytest.mark.parametrize("args, needle", [
    (["{missing}"], "cannot read"),
    (["{csv}", "--variant", "x:bogus=1"], "unknown [host] setting 'bogus'"),
    (["{csv}", "--variant", "nocolon"], "--variant must be NAME:KEY=VALUE"),
    (["{csv}", "--variant", "x:attention_block_rows=lots"], "attention_block_rows must be a number, got 'lots'"),
    (["{empty}"], "no measured rows"),
])
def test_ablation_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, needle):
    from benchmarks.host_ablation import main
    csv = tmp_path / "v.csv"
    csv.write_text("runtime,threads,batch,model,calibration,seed,measured_s,error\n"
                   "eager,1,1,dlrm,cpu-server,0,0.001,\n", encoding="utf-8")
    empty = tmp_path / "e.csv"
    empty.write_text("runtime,threads,batch,model,calibration,seed,measured_s,error\n", encoding="utf-8")
    argv = [a.format(missing=tmp_path / "none.csv", csv=csv, empty=empty) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
