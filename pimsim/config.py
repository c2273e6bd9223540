"""Hardware descriptions: frozen, validated dataclasses.

Units live in names. Times in DRAM clock cycles unless a name says ``_ns``;
currents in mA, voltages in V, energies in pJ.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields

__all__ = [
    "PagePolicy",
    "Scheduler",
    "NmpLevel",
    "DramOrg",
    "DramTiming",
    "DramPower",
    "Controller",
    "NearMemoryUnit",
    "Hardware",
    "HostKind",
    "Host",
    "FUSE_KINDS",
    "OVERHEAD_KINDS",
    "Overflow",
    "Crossbar",
    "Place",
    "Mapping",
    "MAPPING_FIELDS",
    "ADC_PJ_BY_BITS",
    "ADC_UM2_BY_BITS",
]

MAPPING_FIELDS = ("ro", "ch", "ra", "bg", "ba", "co")


class PagePolicy(str, enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class Scheduler(str, enum.Enum):
    FRFCFS = "frfcfs"  # row hits first, then oldest
    FCFS = "fcfs"


class NmpLevel(str, enum.Enum):
    RANK = "rank"
    BANKGROUP = "bankgroup"
    BANK = "bank"


def _check_int(obj, name: str, minimum: int = 1) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{type(obj).__name__}.{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{type(obj).__name__}.{name} must be >= {minimum}, got {value!r}")


def _check_float(obj, name: str, minimum: float = 0.0, strict: bool = True) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{type(obj).__name__}.{name} must be a finite number, got {value!r}")
    if (strict and value <= minimum) or (not strict and value < minimum):
        op = ">" if strict else ">="
        raise ValueError(f"{type(obj).__name__}.{name} must be {op} {minimum}, got {value!r}")


def _check_pow2(obj, name: str, why: str = "") -> None:
    value = getattr(obj, name)
    if value & (value - 1):
        raise ValueError(f"{type(obj).__name__}.{name} must be a power of two, got {value!r}{why}")


def _coerce_enum(obj, name: str, enum_type) -> None:
    value = getattr(obj, name)
    if isinstance(value, enum_type):
        return
    try:
        object.__setattr__(obj, name, enum_type(value))
    except ValueError:
        choices = ", ".join(e.value for e in enum_type)
        raise ValueError(
            f"{type(obj).__name__}.{name} must be one of {choices}, got {value!r}"
        ) from None


def parse_mapping(mapping: str) -> tuple[str, ...]:
    """Split e.g. ``'rochrababgco'`` into ``('ro','ch','ra','ba','bg','co')``, MSB first."""
    if not isinstance(mapping, str) or len(mapping) != 12:
        raise ValueError(f"address_mapping must be 12 letters naming ro, ch, ra, bg, ba, co once each, got {mapping!r}")
    parts = tuple(mapping[i : i + 2] for i in range(0, 12, 2))
    if sorted(parts) != sorted(MAPPING_FIELDS):
        raise ValueError(f"address_mapping must name ro, ch, ra, bg, ba, co once each, got {mapping!r}")
    return parts


@dataclass(frozen=True)
class DramOrg:
    """Organisation of the memory system. ``bus_width`` in bits per channel.

    Every count is a power of two except ``channels``, which may be any positive count.
    """

    channels: int
    ranks: int
    bankgroups: int
    banks_per_group: int
    rows: int
    columns: int
    device_width: int
    chips_per_rank: int
    burst_length: int
    bus_width: int
    page_policy: PagePolicy = PagePolicy.OPEN
    address_mapping: str = "rochrababgco"

    def __post_init__(self) -> None:
        _check_int(self, "channels")  # any count: the address mapping interleaves channels modulo
        for name in ("ranks", "bankgroups", "banks_per_group", "rows", "columns",
                     "device_width", "chips_per_rank", "burst_length", "bus_width"):
            _check_int(self, name)
            _check_pow2(self, name, " (only channels may be any count)")
        _coerce_enum(self, "page_policy", PagePolicy)
        parse_mapping(self.address_mapping)
        if self.device_width * self.chips_per_rank != self.bus_width:
            raise ValueError(
                f"DramOrg.chips_per_rank * device_width must equal bus_width "
                f"({self.chips_per_rank} * {self.device_width} != {self.bus_width})"
            )
        if self.burst_length > self.columns:
            raise ValueError(f"DramOrg.burst_length {self.burst_length} exceeds columns {self.columns}")

    @property
    def banks(self) -> int:
        """Banks per rank."""
        return self.bankgroups * self.banks_per_group

    @property
    def line_bytes(self) -> int:
        """Bytes moved by one burst (one column command)."""
        return self.bus_width // 8 * self.burst_length

    @property
    def lines_per_row(self) -> int:
        return self.columns // self.burst_length

    @property
    def row_bytes(self) -> int:
        """Row-buffer size of one rank in bytes."""
        return self.lines_per_row * self.line_bytes

    @property
    def capacity_bytes(self) -> int:
        return self.channels * self.ranks * self.banks * self.rows * self.row_bytes

    def field_sizes(self) -> dict[str, int]:
        """Number of distinct values of each address field (column in lines)."""
        return {"ro": self.rows, "ch": self.channels, "ra": self.ranks,
                "bg": self.bankgroups, "ba": self.banks_per_group, "co": self.lines_per_row}


@dataclass(frozen=True)
class DramTiming:
    """DRAM timing. ``tck_ns`` in ns; every other field in clock cycles.

    ``trefi = 0`` disables refresh.
    """

    tck_ns: float
    cl: int
    cwl: int
    trcd: int
    trp: int
    tras: int
    trrd_s: int
    trrd_l: int
    tfaw: int
    tccd_s: int
    tccd_l: int
    twtr_s: int
    twtr_l: int
    twr: int
    trtp: int
    trfc: int
    trefi: int
    trtrs: int

    def __post_init__(self) -> None:
        _check_float(self, "tck_ns")
        for f in fields(self):
            if f.name == "tck_ns":
                continue
            minimum = 0 if f.name in ("trefi", "trfc", "trtrs") else 1
            _check_int(self, f.name, minimum)
        if self.trefi and self.trfc >= self.trefi:
            raise ValueError(f"DramTiming.trfc ({self.trfc}) must be below trefi ({self.trefi})")

    @property
    def trc(self) -> int:
        return self.tras + self.trp


@dataclass(frozen=True)
class DramPower:
    """Supply voltage (V), IDD currents per chip (mA), I/O energy (pJ per bit on the channel)."""

    vdd: float
    idd0: float
    idd2n: float
    idd3n: float
    idd4r: float
    idd4w: float
    idd5ab: float
    io_pj_per_bit: float

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_float(self, f.name, 0.0, strict=f.name != "io_pj_per_bit")
        if self.idd3n < self.idd2n:
            raise ValueError(f"DramPower.idd3n ({self.idd3n}) must be >= idd2n ({self.idd2n})")
        for name in ("idd4r", "idd4w", "idd5ab"):
            if getattr(self, name) < self.idd3n:
                raise ValueError(f"DramPower.{name} ({getattr(self, name)}) must be >= idd3n ({self.idd3n})")


@dataclass(frozen=True)
class Controller:
    """Memory-controller model.

    ``transaction_queue``: accepted requests that wait for room in their bank's command
    queue (reads, and writes when ``write_queue`` is 0); a request is accepted only when
    it has an entry there (or in the write buffer), so latency counts from acceptance
    into a bounded queue. ``command_queue``: entries per bank.
    ``coalesce_reads``: a read to a line with a read already pending is served by
    that one access. ``forward_writes``: a read to a line with a write pending (buffered
    or not yet written) is served from it after ``forward_latency`` cycles.

    Writes (FR-FCFS): ``write_queue`` entries of write buffer hold accepted writes
    while reads are served (0: no buffer; writes queue and compete with reads as
    equals). A drain starts when ``write_high_watermark`` writes are buffered, when the
    controller holds no read, or when a read waits for a buffered write (forwarding
    off); during a drain the buffered writes enter the command queues and new reads
    wait. It stops once at most ``write_low_watermark`` writes remain buffered and a
    read waits, or when the buffer is empty. Needs 0 <= low < high <= write_queue
    (not checked when write_queue is 0). ``row_hit_cap`` (FR-FCFS): after this many column
    commands to one open row, a bank serves its oldest request first (0: no cap; 4 in
    DRAMsim3).
    """

    transaction_queue: int = 32
    command_queue: int = 8
    scheduler: Scheduler = Scheduler.FRFCFS
    coalesce_reads: bool = True
    forward_writes: bool = True
    forward_latency: int = 1
    write_queue: int = 16
    write_high_watermark: int = 16
    write_low_watermark: int = 4
    row_hit_cap: int = 4

    def __post_init__(self) -> None:
        _check_int(self, "transaction_queue")
        _check_int(self, "command_queue")
        _check_int(self, "forward_latency", 0)
        _check_int(self, "write_queue", 0)
        _check_int(self, "write_high_watermark", 0)
        _check_int(self, "write_low_watermark", 0)
        _check_int(self, "row_hit_cap", 0)
        _coerce_enum(self, "scheduler", Scheduler)
        for name in ("coalesce_reads", "forward_writes"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Controller.{name} must be true or false, got {getattr(self, name)!r}")
        if self.write_queue > 0:
            if not 1 <= self.write_high_watermark <= self.write_queue:
                raise ValueError(f"Controller.write_high_watermark must be in 1..write_queue "
                                 f"({self.write_queue}), got {self.write_high_watermark!r}")
            if self.write_low_watermark >= self.write_high_watermark:
                raise ValueError(f"Controller.write_low_watermark must be below write_high_watermark "
                                 f"({self.write_high_watermark}), got {self.write_low_watermark!r}")


@dataclass(frozen=True)
class NearMemoryUnit:
    """Reduction units beside the DRAM.

    One unit per ``instances_per_unit`` instances of ``level`` (e.g. HBM-PIM: level
    bank, 2 banks per unit). ``max_local_gbps`` caps a unit's DRAM bandwidth
    (0: no cap beyond the DRAM timing). ``local_io_pj_per_bit``: energy of moving data
    from the DRAM arrays to the unit (0 by default: only the channel is charged I/O).
    ``cache_ways > 0`` makes the buffer an LRU cache of embedding lines with that many
    ways (RecNMP's rank cache); 0 leaves it a plain buffer that caches nothing.
    For dense layers on the units, ``buffer_bytes`` also bounds how many input
    vectors share one pass over the weights; ``launch_ns`` is the host's fixed cost
    of starting one layer on the units (mode switch, command setup);
    ``unit_area_mm2`` is one unit's area (0: not modelled).
    """

    level: NmpLevel
    clock_mhz: float
    simd_lanes: int
    add_pj: float
    mul_pj: float
    buffer_bytes: int
    instances_per_unit: int = 1
    max_local_gbps: float = 0.0
    local_io_pj_per_bit: float = 0.0
    cache_ways: int = 0
    launch_ns: float = 0.0
    unit_area_mm2: float = 0.0

    def __post_init__(self) -> None:
        _coerce_enum(self, "level", NmpLevel)
        _check_float(self, "clock_mhz")
        _check_int(self, "simd_lanes")
        _check_float(self, "add_pj", strict=False)
        _check_float(self, "mul_pj", strict=False)
        _check_int(self, "buffer_bytes", 0)
        _check_int(self, "instances_per_unit")
        _check_float(self, "max_local_gbps", strict=False)
        _check_float(self, "local_io_pj_per_bit", strict=False)
        _check_int(self, "cache_ways", 0)
        _check_float(self, "launch_ns", strict=False)
        _check_float(self, "unit_area_mm2", strict=False)

class HostKind(str, enum.Enum):
    CPU = "cpu"
    GPU = "gpu"


#: Operator kinds a host runtime may fuse into the kernel before them (``Host.fuse``):
#: element-wise kinds of ``pimsim.dense.Elementwise`` ("activation", "layernorm", "add",
#: "elementwise"), "reduction" and "softmax" layers, and "attention": an attention's
#: scores product, softmax and context product as one kernel (what PyTorch's
#: ``scaled_dot_product_attention`` runs even in eager mode).
FUSE_KINDS = ("activation", "layernorm", "add", "elementwise", "reduction", "softmax", "attention")
#: Kernel kinds that may have a dispatch cost of their own (``Host.overhead_ns_by_kind``):
#: "gemm" (weight GEMMs), "matmul" (activation x activation), "attention" (a fused
#: attention kernel), "softmax", "reduction", and the element-wise kinds that run a kernel.
OVERHEAD_KINDS = ("gemm", "matmul", "attention", "softmax", "reduction", "activation", "layernorm", "add",
                  "elementwise", "copy")


@dataclass(frozen=True)
class Host:
    """A host processor as a roofline.

    Peaks per precision (GFLOP/s; int8 in GOP/s), chosen by a layer's bytes per
    element (4: fp32, 2: fp16/bf16, 1: int8). ``mem_gbps`` 0 means the DRAM of the
    same :class:`Hardware` at its peak. Weights of all host layers stay in
    ``cache_bytes`` of on-chip cache when they fit, and a layer's activations do
    when its inputs plus outputs fit; everything else streams from DRAM at
    ``dram_pj_per_byte``. Energy per FLOP is per precision; ``static_w`` is drawn
    for the whole time the host is busy. Embedding lookups that hit the cache move
    at ``cache_gbps`` and cost ``cache_pj_per_byte``.

    The runtime on the host (what a calibration measures; every default keeps the
    plain roofline of the presets): ``kernel_overhead_ns`` is paid per kernel, or
    ``overhead_ns_by_kind[kind]`` for the kinds it names (:data:`OVERHEAD_KINDS`: an
    eager runtime's fixed cost differs between, say, a ReLU and a LayerNorm); ``fuse``
    lists the operator kinds (:data:`FUSE_KINDS`) that join the kernel before them, so
    they pay no overhead and their input does not go through memory; with
    ``fuse_into_gemm`` false they join only a kernel of small operators, never a
    GEMM's. ``glue_ops`` charges a workload's glue layers (copies and calls between
    operators, which an eager runtime dispatches one by one): a copy as a kernel, a
    call at ``call_overhead_ns``. ``batch_overhead_ns`` is paid once per batch (entering
    a compiled graph). ``act_cache_gbps`` > 0 makes the bytes a layer touches in the
    cache take time at that rate (0: free); ``vector_gflops`` > 0 is the rate of
    operations outside GEMMs (0: the GEMM peak of the layer's precision);
    ``matmul_gflops`` > 0 that of products of two activations (attention, pairwise
    dot products: many small matrices, far from the GEMM peak; 0: the GEMM peak);
    ``weight_cache_gbps`` > 0 the rate at which a GEMM reads weights held in the cache
    (a matrix-vector product at batch 1 is bound by it; 0: ``act_cache_gbps``);
    ``softmax_gflops`` > 0 that of softmax layers, ``SOFTMAX_OPS_PER_ELEMENT`` operations
    per score (0: ``vector_gflops``): inside a CPU's fused attention at a head dimension of
    a few elements, the per-score work, not the products, takes most of the time.
    ``attention_block_rows`` > 0 times a softmax of attention (one whose ``queries`` per
    (batch, head) pair the profile recorded) as a CPU's fused attention
    kernel runs it, in blocks of that many queries per (batch, head) pair, each block
    costing ``attention_block_ns`` plus ``attention_block_score_ns`` per key (the
    softmax rate then no longer applies): at a few dozen tokens the time goes to the
    blocks, not the scores (issue 15: eager flash attention at head dimension 2 took
    9.5-10.6 us per (batch, head) pair at 40, 50 and 64 tokens alike, 15.0 at 80 and 30.4
    at 128, on one thread of a 2-vCPU Xeon VM); 0 keeps the per-score rate.
    ``attention_key_align`` > 0 with ``attention_tail_ns`` > 0 adds, to those blocks, the
    keys beyond the last multiple of ``attention_key_align``: each costs
    ``attention_tail_ns`` per query. The kernel runs whole groups of keys on its fast
    path and the rest one by one (issue 15, one thread of the same VM: 32 queries over 32,
    40, 47 and 48 keys at head dimension 2 took 2.1, 5.5, 7.1 and 2.7 us per (batch, head)
    pair); 0 charges every key alike.
    ``first_touch_gbps`` > 0 charges the share of a layer's output that spills beyond
    the cache once more, at that rate: an eager runtime allocates every output afresh,
    and a large allocation comes from the OS as new pages that are mapped and zeroed on
    first touch (issue 15: a 218 MB outer product in xDeepFM ran 3x slower than its
    streaming time); 0 leaves it free.
    ``first_touch_min_bytes`` > 0 changes which outputs pay it: an output of at least
    that many bytes pays on all of it, cache or not, and smaller ones not at all. That is
    how an allocator behaves that maps large blocks afresh from the OS on every call and
    reuses small ones (glibc's malloc maps blocks above its mmap threshold, which rises to
    at most 32 MiB on 64-bit systems: mallopt(3), ``DEFAULT_MMAP_THRESHOLD_MAX``; issue 15
    measured 30 MiB fresh outputs at the cost of reused ones, 34 MiB ones at 3x it).
    ``strided_copy_gbps`` > 0 is the rate (bytes read per second) of a strided copy (an
    ``Elementwise`` with ``strided``: a transposed view made contiguous), which a CPU
    runs element by element (issue 15: 2-7 GB/s against 116 GB/s streaming in the
    cache on the 2-core validation machine); 0 charges it as any copy. A host without
    ``glue_ops`` (a compiled graph) still runs a strided copy when this rate is set: the
    compiled graph transposes before the product too.

    Shape-aware GEMM rate (fp32 weight GEMMs only; empty: the fp32 peak for every
    shape): ``gemm_fp32_gflops[i][j]`` is the GFLOP/s of one product of a
    ``gemm_m[i]`` x K activation by a K x N weight with ``K * N == gemm_kn[j]``
    (measured at K = N), dispatch cost excluded. A product of other sizes gets the
    table interpolated geometrically (bilinear in log2 m, log2 K*N and log2 GFLOP/s),
    each coordinate clamped to the grid: small skinny products in a model run far
    below the large square peak, and a roofline from that peak alone predicts them
    too fast (issue 15: NASRec models at batch 1024 came out 2.5-3.4x too fast).
    """

    kind: HostKind
    peak_fp32_gflops: float
    peak_fp16_gflops: float
    peak_int8_gops: float
    pj_per_flop_fp32: float
    pj_per_flop_fp16: float
    pj_per_op_int8: float
    cache_bytes: int
    dram_pj_per_byte: float
    kernel_overhead_ns: float
    tdp_w: float
    mem_gbps: float = 0.0
    static_w: float = 0.0
    cache_gbps: float = 1000.0
    cache_pj_per_byte: float = 10.0
    fuse: tuple[str, ...] = ()
    fuse_into_gemm: bool = True
    glue_ops: bool = False
    call_overhead_ns: float = 0.0
    batch_overhead_ns: float = 0.0
    act_cache_gbps: float = 0.0
    vector_gflops: float = 0.0
    matmul_gflops: float = 0.0
    weight_cache_gbps: float = 0.0
    softmax_gflops: float = 0.0
    first_touch_gbps: float = 0.0
    strided_copy_gbps: float = 0.0
    overhead_ns_by_kind: tuple[tuple[str, float], ...] = ()
    gemm_m: tuple[int, ...] = ()
    gemm_kn: tuple[int, ...] = ()
    gemm_fp32_gflops: tuple[tuple[float, ...], ...] = ()
    first_touch_min_bytes: int = 0
    attention_block_rows: int = 0
    attention_block_ns: float = 0.0
    attention_block_score_ns: float = 0.0
    attention_key_align: int = 0
    attention_tail_ns: float = 0.0

    def __post_init__(self) -> None:
        _coerce_enum(self, "kind", HostKind)
        self._check_gemm_table()
        _check_float(self, "cache_gbps")
        _check_float(self, "cache_pj_per_byte", strict=False)
        for name in ("peak_fp32_gflops", "peak_fp16_gflops", "peak_int8_gops", "tdp_w"):
            _check_float(self, name)
        for name in ("pj_per_flop_fp32", "pj_per_flop_fp16", "pj_per_op_int8", "dram_pj_per_byte",
                     "kernel_overhead_ns", "mem_gbps", "static_w", "call_overhead_ns", "batch_overhead_ns",
                     "act_cache_gbps", "vector_gflops", "matmul_gflops", "weight_cache_gbps", "softmax_gflops",
                     "first_touch_gbps", "strided_copy_gbps", "attention_block_ns", "attention_block_score_ns",
                     "attention_tail_ns"):
            _check_float(self, name, strict=False)
        _check_int(self, "cache_bytes", 0)
        _check_int(self, "attention_block_rows", 0)
        _check_int(self, "attention_key_align", 0)
        _check_int(self, "first_touch_min_bytes", 0)
        for name in ("fuse_into_gemm", "glue_ops"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Host.{name} must be true or false, got {getattr(self, name)!r}")
        fuse = self.fuse
        if isinstance(fuse, str) or not isinstance(fuse, (list, tuple)):
            raise ValueError(f"Host.fuse must be a list of operator kinds ({', '.join(FUSE_KINDS)}), got {fuse!r}")
        for k in fuse:
            if k not in FUSE_KINDS:
                raise ValueError(f"Host.fuse: unknown operator kind {k!r} (known: {', '.join(FUSE_KINDS)})")
        if len(set(fuse)) != len(fuse):
            raise ValueError(f"Host.fuse names a kind twice: {list(fuse)!r}")
        object.__setattr__(self, "fuse", tuple(fuse))
        by_kind = self.overhead_ns_by_kind
        pairs = by_kind.items() if isinstance(by_kind, dict) else by_kind
        try:
            pairs = tuple((k, v) for k, v in pairs)
        except (TypeError, ValueError):
            raise ValueError(f"Host.overhead_ns_by_kind must be a table of kind = ns, got {by_kind!r}") from None
        for k, v in pairs:
            if k not in OVERHEAD_KINDS:
                raise ValueError(f"Host.overhead_ns_by_kind: unknown kernel kind {k!r} "
                                 f"(known: {', '.join(OVERHEAD_KINDS)})")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"Host.overhead_ns_by_kind.{k} must be a finite number >= 0, got {v!r}")
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError(f"Host.overhead_ns_by_kind names a kind twice: {by_kind!r}")
        object.__setattr__(self, "overhead_ns_by_kind", tuple(sorted((k, float(v)) for k, v in pairs)))

    def _check_gemm_table(self) -> None:
        """Validate the GEMM table and store it as tuples (hashable, immutable)."""
        axes = {}
        for name in ("gemm_m", "gemm_kn"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise ValueError(f"Host.{name} must be a list of increasing positive integers, got {value!r}")
            for i, v in enumerate(value):
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"Host.{name}[{i}] must be a positive integer, got {v!r}")
                if i and v <= value[i - 1]:
                    raise ValueError(f"Host.{name}[{i}] = {v!r} must exceed the entry before it ({value[i - 1]!r})")
            axes[name] = tuple(value)
            object.__setattr__(self, name, tuple(value))
        table = self.gemm_fp32_gflops
        if isinstance(table, (str, bytes)) or not isinstance(table, (list, tuple)):
            raise ValueError(f"Host.gemm_fp32_gflops must be a list of rows (one per gemm_m), got {table!r}")
        if not table and not axes["gemm_m"] and not axes["gemm_kn"]:
            return  # no table: the fp32 peak for every shape
        if not axes["gemm_m"] or not axes["gemm_kn"]:
            raise ValueError("Host.gemm_m, gemm_kn and gemm_fp32_gflops go together: set all three or none "
                             f"(got {len(axes['gemm_m'])} m, {len(axes['gemm_kn'])} kn, {len(table)} rows)")
        if len(table) != len(axes["gemm_m"]):
            raise ValueError(f"Host.gemm_fp32_gflops has {len(table)} rows, one per gemm_m "
                             f"({len(axes['gemm_m'])}) expected")
        rows = []
        for i, row in enumerate(table):
            if isinstance(row, (str, bytes)) or not isinstance(row, (list, tuple)) or len(row) != len(axes["gemm_kn"]):
                raise ValueError(f"Host.gemm_fp32_gflops[{i}] must be a list of {len(axes['gemm_kn'])} numbers "
                                 f"(one per gemm_kn), got {row!r}")
            for j, v in enumerate(row):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                    raise ValueError(f"Host.gemm_fp32_gflops[{i}][{j}] must be a finite number > 0, got {v!r}")
            rows.append(tuple(float(v) for v in row))
        object.__setattr__(self, "gemm_fp32_gflops", tuple(rows))

    def gemm_flops(self, m: int, k: int, n: int, bytes_per_element: int) -> float:
        """Operations per second of one weight GEMM (m x k) @ (k x n): the GEMM table
        interpolated at (m, k * n) for fp32 when the host has one, else the peak."""
        if bytes_per_element != 4 or not self.gemm_fp32_gflops:
            return self.peak_flops(bytes_per_element)
        return _geometric_bilinear(self.gemm_m, self.gemm_kn, self.gemm_fp32_gflops, m, k * n) * 1e9

    def overhead_ns(self, kind: str) -> float:
        """Dispatch cost of one kernel of ``kind``."""
        for k, v in self.overhead_ns_by_kind:
            if k == kind:
                return v
        return self.kernel_overhead_ns

    def peak_flops(self, bytes_per_element: int) -> float:
        """Peak operations per second for elements of that size."""
        g = {4: self.peak_fp32_gflops, 2: self.peak_fp16_gflops, 1: self.peak_int8_gops}
        return g.get(bytes_per_element, self.peak_fp32_gflops) * 1e9

    def vector_flops(self, bytes_per_element: int) -> float:
        """Operations per second outside GEMMs (element-wise work, reductions, softmax)."""
        return self.vector_gflops * 1e9 if self.vector_gflops > 0 else self.peak_flops(bytes_per_element)

    def softmax_flops(self, bytes_per_element: int) -> float:
        """Operations per second of softmax layers."""
        return self.softmax_gflops * 1e9 if self.softmax_gflops > 0 else self.vector_flops(bytes_per_element)

    def pj_per_flop(self, bytes_per_element: int) -> float:
        e = {4: self.pj_per_flop_fp32, 2: self.pj_per_flop_fp16, 1: self.pj_per_op_int8}
        return e.get(bytes_per_element, self.pj_per_flop_fp32)


def _locate(grid: tuple[int, ...], x: float) -> tuple[int, int, float]:
    """(i, j, t): ``x`` lies a fraction ``t`` of the way from ``grid[i]`` to ``grid[j]``
    in log2; outside the grid it is clamped to the nearest end (t = 0)."""
    if x <= grid[0]:
        return 0, 0, 0.0
    if x >= grid[-1]:
        return len(grid) - 1, len(grid) - 1, 0.0
    j = 1
    while grid[j] < x:
        j += 1
    lo, hi = math.log2(grid[j - 1]), math.log2(grid[j])
    return j - 1, j, (math.log2(x) - lo) / (hi - lo)


def _geometric_bilinear(xs: tuple[int, ...], ys: tuple[int, ...], table, x: float, y: float) -> float:
    """``table[i][j]`` (positive, measured at ``xs[i]``, ``ys[j]``) at (x, y): bilinear in
    log2 x, log2 y and log2 of the value, each coordinate clamped to the grid. A rate that
    follows a power law of the sizes (rate ~ m while reading the weight dominates) is then
    exact between grid points; at a grid point the value is the table's own, bit for bit."""
    i0, i1, tx = _locate(xs, x)
    j0, j1, ty = _locate(ys, y)
    # v0 ** 1 * v1 ** 0 == v0 exactly, so grid points give the table's numbers unchanged
    return (table[i0][j0] ** ((1 - tx) * (1 - ty)) * table[i0][j1] ** ((1 - tx) * ty)
            * table[i1][j0] ** (tx * (1 - ty)) * table[i1][j1] ** (tx * ty))


# Energy per conversion (pJ) and area (um^2) of an ADC by resolution in bits: Accelergy's
# component library, derived from ISAAC (ISCA 2016) (REFERENCE.md "Resistive crossbars").
ADC_PJ_BY_BITS = {4: 0.79, 5: 0.99, 6: 1.20, 7: 1.42, 8: 1.67, 9: 1.97, 10: 2.38}
ADC_UM2_BY_BITS = {4: 361.0, 5: 477.0, 6: 627.0, 7: 845.0, 8: 1200.0, 9: 1828.0, 10: 3002.0}


class Overflow(str, enum.Enum):
    RELOAD = "reload"  # weights that do not fit are reprogrammed every batch, at a cost
    REJECT = "reject"  # a workload whose weights do not fit is an error


@dataclass(frozen=True)
class Crossbar:
    """Resistive crossbar arrays doing analog matrix-vector products where the weights are.

    Defaults are ISAAC's (ISCA 2016, REFERENCE.md): 128x128 arrays of 2-bit cells,
    16-bit weights over 8 cells, 16-bit inputs fed one bit per cycle, an 8-bit ADC per
    128 columns, 96 arrays per tile, 168 tiles. A weight of ``weight_bits`` spans
    ceil(weight_bits / bits_per_cell) cells of a row; an input of ``input_bits``
    takes ceil(input_bits / dac_bits) array cycles. One array cycle lasts the longer
    of ``read_ns`` and the ADC converting its ``cols_per_adc`` columns one after
    another, each in ``adc_ns_per_bit`` x ``adc_bits`` (a SAR ADC resolves one bit
    per step). Element-wise work runs on the tiles' digital units.
    """

    rows: int = 128
    cols: int = 128
    bits_per_cell: int = 2
    weight_bits: int = 16
    input_bits: int = 16
    dac_bits: int = 1
    adc_bits: int = 8
    cols_per_adc: int = 128
    read_ns: float = 100.0
    adc_ns_per_bit: float = 0.09765625
    arrays_per_tile: int = 96
    tiles: int = 168
    cell_op_fj: float = 1.8
    dac_pj: float = 0.4
    shift_add_pj: float = 0.021
    buffer_pj_per_byte: float = 2.0
    bus_pj_per_byte: float = 0.68
    array_area_um2: float = 25.0
    tile_other_area_mm2: float = 0.2544
    tile_other_mw: float = 138.6
    digital_ops_per_ns: float = 1.0
    digital_pj_per_op: float = 0.1
    write_ns: float = 50.0
    write_pj_per_cell: float = 20.0
    overflow: Overflow = Overflow.RELOAD
    link_gbps: float = 6.4
    link_pj_per_bit: float = 1.0

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "bits_per_cell", "weight_bits", "input_bits", "dac_bits",
                     "cols_per_adc", "arrays_per_tile", "tiles"):
            _check_int(self, name)
        _check_int(self, "adc_bits", min(ADC_PJ_BY_BITS))
        if self.adc_bits not in ADC_PJ_BY_BITS:
            raise ValueError(f"Crossbar.adc_bits must be one of {min(ADC_PJ_BY_BITS)}..{max(ADC_PJ_BY_BITS)} "
                             f"(the cited ADC table), got {self.adc_bits!r}")
        if self.cols_per_adc > self.cols:
            raise ValueError(f"Crossbar.cols_per_adc {self.cols_per_adc} exceeds cols {self.cols}")
        for name in ("read_ns", "adc_ns_per_bit", "digital_ops_per_ns", "write_ns", "link_gbps"):
            _check_float(self, name)
        for name in ("cell_op_fj", "dac_pj", "shift_add_pj", "buffer_pj_per_byte", "bus_pj_per_byte",
                     "array_area_um2", "tile_other_area_mm2", "tile_other_mw", "digital_pj_per_op",
                     "write_pj_per_cell", "link_pj_per_bit"):
            _check_float(self, name, strict=False)
        _coerce_enum(self, "overflow", Overflow)

    @property
    def cells_per_weight(self) -> int:
        return -(-self.weight_bits // self.bits_per_cell)

    @property
    def input_cycles(self) -> int:
        return -(-self.input_bits // self.dac_bits)

    @property
    def adcs_per_array(self) -> int:
        return -(-self.cols // self.cols_per_adc)

    @property
    def cycle_ns(self) -> float:
        """One array cycle: the analog read or the shared ADCs, whichever is slower."""
        return max(self.read_ns, self.cols_per_adc * self.adc_ns_per_bit * self.adc_bits)

    @property
    def adc_pj(self) -> float:
        return ADC_PJ_BY_BITS[self.adc_bits]

    @property
    def arrays(self) -> int:
        return self.arrays_per_tile * self.tiles

    @property
    def area_mm2(self) -> float:
        per_tile = self.arrays_per_tile * (self.array_area_um2 + self.adcs_per_array
                                           * ADC_UM2_BY_BITS[self.adc_bits]) * 1e-6
        return self.tiles * (per_tile + self.tile_other_area_mm2)

    @property
    def peak_power_w(self) -> float:
        """Every ADC converting back to back, plus the rest of each tile."""
        conv_ns = self.adc_ns_per_bit * self.adc_bits
        adc_mw = self.adc_pj / conv_ns  # pJ / ns = mW
        return self.tiles * (self.arrays_per_tile * self.adcs_per_array * adc_mw + self.tile_other_mw) * 1e-3


class Place(str, enum.Enum):
    HOST = "host"
    NMP = "nmp"  # the near-memory / bank-level units of [nmp]
    CROSSBAR = "crossbar"


@dataclass(frozen=True)
class Mapping:
    """Where each part of a workload runs.

    ``embeddings``: "auto" (near-memory units when the hardware has them, else the
    host), "host" or "nmp". ``gemm``: products with a stationary weight operand.
    ``other``: element-wise work, reductions, softmax and activation x activation
    products: "follow" runs each where its producer ran when that place can (the
    units and crossbar tiles do element-wise work and reductions; softmax and
    activation x activation products always fall back to the host), "host" runs
    them all on the host.
    """

    embeddings: str = "auto"
    gemm: Place = Place.HOST
    other: str = "follow"

    def __post_init__(self) -> None:
        if self.embeddings not in ("auto", "host", "nmp"):
            raise ValueError(f"Mapping.embeddings must be one of auto, host, nmp, got {self.embeddings!r}")
        _coerce_enum(self, "gemm", Place)
        if self.other not in ("follow", "host"):
            raise ValueError(f"Mapping.other must be one of follow, host, got {self.other!r}")


@dataclass(frozen=True)
class Hardware:
    """A whole memory system, optionally with near-memory units."""

    name: str
    description: str
    org: DramOrg
    timing: DramTiming
    power: DramPower
    controller: Controller = Controller()
    nmp: NearMemoryUnit | None = None
    host: Host | None = None
    crossbar: Crossbar | None = None
    mapping: Mapping = Mapping()

    def __post_init__(self) -> None:
        for name, cls in (("org", DramOrg), ("timing", DramTiming), ("power", DramPower),
                          ("controller", Controller)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"Hardware.{name} must be a {cls.__name__}, got {getattr(self, name)!r}")
        if self.nmp is not None and not isinstance(self.nmp, NearMemoryUnit):
            raise ValueError(f"Hardware.nmp must be a NearMemoryUnit or None, got {self.nmp!r}")
        for name, cls in (("host", Host), ("crossbar", Crossbar)):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), cls):
                raise ValueError(f"Hardware.{name} must be a {cls.__name__} or None, got {getattr(self, name)!r}")
        if not isinstance(self.mapping, Mapping):
            raise ValueError(f"Hardware.mapping must be a Mapping, got {self.mapping!r}")
        if self.mapping.embeddings == "nmp" and self.nmp is None:
            raise ValueError("Hardware.mapping.embeddings is 'nmp' but the hardware has no [nmp] units")
        if self.mapping.gemm is Place.NMP and self.nmp is None:
            raise ValueError("Hardware.mapping.gemm is 'nmp' but the hardware has no [nmp] units")
        if self.mapping.gemm is Place.CROSSBAR and self.crossbar is None:
            raise ValueError("Hardware.mapping.gemm is 'crossbar' but the hardware has no [crossbar] section")
        if self.nmp is not None:
            per_rank = {NmpLevel.RANK: 1, NmpLevel.BANKGROUP: self.org.bankgroups,
                        NmpLevel.BANK: self.org.banks}[self.nmp.level]
            if self.nmp.level is NmpLevel.RANK and self.nmp.instances_per_unit != 1:
                # the engine gives every rank its own unit, controller and data path
                raise ValueError(f"NearMemoryUnit.instances_per_unit must be 1 at level 'rank' "
                                 f"(one unit per rank), got {self.nmp.instances_per_unit}")
            if self.nmp.level is not NmpLevel.RANK and per_rank % self.nmp.instances_per_unit:
                raise ValueError(
                    f"NearMemoryUnit.instances_per_unit {self.nmp.instances_per_unit} does not divide "
                    f"the {per_rank} {self.nmp.level.value}s of a rank"
                )

    @property
    def peak_channel_gbps(self) -> float:
        """Peak data rate of one channel in GB/s (double data rate)."""
        return self.org.bus_width / 8 * 2 / self.timing.tck_ns

    @property
    def embedding_place(self) -> Place:
        """Where the embedding lookups run once "auto" is resolved."""
        if self.mapping.embeddings == "auto":
            return Place.NMP if self.nmp is not None else Place.HOST
        return Place(self.mapping.embeddings)

    def nmp_units(self) -> int:
        """Total number of near-memory units (0 without them)."""
        if self.nmp is None:
            return 0
        per_rank = {NmpLevel.RANK: 1, NmpLevel.BANKGROUP: self.org.bankgroups,
                    NmpLevel.BANK: self.org.banks}[self.nmp.level]
        instances = self.org.channels * self.org.ranks * per_rank
        return max(1, instances // self.nmp.instances_per_unit)
