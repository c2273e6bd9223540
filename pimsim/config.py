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
    "MAPPING_FIELDS",
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


def _check_pow2(obj, name: str) -> None:
    value = getattr(obj, name)
    if value & (value - 1):
        raise ValueError(f"{type(obj).__name__}.{name} must be a power of two, got {value!r}")


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
    """Organisation of the memory system. ``bus_width`` in bits per channel."""

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
        for name in ("channels", "ranks", "bankgroups", "banks_per_group", "rows", "columns",
                     "device_width", "chips_per_rank", "burst_length", "bus_width"):
            _check_int(self, name)
            _check_pow2(self, name)
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

    ``transaction_queue``: entries per controller; ``command_queue``: entries per bank.
    ``coalesce_reads``: a read to a line with a read already pending is served by
    that one access. ``forward_writes``: a read to a line with a write pending is
    served from the write buffer after ``forward_latency`` cycles.
    ``write_drain_threshold`` (FR-FCFS): writes wait while reads are queued until this
    many writes are queued, then drain until none is left (0: writes compete with
    reads as equals). ``row_hit_cap`` (FR-FCFS): after this many column commands to
    one open row, a bank serves its oldest request first (0: no cap; 4 in DRAMsim3).
    """

    transaction_queue: int = 32
    command_queue: int = 8
    scheduler: Scheduler = Scheduler.FRFCFS
    coalesce_reads: bool = True
    forward_writes: bool = True
    forward_latency: int = 1
    write_drain_threshold: int = 16
    row_hit_cap: int = 4

    def __post_init__(self) -> None:
        _check_int(self, "transaction_queue")
        _check_int(self, "command_queue")
        _check_int(self, "forward_latency", 0)
        _check_int(self, "write_drain_threshold", 0)
        _check_int(self, "row_hit_cap", 0)
        _coerce_enum(self, "scheduler", Scheduler)
        for name in ("coalesce_reads", "forward_writes"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Controller.{name} must be true or false, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class NearMemoryUnit:
    """Reduction units beside the DRAM.

    One unit per ``instances_per_unit`` instances of ``level`` (e.g. HBM-PIM: level
    bank, 2 banks per unit). ``max_local_gbps`` caps a unit's DRAM bandwidth
    (0: no cap beyond the DRAM timing). ``local_io_pj_per_bit``: energy of moving data
    from the DRAM arrays to the unit (0 by default: only the channel is charged I/O).
    ``cache_ways > 0`` makes the buffer an LRU cache of embedding lines with that many
    ways (RecNMP's rank cache); 0 leaves it a plain buffer that caches nothing.
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

    def __post_init__(self) -> None:
        for name, cls in (("org", DramOrg), ("timing", DramTiming), ("power", DramPower),
                          ("controller", Controller)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"Hardware.{name} must be a {cls.__name__}, got {getattr(self, name)!r}")
        if self.nmp is not None and not isinstance(self.nmp, NearMemoryUnit):
            raise ValueError(f"Hardware.nmp must be a NearMemoryUnit or None, got {self.nmp!r}")
        if self.nmp is not None:
            per_rank = {NmpLevel.RANK: 1, NmpLevel.BANKGROUP: self.org.bankgroups,
                        NmpLevel.BANK: self.org.banks}[self.nmp.level]
            if self.nmp.level is not NmpLevel.RANK and per_rank % self.nmp.instances_per_unit:
                raise ValueError(
                    f"NearMemoryUnit.instances_per_unit {self.nmp.instances_per_unit} does not divide "
                    f"the {per_rank} {self.nmp.level.value}s of a rank"
                )

    @property
    def peak_channel_gbps(self) -> float:
        """Peak data rate of one channel in GB/s (double data rate)."""
        return self.org.bus_width / 8 * 2 / self.timing.tck_ns

    def nmp_units(self) -> int:
        """Total number of near-memory units (0 without them)."""
        if self.nmp is None:
            return 0
        per_rank = {NmpLevel.RANK: 1, NmpLevel.BANKGROUP: self.org.bankgroups,
                    NmpLevel.BANK: self.org.banks}[self.nmp.level]
        instances = self.org.channels * self.org.ranks * per_rank
        return max(1, instances // self.nmp.instances_per_unit)
