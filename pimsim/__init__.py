"""pimsim: latency and energy of recommender inference on DRAM and processing-in-memory hardware."""

from .config import (Controller, Crossbar, DramOrg, DramPower, DramTiming, Hardware, Host, HostKind,
                     Mapping, NearMemoryUnit, NmpLevel, Overflow, PagePolicy, Place, Scheduler)
from .dense import Elementwise, Gemm, Reduction, Softmax, Workload, builtin_workloads, load_workload
from .embedding import Report, simulate
from .energy import ActionCounts, EnergyTable
from .inference import InferenceReport, LayerCost, query
from .presets import list_presets, load_hardware, with_overrides
from .sim import TraceReport, simulate_trace
from .trace import OP_READ, OP_WRITE, Trace, read_indices_npz, read_trace, write_trace
from .workload import (EmbeddingBatch, EmbeddingTable, EmbeddingWorkload, IndexDistribution,
                       Placement, batch_from_indices, sample_batch)

__all__ = [
    "Crossbar", "Elementwise", "Gemm", "Host", "HostKind", "InferenceReport", "LayerCost", "Mapping",
    "Overflow", "Place", "Reduction", "Softmax", "Workload", "builtin_workloads", "load_workload", "query",
    "with_overrides",
    "OP_READ", "OP_WRITE",
    "ActionCounts", "Controller", "DramOrg", "DramPower", "DramTiming", "EmbeddingBatch",
    "EmbeddingTable", "EmbeddingWorkload", "EnergyTable", "Hardware", "IndexDistribution",
    "NearMemoryUnit", "NmpLevel", "PagePolicy", "Placement", "Report", "Scheduler", "Trace",
    "TraceReport", "batch_from_indices", "list_presets", "load_hardware", "read_indices_npz",
    "read_trace", "sample_batch", "simulate", "simulate_trace", "write_trace",
]
