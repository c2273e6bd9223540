"""Hardware knobs as pimsim hardware, and pimsim's query (the production cost model)."""
from __future__ import annotations

from functools import lru_cache

import pimsim

from cosearch.hardware import HardwareKnobs

__all__ = ["build_hardware", "knobs_valid", "query"]


@lru_cache(maxsize=4096)
def build_hardware(knobs: HardwareKnobs):
    """The validated pimsim ``Hardware`` of ``knobs`` (preset ``family`` plus overrides)."""
    return pimsim.with_overrides(knobs.family, knobs.overrides())


def knobs_valid(knobs: HardwareKnobs) -> bool:
    """True when pimsim accepts the configuration (e.g. crossbar GEMMs need a crossbar preset)."""
    try:
        build_hardware(knobs)
    except ValueError:
        return False
    return True


def query(workload, hardware, *, seed: int = 0):
    """``pimsim.query`` (kept behind one name so cost providers pickle by reference)."""
    return pimsim.query(workload, hardware, seed=seed)
