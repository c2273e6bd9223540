"""Embedding gathers on the host and on near-memory units."""

import dataclasses
import json

import numpy as np
import pytest

from pimsim import (EmbeddingTable, EmbeddingWorkload, load_hardware, sample_batch, simulate)
from pimsim.workload import batch_addresses
from pimsim.mapping import decode


def recnmp_with_ranks(ranks):
    hw = load_hardware("recnmp")
    nmp = dataclasses.replace(hw, org=dataclasses.replace(hw.org, ranks=ranks))
    return dataclasses.replace(nmp, nmp=None), nmp


def predicted_speedup(hw, ranks, pooling, tables, batch):
    """Rank-level NMP against the host for random one-burst vectors.

    Host: bursts limited by the channel (one per BL/2 cycles) or by activations
    (4 per tFAW per rank). NMP: each rank gathers its share at the activation
    rate while the partial sums (one per rank hit per bag) cross the channel.
    """
    t = hw.timing
    bus_rate = 1 / (hw.org.burst_length // 2)
    act_rate = 4 / t.tfaw
    n = pooling * tables * batch
    partials = tables * batch * ranks * (1 - (1 - 1 / ranks) ** pooling)
    host = n / min(bus_rate, act_rate * ranks)
    nmp = max(n / (act_rate * ranks), partials / bus_rate)
    return host / nmp


@pytest.mark.parametrize("pooling", [8, 64])
def test_rank_nmp_speedup_follows_theory(pooling):
    wl = EmbeddingWorkload((EmbeddingTable(rows=1_000_000, dim=16, pooling=pooling),) * 8, batch_size=64)
    ranks = [1, 2, 4, 8]
    measured, predicted = [], []
    for r in ranks:
        host, nmp = recnmp_with_ranks(r)
        measured.append(simulate(wl, host, seed=3).latency_s / simulate(wl, nmp, seed=3).latency_s)
        predicted.append(predicted_speedup(host, r, pooling, 8, 64))
    measured, predicted = np.array(measured), np.array(predicted)
    assert np.all(np.abs(measured / predicted - 1) < 0.2), (measured, predicted)
    # it grows with the ranks up to the theory's best rank count, and falls after it
    best = int(np.argmax(predicted))
    assert int(np.argmax(measured)) == best
    assert np.all(np.diff(measured[:best + 1]) > 0)
    assert np.all(np.diff(measured[best:]) < 0)


def test_large_pooling_speedup_grows_with_ranks():
    wl = EmbeddingWorkload((EmbeddingTable(rows=4_000_000, dim=32, pooling=80),) * 4, batch_size=32)
    speedups = []
    for r in (1, 2, 4, 8):
        host, nmp = recnmp_with_ranks(r)
        speedups.append(simulate(wl, host, seed=0).latency_s / simulate(wl, nmp, seed=0).latency_s)
    assert np.all(np.diff(speedups) > 0)
    assert speedups[-1] > 3


def test_nmp_moves_fewer_bytes_over_the_channel_and_saves_io_energy():
    wl = EmbeddingWorkload((EmbeddingTable(rows=100_000, dim=32, pooling=40),) * 4, batch_size=16)
    host, nmp = recnmp_with_ranks(8)
    rh, rn = simulate(wl, host, seed=1), simulate(wl, nmp, seed=1)
    assert rh.channel_bytes == rh.dram_bursts * 64
    assert rn.channel_bytes < rh.channel_bytes / 4
    assert rn.energy_breakdown_pj["io"] < rh.energy_breakdown_pj["io"]
    assert rn.energy_breakdown_pj["compute"] > 0 == rh.energy_breakdown_pj["compute"]
    for r in (rh, rn):
        assert abs(sum(r.energy_breakdown_pj.values()) * 1e-12 - r.energy_j) < 1e-12 * 1e3


def test_same_seed_same_result_and_seed_recorded():
    wl = EmbeddingWorkload((EmbeddingTable(rows=10_000, dim=16, pooling=10, distribution="zipf"),), batch_size=8)
    a, b = simulate(wl, "recnmp", seed=5), simulate(wl, "recnmp", seed=5)
    assert a.to_dict() == b.to_dict()
    assert a.seed == 5
    c = simulate(wl, "recnmp", seed=6)
    assert c.to_dict() != a.to_dict()


def test_zipf_indices_are_skewed_and_in_range():
    rng = np.random.default_rng(0)
    wl = EmbeddingWorkload((EmbeddingTable(rows=50_000, dim=16, pooling=100, distribution="zipf",
                                           zipf_alpha=1.2),), batch_size=100)
    idx = sample_batch(wl, rng).indices[0]
    assert idx.min() >= 0 and idx.max() < 50_000
    counts = np.sort(np.bincount(idx, minlength=50_000))[::-1]
    assert counts[:500].sum() > 0.5 * len(idx)  # 1% of rows take most lookups


def test_interleaved_placement_spreads_consecutive_rows_over_banks():
    hw = load_hardware("ddr4-2400")
    tab = EmbeddingTable(rows=1000, dim=16)
    wl_i = EmbeddingWorkload((tab,), batch_size=1, placement="interleaved")
    from pimsim import EmbeddingBatch
    batch = EmbeddingBatch(wl_i.tables, (np.arange(32),), (np.array([0, 32]),), "interleaved")
    d = decode(batch_addresses(batch, hw.org).addresses, hw.org)
    units = set(zip(d.rank.tolist(), d.bankgroup.tolist(), d.bank.tolist()))
    assert len(units) == 32
    contiguous = EmbeddingBatch(wl_i.tables, (np.arange(32),), (np.array([0, 32]),), "contiguous")
    d = decode(batch_addresses(contiguous, hw.org).addresses, hw.org)
    assert len(set(zip(d.rank.tolist(), d.bankgroup.tolist(), d.bank.tolist()))) == 1


def test_vectors_of_several_bursts_are_contiguous():
    hw = load_hardware("ddr4-2400")
    tab = EmbeddingTable(rows=100, dim=64)  # 256 B: four bursts
    from pimsim import EmbeddingBatch
    batch = EmbeddingBatch((tab,), (np.array([3, 7]),), (np.array([0, 2]),))
    req = batch_addresses(batch, hw.org)
    assert req.addresses.tolist() == [3 * 256 + 64 * k for k in range(4)] + [7 * 256 + 64 * k for k in range(4)]
    assert req.part.tolist() == [0, 1, 2, 3] * 2


def test_every_preset_simulates_a_batch():
    from pimsim import list_presets
    wl = EmbeddingWorkload((EmbeddingTable(rows=10_000, dim=16, pooling=4),) * 2, batch_size=4)
    for name in list_presets():
        r = simulate(wl, name, seed=0)
        assert r.latency_s > 0 and r.energy_j > 0
        assert r.mode == ("host" if load_hardware(name).nmp is None else f"nmp-{load_hardware(name).nmp.level.value}")


def test_tables_too_large_for_memory_are_rejected():
    wl = EmbeddingWorkload((EmbeddingTable(rows=10**9, dim=64),), batch_size=1)
    with pytest.raises(ValueError, match="more than"):
        simulate(wl, "ddr4-2400")


def test_rank_cache_serves_hot_rows_only_when_enabled():
    hot = EmbeddingWorkload((EmbeddingTable(rows=1_000_000, dim=16, pooling=40, distribution="zipf",
                                            zipf_alpha=1.2),) * 4, batch_size=32)
    cached = simulate(hot, "recnmp", seed=2)
    hw = load_hardware("recnmp")
    plain = simulate(hot, dataclasses.replace(hw, nmp=dataclasses.replace(hw.nmp, cache_ways=0)), seed=2)
    assert cached.cache_hit_rate > 0.2
    assert plain.cache_hit_rate == 0
    assert cached.dram_bursts < plain.dram_bursts
    assert cached.latency_s <= plain.latency_s
    assert cached.energy_j < plain.energy_j
    cold = EmbeddingWorkload((EmbeddingTable(rows=4_000_000, dim=16, pooling=40),) * 4, batch_size=32)
    assert simulate(cold, "recnmp", seed=2).cache_hit_rate < 0.02


# ---- per-table placement, host cache, reduced precision -------------------------------------

def _tables(**kw):
    small = EmbeddingTable(rows=2_000, dim=16, pooling=1, **kw)
    big = EmbeddingTable(rows=4_000_000, dim=16, pooling=1, **kw)
    return small, big


def test_table_places_follow_the_mapping_unless_pinned():
    from pimsim.embedding import table_places
    small, big = _tables()
    hw = load_hardware("recnmp")
    pinned = dataclasses.replace(small, place="host")
    assert table_places((small, big), hw).tolist() == [True, True]
    assert table_places((pinned, big), hw).tolist() == [False, True]
    host_mapped = dataclasses.replace(hw, mapping=dataclasses.replace(hw.mapping, embeddings="host"))
    assert table_places((small, dataclasses.replace(big, place="nmp")), host_mapped).tolist() == [False, True]
    with pytest.raises(ValueError, match="table 0 is placed on 'nmp'"):
        table_places((dataclasses.replace(small, place="nmp"),), load_hardware("ddr4-2400"))
    with pytest.raises(ValueError, match="place must be one of"):
        EmbeddingTable(rows=10, dim=4, place="gpu")


def test_small_tables_on_the_host_cache_and_big_tables_on_units():
    small, big = _tables()
    tables = (dataclasses.replace(small, place="host"),) * 4 + (big,) * 4
    r = simulate(EmbeddingWorkload(tables, batch_size=64), "recnmp", seed=1)
    assert r.mode == "mixed-rank"
    assert r.host_cache_hit_rate == 1.0  # 4 x 2,000 rows fit the last-level cache together
    places = [t["place"] for t in r.per_table]
    assert places == ["host"] * 4 + ["nmp"] * 4
    assert all(t["dram_bursts"] == 0 and t["channel_bytes"] == 0 for t in r.per_table[:4])
    assert r.energy_breakdown_pj["host_cache"] > 0
    all_units = simulate(EmbeddingWorkload((small,) * 4 + (big,) * 4, batch_size=64), "recnmp", seed=1)
    # one-hot lookups gain nothing from pooling near memory; the cached small tables are cheaper on the host
    assert r.latency_s < all_units.latency_s and r.energy_j < all_units.energy_j


def test_per_table_counts_add_up():
    small, big = _tables(distribution="zipf")
    tables = (dataclasses.replace(small, place="host", pooling=3), big, dataclasses.replace(big, dim=64))
    r = simulate(EmbeddingWorkload(tables, batch_size=32), "recnmp", seed=5)
    assert sum(t["lookups"] for t in r.per_table) == r.lookups
    assert sum(t["dram_bursts"] for t in r.per_table) == r.dram_bursts
    assert sum(t["channel_bytes"] for t in r.per_table) == r.channel_bytes
    assert sum(t["time_s"] for t in r.per_table) == pytest.approx(r.host_s + r.nmp_s, rel=1e-9)
    assert r.per_table[2]["bursts"] == 4 * r.per_table[1]["bursts"]  # 256 B vectors: four bursts
    json.dumps(r.to_dict())
    assert "per_table" not in r.to_row()


def test_int8_tables_move_a_quarter_of_the_fp32_bytes():
    fp32 = EmbeddingTable(rows=4_000_000, dim=64, pooling=8, bytes_per_element=4)
    int8 = dataclasses.replace(fp32, bytes_per_element=1)
    host = load_hardware("ddr4-2400")
    r32 = simulate(EmbeddingWorkload((fp32,) * 2, batch_size=16), host, seed=0)
    r8 = simulate(EmbeddingWorkload((int8,) * 2, batch_size=16), host, seed=0)
    assert r8.dram_bursts * 4 == pytest.approx(r32.dram_bursts, rel=0.02)
    assert r8.channel_bytes * 4 == pytest.approx(r32.channel_bytes, rel=0.02)
    # an int8 row's scale and bias ride with the vector: 64 + 8 bytes take two bursts
    scaled = dataclasses.replace(int8, row_overhead_bytes=8)
    rs = simulate(EmbeddingWorkload((scaled,) * 2, batch_size=16), host, seed=0)
    assert rs.per_table[0]["bursts"] == 2 * r8.per_table[0]["bursts"]


def test_warmup_batches_warm_the_caches_deterministically():
    hot = EmbeddingWorkload((EmbeddingTable(rows=200_000, dim=16, pooling=20, distribution="zipf",
                                            zipf_alpha=1.1),) * 4, batch_size=16)
    cold = simulate(hot, "recnmp", seed=3, warmup_batches=0)
    warm = simulate(hot, "recnmp", seed=3, warmup_batches=4)
    assert warm.cache_hit_rate > cold.cache_hit_rate
    assert simulate(hot, "recnmp", seed=3, warmup_batches=4) == warm
    with pytest.raises(ValueError, match="warmup_batches"):
        simulate(hot, "recnmp", warmup_batches=-1)


def test_rank_level_units_serve_one_rank_each():
    import dataclasses

    hw = load_hardware("recnmp")
    with pytest.raises(ValueError, match="instances_per_unit must be 1 at level 'rank'.*got 2"):
        dataclasses.replace(hw, nmp=dataclasses.replace(hw.nmp, instances_per_unit=2))


def test_warm_hits_with_unit_ids_beyond_the_unit_count_use_dense_numbering():
    from pimsim.embedding import _warm_hits

    lines = np.array([1, 2, 1, 3, 1], np.int64)
    units = np.array([0, 5, 0, 5, 5], np.int64)  # unit 5 of "2": never indexed directly
    got = _warm_hits(lines, [], units, [], 2, 1, 1)
    assert got.tolist() == [False, False, True, False, False]
