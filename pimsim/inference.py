"""Whole-inference latency and energy: embedding lookups plus dense layers, wherever they run.

The model (README "Whole-inference model" has the long form):

- Embedding bags run as :func:`pimsim.simulate` runs them, on the host's DRAM or on
  the near-memory units, and their pooled results end on the host.
- Dense layers run in the order given, each on the place the hardware's
  ``[mapping]`` names: products with a stationary weight operand on ``gemm``'s
  place, everything else following its producer where that place can run it.
  A layer's input is the previous layer's output; when consecutive layers sit in
  different places the tensor moves through the host (DRAM channels for the units,
  the crossbar's link for the crossbar).
- Host: a roofline, time = launch overhead + max(FLOPs / peak, DRAM bytes / bandwidth);
  DRAM bytes are the weights that do not fit the cache and the activations beyond it.
  A host with a measured GEMM table replaces the peak of an fp32 weight GEMM by the
  table's rate at its shape (``Host.gemm_flops``).
- Units beside the DRAM banks: weights resident in their banks, input vectors
  broadcast over every channel, each unit streams its share of the weights once per
  group of inputs its buffer holds, at the rate the DRAM engine gives for one
  unit's banks (all units run in lock step, as HBM-PIM's all-bank mode does),
  bounded also by the units' SIMD lanes.
- Crossbar: arrays hold the weights in ``cells_per_weight`` cells each; every input
  vector takes ``input_cycles`` array cycles; energy is counted per ADC conversion,
  DAC row drive, cell operation and shift-and-add, plus the rest of each tile in use
  drawing its power while the crossbar is busy. Weights that do not fit the
  arrays are reprogrammed every batch (``overflow = "reload"``) or rejected.
- Successive batches pipeline over four resources: ``memory`` (DRAM, units and
  channels), ``host``, ``crossbar`` and ``link``. Throughput is the batch over the
  busiest resource's time, which is the bounding stage; latency is the sum of
  every step of one batch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

from ._pages import small_pages
from .config import Hardware, NmpLevel, Overflow, Place
from .dense import GLUE_KINDS, Elementwise, Gemm, Reduction, Softmax, Workload, layer_kind, load_workload
from .embedding import Report, simulate
from .energy import ActionCounts, EnergyTable, energy_breakdown_pj
from .presets import load_hardware
from .report import ReportMixin
from .sim import check_threads, engine_params, refreshes_until, run_controller

__all__ = ["InferenceReport", "LayerCost", "query"]

RESOURCES = ("memory", "host", "crossbar", "link")
# bursts of one unit's weight stream that the DRAM engine simulates; longer streams are
# scaled from it (a streaming pattern repeats row after row)
_STREAM_SIM_BURSTS = 4096


@dataclass(frozen=True)
class LayerCost:
    """One step of a batch: a dense layer, a transfer or the embedding stage."""

    name: str
    part: str
    op: str
    place: str
    resource: str
    time_s: float
    energy_pj: float
    flops: int = 0
    fallback: bool = False  # mapped elsewhere, ran on the host because its place cannot


@dataclass(frozen=True)
class InferenceReport(ReportMixin):
    """One inference batch on one hardware. Times in s, energies in J unless named."""

    hardware: str
    workload: str
    seed: int | None
    batch_size: int
    latency_s: float
    throughput_samples_per_s: float
    energy_j: float
    energy_per_sample_j: float
    energy_breakdown_pj: dict  # by action
    energy_by_part_pj: dict  # by workload part ("embedding", layer parts, "transfer")
    stages: dict  # resource -> busy seconds per batch
    bound_by: str
    area_mm2: float  # of the PIM parts: near-memory units and crossbar tiles
    peak_power_w: float  # of the PIM parts
    dense_flops: int
    fallbacks: int
    layers: tuple = ()
    embedding: Report | None = None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("layers", "embedding")}
        for key in ("energy_breakdown_pj", "energy_by_part_pj", "stages"):
            out[key] = dict(out[key])
        out["layers"] = [dict(l.__dict__) for l in self.layers]
        out["embedding"] = self.embedding.to_dict() if self.embedding is not None else None
        return out

    def to_row(self) -> dict:
        """Flat dict for a pandas row (layers and the embedding report left out)."""
        out = self.to_dict()
        del out["layers"], out["embedding"]
        for key, prefix, suffix in (("energy_breakdown_pj", "energy_", "_pj"),
                                    ("energy_by_part_pj", "part_", "_pj"), ("stages", "stage_", "_s")):
            for k, v in out.pop(key).items():
                out[f"{prefix}{k}{suffix}"] = v
        return out


class _Tally:
    """Accumulates steps, energy by action and by part, and busy time per resource."""

    def __init__(self) -> None:
        self.steps: list[LayerCost] = []
        self.by_action: dict[str, float] = {}
        self.by_part: dict[str, float] = {}
        self.busy = dict.fromkeys(RESOURCES, 0.0)

    def add(self, step: LayerCost, actions: dict[str, float]) -> None:
        total = float(sum(actions.values()))
        step = replace(step, energy_pj=total)
        self.steps.append(step)
        self.busy[step.resource] += step.time_s
        self.by_part[step.part] = self.by_part.get(step.part, 0.0) + total
        for k, v in actions.items():
            self.by_action[k] = self.by_action.get(k, 0.0) + float(v)


def _host_layer(layer, hw: Hardware, weight_miss: float, *, dispatch: bool = True, skip_in_bytes: int = 0,
                skip_out: bool = False, kernel: str | None = None) -> tuple[float, dict, float]:
    """Roofline time (s), energy by action (pJ) and DRAM bytes of one layer on the host.

    ``weight_miss``: the fraction of the host's weights that do not fit its cache.
    Activations spill to DRAM only by what exceeds the cache, so costs grow smoothly
    with tensor size rather than jumping when a tensor stops fitting. A layer fused
    into the kernel before it pays no dispatch (``dispatch=False``) and does not read
    that kernel's output from memory (``skip_in_bytes``); a layer whose output the
    next fused layer consumes in the same kernel does not write it (``skip_out``).
    ``kernel``: the kind whose dispatch cost it pays (default: its own kind).
    """
    host = hw.host
    bpe = layer.bytes_per_element
    out_bytes = 0 if skip_out else layer.out_bytes
    act_bytes = layer.in_bytes - skip_in_bytes + out_bytes
    spill_bytes = max(0, act_bytes - host.cache_bytes)
    dram_bytes = spill_bytes + layer.weight_bytes * weight_miss
    bw = _host_bandwidth(hw)
    if isinstance(layer, Softmax):
        rate = host.softmax_flops(bpe)
    elif not isinstance(layer, Gemm):
        rate = host.vector_flops(bpe)
    elif not layer.weights:
        rate = host.matmul_gflops * 1e9 if host.matmul_gflops > 0 else host.peak_flops(bpe)
    else:
        # the measured rate of a product of this shape where the host has a GEMM table, else the peak
        rate = host.gemm_flops(layer.m, layer.k, layer.n, bpe)
    compute_s = layer.flops / rate
    if isinstance(layer, Softmax) and layer.queries > 0 and host.attention_block_rows > 0:
        # a fused attention kernel's softmax: blocks of queries per (batch, head) pair
        q = layer.queries
        blocks = layer.rows // q * -(-q // host.attention_block_rows)
        compute_s = blocks * (host.attention_block_ns + host.attention_block_score_ns * layer.cols) * 1e-9
        if host.attention_key_align > 0:
            # keys past the last whole group run one by one, for every query
            compute_s += layer.rows * (layer.cols % host.attention_key_align) * host.attention_tail_ns * 1e-9
    mem_s = dram_bytes / bw
    if host.first_touch_gbps > 0 and host.first_touch_min_bytes > 0:
        if out_bytes >= host.first_touch_min_bytes:
            # the allocator maps an output this large afresh each call: new pages, zeroed on first touch
            mem_s += out_bytes / (host.first_touch_gbps * 1e9)
    elif host.first_touch_gbps > 0 and spill_bytes:
        # the output's share of the spill arrives in fresh pages, mapped and zeroed on first touch
        mem_s += spill_bytes * out_bytes / act_bytes / (host.first_touch_gbps * 1e9)
    if host.strided_copy_gbps > 0 and isinstance(layer, Elementwise) and layer.strided:
        # a transposing copy gathers element by element, far below the streaming rate
        mem_s = max(mem_s, layer.in_bytes / (host.strided_copy_gbps * 1e9))
    if host.act_cache_gbps > 0:
        # every byte the layer touches passes through the cache, even one that stays there
        weight_gbps = host.weight_cache_gbps or host.act_cache_gbps
        mem_s = max(mem_s, act_bytes / (host.act_cache_gbps * 1e9) + layer.weight_bytes / (weight_gbps * 1e9))
    overhead_ns = 0.0
    if dispatch:
        kind = kernel or layer_kind(layer)
        overhead_ns = host.call_overhead_ns if kind == "call" else host.overhead_ns(kind)
    time_s = overhead_ns * 1e-9 + max(compute_s, mem_s)
    actions = {"host_compute": layer.flops * host.pj_per_flop(bpe), "host_dram": dram_bytes * host.dram_pj_per_byte,
               "host_static": host.static_w * time_s * 1e12}
    return time_s, actions, dram_bytes


def _joins(prev: str, kind: str, host) -> bool:
    """Whether a host layer of ``kind`` runs in the kernel of the host layer of kind ``prev`` before it."""
    if "attention" in host.fuse and (prev, kind) in (("matmul", "softmax"), ("softmax", "matmul")):
        return True
    if kind not in host.fuse:
        return False
    return host.fuse_into_gemm or prev not in ("gemm", "matmul")


def _fusion(layers, places, host) -> tuple[list[bool], list[int], list[bool], list[str | None]]:
    """Per layer: joins the kernel before it, input bytes it need not read, output it
    need not write, and the kind of kernel it starts when that is not its own kind
    (an attention product that a softmax joins starts an "attention" kernel).

    Only layers on the host fuse, and only with the host compute layer just before
    them; glue layers (copies, calls) neither fuse nor break a chain.
    """
    n = len(layers)
    joined, skip_in, skip_out, kernel = [False] * n, [0] * n, [False] * n, [None] * n
    if not host.fuse:
        return joined, skip_in, skip_out, kernel
    prev = None
    for i, layer in enumerate(layers):
        kind = layer_kind(layer)
        if kind in GLUE_KINDS:
            continue
        if (places[i] is Place.HOST and prev is not None and places[prev] is Place.HOST
                and _joins(layer_kind(layers[prev]), kind, host)):
            joined[i] = True
            skip_in[i] = min(layer.in_bytes, layers[prev].out_bytes)
            skip_out[prev] = True
            if kind == "softmax" and "attention" in host.fuse and layer_kind(layers[prev]) == "matmul":
                kernel[prev] = "attention"
        prev = i
    return joined, skip_in, skip_out, kernel


def _host_bandwidth(hw: Hardware) -> float:
    """Host memory bandwidth in bytes/s."""
    gbps = hw.host.mem_gbps or hw.peak_channel_gbps * hw.org.channels
    return gbps * 1e9


def _unit_banks(hw: Hardware) -> int:
    """Banks one near-memory unit reads."""
    o, nmp = hw.org, hw.nmp
    if nmp.level is NmpLevel.RANK:
        return o.banks
    if nmp.level is NmpLevel.BANKGROUP:
        return o.banks_per_group * nmp.instances_per_unit
    return nmp.instances_per_unit


@functools.lru_cache(maxsize=256)
def _unit_stream(org, timing, power, controller, nmp, n_bursts: int) -> tuple[int, np.ndarray]:
    """DRAM cycles and engine counts for one unit streaming ``n_bursts`` sequential bursts.

    Consecutive bursts rotate over the unit's banks (bank groups first), each bank
    reading its rows in order.
    """
    hw = Hardware(name="stream", description="", org=org, timing=timing, power=power,
                  controller=controller, nmp=nmp)
    nb = _unit_banks(hw)
    i = np.arange(n_bursts, dtype=np.int64)
    slot = i % nb
    bank = (slot % org.bankgroups) * org.banks_per_group + (slot // org.bankgroups) % org.banks_per_group
    local = i // nb
    row = local // org.lines_per_row
    line = i  # every burst is a distinct line
    gap = 0
    if nmp.max_local_gbps > 0:
        gap = math.ceil(org.line_bytes / nmp.max_local_gbps / timing.tck_ns)
    params = engine_params(hw, ranks=1, banks_per_bus=nb, bus_gap_cycles=gap)
    res = run_controller(bank, row, np.zeros(n_bursts, np.bool_), np.zeros(n_bursts, np.int64), line, params)
    return int(res.completion_cycles.max()), res.counts.copy()


def _nmp_gemm(layer: Gemm, hw: Hardware) -> tuple[float, dict, float]:
    """Time (s), energy by action (pJ) and DRAM time (s) of a weight GEMM on the units."""
    from . import _engine as E

    o, t, nmp = hw.org, hw.timing, hw.nmp
    bpe = layer.bytes_per_element
    units = min(hw.nmp_units(), layer.n * layer.count)  # split over output columns
    reuse = max(1, min(layer.m, nmp.buffer_bytes // (nmp.simd_lanes * bpe)))
    passes = -(-layer.m // reuse)
    stream_bytes = -(-layer.weight_bytes // units) * passes
    bursts = max(1, -(-stream_bytes // o.line_bytes))
    sim = min(bursts, _STREAM_SIM_BURSTS)
    cycles_sim, counts_sim = _unit_stream(o, t, hw.power, hw.controller, nmp, sim)
    scale = bursts / sim
    dram_cycles = cycles_sim * scale
    dram_s = dram_cycles * t.tck_ns * 1e-9
    macs_per_unit = -(-layer.macs // units)
    compute_s = macs_per_unit / nmp.simd_lanes / (nmp.clock_mhz * 1e6)
    channel_bps = hw.peak_channel_gbps * 1e9
    broadcast_s = layer.in_bytes / channel_bps  # every channel carries the whole input
    time_s = nmp.launch_ns * 1e-9 + broadcast_s + max(dram_s, compute_s)
    ranks = o.channels * o.ranks
    end_cycle = max(1, math.ceil(time_s / (t.tck_ns * 1e-9)))
    counts = ActionCounts(
        activations=round(counts_sim[E.C_ACT] * scale * units), precharges=round(counts_sim[E.C_PRE] * scale * units),
        reads=round(counts_sim[E.C_RD] * scale * units), refreshes=refreshes_until(hw, o.ranks, end_cycle) * o.channels,
        active_rank_cycles=ranks * end_cycle, channel_bits=layer.in_bytes * o.channels * 8,
        local_bits=stream_bytes * units * 8, unit_adds=layer.macs, unit_muls=layer.macs)
    return time_s, energy_breakdown_pj(counts, EnergyTable.from_hardware(hw)), dram_s


def _nmp_elementwise(layer, hw: Hardware) -> tuple[float, dict]:
    nmp = hw.nmp
    time_s = layer.flops / (hw.nmp_units() * nmp.simd_lanes * nmp.clock_mhz * 1e6)
    return time_s, {"compute": layer.flops * nmp.add_pj}


def _crossbar_arrays(layer: Gemm, hw: Hardware) -> int:
    xb = hw.crossbar
    return layer.count * -(-layer.k // xb.rows) * -(-(layer.n * xb.cells_per_weight) // xb.cols)


def _crossbar_gemm(layer: Gemm, hw: Hardware, replicas: int) -> tuple[float, dict]:
    """Time (s) and energy by action (pJ) of a weight GEMM on the crossbar arrays."""
    xb = hw.crossbar
    row_blocks = -(-layer.k // xb.rows)
    col_blocks = -(-(layer.n * xb.cells_per_weight) // xb.cols)
    vectors = layer.m * layer.count
    cycles = xb.input_cycles
    time_s = -(-layer.m // replicas) * cycles * xb.cycle_ns * 1e-9
    conversions = vectors * row_blocks * layer.n * xb.cells_per_weight * cycles
    act_bytes = vectors * (layer.k + layer.n) * xb.input_bits / 8
    actions = {
        "xbar_adc": conversions * xb.adc_pj,
        "xbar_dac": vectors * layer.k * col_blocks * cycles * xb.dac_pj,
        "xbar_array": vectors * layer.k * layer.n * xb.cells_per_weight * cycles * xb.cell_op_fj * 1e-3,
        "xbar_digital": conversions * xb.shift_add_pj,
        "xbar_buffer": act_bytes * (xb.buffer_pj_per_byte + xb.bus_pj_per_byte),
    }
    return time_s, actions


def _crossbar_elementwise(layer, hw: Hardware) -> tuple[float, dict]:
    xb = hw.crossbar
    time_s = layer.flops / (xb.digital_ops_per_ns * xb.tiles * 1e9)
    return time_s, {"xbar_digital": layer.flops * xb.digital_pj_per_op}


def _runs_on(place: Place, layer) -> bool:
    if place is Place.HOST:
        return True
    if isinstance(layer, Gemm):
        return layer.weights
    return isinstance(layer, (Elementwise, Reduction))


def _move(tally: _Tally, hw: Hardware, nbytes: int, src: Place, dst: Place, name: str) -> None:
    """Move a tensor between places, through the host."""
    for a, b in ((src, Place.HOST), (Place.HOST, dst)):
        if a is b:
            continue
        far = b if a is Place.HOST else a
        if far is Place.NMP:
            # spread over all channels; each byte crosses once
            time_s = nbytes / (hw.peak_channel_gbps * 1e9 * hw.org.channels)
            step = LayerCost(name, "transfer", "transfer", f"{a.value}->{b.value}", "memory", time_s, 0.0)
            tally.add(step, {"io": nbytes * 8 * hw.power.io_pj_per_bit})
        else:
            xb = hw.crossbar
            time_s = nbytes / (xb.link_gbps * 1e9)
            step = LayerCost(name, "transfer", "transfer", f"{a.value}->{b.value}", "link", time_s, 0.0)
            tally.add(step, {"link": nbytes * 8 * xb.link_pj_per_bit})


def _check(workload: Workload, hw: Hardware) -> None:
    if hw.host is None:
        raise ValueError(f"hardware {hw.name!r} has no [host] section; whole-inference queries need one")


@small_pages()
def query(workload: Workload | str, hardware: Hardware | str, *, seed: int | None = 0,
          threads: int | None = None) -> InferenceReport:
    """Latency and energy of one inference batch of ``workload`` on ``hardware``.

    ``workload``: a :class:`Workload`, a built-in name (rm1, rm2, rm3, dlrm) or a
    TOML/JSON file. Embedding indices are drawn from ``numpy.random.default_rng(seed)``.
    ``threads``: as in :func:`pimsim.simulate` (large batches only, by default).
    """
    check_threads(threads)
    w = load_workload(workload)
    hw = load_hardware(hardware)
    _check(w, hw)
    tally = _Tally()
    emb_report = None
    if w.tables:
        emb_report = simulate(w.embeddings, hw, seed=seed, threads=threads)
        actions = dict(emb_report.energy_breakdown_pj)
        host_tables = [t for t, d in zip(w.tables, emb_report.per_table) if d["place"] == "host"]
        if host_tables:
            # the host adds the gathered vectors; its cores overlap with the gathers
            adds = sum(t.pooling * t.dim for t in host_tables) * w.batch_size
            actions["host_compute"] = adds * hw.host.pj_per_flop(host_tables[0].bytes_per_element)
        place = emb_report.mode.split("-")[0]
        tally.add(LayerCost("embedding", "embedding", "embedding", place, "memory", emb_report.latency_s, 0.0),
                  actions)
    host_weights = sum(l.weight_bytes for l in w.dense if not (isinstance(l, Gemm) and l.weights
                                                               and hw.mapping.gemm is not Place.HOST))
    weight_miss = max(0.0, 1.0 - hw.host.cache_bytes / host_weights) if host_weights else 0.0
    xb_layers = [l for l in w.dense if isinstance(l, Gemm) and l.weights] if hw.mapping.gemm is Place.CROSSBAR else []
    replicas = 1
    needed = sum(_crossbar_arrays(l, hw) for l in xb_layers)
    if xb_layers:
        available = hw.crossbar.arrays
        if needed > available:
            if hw.crossbar.overflow is Overflow.REJECT:
                raise ValueError(f"{w.name or 'workload'} needs {needed} crossbar arrays of "
                                 f"{hw.crossbar.rows}x{hw.crossbar.cols}; {hw.name} has {available} "
                                 f"(crossbar.overflow = 'reject')")
            xb = hw.crossbar
            rounds = -(-needed // available)
            cells = sum(l.k * l.n * l.count for l in xb_layers) * xb.cells_per_weight
            tally.add(LayerCost("crossbar.reload", "reload", "reload", "crossbar", "crossbar",
                                rounds * xb.rows * xb.write_ns * 1e-9, 0.0), {"xbar_write": cells * xb.write_pj_per_cell})
        else:
            replicas = max(1, available // needed)
    # glue between operators costs only on hosts that dispatch it; elsewhere it is not there,
    # except a transposing copy where the host rates it: a compiled graph still runs one
    # before a product of a transposed input
    layers = [l for l in w.dense if hw.host.glue_ops or layer_kind(l) not in GLUE_KINDS
              or (hw.host.strided_copy_gbps > 0 and isinstance(l, Elementwise) and l.strided)]
    places = []
    prev = Place.HOST
    for layer in layers:
        if isinstance(layer, Gemm) and layer.weights:
            place = hw.mapping.gemm
        elif hw.mapping.other == "follow" and _runs_on(prev, layer):
            place = prev
        else:
            place = Place.HOST
        fallback = False
        if not _runs_on(place, layer):
            place, fallback = Place.HOST, True
        places.append((place, fallback))
        prev = place
    joined, skip_in, skip_out, kernel = _fusion(layers, [p for p, _ in places], hw.host)
    if hw.host.batch_overhead_ns > 0 and layers:
        entry_s = hw.host.batch_overhead_ns * 1e-9
        tally.add(LayerCost("host.entry", "runtime", "runtime", "host", "host", entry_s, 0.0),
                  {"host_static": hw.host.static_w * entry_s * 1e12})
    prev = Place.HOST
    for i, (layer, (place, fallback)) in enumerate(zip(layers, places)):
        name = layer.name or f"{layer.op}{i}"
        # what moves is at most what the producer wrote and at most what this layer reads
        moved = layer.in_bytes if i == 0 else min(layer.in_bytes, layers[i - 1].out_bytes)
        if place is Place.NMP and isinstance(layer, Gemm):
            # the units need the whole input vector: it comes from the host
            _move(tally, hw, moved, prev, Place.HOST, f"{name}.in")
        elif place is not prev:
            _move(tally, hw, moved, prev, place, f"{name}.in")
        if place is Place.HOST:
            time_s, actions, _ = _host_layer(layer, hw, weight_miss, dispatch=not joined[i],
                                             skip_in_bytes=skip_in[i], skip_out=skip_out[i], kernel=kernel[i])
        elif place is Place.NMP:
            time_s, actions = (_nmp_gemm(layer, hw)[:2] if isinstance(layer, Gemm)
                               else _nmp_elementwise(layer, hw))
        else:
            time_s, actions = (_crossbar_gemm(layer, hw, replicas) if isinstance(layer, Gemm)
                               else _crossbar_elementwise(layer, hw))
        resource = {Place.HOST: "host", Place.NMP: "memory", Place.CROSSBAR: "crossbar"}[place]
        tally.add(LayerCost(name, layer.part, layer.op, place.value, resource, time_s, 0.0, layer.flops, fallback),
                  actions)
        prev = place
    if prev is not Place.HOST and layers:
        _move(tally, hw, layers[-1].out_bytes, prev, Place.HOST, "output")
    if xb_layers:
        # the rest of every tile holding weights (buffers, routers, digital units) draws
        # its power while the crossbar is busy; idle tiles are assumed power-gated
        xb = hw.crossbar
        tiles = min(xb.tiles, -(-min(needed * replicas, xb.arrays) // xb.arrays_per_tile))
        static_pj = tiles * xb.tile_other_mw * 1e-3 * tally.busy["crossbar"] * 1e12
        tally.add(LayerCost("crossbar.static", "static", "static", "crossbar", "crossbar", 0.0, 0.0),
                  {"xbar_static": static_pj})
    latency_s = sum(s.time_s for s in tally.steps)
    bound_by = max(tally.busy, key=tally.busy.get)
    bottleneck_s = tally.busy[bound_by]
    energy_j = sum(tally.by_action.values()) * 1e-12
    area, power = _pim_area_power(hw)
    return InferenceReport(
        hardware=hw.name, workload=w.name, seed=seed if w.tables else None, batch_size=w.batch_size,
        latency_s=latency_s, throughput_samples_per_s=w.batch_size / bottleneck_s if bottleneck_s > 0 else math.inf,
        energy_j=energy_j, energy_per_sample_j=energy_j / w.batch_size, energy_breakdown_pj=tally.by_action,
        energy_by_part_pj=tally.by_part, stages=tally.busy, bound_by=bound_by, area_mm2=area,
        peak_power_w=power, dense_flops=w.dense_flops, fallbacks=sum(s.fallback for s in tally.steps),
        layers=tuple(tally.steps), embedding=emb_report)


def _pim_area_power(hw: Hardware) -> tuple[float, float]:
    """Area (mm^2) and peak power (W) of the near-memory units and the crossbar tiles."""
    area = power = 0.0
    if hw.nmp is not None:
        n = hw.nmp_units()
        area += n * hw.nmp.unit_area_mm2
        power += n * hw.nmp.simd_lanes * hw.nmp.clock_mhz * 1e6 * (hw.nmp.add_pj + hw.nmp.mul_pj) * 1e-12
    if hw.crossbar is not None:
        area += hw.crossbar.area_mm2
        power += hw.crossbar.peak_power_w
    return area, power
