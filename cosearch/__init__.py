"""cosearch: evolutionary co-search of NASRec architectures and processing-in-memory
hardware, with Pareto fronts (DESIGN.md). The ``cosearch`` command is ``cosearch.cli``."""
from cosearch.executor import EXECUTORS, InProcess, ProcessPool, RayExecutor, make_executor
from cosearch.hardware import HardwareKnobs, KnobSpace
from cosearch.objectives import (COST_METRICS, Candidate, Constraint, CoSpace, Evaluation, Evaluator,
                                 PimsimCost, SupernetAccuracy)
from cosearch.pareto import Normalization, crowding_distance, hypervolume, non_dominated_sort, pareto_mask
from cosearch.profile import Precision, TableSpec, arch_workload, module_workload, schema_tables
from cosearch.run import GenerationInfo, SearchResult, read_results, run_search
from cosearch.search import (ALGORITHMS, EvolutionConfig, MultiObjectiveEvolution, RandomSearch,
                             RegularizedEvolution, Scalarization, make_algorithm)

__all__ = [
    "Precision", "TableSpec", "arch_workload", "module_workload", "schema_tables",
    "HardwareKnobs", "KnobSpace",
    "Candidate", "CoSpace", "Constraint", "Evaluation", "Evaluator", "SupernetAccuracy", "PimsimCost",
    "COST_METRICS",
    "Normalization", "non_dominated_sort", "pareto_mask", "crowding_distance", "hypervolume",
    "EvolutionConfig", "Scalarization", "RegularizedEvolution", "MultiObjectiveEvolution", "RandomSearch",
    "ALGORITHMS", "make_algorithm",
    "EXECUTORS", "InProcess", "ProcessPool", "RayExecutor", "make_executor",
    "GenerationInfo", "SearchResult", "run_search", "read_results",
]
