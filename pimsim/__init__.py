"""pimsim: latency and energy of recommender inference on DRAM and processing-in-memory hardware."""

from .config import (Controller, DramOrg, DramPower, DramTiming, Hardware, NearMemoryUnit,
                     NmpLevel, PagePolicy, Scheduler)
from .presets import list_presets, load_hardware

__all__ = [
    "Controller", "DramOrg", "DramPower", "DramTiming", "Hardware", "NearMemoryUnit",
    "NmpLevel", "PagePolicy", "Scheduler", "list_presets", "load_hardware",
]
