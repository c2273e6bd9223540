"""pimsim: latency and energy of recommender inference on DRAM and processing-in-memory hardware."""

from .config import (Controller, DramOrg, DramPower, DramTiming, Hardware, NearMemoryUnit,
                     NmpLevel, PagePolicy, Scheduler)
from .embedding import Report, simulate
from .energy import ActionCounts, EnergyTable
from .presets import list_presets, load_hardware
from .sim import TraceReport, simulate_trace
from .trace import Trace, read_indices_npz, read_trace, write_trace
from .workload import (EmbeddingBatch, EmbeddingTable, EmbeddingWorkload, IndexDistribution,
                       Placement, batch_from_indices, sample_batch)

__all__ = [
    "ActionCounts", "Controller", "DramOrg", "DramPower", "DramTiming", "EmbeddingBatch",
    "EmbeddingTable", "EmbeddingWorkload", "EnergyTable", "Hardware", "IndexDistribution",
    "NearMemoryUnit", "NmpLevel", "PagePolicy", "Placement", "Report", "Scheduler", "Trace",
    "TraceReport", "batch_from_indices", "list_presets", "load_hardware", "read_indices_npz",
    "read_trace", "sample_batch", "simulate", "simulate_trace", "write_trace",
]
