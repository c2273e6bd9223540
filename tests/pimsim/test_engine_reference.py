"""The numba kernel must agree exactly with the slow Python reference."""

import dataclasses

import numpy as np
import pytest

from pimsim import _engine as E
from pimsim.mapping import decode
from pimsim.sim import engine_params, run_controller

from .conftest import small_hardware
from .reference import simulate_reference

KINDS = {E.K_HIT: "hit", E.K_MISS: "miss", E.K_CONFLICT: "conflict",
         E.K_COALESCED: "coalesced", E.K_FORWARDED: "forwarded"}


def random_requests(rng, hw, n):
    o = hw.org
    n_lines = o.capacity_bytes // o.line_bytes
    # a few hot lines so that row hits, coalescing and forwarding all happen
    hot = rng.integers(0, n_lines, 4)
    lines = np.where(rng.random(n) < 0.3, hot[rng.integers(0, 4, n)], rng.integers(0, n_lines, n))
    is_write = rng.random(n) < 0.3
    gaps = np.where(rng.random(n) < 0.7, 0, rng.integers(0, 60, n))
    arrival = np.cumsum(gaps)
    return lines * o.line_bytes, is_write, arrival


def run_both(hw, addr, is_write, arrival, ranks, banks_per_bus, bus_gap=0):
    """(kernel result, reference result) of one controller on the same requests."""
    o = hw.org
    dec = decode(addr, o)
    bank = (dec.rank * o.bankgroups + dec.bankgroup) * o.banks_per_group + dec.bank
    params = engine_params(hw, ranks=ranks, banks_per_bus=banks_per_bus, bus_gap_cycles=bus_gap)
    res = run_controller(bank, dec.row, is_write, arrival, dec.line, params)
    ref = simulate_reference(hw, bank.tolist(), dec.row.tolist(), is_write.tolist(), arrival.tolist(),
                             dec.line.tolist(), ranks, banks_per_bus, bus_gap)
    return res, ref


@pytest.mark.parametrize("scheduler", ["frfcfs", "fcfs"])
@pytest.mark.parametrize("page", ["open", "closed"])
@pytest.mark.parametrize("seed", range(9))
def test_kernel_matches_reference(scheduler, page, seed):
    rng = np.random.default_rng(seed)
    wq, high, low = ((0, 1, 0), (2, 2, 0), (4, 3, 1))[seed % 3]
    hw = small_hardware(scheduler=scheduler, page=page, coalesce=seed % 3 != 0, forward=seed % 2 == 0,
                        wq=wq, high=high, low=low, hit_cap=(0, 1, 3)[seed // 3])
    addr, is_write, arrival = random_requests(rng, hw, 40)
    o = hw.org
    res, (acc, comp, kind, counts) = run_both(hw, addr, is_write, arrival, o.ranks, o.ranks * o.banks)
    assert res.accept_cycles.tolist() == acc
    assert res.completion_cycles.tolist() == comp
    assert [KINDS[k] for k in res.kind.tolist()] == kind
    assert res.counts[E.C_ACT] == counts["ACT"]
    assert res.counts[E.C_PRE] == counts["PRE"]
    assert res.counts[E.C_RD] == counts["RD"]
    assert res.counts[E.C_WR] == counts["WR"]
    assert res.counts[E.C_REF] == counts["REF"]
    assert res.counts[E.C_HITS] == counts["hits"]


@pytest.mark.parametrize("banks_per_bus,bus_gap", [(1, 0), (2, 9), (4, 0)])
def test_kernel_matches_reference_local_buses(banks_per_bus, bus_gap):
    """Near-memory modes: one data path per bank / bank pair / bank group, optional bandwidth cap."""
    rng = np.random.default_rng(100 + banks_per_bus)
    hw = small_hardware(ranks=1)
    addr, is_write, arrival = random_requests(rng, hw, 40)
    res, (acc, comp, kind, counts) = run_both(hw, addr, is_write, arrival, 1, banks_per_bus, bus_gap)
    assert res.completion_cycles.tolist() == comp
    assert res.accept_cycles.tolist() == acc
    assert res.counts[E.C_ACT] == counts["ACT"]


@pytest.mark.parametrize("forward", [True, False])
def test_writes_filling_a_bank_queue_cannot_stall_the_reads_behind_them(forward):
    """Writes held back by batching fill bank 0's queue; reads to bank 0 wait in the
    transaction queue. The controller must drain the writes rather than stall."""
    hw = small_hardware(wq=8, cq=2, tq=3, forward=forward)
    o = hw.org
    lines = np.array([0, 1, 2, 3, 0, 1, 2, 3, 4, 5], np.int64)  # all in bank 0, one row
    is_write = np.array([True] * 4 + [False] * 6)
    arrival = np.zeros(10, np.int64)
    res, (acc, comp, kind, counts) = run_both(hw, lines * o.line_bytes, is_write, arrival, o.ranks,
                                              o.ranks * o.banks)
    assert res.completion_cycles.tolist() == comp
    assert min(comp) >= 0
    # a read of a line written earlier in the trace never completes before that write
    for r, w in ((4, 0), (5, 1), (6, 2), (7, 3)):
        assert comp[r] >= comp[w] or kind[r] == "forwarded"


def _assert_same(res, ref):
    acc, comp, kind, counts = ref
    assert res.accept_cycles.tolist() == acc
    assert res.completion_cycles.tolist() == comp
    assert [KINDS[k] for k in res.kind.tolist()] == kind
    assert res.counts[E.C_ACT] == counts["ACT"]
    assert res.counts[E.C_HITS] == counts["hits"]


@pytest.mark.parametrize("seed", range(3))
def test_kernel_matches_reference_when_a_rank_switch_outlasts_a_burst(seed):
    """tRTRS longer than a burst: a rank switch can bring the other rank's bus limit earlier."""
    rng = np.random.default_rng(200 + seed)
    hw = small_hardware(page=("open", "closed")[seed % 2])
    hw = dataclasses.replace(hw, timing=dataclasses.replace(hw.timing, trtrs=7))
    addr, is_write, arrival = random_requests(rng, hw, 40)
    o = hw.org
    res, ref = run_both(hw, addr, is_write, arrival, o.ranks, o.ranks * o.banks)
    _assert_same(res, ref)


@pytest.mark.parametrize("seed", range(2))
def test_kernel_matches_reference_with_more_than_64_banks(seed):
    """128 banks: the engine's bank bitsets span two words."""
    rng = np.random.default_rng(300 + seed)
    hw = small_hardware()
    hw = dataclasses.replace(hw, org=dataclasses.replace(hw.org, bankgroups=4, banks_per_group=16))
    addr, is_write, arrival = random_requests(rng, hw, 40)
    arrival = arrival // 4  # denser: more banks busy at once
    o = hw.org
    res, ref = run_both(hw, addr, is_write, arrival, o.ranks, o.ranks * o.banks)
    _assert_same(res, ref)


@pytest.mark.parametrize("scheduler,page", [("frfcfs", "open"), ("frfcfs", "closed"), ("fcfs", "open")])
def test_kernel_matches_reference_on_a_long_saturated_trace_with_full_queues(scheduler, page):
    """600 requests on the full DDR4 preset's queues (16 reads, 16 writes, 8 per bank),
    arriving faster than served: queues stay full, the calendar wraps many times, a write
    drain starts and stops repeatedly and refresh comes due under load."""
    rng = np.random.default_rng(400)
    hw = small_hardware(scheduler=scheduler, page=page, tq=16, cq=8, wq=16, high=16, low=4, hit_cap=4)
    o = hw.org
    addr, is_write, arrival = random_requests(rng, hw, 600)
    arrival = arrival // 8
    res, ref = run_both(hw, addr, is_write, arrival, o.ranks, o.ranks * o.banks)
    _assert_same(res, ref)
    assert res.counts[E.C_REF] == ref[3]["REF"] > 0
    assert res.counts[E.C_WR] == ref[3]["WR"] > 100


@pytest.mark.parametrize("banks_per_group,writes,trtrs,page,local", [
    (4, 0.0, 1, "open", False), (4, 0.3, 1, "open", False), (16, 0.3, 7, "open", False),
    (4, 0.3, 1, "closed", False), (4, 0.3, 1, "open", True)])
def test_kernel_matches_reference_under_a_bus_and_act_backlog(banks_per_group, writes, trtrs, page, local):
    """Reads and writes to many banks, all at cycle 0: bursts and ACTs queue up behind the
    data bus, tRRD and tFAW, so each issued command delays several waiting banks at once
    (the engine then files them in one move; 128 banks span two bitset words). ``local``:
    one rank with a data path per bank pair, capped by a bus gap (near-memory units)."""
    rng = np.random.default_rng(500 + banks_per_group)
    hw = small_hardware(tq=16, cq=8, wq=16, high=16, low=4, hit_cap=4, page=page, ranks=1 if local else 2)
    hw = dataclasses.replace(hw, org=dataclasses.replace(hw.org, bankgroups=4, banks_per_group=banks_per_group),
                             timing=dataclasses.replace(hw.timing, trtrs=trtrs))
    o = hw.org
    n = 400
    addr = rng.integers(0, o.capacity_bytes // o.line_bytes, n) * o.line_bytes
    res, ref = run_both(hw, addr, rng.random(n) < writes, np.zeros(n, np.int64), o.ranks,
                        2 if local else o.ranks * o.banks, 9 if local else 0)
    _assert_same(res, ref)
