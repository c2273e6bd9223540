"""Latency and energy of one batch of pooled embedding lookups, on the host or near memory."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _engine as E
from ._pages import small_pages
from .config import Hardware, NmpLevel, Place
from .energy import ActionCounts, EnergyTable, energy_breakdown_pj
from .mapping import decode
from .presets import load_hardware
from .report import ReportMixin
from .sim import active_rank_cycles, check_threads, engine_params, refreshes_until, run_controllers, split_by
from .workload import EmbeddingBatch, EmbeddingWorkload, batch_addresses, sample_batch

__all__ = ["Report", "simulate"]


@dataclass(frozen=True)
class Report(ReportMixin):
    """One batch of embedding lookups on one hardware. Times in s, energies in J unless named."""

    hardware: str
    mode: str  # "host" or "nmp-<level>"
    seed: int | None
    batch_size: int
    lookups: int
    dram_bursts: int
    cache_hit_rate: float  # bursts served by near-memory caches
    latency_s: float
    throughput_samples_per_s: float
    energy_j: float
    energy_per_sample_j: float
    energy_breakdown_pj: dict
    bound_by: str  # "dram", "unit compute" or "channel"
    dram_s: float
    unit_compute_s: float
    channel_transfer_s: float
    channel_bytes: int
    activations: int
    row_hit_rate: float
    channel_bandwidth_gbps: float
    host_cache_hit_rate: float = 0.0  # host-side bursts served by the host's last-level cache
    host_s: float = 0.0  # the host-side phase (gathers of tables on the host)
    nmp_s: float = 0.0  # the near-memory phase
    per_table: tuple = ()  # one dict per table: place, lookups, bursts, hits, DRAM bursts, bytes, time, energy

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["per_table"] = [dict(t) for t in self.per_table]
        return out

    def to_row(self) -> dict:
        out = super().to_row()
        del out["per_table"]
        return out


def _units_of(hw: Hardware, dec, bank_in_rank: np.ndarray) -> np.ndarray:
    """Near-memory unit id of each burst."""
    o, nmp = hw.org, hw.nmp
    rank_id = dec.channel * o.ranks + dec.rank
    if nmp.level is NmpLevel.RANK:
        return rank_id
    if nmp.level is NmpLevel.BANKGROUP:
        per_rank = o.bankgroups // nmp.instances_per_unit
        return rank_id * per_rank + dec.bankgroup // nmp.instances_per_unit
    per_rank = o.banks // nmp.instances_per_unit
    return rank_id * per_rank + bank_in_rank // nmp.instances_per_unit


def table_places(tables, hw: Hardware) -> np.ndarray:
    """True for each table served by the near-memory units, False for the host."""
    default = hw.embedding_place is Place.NMP
    out = np.zeros(len(tables), np.bool_)
    for t, tab in enumerate(tables):
        if tab.place == "nmp" and hw.nmp is None:
            raise ValueError(f"table {t} is placed on 'nmp' but {hw.name} has no near-memory units")
        out[t] = default if tab.place == "auto" else tab.place == "nmp"
    return out


# ways of the host's last-level cache (assumption: 16-way, typical of server LLC slices)
HOST_LLC_WAYS = 16
#: Cache lines per access up to which ``_warm_hits`` indexes the cache's sets directly
#: instead of numbering the touched ones (a sort of every access: 0.45 of the 0.82 s that
#: 5.2M accesses to cpu-server's LLC took, ad hoc). Either way the hits are the same.
DIRECT_SETS_PER_ACCESS = 4


def _warm_hits(lines: np.ndarray, warm_lines: list[np.ndarray], units: np.ndarray, warm_units: list[np.ndarray],
               n_units: int, sets: int, ways: int) -> np.ndarray:
    """LRU hit flags of ``lines`` after the caches have seen ``warm_lines`` (earlier batches)."""
    if sets <= 0:
        return np.zeros(len(lines), np.bool_)
    all_lines = np.concatenate(warm_lines + [lines]).astype(np.int64)
    all_units = np.concatenate(warm_units + [units]).astype(np.int64)
    if (n_units * sets * ways <= DIRECT_SETS_PER_ACCESS * len(all_lines)
            and 0 <= all_units.min() and all_units.max() < n_units):
        # the cache's state is no larger than a few words per access: index its sets directly
        hits = E._cache_hits(all_lines, all_units, n_units, sets, ways)
    else:
        # only the sets that are touched matter: number them densely, so that a large
        # cache (a host LLC of 600k lines) costs a small batch nothing to set up
        _, slot = np.unique(all_units * sets + all_lines % sets, return_inverse=True)
        hits = E._cache_hits(all_lines, slot.astype(np.int64).ravel(), int(slot.max()) + 1, 1, ways)
    return hits[len(all_lines) - len(lines):]


@small_pages()
def simulate(workload: EmbeddingWorkload | EmbeddingBatch, hardware: Hardware | str, *,
             seed: int | None = 0, warmup_batches: int = 1, threads: int | None = None) -> Report:
    """Latency and energy of one batch of pooled lookups.

    Tables on the host: every gathered burst that misses the host's last-level
    cache (``[host] cache_bytes``, when the hardware has a host; when all host
    tables fit it together, every lookup hits, as in steady state) crosses the
    channel and the host pools. Tables on the near-memory units (``hardware.nmp``; see
    :func:`table_places`): each unit gathers from its own DRAM over its local data
    path and pools; only partial sums cross the channel, pipelined with later
    samples. With both kinds, the host phase runs first, then the near-memory phase.
    An :class:`EmbeddingWorkload` draws its indices from
    ``numpy.random.default_rng(seed)``, after ``warmup_batches`` earlier batches from
    the same generator that only warm the caches (steady state rather than cold).
    ``threads``: how many independent controllers (channels; near-memory ranks) run at
    once, as in :func:`pimsim.simulate_trace`; the result does not depend on it.
    """
    hw = load_hardware(hardware)
    check_threads(threads)
    if isinstance(workload, EmbeddingWorkload):
        if seed is None:
            raise ValueError("seed must be an integer to draw the indices of an EmbeddingWorkload")
        if isinstance(warmup_batches, bool) or not isinstance(warmup_batches, int) or warmup_batches < 0:
            raise ValueError(f"warmup_batches must be a non-negative integer, got {warmup_batches!r}")
        rng = np.random.default_rng(seed)
        warm = [sample_batch(workload, rng) for _ in range(warmup_batches)]
        batch = sample_batch(workload, rng)
    elif isinstance(workload, EmbeddingBatch):
        batch, seed, warm = workload, None, []
    else:
        raise ValueError(f"workload must be an EmbeddingWorkload or EmbeddingBatch, got {type(workload).__name__}")
    o, tck = hw.org, hw.timing.tck_ns
    on_nmp_table = table_places(batch.tables, hw)
    req = batch_addresses(batch, o)
    dec = decode(req.addresses, o)
    bank_in_rank = dec.bankgroup * o.banks_per_group + dec.bank
    n = len(req.addresses)
    n_tables = len(batch.tables)
    on_nmp = on_nmp_table[req.table]
    warm_req = [batch_addresses(b, o) for b in warm]
    warm_dec = [decode(r.addresses, o) for r in warm_req]
    zeros = np.zeros(n, np.int64)
    no_writes = np.zeros(n, np.bool_)
    complete = np.zeros(n, np.int64)
    counts = np.zeros(E.N_COUNTS, np.int64)
    # bursts served by a cache: the host's LLC (host tables) or a unit's buffer (unit tables)
    cached = np.zeros(n, np.bool_)
    host_sel = ~on_nmp
    host_bytes = sum(tab.rows * -(-tab.vector_bytes // o.line_bytes) * o.line_bytes
                     for tab, nmp_t in zip(batch.tables, on_nmp_table) if not nmp_t)
    if host_sel.any() and hw.host is not None and 0 < host_bytes <= hw.host.cache_bytes:
        # every host table fits the cache together: in steady state every lookup hits
        cached[host_sel] = True
    elif host_sel.any() and hw.host is not None and hw.host.cache_bytes > 0:
        sets = hw.host.cache_bytes // o.line_bytes // HOST_LLC_WAYS
        wl = [d.line[~on_nmp_table[r.table]] for r, d in zip(warm_req, warm_dec)]
        hits = _warm_hits(dec.line[host_sel], wl, np.zeros(int(host_sel.sum()), np.int64),
                          [np.zeros(len(x), np.int64) for x in wl], 1, sets, HOST_LLC_WAYS)
        cached[host_sel] = hits
    units = np.zeros(n, np.int64)
    n_units = 0
    if on_nmp.any():
        units = _units_of(hw, dec, bank_in_rank)
        n_units = hw.nmp_units()
        ways = hw.nmp.cache_ways
        sets = hw.nmp.buffer_bytes // o.line_bytes // ways if ways else 0
        wl, wu = [], []
        for r, d in zip(warm_req, warm_dec):
            sel = on_nmp_table[r.table]
            wl.append(d.line[sel])
            wu.append(_units_of(hw, d, d.bankgroup * o.banks_per_group + d.bank)[sel])
        cached[on_nmp] = _warm_hits(dec.line[on_nmp], wl, units[on_nmp], wu, n_units, sets, ways)
    results_host, results_nmp = [], []
    # host phase: one controller per channel
    host_live = host_sel & ~cached
    if host_live.any():
        params = engine_params(hw, ranks=o.ranks, banks_per_bus=o.ranks * o.banks)
        bank = dec.rank * o.banks + bank_in_rank
        live = np.flatnonzero(host_live)
        sels = split_by(dec.channel[live], o.channels, live)
        results_host = run_controllers((bank, dec.row, no_writes, zeros, dec.line), sels, params, threads)
        for sel, res in zip(sels, results_host):
            complete[sel] = res.completion_cycles
            counts += res.counts
    host_s = (int(complete[host_live].max()) if host_live.any() else 0) * tck * 1e-9
    llc_bytes = int((host_sel & cached).sum()) * o.line_bytes
    if llc_bytes:
        # hits stream from the cache while the misses go to DRAM
        host_s = max(host_s, llc_bytes / (hw.host.cache_gbps * 1e9))
    # near-memory phase: each rank's units driven by their own controller (the DIMM buffer / logic die)
    nmp_live = on_nmp & ~cached
    unit_s = transfer_s = nmp_dram_s = 0.0
    nmp_s = 0.0
    nmp_channel_bytes = 0
    adds = 0
    per_burst_adds = np.array([t.dim for t in batch.tables], np.float64) / np.array(
        [-(-t.vector_bytes // o.line_bytes) for t in batch.tables], np.float64)
    table_channel_bytes = np.zeros(n_tables, np.int64)
    stages = {"dram": 0.0, "unit compute": 0.0, "channel": 0.0}
    if on_nmp.any():
        per_bus = {NmpLevel.RANK: o.banks, NmpLevel.BANKGROUP: o.banks_per_group * hw.nmp.instances_per_unit,
                   NmpLevel.BANK: hw.nmp.instances_per_unit}[hw.nmp.level]
        gap = 0
        if hw.nmp.max_local_gbps > 0:
            gap = math.ceil(o.line_bytes / hw.nmp.max_local_gbps / tck)  # bytes / (GB/s) = ns
        params = engine_params(hw, ranks=1, banks_per_bus=per_bus, bus_gap_cycles=gap)
        ctrl = dec.channel * o.ranks + dec.rank
        live = np.flatnonzero(nmp_live)
        sels = split_by(ctrl[live], o.channels * o.ranks, live)
        results_nmp = run_controllers((bank_in_rank, dec.row, no_writes, zeros, dec.line), sels, params, threads)
        for sel, res in zip(sels, results_nmp):
            complete[sel] = res.completion_cycles
            counts += res.counts
        idx = np.flatnonzero(on_nmp)
        unit_dram_s = np.zeros(n_units)
        np.maximum.at(unit_dram_s, units[nmp_live], complete[nmp_live] * tck * 1e-9)
        adds_per_unit = np.bincount(units[idx], weights=per_burst_adds[req.table[idx]], minlength=n_units)
        unit_compute_s = adds_per_unit / hw.nmp.simd_lanes / (hw.nmp.clock_mhz * 1e6)
        unit_s = float(unit_compute_s.max())
        nmp_dram_s = float(unit_dram_s.max())
        unit_done_s = float(np.maximum(unit_dram_s, unit_compute_s).max())
        # one partial sum per (unit, sample, table, burst of the vector) crosses the channel
        key = ((units[idx] * batch.batch_size + req.sample[idx]) * n_tables + req.table[idx]) * 4096 + req.part[idx]
        uniq = np.unique(key)
        u_unit = uniq // 4096 // n_tables // batch.batch_size
        u_table = (uniq // 4096) % n_tables
        table_channel_bytes += np.bincount(u_table, minlength=n_tables) * o.line_bytes
        channel_of_unit = u_unit // (n_units // o.channels)
        per_channel_bytes = np.bincount(channel_of_unit, minlength=o.channels) * o.line_bytes
        nmp_channel_bytes = int(per_channel_bytes.sum())
        transfer_s = float(per_channel_bytes.max()) / (hw.peak_channel_gbps * 1e9)
        # partial sums stream out while later samples are gathered; the last sample's go after
        nmp_s = max(unit_done_s, transfer_s) + transfer_s / batch.batch_size
        stages = {"dram": nmp_dram_s, "unit compute": unit_s, "channel": transfer_s}
        adds = int(round(adds_per_unit.sum()))
    host_bursts = np.bincount(req.table[host_live], minlength=n_tables)
    table_channel_bytes += host_bursts * o.line_bytes
    channel_bytes = int(host_live.sum()) * o.line_bytes + nmp_channel_bytes
    latency_s = host_s + nmp_s
    if host_s >= nmp_s:
        bound_by = "dram"
    else:
        bound_by = max(stages, key=stages.get)
    end_cycle = max(1, math.ceil(latency_s / (tck * 1e-9)))
    active = sum(active_rank_cycles(res, o.ranks, end_cycle) for res in results_host)
    active += sum(active_rank_cycles(res, 1, end_cycle) for res in results_nmp)
    all_rank_cycles = o.channels * o.ranks * end_cycle
    action_counts = ActionCounts(
        activations=int(counts[E.C_ACT]), precharges=int(counts[E.C_PRE]),
        reads=int(counts[E.C_RD]), writes=int(counts[E.C_WR]),
        refreshes=refreshes_until(hw, o.ranks, end_cycle) * o.channels,
        active_rank_cycles=min(active, all_rank_cycles),
        precharged_rank_cycles=all_rank_cycles - min(active, all_rank_cycles),
        channel_bits=channel_bytes * 8, local_bits=int(nmp_live.sum()) * o.line_bytes * 8, unit_adds=adds,
    )
    table = EnergyTable.from_hardware(hw)
    breakdown = energy_breakdown_pj(action_counts, table)
    if llc_bytes:
        breakdown["host_cache"] = llc_bytes * hw.host.cache_pj_per_byte
    energy_j = sum(breakdown.values()) * 1e-12
    live = host_live | nmp_live
    dram_bursts = int(live.sum())
    per_table = _per_table(batch, req.table, on_nmp_table, cached, live, table_channel_bytes, host_live, nmp_live,
                           host_s, nmp_s, breakdown, table, per_burst_adds, o.line_bytes,
                           hw.host.cache_pj_per_byte if hw.host is not None else 0.0)
    mode = "host" if not on_nmp.any() else (f"nmp-{hw.nmp.level.value}" if on_nmp.all()
                                            else f"mixed-{hw.nmp.level.value}")
    return Report(
        hardware=hw.name, mode=mode, seed=seed, batch_size=batch.batch_size, lookups=batch.lookups,
        dram_bursts=dram_bursts, cache_hit_rate=float(cached[on_nmp].mean()) if on_nmp.any() else 0.0,
        latency_s=latency_s, throughput_samples_per_s=batch.batch_size / latency_s,
        energy_j=energy_j, energy_per_sample_j=energy_j / batch.batch_size, energy_breakdown_pj=breakdown,
        bound_by=bound_by, dram_s=max(host_s, nmp_dram_s), unit_compute_s=unit_s, channel_transfer_s=transfer_s,
        channel_bytes=channel_bytes, activations=action_counts.activations,
        row_hit_rate=float(counts[E.C_HITS]) / max(1, dram_bursts),
        channel_bandwidth_gbps=channel_bytes / latency_s / 1e9,
        host_cache_hit_rate=float(cached[host_sel].mean()) if host_sel.any() else 0.0,
        host_s=host_s, nmp_s=nmp_s, per_table=per_table,
    )


def _per_table(batch, burst_table, on_nmp_table, cached, live, channel_bytes, host_live, nmp_live,
               host_s, nmp_s, breakdown, table, per_burst_adds, line_bytes, llc_pj_per_byte) -> tuple:
    """Each table's share: its own counts, its phase's time split by bursts, DRAM energy by DRAM bursts."""
    n_tables = len(batch.tables)
    bursts = np.bincount(burst_table, minlength=n_tables)
    hits = np.bincount(burst_table[cached], minlength=n_tables)
    dram = np.bincount(burst_table[live], minlength=n_tables)
    host_total = max(1, int(bursts[~on_nmp_table].sum()))
    nmp_total = max(1, int(bursts[on_nmp_table].sum()))
    dram_total = max(1, int(live.sum()))
    dram_pj = sum(breakdown[k] for k in ("act_pre", "read", "write", "refresh", "background"))
    out = []
    for t, tab in enumerate(batch.tables):
        place = "nmp" if on_nmp_table[t] else "host"
        share = bursts[t] / (nmp_total if on_nmp_table[t] else host_total)
        energy = (dram_pj * dram[t] / dram_total + channel_bytes[t] * 8 * table.channel_io_pj_per_bit
                  + (0.0 if on_nmp_table[t] else hits[t] * line_bytes * llc_pj_per_byte))
        if on_nmp_table[t]:
            energy += dram[t] * line_bytes * 8 * table.local_io_pj_per_bit + bursts[t] * per_burst_adds[t] * table.add_pj
        out.append({"table": t, "place": place, "lookups": int(len(batch.indices[t])), "bursts": int(bursts[t]),
                    "cache_hits": int(hits[t]), "dram_bursts": int(dram[t]), "channel_bytes": int(channel_bytes[t]),
                    "time_s": float((nmp_s if on_nmp_table[t] else host_s) * share), "energy_pj": float(energy)})
    return tuple(out)
