"""Controller policy: bounded admission, round-robin bank arbitration, write watermarks, forwarding."""

import dataclasses

import numpy as np
import pytest

from pimsim import Controller, Trace, load_hardware, simulate_trace
from pimsim.mapping import encode


def controller(hw, **changes):
    return dataclasses.replace(hw, controller=dataclasses.replace(hw.controller, **changes))


def run(hw, addresses, writes, arrival):
    n = len(addresses)
    tr = Trace(np.asarray(addresses, np.int64), np.asarray(writes, bool), np.asarray(arrival, np.int64))
    assert n == len(writes) == len(arrival)
    return simulate_trace(tr, hw)


def column_cycles(report, hw, writes):
    """Cycle of each request's column command, from its completion."""
    t, burst = hw.timing, hw.org.burst_length // 2
    return np.where(writes, report.completion_cycles - t.cwl - burst, report.completion_cycles - t.cl - burst)


def test_a_read_that_finds_the_transaction_queue_full_holds_up_the_ones_behind_it(ddr4):
    hw = controller(ddr4, transaction_queue=2, command_queue=1)
    o = hw.org
    # three reads to bank 0 (one enters its command queue, two wait), then one to bank group 1
    a = np.concatenate([encode(o, row=[0, 1, 2]), encode(o, bankgroup=[1])])
    writes = np.zeros(4, bool)
    r = run(hw, a, writes, np.zeros(4, np.int64))
    col = column_cycles(r, hw, writes)
    # the fourth waits for an entry although its own bank is idle: it is accepted the
    # cycle after the first read's column command lets the second into bank 0's queue
    assert r.accept_cycles[:3].tolist() == [0, 1, 2]
    assert r.accept_cycles[3] == col[0] + 1


def test_banks_ready_together_are_served_round_robin(ddr4):
    o = ddr4.org
    # open one row in each of two banks of the same bank group (tCCD_L paces both alike)
    warm = encode(o, bank=[0, 1])
    a_hits = encode(o, bank=0, column=np.arange(1, 5) * o.burst_length)
    b_hits = encode(o, bank=1, column=np.arange(1, 5) * o.burst_length)
    a = np.concatenate([warm, a_hits, b_hits])
    writes = np.zeros(len(a), bool)
    arrival = np.array([0, 0] + [200] * 8)
    r = run(ddr4, a, writes, arrival)
    order = np.argsort(column_cycles(r, ddr4, writes)[2:], kind="stable")
    # oldest-first would serve bank 0's four hits before bank 1's; round-robin alternates
    assert order.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


@pytest.mark.parametrize("high,read_first", [(8, True), (4, False)])
def test_reads_go_before_buffered_writes_until_the_high_watermark(ddr4, high, read_first):
    hw = controller(ddr4, write_queue=8, write_high_watermark=high, write_low_watermark=2)
    o = hw.org
    # a read elsewhere keeps the controller busy; five writes to one row of bank group 2;
    # then a read of another row of the same bank
    a = np.concatenate([encode(o, bankgroup=[1]), encode(o, bankgroup=2, row=1, column=np.arange(5)),
                        encode(o, bankgroup=[2], row=[2])])
    writes = np.array([False] + [True] * 5 + [False])
    r = run(hw, a, writes, np.arange(7))
    col = column_cycles(r, hw, writes)
    if read_first:
        # below the high watermark the writes stay buffered and the later read passes them all
        assert col[-1] < col[writes].min()
    else:
        # the fourth write starts a drain: four writes are queued at the bank before the read
        assert col[-1] > col[1:5].max()


@pytest.mark.parametrize("low", [3, 0])
def test_a_drain_stops_at_the_low_watermark_once_a_read_waits(ddr4, low):
    # one command-queue entry per bank and eight writes to one bank: the drain moves them
    # in one by one, so the buffer empties slowly
    hw = controller(ddr4, command_queue=1, write_queue=8, write_high_watermark=8, write_low_watermark=low)
    o = hw.org
    a = np.concatenate([encode(o, bankgroup=[1]), encode(o, row=np.arange(8) + 1), encode(o, bankgroup=[2])])
    writes = np.array([False] + [True] * 8 + [False])
    arrival = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    r = run(hw, a, writes, arrival)
    col = column_cycles(r, hw, writes)
    wcol, read = col[1:9], col[9]
    if low == 3:
        # the read waits through four writes; when the fifth enters the command queue,
        # three remain buffered and the read goes in; the last three wait for the next drain
        assert (wcol[:4] < read).all()
        assert (wcol[5:] > read).all()
    else:
        # the buffer must empty: the read goes in when the last write enters the command queue
        assert (wcol[:7] < read).all()


def test_reads_after_a_buffered_write_are_all_forwarded(ddr4):
    o = ddr4.org
    a = np.concatenate([encode(o, bankgroup=[1]), encode(o, bankgroup=[2], row=[7]).repeat(3)])
    writes = np.array([False, True, False, False])
    r = run(ddr4, a, writes, np.arange(4))
    lat = r.completion_cycles - r.accept_cycles
    # the second read follows a read that was itself forwarded: it is served by the same write
    assert r.forwarded == 2
    assert lat[2:].tolist() == [ddr4.controller.forward_latency] * 2
    assert r.reads == 1


def test_without_forwarding_a_read_drains_the_write_it_needs(ddr4):
    hw = controller(ddr4, forward_writes=False)
    o = hw.org
    a = np.concatenate([encode(o, bankgroup=[1]), encode(o, bankgroup=[2], row=[7]).repeat(2)])
    writes = np.array([False, True, False])
    r = run(hw, a, writes, np.arange(3))
    # one write in a 16-entry buffer: far below the high watermark, yet it is written
    # before the read of its line, which then reads it back from DRAM
    assert r.forwarded == 0 and r.writes == 1 and r.reads == 2
    assert r.completion_cycles[2] > r.completion_cycles[1]


@pytest.mark.parametrize("changes,match", [
    ({"write_queue": 8, "write_high_watermark": 9}, r"write_high_watermark must be in 1\.\.write_queue \(8\), got 9"),
    ({"write_high_watermark": 0}, r"write_high_watermark must be in 1\.\.write_queue \(16\), got 0"),
    ({"write_high_watermark": 6, "write_low_watermark": 6}, r"write_low_watermark must be below write_high_watermark \(6\), got 6"),
    ({"write_low_watermark": -1}, r"write_low_watermark must be >= 0, got -1"),
    ({"write_queue": 2.5}, r"write_queue must be an integer, got 2.5"),
])
def test_bad_write_buffer_settings_raise_one_line_naming_the_value(changes, match):
    with pytest.raises(ValueError, match=match) as err:
        Controller(**changes)
    assert "\n" not in str(err.value)


def test_watermarks_are_not_checked_without_a_write_buffer():
    c = Controller(write_queue=0, write_high_watermark=99, write_low_watermark=200)
    assert c.write_queue == 0


def test_bad_watermark_in_a_hardware_file_is_reported(tmp_path):
    path = tmp_path / "hw.toml"
    path.write_text('base = "ddr4-2400"\n[controller]\nwrite_low_watermark = 16\n')
    with pytest.raises(ValueError, match=r"write_low_watermark must be below write_high_watermark \(16\), got 16"):
        load_hardware(str(path))
