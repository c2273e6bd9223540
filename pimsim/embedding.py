"""Latency and energy of one batch of pooled embedding lookups, on the host or near memory."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _engine as E
from .config import Hardware, NmpLevel
from .energy import ActionCounts, EnergyTable, energy_breakdown_pj
from .mapping import decode
from .presets import load_hardware
from .report import ReportMixin
from .sim import active_rank_cycles, engine_params, refreshes_until, run_controller
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


def simulate(workload: EmbeddingWorkload | EmbeddingBatch, hardware: Hardware | str, *,
             seed: int | None = 0) -> Report:
    """Latency and energy of one batch of pooled lookups.

    Without near-memory units (``hardware.nmp`` is None) every gathered burst
    crosses the channel and the host pools. With them, each unit gathers from its
    own DRAM over its local data path and pools; only partial sums cross the
    channel, pipelined with the gathers of later samples. An
    :class:`EmbeddingWorkload` draws its indices from ``numpy.random.default_rng(seed)``.
    """
    hw = load_hardware(hardware)
    if isinstance(workload, EmbeddingWorkload):
        if seed is None:
            raise ValueError("seed must be an integer to draw the indices of an EmbeddingWorkload")
        batch = sample_batch(workload, np.random.default_rng(seed))
    elif isinstance(workload, EmbeddingBatch):
        batch, seed = workload, None
    else:
        raise ValueError(f"workload must be an EmbeddingWorkload or EmbeddingBatch, got {type(workload).__name__}")
    o, tck = hw.org, hw.timing.tck_ns
    req = batch_addresses(batch, o)
    dec = decode(req.addresses, o)
    bank_in_rank = dec.bankgroup * o.banks_per_group + dec.bank
    n = len(req.addresses)
    zeros = np.zeros(n, np.int64)
    no_writes = np.zeros(n, np.bool_)
    complete = np.zeros(n, np.int64)
    counts = np.zeros(E.N_COUNTS, np.int64)
    results = []
    cached = np.zeros(n, np.bool_)  # served by a unit's cache, no DRAM access
    if hw.nmp is not None:
        units = _units_of(hw, dec, bank_in_rank)
        n_units = hw.nmp_units()
        ways = hw.nmp.cache_ways
        sets = hw.nmp.buffer_bytes // o.line_bytes // ways if ways else 0
        if sets > 0:
            cached = E._cache_hits(dec.line, units, n_units, sets, ways)
    if hw.nmp is None:
        mode = "host"
        ranks_per_ctrl, ctrl = o.ranks, dec.channel
        params = engine_params(hw, ranks=o.ranks, banks_per_bus=o.ranks * o.banks)
        bank = dec.rank * o.banks + bank_in_rank
    else:
        mode = f"nmp-{hw.nmp.level.value}"
        # each rank's units are driven by their own controller (the DIMM buffer / logic die)
        ranks_per_ctrl, ctrl = 1, dec.channel * o.ranks + dec.rank
        per_bus = {NmpLevel.RANK: o.banks, NmpLevel.BANKGROUP: o.banks_per_group * hw.nmp.instances_per_unit,
                   NmpLevel.BANK: hw.nmp.instances_per_unit}[hw.nmp.level]
        gap = 0
        if hw.nmp.max_local_gbps > 0:
            gap = math.ceil(o.line_bytes / hw.nmp.max_local_gbps / tck)  # bytes / (GB/s) = ns
        params = engine_params(hw, ranks=1, banks_per_bus=per_bus, bus_gap_cycles=gap)
        bank = bank_in_rank
    for c in np.unique(ctrl[~cached]):
        sel = np.flatnonzero((ctrl == c) & ~cached)
        res = run_controller(bank[sel], dec.row[sel], no_writes[sel], zeros[sel], dec.line[sel], params)
        complete[sel] = res.completion_cycles
        counts += res.counts
        results.append(res)
    dram_cycles = int(complete.max()) if results else 0
    dram_s = dram_cycles * tck * 1e-9
    elems_per_burst = o.line_bytes // np.array([t.bytes_per_element for t in batch.tables], np.int64)
    peak_bytes_per_s = hw.peak_channel_gbps * 1e9
    if hw.nmp is None:
        unit_s, transfer_s = 0.0, 0.0
        channel_bytes = n * o.line_bytes
        latency_s, bound_by = dram_s, "dram"
        adds = 0
        local_bits = 0
    else:
        unit_dram_s = np.zeros(n_units)
        np.maximum.at(unit_dram_s, units, complete * tck * 1e-9)
        adds_per_unit = np.bincount(units, weights=elems_per_burst[req.table], minlength=n_units)
        unit_compute_s = adds_per_unit / hw.nmp.simd_lanes / (hw.nmp.clock_mhz * 1e6)
        unit_s = float(unit_compute_s.max())
        unit_done_s = float(np.maximum(unit_dram_s, unit_compute_s).max())
        # one partial sum per (unit, sample, table, burst of the vector) crosses the channel
        key = ((units * batch.batch_size + req.sample) * len(batch.tables) + req.table) * 4096 + req.part
        uniq = np.unique(key)
        u_unit = uniq // 4096 // len(batch.tables) // batch.batch_size
        channel_of_unit = u_unit // (n_units // (o.channels))
        per_channel_bytes = np.bincount(channel_of_unit, minlength=o.channels) * o.line_bytes
        channel_bytes = int(per_channel_bytes.sum())
        transfer_s = float(per_channel_bytes.max()) / peak_bytes_per_s
        # partial sums stream out while later samples are gathered; the last sample's go after
        latency_s = max(unit_done_s, transfer_s) + transfer_s / batch.batch_size
        stages = {"dram": float(unit_dram_s.max()), "unit compute": unit_s, "channel": transfer_s}
        bound_by = max(stages, key=stages.get)
        adds = int(adds_per_unit.sum())
        local_bits = int(n - cached.sum()) * o.line_bytes * 8
    end_cycle = max(1, math.ceil(latency_s / (tck * 1e-9)))
    active = sum(active_rank_cycles(res, ranks_per_ctrl, end_cycle) for res in results)
    all_rank_cycles = o.channels * o.ranks * end_cycle
    action_counts = ActionCounts(
        activations=int(counts[E.C_ACT]), precharges=int(counts[E.C_PRE]),
        reads=int(counts[E.C_RD]), writes=int(counts[E.C_WR]),
        refreshes=refreshes_until(hw, o.ranks, end_cycle) * o.channels,
        active_rank_cycles=min(active, all_rank_cycles),
        precharged_rank_cycles=all_rank_cycles - min(active, all_rank_cycles),
        channel_bits=channel_bytes * 8, local_bits=local_bits, unit_adds=adds,
    )
    breakdown = energy_breakdown_pj(action_counts, EnergyTable.from_hardware(hw))
    energy_j = sum(breakdown.values()) * 1e-12
    return Report(
        hardware=hw.name, mode=mode, seed=seed, batch_size=batch.batch_size, lookups=batch.lookups,
        dram_bursts=int(n - cached.sum()), cache_hit_rate=float(cached.mean()) if n else 0.0, latency_s=latency_s, throughput_samples_per_s=batch.batch_size / latency_s,
        energy_j=energy_j, energy_per_sample_j=energy_j / batch.batch_size, energy_breakdown_pj=breakdown,
        bound_by=bound_by, dram_s=dram_s, unit_compute_s=unit_s, channel_transfer_s=transfer_s,
        channel_bytes=channel_bytes, activations=action_counts.activations,
        row_hit_rate=float(counts[E.C_HITS]) / max(1, int(n - cached.sum())),
        channel_bandwidth_gbps=channel_bytes / latency_s / 1e9,
    )
