"""RAPL counters read from a powercap tree the test writes; energy per action from them."""
import os

import pytest

from cosearch.rapl import energy_delta_uj, rapl_meter


def _domain(root, name, kind, uj, max_uj=1_000_000, limit_uw=None):
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(kind + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    if limit_uw is not None:
        (d / "constraint_0_power_limit_uw").write_text(f"{limit_uw}\n")
    return d


def test_no_counters_is_a_reason_not_an_error(tmp_path):
    meter, why = rapl_meter(tmp_path)
    assert meter is None and "no RAPL energy counters" in why and str(tmp_path) in why
    meter, why = rapl_meter(tmp_path / "missing")
    assert meter is None


def test_package_and_dram_are_read_and_core_subdomains_skipped(tmp_path):
    _domain(tmp_path, "intel-rapl:0", "package-0", 100, limit_uw=150_000_000)
    _domain(tmp_path / "intel-rapl:0", "intel-rapl:0:0", "core", 50)
    _domain(tmp_path / "intel-rapl:0", "intel-rapl:0:1", "dram", 10)
    _domain(tmp_path, "intel-rapl:1", "package-1", 200, limit_uw=150_000_000)
    meter, where = rapl_meter(tmp_path)
    assert meter is not None, where
    assert sorted(d.name for d in meter.domains) == ["dram", "package-0", "package-1"]
    assert meter.read() == (100, 10, 200)
    assert meter.power_limit_w() == pytest.approx(300.0)


def test_a_counter_that_wraps_counts_across_the_wrap():
    assert energy_delta_uj(900, 100, 999) == 200
    assert energy_delta_uj(100, 900, 999) == 800
    assert energy_delta_uj(5, 5, 999) == 0


def test_joules_counts_what_the_work_added_per_kind(tmp_path):
    pkg = _domain(tmp_path, "intel-rapl:0", "package-0", 999_000, max_uj=999_999)
    dram = _domain(tmp_path / "intel-rapl:0", "intel-rapl:0:0", "dram", 0)
    meter, _ = rapl_meter(tmp_path)
    state = {"pkg": 999_000, "dram": 0}

    def work():  # each call costs 2 mJ on the package (wrapping once) and 0.5 mJ in DRAM
        state["pkg"] = (state["pkg"] + 2000) % 1_000_000
        state["dram"] += 500
        (pkg / "energy_uj").write_text(str(state["pkg"]))
        (dram / "energy_uj").write_text(str(state["dram"]))

    j, took, calls = meter.joules(work, 0.01)
    assert calls >= 1 and took >= 0.01
    assert j["package"] == pytest.approx(2e-3 * calls)
    assert j["dram"] == pytest.approx(5e-4 * calls)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_counters_say_so(tmp_path):
    d = _domain(tmp_path, "intel-rapl:0", "package-0", 1)
    (d / "energy_uj").chmod(0)
    meter, why = rapl_meter(tmp_path)
    assert meter is None and "cannot be read" in why


def test_energy_per_action_takes_off_idle_power_and_other_work():
    from cosearch.calibrate import energy_per_action_pj
    # 3 J in 1 s at 1 W idle: 2 J of work; 1 J of it charged elsewhere; 1e12 actions -> 1 pJ each
    assert energy_per_action_pj(3.0, 1.0, 1.0, 1e12, other_pj=1e12) == pytest.approx(1.0)
    assert energy_per_action_pj(0.5, 1.0, 1.0, 1e9) == 0.0  # below the idle floor: clamped
    with pytest.raises(ValueError, match="actions"):
        energy_per_action_pj(1.0, 1.0, 0.0, 0)


def test_calibration_energy_from_a_fake_meter_matches_its_power():
    """_energy on a meter that draws 10 W idle and 30 W while working: 20 W of work."""

    from cosearch import calibrate as cal

    class Meter:
        def power_w(self, seconds):
            return {"package": 8.0, "dram": 2.0}

        def joules(self, fn, min_s):
            fn()
            return {"package": 25.0 * min_s, "dram": 5.0 * min_s}, min_s, 1

        def power_limit_w(self):
            return 95.0

    host, methods, raw = cal._energy(Meter(), 64, None, 1 << 20, 0.01, "1 thread")
    assert host["static_w"] == pytest.approx(10.0)
    assert host["pj_per_flop_fp32"] == pytest.approx(20.0 * 1.0 * 1e12 / (2 * 64 ** 3))
    assert "pj_per_flop_fp16" not in host  # bf16 not run
    elems = (1 << 20) // 4
    expect = (20.0e12 - host["pj_per_flop_fp32"] * elems) / (3 * elems * 4)
    assert host["dram_pj_per_byte"] == pytest.approx(expect)
    assert host["tdp_w"] == 95.0
    assert all(k in methods for k in host)
