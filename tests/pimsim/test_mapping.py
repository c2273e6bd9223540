"""Address mapping with any number of channels: a bijection, and even spreading."""

import dataclasses

import numpy as np
import pytest

from pimsim import Trace, load_hardware, simulate_trace
from pimsim.mapping import controller_fields, decode, encode

MAPPINGS = ["rochrababgco", "rorabgbachco", "chrorababgco", "robabgracoch"]


def tiny_org(channels, mapping="rochrababgco"):
    org = load_hardware("ddr4-2400").org
    return dataclasses.replace(org, channels=channels, ranks=2, bankgroups=2, banks_per_group=2,
                               rows=8, columns=32, address_mapping=mapping)


def fields_of(d):
    return np.stack([d.channel, d.rank, d.bankgroup, d.bank, d.row, d.column])


@pytest.mark.parametrize("channels", [3, 5, 6])
@pytest.mark.parametrize("mapping", MAPPINGS)
def test_mapping_is_a_bijection_on_the_whole_tiny_memory(channels, mapping):
    org = tiny_org(channels, mapping)
    lines = org.capacity_bytes // org.line_bytes
    addr = np.arange(lines, dtype=np.int64) * org.line_bytes
    d = decode(addr, org)
    f = fields_of(d)
    sizes = [org.channels, org.ranks, org.bankgroups, org.banks_per_group, org.rows, org.lines_per_row]
    assert all(f[i].min() == 0 and f[i].max() == s - 1 for i, s in enumerate(sizes))
    # injective on `lines` addresses into a set of exactly `lines` locations: a bijection
    flat = np.ravel_multi_index(tuple(f), sizes)
    assert len(np.unique(flat)) == lines == int(np.prod(sizes))
    back = encode(org, channel=d.channel, rank=d.rank, bankgroup=d.bankgroup, bank=d.bank,
                  row=d.row, column=d.column)
    assert np.array_equal(back, addr)
    # bytes inside a burst map to the burst's first byte
    assert np.array_equal(decode(addr + org.line_bytes - 1, org).line, d.line)


@pytest.mark.parametrize("channels", [3, 5, 6])
@pytest.mark.parametrize("mapping", MAPPINGS)
def test_mapping_round_trips_on_sampled_addresses_of_a_full_size_memory(channels, mapping):
    org = dataclasses.replace(load_hardware("ddr4-2400").org, channels=channels, address_mapping=mapping)
    rng = np.random.default_rng(channels)
    lines = org.capacity_bytes // org.line_bytes
    sample = np.concatenate([np.arange(50_000), lines - 1 - np.arange(1000), rng.integers(0, lines, 50_000)])
    addr = np.unique(sample) * org.line_bytes
    d = decode(addr, org)
    sizes = [org.channels, org.ranks, org.bankgroups, org.banks_per_group, org.rows, org.lines_per_row]
    f = fields_of(d)
    assert all(f[i].max() < s for i, s in enumerate(sizes))
    assert len(np.unique(np.ravel_multi_index(tuple(f), sizes))) == len(addr)
    back = encode(org, channel=d.channel, rank=d.rank, bankgroup=d.bankgroup, bank=d.bank,
                  row=d.row, column=d.column)
    assert np.array_equal(back, addr)
    with pytest.raises(ValueError, match="beyond the capacity"):
        decode([org.capacity_bytes], org)


@pytest.mark.parametrize("channels", [3, 5, 6])
@pytest.mark.parametrize("mapping", MAPPINGS[:2])
def test_sequential_stream_spreads_evenly_over_channels(channels, mapping):
    org = dataclasses.replace(load_hardware("ddr4-2400").org, channels=channels, address_mapping=mapping)
    sizes = org.field_sizes()
    order = [org.address_mapping[i:i + 2] for i in range(0, 12, 2)]
    below = int(np.prod([sizes[f] for f in order[order.index("ch") + 1:]]))  # lines per channel block
    n = 7 * channels * below
    d = decode(np.arange(n, dtype=np.int64) * org.line_bytes, org)
    assert np.array_equal(np.bincount(d.channel, minlength=channels), np.full(channels, n // channels))
    # and each block of `below` lines stays in one channel, the next block in the next channel
    assert np.array_equal(d.channel[::below][:2 * channels], np.tile(np.arange(channels), 2))
    # a stream that is not a whole number of rounds is still within one block of even
    counts = np.bincount(decode(np.arange(n + below // 2) * org.line_bytes, org).channel)
    assert counts.max() - counts.min() <= below


def test_power_of_two_channels_keep_the_bit_field_mapping():
    org = dataclasses.replace(load_hardware("ddr4-2400").org, channels=8)
    addr = np.random.default_rng(0).integers(0, org.capacity_bytes, 10_000)
    d = decode(addr, org)
    # rochrababgco, from bit 6 up: co 7 bits, bg 2, ba 2, ra 1, ch 3, ro 16
    assert np.array_equal(d.column, (addr >> 6) & 127)
    assert np.array_equal(d.bankgroup, (addr >> 13) & 3)
    assert np.array_equal(d.bank, (addr >> 15) & 3)
    assert np.array_equal(d.rank, (addr >> 17) & 1)
    assert np.array_equal(d.channel, (addr >> 18) & 7)
    assert np.array_equal(d.row, addr >> 21)


def test_only_channels_may_be_any_count():
    org = load_hardware("ddr4-2400").org
    assert dataclasses.replace(org, channels=6).capacity_bytes == 6 * org.capacity_bytes
    with pytest.raises(ValueError, match=r"DramOrg\.ranks must be a power of two, got 3 \(only channels"):
        dataclasses.replace(org, ranks=3)
    with pytest.raises(ValueError, match="channels must be >= 1"):
        dataclasses.replace(org, channels=0)


def test_three_channels_serve_a_stream_three_times_as_fast_as_one():
    hw = load_hardware("ddr4-2400")
    n = 3 * 8 * 4096  # whole rounds of 4096-line channel blocks
    tr = Trace(np.arange(n, dtype=np.int64) * 64, np.zeros(n, bool), np.zeros(n, np.int64))
    one = simulate_trace(tr, hw)
    three = simulate_trace(tr, dataclasses.replace(hw, org=dataclasses.replace(hw.org, channels=3)))
    assert three.reads == one.reads == n
    # one activation per 128-line DRAM row, plus a few reopened after refreshes
    assert n // 128 <= three.activations <= n // 128 * 1.15
    assert n // 128 <= one.activations <= n // 128 * 1.15
    assert three.cycles == pytest.approx(one.cycles / 3, rel=0.05)
    assert three.bandwidth_gbps <= 3 * hw.peak_channel_gbps


def test_interleaved_tables_spread_over_three_channels_and_simulate():
    from pimsim import EmbeddingTable, EmbeddingWorkload, simulate, with_overrides
    from pimsim.workload import batch_addresses, sample_batch

    hw = with_overrides("recnmp", {"org.channels": 3})
    wl = EmbeddingWorkload((EmbeddingTable(rows=30_000, dim=16, pooling=50),), batch_size=32,
                           placement="interleaved")
    batch = sample_batch(wl, np.random.default_rng(0))
    req = batch_addresses(batch, hw.org)
    d = decode(req.addresses, hw.org)
    counts = np.bincount(d.channel, minlength=3)
    assert len(counts) == 3 and counts.min() > 0.8 * counts.mean()
    # row v sits in unit v mod (channels x ranks x banks), whose channel is unit // (ranks x banks)
    per_channel = hw.org.ranks * hw.org.banks
    rows = batch.indices[0]
    assert np.array_equal(d.channel[req.part == 0], (rows % (3 * per_channel)) // per_channel)
    host, nmp = simulate(wl, dataclasses.replace(hw, nmp=None), seed=0), simulate(wl, hw, seed=0)
    assert host.lookups == nmp.lookups == 32 * 50
    assert nmp.latency_s > 0 and host.latency_s > 0


@pytest.mark.parametrize("channels", [1, 3, 4, 6])
@pytest.mark.parametrize("mapping", MAPPINGS)
def test_controller_fields_match_decode(channels, mapping):
    """The one-pass kernel against the numpy decoder, power-of-two fields or not."""
    org = dataclasses.replace(load_hardware("ddr4-2400").org, channels=channels, address_mapping=mapping)
    rng = np.random.default_rng(channels)
    addr = np.concatenate([rng.integers(0, org.capacity_bytes, 5000), [0, org.capacity_bytes - 1]])
    d = decode(addr, org)
    channel, bank, row, line = controller_fields(addr, org)
    assert np.array_equal(channel, d.channel)
    assert np.array_equal(bank, (d.rank * org.bankgroups + d.bankgroup) * org.banks_per_group + d.bank)
    assert np.array_equal(row, d.row)
    assert np.array_equal(line, d.line)


@pytest.mark.parametrize("addr", [[0, 64, -64, 128, -128], [0, 1 << 40, 64, 1 << 41], [[0, 64]]])
def test_controller_fields_refuse_what_decode_refuses_with_the_same_message(addr):
    org = load_hardware("ddr4-2400").org
    addr = np.array(addr)
    if addr.ndim == 1:
        with pytest.raises(ValueError) as expected:
            decode(addr, org)
        message = str(expected.value)
    else:
        message = "one-dimensional"
    with pytest.raises(ValueError, match=message):
        controller_fields(addr, org)
