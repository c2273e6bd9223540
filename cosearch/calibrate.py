"""Measure the CPU this runs on for pimsim's host model (``cosearch calibrate``).

pimsim never imports torch (DESIGN.md), so the measuring lives here and pimsim only
reads the result: a hardware TOML file, a ``base`` preset with its ``[host]`` section
replaced by measured numbers, and a ``[calibration]`` table saying how and when each
number was measured (the loader keeps it as a record and does not read it).

What is measured, each as the median of repeats within about ``sample_s`` seconds:

- GEMM throughput of ``torch.mm`` on square matrices, fp32, bf16 (when torch runs it
  on this CPU) and int8 (``torch._int_mm``, when available), at the thread count;
- a small table of fp32 GEMM throughput by shape (``F.linear`` as ``nn.Linear`` runs it,
  M rows by a K x N weight with K = N, on the grid ``_GEMM_M`` x ``_GEMM_SIDES``), its
  dispatch cost taken off: pimsim's ``[host] gemm_m``, ``gemm_kn`` and
  ``gemm_fp32_gflops``, which it interpolates for the products of a model;
- the rate of a transposing copy (a transposed view made contiguous, as a product of a
  transposed input runs it first);
- fused attention (``scaled_dot_product_attention``): its products' rate and a per-score
  rate from two head dimensions, and its cost per block of ``ATTENTION_BLOCK_ROWS``
  queries and per key of a block from 32 and 128 tokens, and per query and per key past
  a multiple of ``ATTENTION_KEY_ALIGN`` from 32 queries over 40 keys (fastest samples);
- memory bandwidth of a stream-like kernel (``torch.add(b, c, out=a)``, three arrays
  of 4x the last-level cache each) and the same kernel on arrays that fit the cache;
- the last-level cache size, from ``/sys/devices/system/cpu/cpu0/cache``;
- the dispatch cost of one operator of each kernel kind on tiny tensors in eager
  PyTorch, and of one kernel-less call (a view, a weight slice, a module call);
- for the compiled runtime, the same graph compiled with ``torch.compile`` (inductor)
  or, where that does not work, TorchScript (trace, freeze, optimise for inference):
  the cost per kernel and per graph entry from chains of 4 and 16 products, and how
  many kernels LayerNorm, ReLU and a residual add after a product take (0: fused into
  the product, 1: one kernel of their own, 3: none fused), which sets ``fuse``;
- last, a probe model (seven NASRec blocks using every operator at width 16, batch 1)
  in the same runtime: the dispatch costs are scaled by what it took beyond pimsim's
  time for its work, over what its dispatches cost at the isolated measurements (an
  operator costs more inside a model than alone in a loop).

Energy, where the CPU's RAPL counters can be read (``cosearch.rapl``): the package (and
DRAM) power while idle (``static_w``), and the energy of the fp32 (and bf16) products
and of the stream kernel beyond it, per FLOP and per byte; the package power limit as
``tdp_w``. Elsewhere (most virtual machines, and non-root users since Linux 5.10) the
energy figures stay the base preset's, and the file says why.
"""
from __future__ import annotations

import datetime
import functools
import gc
import math
import os
import platform
import shutil
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .rapl import rapl_meter

__all__ = ["CalibrationSettings", "Calibration", "calibrate", "calibration_toml", "write_calibration",
           "compile_model", "llc_bytes", "available_cpus", "energy_per_action_pj", "RUNTIMES", "BACKENDS",
           "DEFAULT_BASE", "ALL_FUSED"]

RUNTIMES = ("eager", "compiled")
BACKENDS = ("auto", "inductor", "torchscript")
#: The preset whose DRAM, mapping and energy figures a calibrated file keeps: pimsim
#: query's default, everything on the host.
DEFAULT_BASE = "cpu-server"
#: Operator kinds a compiled runtime that fuses element-wise work fuses (pimsim FUSE_KINDS).
ALL_FUSED = ("activation", "layernorm", "add", "elementwise", "reduction", "softmax", "attention")
_CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
# Chains that time a compiled graph: products of [_ROWS, _DIM] x [_DIM, _DIM], small enough
# that each kernel's work is far below its dispatch cost.
_ROWS, _DIM = 8, 32
_SHORT, _LONG = 4, 16


@dataclass(frozen=True)
class CalibrationSettings:
    """What to measure: ``threads`` torch threads, the ``runtime`` (eager or compiled),
    the ``base`` preset (name or file) whose host is replaced, the compiled ``backend``
    (auto: inductor where it works, else TorchScript) and the seconds per measurement."""

    threads: int
    runtime: str = "eager"
    base: str = DEFAULT_BASE
    backend: str = "auto"
    sample_s: float = 0.25

    def __post_init__(self):
        cpus = available_cpus()
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 1 <= self.threads <= cpus:
            raise ValueError(f"threads must be an integer from 1 to this machine's {cpus} CPUs, got {self.threads!r}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not isinstance(self.sample_s, (int, float)) or not 0.01 <= self.sample_s <= 10:
            raise ValueError(f"sample_s must be a number of seconds from 0.01 to 10, got {self.sample_s!r}")
        if not isinstance(self.base, str) or not self.base:
            raise ValueError(f"base must be a preset name or hardware file, got {self.base!r}")


@dataclass(frozen=True)
class Calibration:
    """A measured host: ``host`` holds every ``[host]`` key of pimsim's ``Host``;
    ``methods`` says how each measured one was obtained; ``raw`` keeps the other
    numbers read on the way (per-kind timings, GEMM size, the compile's kernel counts)."""

    settings: CalibrationSettings
    host: dict
    methods: dict
    raw: dict
    machine: str
    torch_version: str
    when: str
    seconds: float
    backend: str  # "eager", "inductor" or "torchscript"
    notes: tuple[str, ...] = field(default=())


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _size_bytes(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def llc_bytes(cache_dir: Path = _CACHE_DIR) -> tuple[int, str] | None:
    """(bytes, where it was read) of the highest-level data or unified cache of cpu0,
    from the OS; None where the OS does not say."""
    best = None
    try:
        entries = sorted(cache_dir.glob("index*"))
    except OSError:
        return None
    for d in entries:
        try:
            level = int((d / "level").read_text().strip())
            kind = (d / "type").read_text().strip()
            size = _size_bytes((d / "size").read_text())
            shared = (d / "shared_cpu_list").read_text().strip() if (d / "shared_cpu_list").exists() else "?"
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and (best is None or level > best[0]):
            best = (level, size, f"{d}/size: level {level} {kind}, {size} bytes, shared by CPUs {shared}")
    return None if best is None else (best[1], best[2])


def _per_call_s(fn: Callable[[], object], sample_s: float, inner: int = 1, min_samples: int = 5,
                stat: Callable[[list], float] = statistics.median) -> float:
    """Seconds of one call of ``fn``: ``stat`` (median) of samples of ``inner`` calls,
    taken for about ``sample_s`` seconds (at least ``min_samples`` samples)."""
    fn()  # first call: allocations, lazy initialisation
    samples = []
    # no garbage collection inside a sample: its cost depends on what else the process
    # holds (a probe measured 11.8 ms in a process holding a data set, 3.7-5.6 ms alone);
    # no gc.collect() first either: with torch loaded it takes longer than most samples
    was = gc.isenabled()
    gc.disable()
    try:
        end = time.perf_counter() + sample_s
        while len(samples) < min_samples or time.perf_counter() < end:
            t = time.perf_counter_ns()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter_ns() - t) / inner * 1e-9)
    finally:
        if was:
            gc.enable()
    return stat(samples)


def _inner_for(fn: Callable[[], object], target_s: float = 2e-3) -> int:
    """Calls per sample so that one sample takes about ``target_s`` (timer resolution)."""
    t = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t, 1e-7)
    return max(1, min(100_000, int(target_s / one)))


def _gemm_rate(dtype: torch.dtype, sample_s: float) -> tuple[float, int]:
    """(GFLOP/s, n) of ``torch.mm`` on n x n matrices: n doubles from 256 until one
    product takes 20 ms or n reaches 2048, so the timing is of the arithmetic."""
    n = 256
    while True:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        t = _per_call_s(lambda: torch.mm(a, b), sample_s / 4, min_samples=2)
        if t >= 0.02 or n >= 2048:
            break
        n *= 2
    t = _per_call_s(lambda: torch.mm(a, b), sample_s, min_samples=3)
    return 2 * n ** 3 / t / 1e9, n


def _int8_rate(sample_s: float) -> float | None:
    """GOP/s of ``torch._int_mm`` (int8 x int8 -> int32), or None where it is missing."""
    if not hasattr(torch, "_int_mm"):
        return None
    n = 512
    try:
        a = torch.randint(-100, 100, (n, n), dtype=torch.int8)
        t = _per_call_s(lambda: torch._int_mm(a, a), sample_s, min_samples=3)
    except (RuntimeError, NotImplementedError):
        return None
    return 2 * n ** 3 / t / 1e9


def _stream_gbps(array_bytes: int, sample_s: float) -> float:
    """GB/s of ``a = b + c`` on float32 arrays of ``array_bytes`` each: three arrays
    cross the memory per pass (write-allocate traffic not counted, as STREAM does)."""
    n = max(1024, array_bytes // 4)
    a, b, c = torch.empty(n), torch.rand(n), torch.rand(n)
    t = _per_call_s(lambda: torch.add(b, c, out=a), sample_s, inner=_inner_for(lambda: torch.add(b, c, out=a)))
    return 3 * n * 4 / t / 1e9


def _first_touch_gbps(array_bytes: int, sample_s: float) -> float:
    """GB/s of the extra time a fresh output costs over ``a = b + c`` into ``a``:
    ``torch.add(b, c)`` allocates its result anew, and an array far beyond the cache
    comes from the OS as pages mapped and zeroed on first touch. 0 where the fresh
    output costs no more than 5% over writing into ``a`` (an allocator that keeps pages)."""
    n = max(1024, array_bytes // 4)
    a, b, c = torch.empty(n), torch.rand(n), torch.rand(n)
    into = _per_call_s(lambda: torch.add(b, c, out=a), sample_s, stat=min)
    fresh = _per_call_s(lambda: torch.add(b, c), sample_s, stat=min)
    extra = fresh - into
    return n * 4 / extra / 1e9 if extra > 0.05 * into else 0.0


#: Transposing copies [batch, tokens, dim] -> [batch, dim, tokens] as NASRec's token
#: projections run them before their product (16-dim tokens; one wider case).
_STRIDED_SHAPES = ((256, 82, 16), (256, 218, 16), (256, 48, 64))


def _strided_copy_gbps(copy_ns: float, sample_s: float) -> float:
    """GB/s (bytes read) of making a transposed view contiguous: the median over
    ``_STRIDED_SHAPES`` of each shape's median sample, its dispatch cost taken off."""
    rates = []
    for shape in _STRIDED_SHAPES:
        view = torch.randn(*shape).transpose(1, 2)
        t = _per_call_s(view.contiguous, sample_s / len(_STRIDED_SHAPES), inner=_inner_for(view.contiguous))
        busy = max(t - copy_ns * 1e-9, t * 0.05)
        rates.append(view.numel() * 4 / busy / 1e9)
    return statistics.median(rates)


def _weight_gbps(cache_bytes: int, gemm_ns: float, sample_s: float) -> tuple[float, int]:
    """(GB/s, weight bytes) of ``F.linear`` on one sample with a float32 weight of about
    an eighth of the cache (beyond the inner caches, inside the last level): the weight
    read of a matrix-vector product, its dispatch cost taken off."""
    n = max(64, int(math.sqrt(max(cache_bytes // 8, 1 << 16) / 4)))
    w = torch.randn(n, n)
    x = torch.randn(1, n)
    t = _per_call_s(lambda: F.linear(x, w), sample_s, inner=_inner_for(lambda: F.linear(x, w)))
    busy = max(t - gemm_ns * 1e-9, t * 0.05)
    return n * n * 4 / busy / 1e9, n * n * 4


def _eager_dispatch(sample_s: float) -> tuple[dict, dict]:
    """(ns per kernel by kind, ns per kernel-less call by kind) of eager PyTorch on tiny tensors."""
    x, y = torch.randn(4, 16), torch.randn(4, 16)
    w, b = torch.randn(16, 16), torch.randn(16)
    lnw, lnb = torch.ones(16), torch.zeros(16)
    a3, b3 = torch.randn(4, 4, 2), torch.randn(4, 2, 4)
    q = torch.randn(1, 2, 4, 2)
    ident = nn.Identity()
    kernels = {
        "activation": lambda: torch.relu(x),
        "add": lambda: x + y,
        "elementwise": lambda: x * y,
        "layernorm": lambda: F.layer_norm(x, (16,), lnw, lnb),
        "gemm": lambda: F.linear(x, w, b),
        "matmul": lambda: torch.bmm(a3, b3),
        "attention": lambda: F.scaled_dot_product_attention(q, q, q),
        "softmax": lambda: torch.softmax(x, -1),
        "reduction": lambda: x.sum(1),
        "copy": lambda: torch.cat([x, y], 1),
    }
    calls = {"view": lambda: x.transpose(0, 1), "slice": lambda: w[:8, :16], "module": lambda: ident(x)}
    share = sample_s / 2
    k = {name: _per_call_s(fn, share, inner=_inner_for(fn)) * 1e9 for name, fn in kernels.items()}
    c = {name: _per_call_s(fn, share, inner=_inner_for(fn)) * 1e9 for name, fn in calls.items()}
    return k, c


def _vector_gflops(cache_bytes: int, layernorm_ns: float, sample_s: float) -> tuple[float, float]:
    """(GFLOP/s, tensor elements) of ``F.layer_norm`` on a tensor that fits the cache,
    counting pimsim's 5 operations per element, its dispatch cost taken off."""
    cols = 1024
    rows = max(8, min(1024, cache_bytes // 16 // (cols * 4)))
    x = torch.randn(rows, cols)
    wt, bs = torch.ones(cols), torch.zeros(cols)
    t = _per_call_s(lambda: F.layer_norm(x, (cols,), wt, bs), sample_s)
    busy = max(t - layernorm_ns * 1e-9, t * 0.05)
    return 5 * x.numel() / busy / 1e9, float(x.numel())


# Grid of the GEMM table: M, the rows of the activation, from one sample to a batch of 1024
# with a few tokens each (attention projections run on batch x tokens rows, clamped to the
# last point); K = N from 16 (the embedding dimension, attention's width) to 1024 (NASRec's
# widest FC). 24 points at sample_s / 8 each plus the largest product's few calls: 1.4-1.6 s
# at the default sample_s (measured, 2 cores, 6 runs), of 11-12 s for the whole calibration
# (issue 15 T2 allows a minute).
_GEMM_M = (1, 16, 64, 256, 1024, 4096)
_GEMM_SIDES = (16, 64, 256, 1024)


def _gemm_table(gemm_ns: float, sample_s: float) -> list[list[float]]:
    """GFLOP/s (2 M K N per product) of ``F.linear`` with a bias, fp32, on an M x K input
    and a K x K weight, for M in ``_GEMM_M`` (rows) and K in ``_GEMM_SIDES`` (columns),
    its dispatch cost ``gemm_ns`` (a tiny ``F.linear``'s) taken off, since pimsim charges
    that per kernel on top of the work."""
    table = []
    for m in _GEMM_M:
        row = []
        for side in _GEMM_SIDES:
            x, w, b = torch.randn(m, side), torch.randn(side, side), torch.randn(side)
            fn = functools.partial(F.linear, x, w, b)
            # the fastest sample, not the median: with a 31 ms window a point has few
            # samples, and one interrupted stretch made a median 300x slow (0.004 GFLOP/s
            # at M = 64, K = N = 16 in one calibration on 2026-11-30); noise only adds time
            t = _per_call_s(fn, sample_s / 8, inner=_inner_for(fn), min_samples=5, stat=min)
            busy = max(t - gemm_ns * 1e-9, t * 0.05)  # dispatch-bound points: the floor, as elsewhere here
            row.append(2 * m * side * side / busy / 1e9)
        table.append(row)
    return table


# Attention of a recommender: a batch of 256 samples, 2 heads over 40 tokens (39 fields of
# Criteo-like data become tokens), at two head dimensions: 2 (NASRec's attention splits
# 16-dim tokens over 8 heads) and 32. CPU flash attention spends most of its time per score
# at 2 and on the products at 32, so the pair separates the two rates (at 2 and 16, AutoInt's,
# the difference was too small against the noise: product rates of 24-97 GFLOP/s in three
# calibrations on one machine).
_ATTENTION = (256, 2, 40)
_ATTENTION_DIMS = (2, 32)


def _attention_rates(vector_gflops: float, attention_ns: float, sample_s: float) -> tuple[float, float, float, bool]:
    """(GFLOP/s of the two products of two activations, GFLOP/s of the softmax at 5
    operations per score, GFLOP/s of ``torch.bmm``, whether the two points separated):
    ``scaled_dot_product_attention`` at ``_ATTENTION`` with each head dimension of
    ``_ATTENTION_DIMS``, its dispatch taken
    off, solved for time = scores x per-score time + products' operations / product rate.
    Where the two points do not separate (the larger dimension not slower), the softmax
    keeps ``vector_gflops`` and the product rate comes from the larger dimension alone.
    ``torch.bmm`` at the pairwise-dot shape is for the record."""
    b, h, t = _ATTENTION
    scores = b * h * t * t
    took = []
    for d in _ATTENTION_DIMS:
        q = torch.randn(b, h, t, d)
        took.append(_per_call_s(lambda: F.scaled_dot_product_attention(q, q, q), sample_s / 2, stat=min)
                    - attention_ns * 1e-9)
    matmul, softmax, separated = _split_attention(scores, _ATTENTION_DIMS, took, vector_gflops)
    return matmul, softmax, _bmm_gflops(b, t, sample_s), separated


#: glibc malloc maps blocks above its mmap threshold from the OS afresh; the threshold
#: adapts up to 4 * 1024 * 1024 * sizeof(long) bytes on 64-bit systems (mallopt(3),
#: DEFAULT_MMAP_THRESHOLD_MAX).
GLIBC_MMAP_THRESHOLD_MAX = 32 << 20

#: Queries per block of the CPU fused-attention kernel at short sequences: its time per
#: (batch, head) pair stays flat from 33 to 64 tokens and steps up past 64 (issue 15).
ATTENTION_BLOCK_ROWS = 32
#: Keys the kernel's fast path takes in whole groups of; the rest run one by one (issue
#: 15: 32 queries over 32, 40, 47 and 48 keys took 2.1, 5.5, 7.1 and 2.7 us per pair).
ATTENTION_KEY_ALIGN = 16
#: (batch, heads), the two sequence lengths (one block, four blocks) of the block fit, and
#: the keys of the tail fit (one block of queries over keys past a whole group).
_ATTENTION_BLOCKS = ((256, 2), (32, 128))
_ATTENTION_TAIL_KEYS = 40


def _attention_blocks(attention_ns: float, sample_s: float) -> tuple[float, float, float]:
    """(ns per block, ns per key of a block, ns per query per tail key) of
    ``scaled_dot_product_attention`` at head dimension 2 (NASRec's). The first two are
    solved from self-attention over 32 tokens (one block of ``ATTENTION_BLOCK_ROWS``
    queries per pair) and over 128 (four blocks of 128 keys): block time = a + b x keys.
    The third from one block of queries over ``_ATTENTION_TAIL_KEYS`` keys, whose keys past
    the last multiple of ``ATTENTION_KEY_ALIGN`` cost what a + b x keys leaves over. The
    dispatch is taken off; each the fastest sample."""
    (b, h), lengths = _ATTENTION_BLOCKS

    def per_pair_ns(queries: int, keys: int) -> float:
        q = torch.randn(b, h, queries, 2)
        k = q if keys == queries else torch.randn(b, h, keys, 2)
        t = _per_call_s(lambda: F.scaled_dot_product_attention(q, k, k), sample_s / 3, stat=min)
        return max(t - attention_ns * 1e-9, 0.05 * t) / (b * h) * 1e9

    per_block = [per_pair_ns(n, n) / -(-n // ATTENTION_BLOCK_ROWS) for n in lengths]
    per_key = max((per_block[1] - per_block[0]) / (lengths[1] - lengths[0]), 0.0)
    block = max(per_block[0] - per_key * lengths[0], 0.0)
    keys = _ATTENTION_TAIL_KEYS
    left = per_pair_ns(ATTENTION_BLOCK_ROWS, keys) - (block + per_key * keys)
    tail = max(left / (ATTENTION_BLOCK_ROWS * (keys % ATTENTION_KEY_ALIGN)), 0.0)
    return block, per_key, tail


def _split_attention(scores: int, dims: tuple[int, int], took_s: list[float],
                     vector_gflops: float) -> tuple[float, float, bool]:
    """(product GFLOP/s, softmax GFLOP/s, separated) from attention times ``took_s`` at
    head dimensions ``dims`` over ``scores`` scores: time = scores x 5 / softmax rate +
    4 x scores x dim / product rate (see ``_attention_rates``)."""
    (d0, d1), (t0, t1) = dims, took_s
    products = 4 * scores  # operations of the two products per head dimension
    if t1 > t0 > 0:
        matmul = products * (d1 - d0) / (t1 - t0) / 1e9
        per_score_s = t0 - products * d0 / (matmul * 1e9)
        if per_score_s > 0.1 * t0:
            return matmul, 5 * scores / per_score_s / 1e9, True
    else:
        softmax_s = 5 * scores / (vector_gflops * 1e9)
        matmul = products * d1 / max(t1 - softmax_s, t1 * 0.1) / 1e9
    # not separated, or nothing left for the scores: the softmax at the vector rate
    return matmul, vector_gflops, False


def _bmm_gflops(b: int, t: int, sample_s: float) -> float:
    x = torch.randn(b, t, 16)
    xt = x.transpose(1, 2)
    return 2 * b * t * t * 16 / _per_call_s(lambda: torch.bmm(x, xt), sample_s) / 1e9


class _Chain(nn.Module):
    """``n`` products x @ W_i; with ``blocks``, each followed by LayerNorm, ReLU and a
    residual add (x = relu(ln(x @ W_i)) + x), the FC pattern of NASRec and of MLPs."""

    def __init__(self, n: int, blocks: bool):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weights = nn.ParameterList(nn.Parameter(torch.randn(_DIM, _DIM, generator=g) / _DIM ** 0.5,
                                                     requires_grad=False) for _ in range(n))
        self.blocks = blocks
        self.ln = nn.LayerNorm(_DIM)

    def forward(self, x):
        for w in self.weights:
            y = torch.mm(x, w)
            x = torch.relu(self.ln(y)) + x if self.blocks else y
        return x


def _inductor_ready() -> str | None:
    """None when torch.compile's CPU backend can build here, else why not."""
    try:
        import torch._inductor  # noqa: F401
    except Exception as e:  # any import failure means no inductor  # noqa: BLE001
        return f"torch._inductor does not import ({type(e).__name__})"
    cxx = os.environ.get("CXX")
    if not (cxx and shutil.which(cxx)) and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "no C++ compiler on PATH (g++, c++, clang++ or $CXX)"
    return None


def compile_model(model: nn.Module, example: tuple, backend: str) -> Callable:
    """``model`` compiled for inference on ``example`` inputs by ``backend``
    ("inductor": ``torch.compile``, static shapes; "torchscript": traced, frozen and
    optimised for inference). The first call of an inductor model compiles it."""
    model.eval()
    if backend == "inductor":
        return torch.compile(model, dynamic=False)
    if backend == "torchscript":
        import warnings
        # TorchScript is deprecated in favour of torch.compile; it is the fallback where that cannot build
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # shapes read in Python are constants of the trace: right for one fixed input shape
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, example, check_trace=False)
            frozen = torch.jit.freeze(traced)
            try:
                return torch.jit.optimize_for_inference(frozen)
            except RuntimeError:  # some graphs refuse the extra passes; the frozen graph still runs
                return frozen
    raise ValueError(f"backend must be inductor or torchscript, got {backend!r}")


_GEMM_OPS = ("mm", "addmm", "bmm", "baddbmm", "linear", "matmul")
_VIEW_NAMES = ("view", "reshape", "t", "transpose", "permute", "unsqueeze", "squeeze", "expand", "slice", "select",
               "alias", "detach", "flatten", "contiguous", "size", "dim", "numel")


def _count_kernels(backend: str, fn, x) -> tuple[int, int, object]:
    """(GEMM kernels, other kernels, output) of one call of a compiled graph, read from
    what the compiler made: inductor's generated ``call`` (extern kernels, fused C++
    kernels, aten fallbacks), TorchScript's frozen graph (aten and MKLDNN nodes)."""
    import re
    if backend == "inductor":
        from torch._inductor.utils import run_and_get_code
        out, codes = run_and_get_code(fn, x)
        gemm = other = 0
        for code in codes:
            lines = code.splitlines()
            starts = [i for i, l in enumerate(lines) if l.strip().startswith("def call(")]
            for start in starts:
                indent = len(lines[start]) - len(lines[start].lstrip())
                for line in lines[start + 1:]:
                    text = line.strip()
                    if text and len(line) - len(line.lstrip()) <= indent:
                        break
                    m = re.match(r"(extern_kernels|aten|torch\.ops\.aten)\.(\w+)\(|(cpp_fused_\w+|kernel_\w+)\(", text)
                    if not m:
                        continue
                    op = m.group(2) or ""
                    if op in _GEMM_OPS:
                        gemm += 1
                    elif op not in _VIEW_NAMES and not op.startswith("_reinterpret"):
                        other += 1
        return gemm, other, out
    out = fn(x)
    gemm = other = 0
    for node in fn.graph.nodes():
        kind = node.kind()
        ns, _, op = kind.partition("::")
        if ns == "aten" and op in _GEMM_OPS:
            gemm += 1
        elif (ns == "aten" and op not in _VIEW_NAMES) or (ns == "prim" and re.search(r"mkldnn|Fusion|TensorExpr|Static",
                                                                                    op, re.I)):
            other += 1
    return gemm, other, out


def _time_compiled(n: int, blocks: bool, backend: str, sample_s: float) -> tuple[float, int, int]:
    """(seconds per call, GEMM kernels, other kernels) of a compiled chain of ``n`` products."""
    model = _Chain(n, blocks)
    x = torch.randn(_ROWS, _DIM)
    fn = compile_model(model, (x,), backend)
    with torch.inference_mode():
        gemm, other, _ = _count_kernels(backend, fn, x)  # the first call compiles
        for _ in range(3):
            fn(x)
        return _per_call_s(lambda: fn(x), sample_s, inner=_inner_for(lambda: fn(x))), gemm, other


def _compiled(backend: str, sample_s: float, notes: list) -> tuple[str, dict]:
    """(backend used, timings and kernel counts) of chains of products compiled by ``backend``."""
    order = ["inductor", "torchscript"] if backend == "auto" else [backend]
    for name in order:
        if name == "inductor":
            why = _inductor_ready()
            if why is not None:
                if backend == "inductor":
                    raise ValueError(f"--backend inductor: {why}")
                notes.append(f"torch.compile not used: {why}")
                continue
        try:
            if name == "inductor":
                import torch._dynamo
                torch._dynamo.reset()  # each chain compiles afresh, so its code can be read
            short = _time_compiled(_SHORT, False, name, sample_s)
            long = _time_compiled(_LONG, False, name, sample_s)
            blocks = _time_compiled(_LONG, True, name, sample_s)
        except Exception as e:  # a compiler failing in any way means trying the next one  # noqa: BLE001
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            if name == order[-1]:
                raise ValueError(f"compiling a test graph with {name} failed: {type(e).__name__}: {msg}") from None
            notes.append(f"{name} failed on a test graph ({type(e).__name__}: {msg}); fell back")
            continue
        return name, {"short_s": short[0], "long_s": long[0], "blocks_s": blocks[0],
                      "long_gemm_kernels": long[1], "long_other_kernels": long[2],
                      "blocks_gemm_kernels": blocks[1], "blocks_other_kernels": blocks[2]}
    raise ValueError("no compiled backend works on this machine")


def _probe():
    """(model, inputs, workload) of the dispatch probe: a NASRec-Full model on a tiny
    schema at batch 1, every block at the smallest width and token count, together
    using every operator (FC, Dot-Product, Gating, Sum; EFC, Attention) and both
    mergers, so that its eager time is nearly all dispatch: Python, module calls,
    views, copies and kernel launches in the proportions real models have them."""
    from cosearch.profile import arch_workload
    from nasrec.data import Schema
    from nasrec.model import NasRecModel
    from nasrec.space import ArchSpec, BlockSpec
    from nasrec.util import seeded_torch
    ops = [("fc", "efc"), ("dot", "attention"), ("gating", "efc"), ("sum", "attention"), ("fc", "attention"),
           ("dot", "efc"), ("fc", "efc")]
    blocks = tuple(BlockSpec(dense_idx=(i,) if i < 2 else (i - 1, i), sparse_idx=(i,) if i % 2 else (0, i),
                             dense_left_idx=max(0, i - 1), dense_right_idx=i, dense_op=d, sparse_op=sp,
                             dense_width=16, sparse_tokens=16, dense_sparse_interact=i in (1, 4),
                             deep_fm=i in (2, 5)) for i, (d, sp) in enumerate(ops))
    spec = ArchSpec(tuple(b if i else replace(b, dense_idx=(0,), sparse_idx=(0,)) for i, b in enumerate(blocks)),
                    "full")
    schema = Schema(4, (10, 20, 30, 40))
    with seeded_torch(0):
        model = NasRecModel(spec, schema).eval()
    g = torch.Generator().manual_seed(0)
    inputs = (torch.rand(1, schema.n_dense, generator=g),
              torch.cat([torch.randint(0, c, (1, 1), generator=g) for c in schema.cardinalities], 1))
    return model, inputs, arch_workload(spec, schema, batch_size=1)


def _dispatch_scale(base, host: dict, sample_s: float, backend: str = "eager") -> tuple[float, dict]:
    """How much more a kernel's dispatch costs inside a model than in the isolated
    measurement: (measured probe time - pimsim's time for its work and its graph entry)
    / pimsim's time for its dispatches, with the costs in ``host``; the probe runs eager
    or compiled by ``backend``. Returns the factor and the numbers."""
    import pimsim
    model, inputs, w = _probe()
    fn = model if backend == "eager" else compile_model(model, inputs, backend)
    with torch.inference_mode():
        fn(*inputs)  # compiles
        t = _per_call_s(lambda: fn(*inputs), sample_s, inner=_inner_for(lambda: fn(*inputs)))
    hw = replace(base, host=pimsim.Host(**host))
    free = {"kernel_overhead_ns": 0.0, "call_overhead_ns": 0.0,
            "overhead_ns_by_kind": {k: 0.0 for k in host.get("overhead_ns_by_kind", {})}}
    with_dispatch = pimsim.query(w, hw, seed=0).latency_s
    work = pimsim.query(w, replace(hw, host=pimsim.Host(**{**host, **free})), seed=0).latency_s
    dispatch = with_dispatch - work
    scale = (t - work) / dispatch if dispatch > 0 else 1.0
    return min(max(scale, 0.5), 20.0), {"probe_measured_s": t, "probe_predicted_dispatch_s": dispatch,
                                        "probe_predicted_work_s": work, "probe_layers": len(w.dense)}


_ENERGY_KEYS = ("pj_per_flop_fp32", "pj_per_flop_fp16", "pj_per_op_int8", "dram_pj_per_byte", "tdp_w",
                "static_w", "cache_pj_per_byte")


def energy_per_action_pj(joules: float, seconds: float, idle_w: float, actions: float,
                         other_pj: float = 0.0) -> float:
    """pJ per action of work that took ``joules`` over ``seconds``: what it drew beyond
    the idle floor (``idle_w`` x ``seconds``), less ``other_pj`` already charged to other
    actions, over ``actions``; never below 0 (counters and timing are both noisy)."""
    if actions <= 0:
        raise ValueError(f"actions must be positive, got {actions!r}")
    return max(joules * 1e12 - idle_w * seconds * 1e12 - other_pj, 0.0) / actions


def _energy(meter, n32: int, n16: int | None, stream_bytes: int, sample_s: float, th: str) -> tuple[dict, dict, dict]:
    """(host keys, methods, raw) of the energy figures measured with ``meter`` (a
    ``cosearch.rapl.RaplMeter``): idle power, then products and a stream kernel, each run
    for at least a second so that the counters (about 1 ms steps) resolve them."""
    run_s = max(1.0, 4 * sample_s)
    idle_s = max(0.5, 2 * sample_s)
    idle = meter.power_w(idle_s)
    idle_w = idle["package"] + idle["dram"]
    host = {"static_w": idle_w}
    methods = {"static_w": f"package + DRAM power from RAPL while this process slept {idle_s:g} s"}
    raw = {"energy_idle_package_w": idle["package"], "energy_idle_dram_w": idle["dram"]}
    for key, dtype, n in (("pj_per_flop_fp32", torch.float32, n32), ("pj_per_flop_fp16", torch.bfloat16, n16)):
        if n is None:
            continue
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        j, took, calls = meter.joules(lambda: torch.mm(a, b), run_s)
        total = j["package"] + j["dram"]
        host[key] = energy_per_action_pj(total, took, idle_w, 2 * n ** 3 * calls)
        methods[key] = (f"RAPL package + DRAM energy of torch.mm {n}x{n} {dtype}, {th}, for {took:.2f} s, beyond "
                        f"the idle power, per FLOP")
        raw[f"energy_{key}_w"] = total / took
    elems = max(1024, stream_bytes // 4)
    a, b, c = torch.empty(elems), torch.rand(elems), torch.rand(elems)
    j, took, calls = meter.joules(lambda: torch.add(b, c, out=a), run_s)
    total = j["package"] + j["dram"]
    host["dram_pj_per_byte"] = energy_per_action_pj(total, took, idle_w, 3 * elems * 4 * calls,
                                                    other_pj=host["pj_per_flop_fp32"] * elems * calls)
    methods["dram_pj_per_byte"] = (f"RAPL package + DRAM energy of a = b + c on float32 arrays of "
                                   f"{stream_bytes >> 20} MiB each, {th}, for {took:.2f} s, beyond the idle power "
                                   f"and the adds at pj_per_flop_fp32, per byte of the 3 arrays")
    raw["energy_stream_w"] = total / took
    limit = meter.power_limit_w()
    if limit is not None:
        host["tdp_w"] = limit
        methods["tdp_w"] = "the packages' long-term RAPL power limit (constraint_0_power_limit_uw)"
    return host, methods, raw


def calibrate(settings: CalibrationSettings, on_stage: Callable[[str], None] | None = None) -> Calibration:
    """Measure this machine for ``settings``; the base preset must have a ``[host]``."""
    import pimsim
    stage = on_stage or (lambda s: None)
    base = pimsim.load_hardware(settings.base)
    if base.host is None:
        raise ValueError(f"base {settings.base!r} has no [host] section to replace")
    t_start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    s = settings.sample_s
    methods, raw, notes = {}, {}, []
    th = f"{settings.threads} thread{'s' if settings.threads > 1 else ''}"
    try:
        with torch.inference_mode():
            stage("cache size")
            found = llc_bytes()
            if found is None:
                cache = base.host.cache_bytes
                methods["cache_bytes"] = f"not found under {_CACHE_DIR}: the base preset's"
            else:
                cache, where = found
                methods["cache_bytes"] = f"from the OS: {where}"
            stage("GEMM throughput")
            fp32, n32 = _gemm_rate(torch.float32, s)
            methods["peak_fp32_gflops"] = f"torch.mm {n32}x{n32} fp32, {th}, median"
            n16 = None  # stays None where bf16 products do not run
            try:
                bf16, n16 = _gemm_rate(torch.bfloat16, s)
                methods["peak_fp16_gflops"] = f"torch.mm {n16}x{n16} bf16, {th}, median"
            except (RuntimeError, NotImplementedError) as e:
                bf16 = fp32
                methods["peak_fp16_gflops"] = f"not measured (bf16 mm failed: {type(e).__name__}): fp32's"
            int8 = _int8_rate(s)
            if int8 is None:
                int8 = fp32
                methods["peak_int8_gops"] = "not measured (no torch._int_mm on this CPU): fp32's"
            else:
                methods["peak_int8_gops"] = f"torch._int_mm 512x512 int8, {th}, median"
            stage("memory bandwidth")
            dram_array = min(256 << 20, max(64 << 20, 4 * cache))
            mem = _stream_gbps(dram_array, s)
            methods["mem_gbps"] = f"a = b + c on float32 arrays of {dram_array >> 20} MiB each (3 arrays), {th}, median"
            first_touch = _first_touch_gbps(dram_array, s)
            methods["first_touch_gbps"] = (f"a = b + c on float32 arrays of {dram_array >> 20} MiB each, a fresh "
                                           f"output against writing into a: the output's bytes over the extra "
                                           f"seconds (0: under 5% extra), {th}, fastest sample each")
            if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
                first_touch_min = GLIBC_MMAP_THRESHOLD_MAX
                methods["first_touch_min_bytes"] = ("glibc's largest mmap threshold on 64-bit systems (mallopt(3), "
                                                    "DEFAULT_MMAP_THRESHOLD_MAX): larger outputs get fresh pages "
                                                    "every call")
            else:
                first_touch_min = 0
                methods["first_touch_min_bytes"] = "0: not glibc, the spilled share of an output pays first touch"
            cache_array = max(64 << 10, cache // 8)
            in_cache = _stream_gbps(cache_array, s)
            methods["act_cache_gbps"] = (f"a = b + c on float32 arrays of {cache_array >> 10} KiB each "
                                         f"(3/8 of the cache), {th}, median")
            methods["cache_gbps"] = "as act_cache_gbps"
            stage("eager dispatch")
            kernels, calls = _eager_dispatch(s)
            raw["eager_kernel_ns"] = kernels
            raw["eager_call_ns"] = calls
            vec, vec_elems = _vector_gflops(cache, kernels["layernorm"], s)
            methods["vector_gflops"] = (f"F.layer_norm on {int(vec_elems)} float32 elements in the cache, "
                                        f"5 operations per element, its dispatch cost taken off, {th}")
            raw["vector_layernorm_elements"] = int(vec_elems)
            strided = _strided_copy_gbps(kernels["copy"], s)
            shapes = ", ".join("x".join(map(str, sh)) for sh in _STRIDED_SHAPES)
            methods["strided_copy_gbps"] = (f"x.transpose(1, 2).contiguous() on float32 [batch, tokens, dim] of "
                                            f"{shapes}: bytes over the median sample less the eager dispatch of a "
                                            f"torch.cat, median over the shapes, {th}")
            weight_gbps, weight_bytes = _weight_gbps(cache, kernels["gemm"], s)
            methods["weight_cache_gbps"] = (f"F.linear on one sample with a {weight_bytes >> 10} KiB float32 weight, "
                                            f"its dispatch cost taken off, {th}")
            stage("GEMM throughput by shape")
            gemm_table = _gemm_table(kernels["gemm"], s)
            methods["gemm_fp32_gflops"] = (
                f"F.linear with a bias, fp32, M x K input by a K x K weight, M = gemm_m (rows), K * K = gemm_kn "
                f"(columns), 2 M K K operations per call over the fastest sample's seconds per call less the eager "
                f"dispatch of a 4x16x16 F.linear (at least 5% of the call), eager in either runtime, "
                f"{th}, about {s / 8:g} s per point")
            methods["gemm_m"] = "the grid's rows M: chosen, not measured"
            methods["gemm_kn"] = "the grid's K * N (measured at K = N): chosen, not measured"
            matmul, softmax, bmm, separated = _attention_rates(vec, kernels["attention"], s)
            shape = "x".join(map(str, _ATTENTION))
            dims = " and ".join(map(str, _ATTENTION_DIMS))
            methods["matmul_gflops"] = (f"scaled_dot_product_attention on {shape} (batch, heads, tokens) at head "
                                        f"dimensions {dims}, its dispatch taken off, fastest sample each: the "
                                        f"products' rate from the difference of the two, {th}")
            methods["softmax_gflops"] = ((f"the same two attention calls: the time at head dimension "
                                          f"{_ATTENTION_DIMS[0]} less its products at matmul_gflops, over 5 "
                                          f"operations per score, {th}") if separated else
                                         "vector_gflops: the two attention calls did not separate a per-score "
                                         "time (matmul_gflops then from the larger head dimension alone)")
            raw["bmm_gflops"] = bmm
            block_ns, block_key_ns, tail_ns = _attention_blocks(kernels["attention"], s)
            (ab, ah), (n1, n4) = _ATTENTION_BLOCKS
            methods["attention_block_ns"] = (f"scaled_dot_product_attention at head dimension 2, {ab}x{ah} (batch, "
                                             f"heads) over {n1} and {n4} tokens, its dispatch taken off, fastest "
                                             f"sample each, per block of {ATTENTION_BLOCK_ROWS} queries: "
                                             f"block time = attention_block_ns + keys x attention_block_score_ns, "
                                             f"{th}")
            methods["attention_block_score_ns"] = "as attention_block_ns"
            methods["attention_block_rows"] = ("chosen: the kernel's time per (batch, head) pair is flat from 33 to "
                                               "64 tokens and steps up past 64 (issue 15)")
            methods["attention_tail_ns"] = (f"scaled_dot_product_attention at head dimension 2, {ab}x{ah} (batch, "
                                            f"heads), {ATTENTION_BLOCK_ROWS} queries over {_ATTENTION_TAIL_KEYS} keys, "
                                            f"its dispatch taken off, fastest sample: what the block fit leaves, "
                                            f"per query and per key past the last multiple of {ATTENTION_KEY_ALIGN}, "
                                            f"{th}")
            methods["attention_key_align"] = ("chosen: 32 queries over 32, 48 and 64 keys run fast, over 33-47 and "
                                              "49-63 keys slower with every key past the multiple of 16 (issue 15)")
            stage("energy")
            meter, where = rapl_meter()
            raw["energy_counters"] = where
            energy = {}
            if meter is not None:
                energy, energy_methods, energy_raw = _energy(meter, n32, n16, dram_array, s, th)
                methods.update(energy_methods)
                raw.update(energy_raw)
            raw["energy_measured"] = sorted(energy)
            if meter is None:
                # REFERENCE.md: Horowitz (ISSCC 2014, 45 nm) fp32 multiply 3.7 pJ + add 0.9 pJ per FMA
                notes.append(f"energy not measured: {where}; between fp32 arithmetic alone, about 2.3 pJ per FLOP "
                             f"(Horowitz, ISSCC 2014, 45 nm), and TDP / peak, the presets' upper bound")
            host = {
                "kind": "cpu",
                "peak_fp32_gflops": fp32, "peak_fp16_gflops": bf16, "peak_int8_gops": int8,
                "cache_bytes": int(cache), "mem_gbps": mem, "cache_gbps": in_cache, "act_cache_gbps": in_cache,
                "vector_gflops": vec, "matmul_gflops": matmul, "softmax_gflops": softmax, "weight_cache_gbps": weight_gbps,
                "first_touch_gbps": first_touch, "strided_copy_gbps": strided,
                "gemm_m": list(_GEMM_M), "gemm_kn": [side * side for side in _GEMM_SIDES],
                "gemm_fp32_gflops": gemm_table, "first_touch_min_bytes": first_touch_min,
                "attention_block_rows": ATTENTION_BLOCK_ROWS,
                "attention_block_ns": block_ns, "attention_block_score_ns": block_key_ns,
                "attention_key_align": ATTENTION_KEY_ALIGN, "attention_tail_ns": tail_ns,
                # measured where RAPL could be read, else the base preset's
                **{key: energy.get(key, getattr(base.host, key)) for key in _ENERGY_KEYS},
            }
            if settings.runtime == "eager":
                backend = "eager"
                host.update({
                    "kernel_overhead_ns": kernels["activation"],
                    "overhead_ns_by_kind": {k: v for k, v in kernels.items() if k != "activation"},
                    "call_overhead_ns": statistics.fmean(calls.values()),
                    "glue_ops": True, "batch_overhead_ns": 0.0,
                    # eager runs one kernel per operator; scaled_dot_product_attention is one
                    "fuse": ["attention"], "fuse_into_gemm": False,
                })
                methods["kernel_overhead_ns"] = f"torch.relu on 4x16 float32, eager, {th}, median per call"
                methods["overhead_ns_by_kind"] = ("per kernel kind, one call on tiny tensors: F.linear, torch.bmm, "
                                                  "scaled_dot_product_attention, softmax, sum, layer_norm, x + y, "
                                                  "x * y, torch.cat; eager, median per call")
                methods["call_overhead_ns"] = "mean of a transpose, a weight slice and an nn.Identity call, eager"
                methods["fuse"] = "eager PyTorch fuses nothing; attention is one scaled_dot_product_attention call"
                stage("dispatch in a model")
                scale, probe = _dispatch_scale(base, host, s)
                raw.update(probe)
                raw["dispatch_scale"] = scale
                host["kernel_overhead_ns"] *= scale
                host["call_overhead_ns"] *= scale
                host["overhead_ns_by_kind"] = {k: v * scale for k, v in host["overhead_ns_by_kind"].items()}
                note = (f"; times {scale:.2f}: what a probe model (7 NASRec blocks at width 16, batch 1) took beyond "
                        f"pimsim's time for its work, over its dispatches at the single-operator costs "
                        f"(calibration.raw.dispatch_scale)")
                for key in ("kernel_overhead_ns", "overhead_ns_by_kind", "call_overhead_ns"):
                    methods[key] += note
            else:
                stage("compiled graphs")
                backend, t = _compiled(settings.backend, s, notes)
                raw.update({f"compiled_{k}": v for k, v in t.items()})
                per_gemm = max((t["long_s"] - t["short_s"]) / (_LONG - _SHORT), 1e-9)
                entry = max(t["short_s"] - _SHORT * per_gemm, 0.0)
                # kernels that LayerNorm, ReLU and the residual add took per product, as compiled
                extra = (t["blocks_other_kernels"] - t["long_other_kernels"]) / _LONG
                spent = t["blocks_s"] - t["long_s"]
                per_small = spent / (_LONG * extra) if extra > 0 and spent > 0 else per_gemm
                if extra <= 0:
                    fuse, into_gemm, how = list(ALL_FUSED), True, "fused into the product"
                elif extra <= 1:
                    fuse, into_gemm, how = list(ALL_FUSED), False, "one kernel of their own"
                else:
                    fuse, into_gemm, how = ["attention"], False, "not fused"
                script = backend == "torchscript"
                host.update({
                    "kernel_overhead_ns": per_small * 1e9,
                    "overhead_ns_by_kind": {"gemm": per_gemm * 1e9, "matmul": per_gemm * 1e9},
                    "call_overhead_ns": 0.0, "glue_ops": script, "batch_overhead_ns": entry * 1e9,
                    "fuse": fuse, "fuse_into_gemm": into_gemm,
                })
                chain = (f"chains of {_SHORT} and {_LONG} products [{_ROWS}x{_DIM}]x[{_DIM}x{_DIM}] "
                         f"compiled by {backend}")
                methods["overhead_ns_by_kind"] = f"gemm, matmul: slope of {chain}, {th}"
                methods["batch_overhead_ns"] = f"intercept of {chain}"
                methods["kernel_overhead_ns"] = (
                    f"time LayerNorm + ReLU + residual add added to each of {_LONG} products, per kernel they "
                    f"compiled to ({extra:g})" if per_small != per_gemm
                    else "as a product's (no kernel of their own to time)")
                methods["fuse"] = (f"kernels in the compiled graph: LayerNorm + ReLU + residual add after a "
                                   f"product took {extra:g} kernels of their own: {how}")
                methods["call_overhead_ns"] = "0: module calls are inlined and views run no kernel in a compiled graph"
                stage("compiled probe model")
                scale, probe = _dispatch_scale(base, host, s, backend)
                raw.update(probe)
                raw["dispatch_scale"] = scale
                host["kernel_overhead_ns"] *= scale
                host["overhead_ns_by_kind"] = {k: v * scale for k, v in host["overhead_ns_by_kind"].items()}
                note = (f"; times {scale:.2f}: what a probe model (7 NASRec blocks at width 16, batch 1, compiled "
                        f"by {backend}) took beyond pimsim's time for its work and graph entry, over its kernels "
                        f"at these costs (calibration.raw.dispatch_scale)")
                for key in ("kernel_overhead_ns", "overhead_ns_by_kind"):
                    methods[key] += note
                methods["glue_ops"] = ("true: TorchScript runs each copy (cat, pad, gather) as a kernel" if script
                                       else "false: inductor plans copies into its kernels and buffers")
    finally:
        torch.set_num_threads(previous_threads)
    for key in _ENERGY_KEYS:
        methods.setdefault(key, f"not measured ({raw['energy_counters']}): the base preset's ({settings.base})")
    if Path(settings.base).is_file():  # the file's base must resolve from wherever it is read
        settings = replace(settings, base=str(Path(settings.base).resolve()))
    return Calibration(settings=settings, host=host, methods=methods, raw=raw,
                       machine=f"{socket.gethostname()}: {_cpu_model()}, {available_cpus()} CPUs",
                       torch_version=torch.__version__,
                       when=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       seconds=time.perf_counter() - t_start, backend=backend, notes=tuple(notes))


# --- TOML ----------------------------------------------------------------------


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write a non-finite number ({v!r}) to a hardware file")
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"cannot write {type(v).__name__} {v!r} to a hardware file")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def calibration_toml(cal: Calibration) -> str:
    """The hardware file of ``cal``: ``base`` plus the measured ``[host]`` and the record."""
    st = cal.settings
    name = f"calibrated-{st.runtime}-{st.threads}t"
    desc = (f"{cal.machine}; {cal.backend} PyTorch {cal.torch_version}, {st.threads} threads, measured {cal.when}; "
            f"DRAM, mapping and {'the energy RAPL did not measure' if cal.raw.get('energy_measured') else 'energy'} "
            f"from {st.base}")
    lines = [
        f"# Host calibration written by `cosearch calibrate` on {cal.when}.",
        "# Every [host] number was measured on this machine except those [calibration.method]",
        "# marks as the base preset's. Re-run the command to measure again.",
        f"name = {_toml_value(name)}",
        f"description = {_toml_value(desc)}",
        f"base = {_toml_value(st.base)}",
        "",
        "[host]",
    ]
    for k, v in cal.host.items():
        if k == "gemm_fp32_gflops" and v:  # one row per line: a table a person can read
            lines.append("# GFLOP/s of one fp32 product: row i has M = gemm_m[i], column j has K * N = gemm_kn[j]")
            lines.append(f"{k} = [\n" + "".join(f"    {_toml_value(row)},\n" for row in v) + "]")
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    meta = {"tool": "cosearch calibrate", "when": cal.when, "machine": cal.machine, "torch": cal.torch_version,
            "threads": st.threads, "runtime": st.runtime, "backend": cal.backend, "base": st.base,
            "seconds": round(cal.seconds, 3), "sample_s": float(st.sample_s), "notes": list(cal.notes)}
    lines += ["", "[calibration]"] + [f"{k} = {_toml_value(v)}" for k, v in meta.items()]
    lines += ["", "[calibration.method]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in cal.methods.items()]
    lines += ["", "[calibration.raw]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in cal.raw.items()]
    return "\n".join(lines) + "\n"


def write_calibration(cal: Calibration, path) -> Path:
    """Write ``cal`` to ``path`` (a ``.toml`` file in an existing folder) atomically and
    check that pimsim reads it back; returns the path."""
    import pimsim
    path = Path(path)
    if path.suffix != ".toml":
        raise ValueError(f"{path}: a hardware file must end in .toml")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: folder {path.parent} does not exist")
    text = calibration_toml(cal)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        pimsim.load_hardware(tmp)  # a file pimsim would refuse never replaces a good one
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
