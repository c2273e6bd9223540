"""Energy per action, kept apart from the counts of actions (the Accelergy way).

DRAM energies follow the IDD method in shared/REFERENCE.md (the one DRAMsim3
uses), converted to pJ with tCK: mA x V x ns = pJ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import Hardware

__all__ = ["ActionCounts", "EnergyTable", "energy_breakdown_pj", "ENERGY_ACTIONS"]

ENERGY_ACTIONS = ("act_pre", "read", "write", "refresh", "background", "io", "compute")


@dataclass(frozen=True)
class ActionCounts:
    """What the engine counted. Rank-cycles: ranks x DRAM cycles spent in each state."""

    activations: int = 0
    precharges: int = 0
    reads: int = 0
    writes: int = 0
    refreshes: int = 0
    active_rank_cycles: int = 0
    precharged_rank_cycles: int = 0
    channel_bits: int = 0
    local_bits: int = 0
    unit_adds: int = 0
    unit_muls: int = 0

    def __add__(self, other: "ActionCounts") -> "ActionCounts":
        return ActionCounts(**{k: v + getattr(other, k) for k, v in asdict(self).items()})


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action in pJ (background: per rank per cycle)."""

    act_pre_pj: float
    read_pj: float
    write_pj: float
    refresh_pj: float
    active_standby_pj_per_cycle: float
    precharged_standby_pj_per_cycle: float
    channel_io_pj_per_bit: float
    local_io_pj_per_bit: float
    add_pj: float
    mul_pj: float

    @classmethod
    def from_hardware(cls, hw: Hardware) -> "EnergyTable":
        t, w, chips = hw.timing, hw.power, hw.org.chips_per_rank
        ns = t.tck_ns
        burst = hw.org.burst_length // 2
        # REFERENCE.md: ACT+PRE = VDD (IDD0 tRC - IDD3N tRAS - IDD2N tRP) x chips
        act_pre = w.vdd * (w.idd0 * t.trc - w.idd3n * t.tras - w.idd2n * t.trp) * chips * ns
        return cls(
            act_pre_pj=max(act_pre, 0.0),
            read_pj=w.vdd * (w.idd4r - w.idd3n) * burst * chips * ns,
            write_pj=w.vdd * (w.idd4w - w.idd3n) * burst * chips * ns,
            refresh_pj=w.vdd * (w.idd5ab - w.idd3n) * t.trfc * chips * ns,
            active_standby_pj_per_cycle=w.vdd * w.idd3n * chips * ns,
            precharged_standby_pj_per_cycle=w.vdd * w.idd2n * chips * ns,
            channel_io_pj_per_bit=w.io_pj_per_bit,
            local_io_pj_per_bit=hw.nmp.local_io_pj_per_bit if hw.nmp else 0.0,
            add_pj=hw.nmp.add_pj if hw.nmp else 0.0,
            mul_pj=hw.nmp.mul_pj if hw.nmp else 0.0,
        )


def energy_breakdown_pj(counts: ActionCounts, table: EnergyTable) -> dict[str, float]:
    """Energy by action in pJ; the values sum to the total."""
    return {
        "act_pre": counts.activations * table.act_pre_pj,
        "read": counts.reads * table.read_pj,
        "write": counts.writes * table.write_pj,
        "refresh": counts.refreshes * table.refresh_pj,
        "background": counts.active_rank_cycles * table.active_standby_pj_per_cycle
        + counts.precharged_rank_cycles * table.precharged_standby_pj_per_cycle,
        "io": counts.channel_bits * table.channel_io_pj_per_bit
        + counts.local_bits * table.local_io_pj_per_bit,
        "compute": counts.unit_adds * table.add_pj + counts.unit_muls * table.mul_pj,
    }
