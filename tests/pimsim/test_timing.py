"""Timing must-holds: unloaded latency, bandwidth bounds, activation-rate ceiling."""

import dataclasses

import numpy as np
import pytest

from pimsim import Trace, load_hardware, simulate_trace
from pimsim.mapping import encode


def trace(addresses, arrival=None, writes=None):
    addresses = np.asarray(addresses, np.int64)
    n = len(addresses)
    return Trace(addresses, np.zeros(n, bool) if writes is None else writes,
                 np.zeros(n, np.int64) if arrival is None else np.asarray(arrival, np.int64))


@pytest.mark.parametrize("preset", ["ddr4-2400", "ddr4-3200", "hbm2"])
def test_unloaded_latency_matches_timing_formula(preset):
    hw = load_hardware(preset)
    t, burst = hw.timing, hw.org.burst_length // 2
    o = hw.org
    # closed row: ACT, tRCD, then CL and the burst
    r = simulate_trace(trace([0]), hw)
    assert r.mean_read_latency_cycles == t.trcd + t.cl + burst
    # row hit long after the first access
    a = encode(o, column=[0, 1])
    r = simulate_trace(trace(a, arrival=[0, 1000]), hw)
    assert (r.completion_cycles - r.accept_cycles)[1] == t.cl + burst
    # row conflict: PRE (tRAS long satisfied), tRP, ACT, tRCD, CL, burst
    a = encode(o, row=[0, 1])
    r = simulate_trace(trace(a, arrival=[0, 1000]), hw)
    assert (r.completion_cycles - r.accept_cycles)[1] == t.trp + t.trcd + t.cl + burst


def test_ddr4_2400_unloaded_latencies_are_the_published_ones(ddr4):
    # REFERENCE.md: row hit 21 tCK, closed row 38, row conflict 55
    a = encode(ddr4.org, row=[0, 0, 1], column=[0, 1, 0])
    r = simulate_trace(trace(a, arrival=[0, 1000, 2000]), ddr4)
    assert (r.completion_cycles - r.accept_cycles).tolist() == [38, 21, 55]


def _with(hw, **org):
    return dataclasses.replace(hw, org=dataclasses.replace(hw.org, **org))


@pytest.mark.parametrize("scheduler", ["frfcfs", "fcfs"])
def test_stream_alternating_bank_groups_reaches_channel_peak(ddr4, scheduler):
    hw = _with(ddr4, address_mapping="rochrabacobg")  # consecutive lines rotate bank groups
    hw = dataclasses.replace(hw, controller=dataclasses.replace(hw.controller, scheduler=scheduler))
    r = simulate_trace(trace(np.arange(20000) * 64), hw)
    peak = hw.peak_channel_gbps
    assert r.bus_busy_cycles == 20000 * hw.org.burst_length // 2 <= r.cycles
    assert r.bandwidth_gbps <= peak
    assert r.bandwidth_gbps >= 0.9 * peak


@pytest.mark.parametrize("scheduler", ["frfcfs", "fcfs"])
def test_stream_in_one_bank_reaches_tccd_l_bound(ddr4, scheduler):
    o = ddr4.org
    n = 20000
    lines = np.arange(n)
    a = encode(o, row=lines // o.lines_per_row, column=lines % o.lines_per_row)
    hw = dataclasses.replace(ddr4, controller=dataclasses.replace(ddr4.controller, scheduler=scheduler))
    r = simulate_trace(trace(a), hw)
    bound = o.line_bytes / (ddr4.timing.tccd_l * ddr4.timing.tck_ns)  # GB/s
    assert r.bandwidth_gbps <= bound
    assert r.bandwidth_gbps >= 0.9 * bound


def test_random_gathers_respect_activation_ceiling(ddr4):
    rng = np.random.default_rng(7)
    n = 20000
    a = rng.integers(0, ddr4.org.capacity_bytes // 64, n) * 64
    r = simulate_trace(trace(a), ddr4)
    t = ddr4.timing
    # at most 4 ACTs per tFAW per rank (REFERENCE.md: ~12 GB/s per rank of random 64 B gathers)
    ceiling_acts = 4 * ddr4.org.ranks * (r.cycles / t.tfaw + 1)
    assert r.activations <= ceiling_acts
    act_ceiling_gbps = ddr4.org.ranks * 4 * 64 / (t.tfaw * t.tck_ns)
    assert r.bandwidth_gbps <= min(act_ceiling_gbps, ddr4.peak_channel_gbps)
    # random gathers on two ranks should keep the bus busy most of the time
    assert r.bandwidth_gbps >= 0.6 * ddr4.peak_channel_gbps


def test_tfaw_and_trrd_hold_between_every_activation():
    from pimsim import _engine as E
    from pimsim.mapping import decode
    from pimsim.sim import engine_params, run_controller

    hw = load_hardware("ddr4-2400")
    o, t = hw.org, hw.timing
    rng = np.random.default_rng(3)
    a = rng.integers(0, o.capacity_bytes // 64, 5000) * 64
    d = decode(a, o)
    bank = (d.rank * o.bankgroups + d.bankgroup) * o.banks_per_group + d.bank
    res = run_controller(bank, d.row, np.zeros(len(a), bool), np.zeros(len(a), np.int64), d.line,
                         engine_params(hw, ranks=o.ranks, banks_per_bus=o.ranks * o.banks))
    assert res.counts[E.C_ACT] == len(res.act_start)
    for r in range(o.ranks):
        starts = np.sort(res.act_start[res.act_rank == r])
        assert np.all(np.diff(starts) >= t.trrd_s)
        assert np.all(starts[4:] - starts[:-4] >= t.tfaw)


def test_hbm2_stack_never_exceeds_its_peak():
    hw = load_hardware("hbm2")
    rng = np.random.default_rng(0)
    a = np.concatenate([np.arange(20000) * 32, rng.integers(0, hw.org.capacity_bytes // 32, 20000) * 32])
    r = simulate_trace(trace(a), hw)
    assert r.bandwidth_gbps <= 256.0  # REFERENCE.md: HBM2 stack 256 GB/s
    assert r.bandwidth_gbps <= hw.peak_channel_gbps * hw.org.channels


def test_writes_then_reads_pay_turnaround(ddr4):
    """A read right after a write to the same bank group waits tWTR_L after the write data."""
    a = encode(ddr4.org, column=[0, 1])
    # the read arrives after the write has issued (else the write waits: write batching)
    r = simulate_trace(trace(a, arrival=[0, 20], writes=np.array([True, False])), ddr4)
    t = ddr4.timing
    wr_done = r.completion_cycles[0]
    assert r.completion_cycles[1] >= wr_done + t.twtr_l + t.cl + ddr4.org.burst_length // 2
