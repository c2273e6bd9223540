"""Public DRAM simulation: validate, unpack into arrays, run the kernels, wrap the results."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import _engine as E
from ._pages import small_pages
from .config import Hardware, PagePolicy, Scheduler
from .energy import ActionCounts, EnergyTable, energy_breakdown_pj
from .mapping import controller_fields
from .presets import load_hardware
from .report import ReportMixin
from .trace import Trace

__all__ = ["TraceReport", "simulate_trace"]


def engine_params(hw: Hardware, *, ranks: int, banks_per_bus: int, bus_gap_cycles: int = 0) -> np.ndarray:
    """The kernel's int64 parameter vector for one controller with ``ranks`` ranks."""
    t, o, c = hw.timing, hw.org, hw.controller
    p = np.zeros(E.N_PARAMS, np.int64)
    p[E.P_CL], p[E.P_CWL], p[E.P_TRCD], p[E.P_TRP], p[E.P_TRAS] = t.cl, t.cwl, t.trcd, t.trp, t.tras
    p[E.P_TRRD_S], p[E.P_TRRD_L], p[E.P_TFAW] = t.trrd_s, t.trrd_l, t.tfaw
    p[E.P_TCCD_S], p[E.P_TCCD_L], p[E.P_TWTR_S], p[E.P_TWTR_L] = t.tccd_s, t.tccd_l, t.twtr_s, t.twtr_l
    p[E.P_TWR], p[E.P_TRTP], p[E.P_TRFC], p[E.P_TREFI], p[E.P_TRTRS] = t.twr, t.trtp, t.trfc, t.trefi, t.trtrs
    p[E.P_BURST] = o.burst_length // 2
    p[E.P_RANKS], p[E.P_BANKGROUPS], p[E.P_BANKS_PER_GROUP] = ranks, o.bankgroups, o.banks_per_group
    p[E.P_CLOSED] = int(o.page_policy is PagePolicy.CLOSED)
    p[E.P_TQ], p[E.P_CQ] = c.transaction_queue, c.command_queue
    p[E.P_COALESCE], p[E.P_FORWARD], p[E.P_FWD_LAT] = int(c.coalesce_reads), int(c.forward_writes), c.forward_latency
    p[E.P_BANKS_PER_BUS] = banks_per_bus
    p[E.P_BUS_GAP] = bus_gap_cycles
    p[E.P_FRFCFS] = int(c.scheduler is Scheduler.FRFCFS)
    p[E.P_WQ], p[E.P_WHIGH], p[E.P_WLOW] = c.write_queue, c.write_high_watermark, c.write_low_watermark
    p[E.P_HIT_CAP] = c.row_hit_cap
    return p


def prev_same_line(lines: np.ndarray) -> np.ndarray:
    """For each request, the index of the latest earlier request to the same line, or -1."""
    return E._prev_same_line(np.ascontiguousarray(lines, np.int64))


@dataclass(frozen=True)
class ControllerResult:
    """Per-request results (input order) and counts of one controller run."""

    accept_cycles: np.ndarray
    completion_cycles: np.ndarray
    kind: np.ndarray
    counts: np.ndarray
    act_rank: np.ndarray
    act_start: np.ndarray
    act_end: np.ndarray


def run_controller(bank: np.ndarray, row: np.ndarray, is_write: np.ndarray, arrival: np.ndarray,
                   lines: np.ndarray, params: np.ndarray) -> ControllerResult:
    """Run one controller; ``bank`` is rank * banks_per_rank + bank group * banks_per_group + bank."""
    n = len(bank)
    accept = np.zeros(n, np.int64)
    complete = np.zeros(n, np.int64)
    kind = np.zeros(n, np.int64)
    args = (np.ascontiguousarray(bank, np.int64), np.ascontiguousarray(row, np.int64),
            np.ascontiguousarray(is_write, np.bool_), np.ascontiguousarray(arrival, np.int64),
            prev_same_line(np.asarray(lines, np.int64)), params)
    capacity = n + n // 4 + 1024  # refresh can make a request activate its row again
    for _attempt in range(8):
        counts = np.zeros(E.N_COUNTS, np.int64)
        act_rank = np.zeros(capacity, np.int64)
        act_start = np.zeros(capacity, np.int64)
        act_end = np.zeros(capacity, np.int64)
        n_acts = E._simulate(*args, accept, complete, kind, counts, act_rank, act_start, act_end)
        if n_acts <= capacity:
            break
        # refresh closed rows that had to be opened again: rerun with room for every ACT
        capacity = n_acts
    return ControllerResult(accept, complete, kind, counts,
                            act_rank[:n_acts], act_start[:n_acts], act_end[:n_acts])


#: Requests over all controllers of one call from which ``threads=None`` runs them on
#: threads. A pool costs about 0.5 ms to start and stop. With 2 threads on 2 cores, random
#: reads on gpu-a100's 80 channels ran 0.61x at 10k requests, 0.97x at 30k and 1.26x at
#: 100k; on cpu-server's 6 channels 1.18x, 1.49x and 1.57x
#: (``benchmarks/controller_threads.py``, results/controller_threads_small.csv, median of 7).
PARALLEL_MIN_REQUESTS = 1 << 16


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def check_threads(threads: int | None) -> None:
    """Raise ValueError unless ``threads`` is an integer >= 1, or None with
    ``PIMSIM_THREADS`` unset or valid."""
    if threads is None:
        env_threads()
    elif isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be None or an integer >= 1, got {threads!r}")


def env_threads() -> int | None:
    """``PIMSIM_THREADS`` (the thread count that ``threads=None`` means), or None if unset."""
    text = os.environ.get("PIMSIM_THREADS", "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"PIMSIM_THREADS must be an integer >= 1, got {text!r}")
    return int(text)


def controller_threads(threads: int | None, n_jobs: int, n_requests: int) -> int:
    """Threads to run ``n_jobs`` independent controllers on: ``threads`` if given, else
    ``PIMSIM_THREADS`` if set (a process pool's workers set it to their share), else one
    per usable core once they hold ``PARALLEL_MIN_REQUESTS`` requests; never more than
    the jobs."""
    if threads is None:
        threads = env_threads()  # validates it
        if threads is None:
            threads = _usable_cores() if n_requests >= PARALLEL_MIN_REQUESTS else 1
    else:
        check_threads(threads)
    return max(1, min(int(threads), n_jobs))


def run_controllers(arrays: tuple, sels: list[np.ndarray], params: np.ndarray,
                    threads: int | None = None) -> list[ControllerResult]:
    """Run independent controllers: controller ``k`` gets ``a[sels[k]]`` of each of
    ``arrays`` = (bank, row, is_write, arrival, lines), as in ``run_controller``. Results
    in ``sels`` order. The kernels release the GIL, so on threads the controllers run in
    parallel; results do not depend on the thread count. Each controller gathers its own
    inputs, so at most one per thread holds them at a time."""
    def run(k: int) -> ControllerResult:
        return run_controller(*(a[sels[k]] for a in arrays), params)

    n_threads = controller_threads(threads, len(sels), sum(len(sel) for sel in sels))
    if n_threads == 1:
        return [run(k) for k in range(len(sels))]
    # longest first, so that a long controller does not start last
    order = sorted(range(len(sels)), key=lambda k: -len(sels[k]))
    results: list[ControllerResult | None] = [None] * len(sels)
    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="pimsim") as pool:
        futures = {pool.submit(run, k): k for k in order}
        try:
            for future, k in futures.items():
                results[k] = future.result()
        except BaseException:
            # a failed controller (or an interrupt) fails the call: do not start the rest
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def split_by(keys: np.ndarray, n_groups: int, index: np.ndarray | None = None) -> list[np.ndarray]:
    """The indices (or ``index[...]``) of each non-empty group of ``keys`` (ints in
    [0, n_groups)), ascending by key, each in index order: one O(n) pass instead of a
    scan of every request per group (80 scans of a 10M-request trace took 0.83 s)."""
    order, counts = E._group_by(np.ascontiguousarray(keys, np.int64), int(n_groups))
    if index is not None:
        order = np.asarray(index)[order]
    return [part for part in np.split(order, np.cumsum(counts)[:-1]) if len(part)]


def active_rank_cycles(res: ControllerResult, n_ranks: int, end_cycle: int) -> int:
    """Rank-cycles with at least one bank open, within [0, end_cycle]."""
    return int(E._active_rank_cycles(res.act_rank, res.act_start, res.act_end, n_ranks, end_cycle))


def refreshes_until(hw: Hardware, n_ranks: int, end_cycle: int) -> int:
    """Refresh commands that staggered per-rank refresh issues in [0, end_cycle]."""
    trefi = hw.timing.trefi
    if trefi <= 0:
        return 0
    first = (np.arange(n_ranks) + 1) * trefi // n_ranks
    return int(np.sum(np.where(end_cycle >= first, (end_cycle - first) // trefi + 1, 0)))


@dataclass(frozen=True)
class TraceReport(ReportMixin):
    """Result of one trace. Per-request arrays are kept out of :meth:`to_dict`."""

    _ARRAY_FIELDS = ("accept_cycles", "completion_cycles")

    hardware: str
    scheduler: str
    requests: int
    cycles: int
    seconds: float
    activations: int
    precharges: int
    reads: int
    writes: int
    refreshes: int
    row_hits: int
    coalesced: int
    forwarded: int
    bus_busy_cycles: int  # data-bus cycles carrying bursts, summed over channels
    mean_read_latency_cycles: float
    p99_read_latency_cycles: float
    bandwidth_gbps: float
    energy_pj: float
    energy_breakdown_pj: dict
    accept_cycles: np.ndarray = field(repr=False, compare=False)
    completion_cycles: np.ndarray = field(repr=False, compare=False)


@small_pages()
def simulate_trace(trace: Trace, hardware: Hardware | str, *, threads: int | None = None) -> TraceReport:
    """Simulate a memory trace on the host side of ``hardware`` (every burst crosses the channel).

    Channels are independent controllers, each seeing its requests in trace order.
    Latency is counted from the cycle a request is accepted into the controller's
    queue to its last data beat. ``threads``: how many channels run at once (None: one
    per usable core from ``PARALLEL_MIN_REQUESTS`` requests on, else 1); the result does
    not depend on it.
    """
    hw = load_hardware(hardware)
    check_threads(threads)
    if not isinstance(trace, Trace):
        raise ValueError(f"trace must be a pimsim Trace, got {type(trace).__name__}")
    if len(trace) == 0:
        raise ValueError("trace holds no requests")
    o = hw.org
    channel, bank, row, line = controller_fields(trace.addresses, o)
    n = len(trace)
    counts = np.zeros(E.N_COUNTS, np.int64)
    params = engine_params(hw, ranks=o.ranks, banks_per_bus=o.ranks * o.banks)
    if o.channels == 1:  # the whole trace is one controller's: its arrays are the result
        res = run_controller(bank, row, trace.is_write, trace.arrival_cycles, line, params)
        accept, complete, kind = res.accept_cycles, res.completion_cycles, res.kind
        counts += res.counts
        results = [res]
    else:
        accept = np.zeros(n, np.int64)
        complete = np.zeros(n, np.int64)
        kind = np.zeros(n, np.int64)
        sels = split_by(channel, o.channels)
        results = run_controllers((bank, row, trace.is_write, trace.arrival_cycles, line), sels, params, threads)
        for sel, res in zip(sels, results):
            accept[sel], complete[sel], kind[sel] = res.accept_cycles, res.completion_cycles, res.kind
            counts += res.counts
    end = int(complete.max())
    active = sum(active_rank_cycles(res, o.ranks, end) for res in results)
    all_rank_cycles = o.channels * o.ranks * end
    bursts = int(counts[E.C_RD] + counts[E.C_WR])
    action_counts = ActionCounts(
        activations=int(counts[E.C_ACT]), precharges=int(counts[E.C_PRE]),
        reads=int(counts[E.C_RD]), writes=int(counts[E.C_WR]),
        refreshes=refreshes_until(hw, o.ranks, end) * o.channels,
        active_rank_cycles=active, precharged_rank_cycles=all_rank_cycles - active,
        channel_bits=bursts * o.line_bytes * 8,
    )
    breakdown = energy_breakdown_pj(action_counts, EnergyTable.from_hardware(hw))
    reads = ~trace.is_write
    lat = (complete - accept)[reads]
    seconds = end * hw.timing.tck_ns * 1e-9
    return TraceReport(
        hardware=hw.name, scheduler=hw.controller.scheduler.value, requests=n, cycles=end,
        seconds=seconds, activations=action_counts.activations, precharges=action_counts.precharges,
        reads=action_counts.reads, writes=action_counts.writes, refreshes=action_counts.refreshes,
        row_hits=int(counts[E.C_HITS]), coalesced=int(np.sum(kind == E.K_COALESCED)),
        forwarded=int(np.sum(kind == E.K_FORWARDED)), bus_busy_cycles=int(counts[E.C_BUS_BUSY]),
        mean_read_latency_cycles=float(lat.mean()) if len(lat) else 0.0,
        p99_read_latency_cycles=float(np.percentile(lat, 99)) if len(lat) else 0.0,
        bandwidth_gbps=bursts * o.line_bytes / seconds / 1e9 if seconds > 0 else 0.0,
        energy_pj=float(sum(breakdown.values())), energy_breakdown_pj=breakdown,
        accept_cycles=accept, completion_cycles=complete,
    )
