"""Run configuration: frozen, validated dataclasses, read from TOML at the edge.

A config file has the sections of :class:`RunConfig` (``[data]``, ``[supernet]``,
``[scoring]``, ``[search]``, ``[hardware]``, ``[constraints]``, ``[inference]``,
``[baselines]``, ``[execution]``) plus a top-level ``seed``; every key is
optional and unknown keys are errors. ``QUICK`` is the ``--quick`` preset.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from cosearch.executor import EXECUTORS
from cosearch.hardware import KnobSpace
from cosearch.objectives import COST_METRICS
from cosearch.scoring import HEAD_FITS
from cosearch.search import ALGORITHMS, ENGINE_NAMES, SCREEN_MAX, EvolutionConfig
from nasrec.baselines import BASELINES
from nasrec.data import BAGS
from nasrec.space import SPACES

__all__ = ["DataConfig", "SupernetConfig", "ScoringConfig", "SearchConfig", "InferenceConfig",
           "BaselineConfig", "ExecutionConfig", "RunConfig", "DEFAULT", "QUICK", "load_config", "config_hash"]

METRICS = ("logloss",) + COST_METRICS


def _pos_int(obj, *names, minimum=1):
    for n in names:
        v = getattr(obj, n)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{type(obj).__name__}.{n} must be an integer >= {minimum}, got {v!r}")


def _number(obj, name, ok, want: str):
    """A real number (not a bool) for which ``ok(value)`` holds; ``want`` names the rule."""
    v = getattr(obj, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
        raise ValueError(f"{type(obj).__name__}.{name} must be {want}, got {v!r}")


@dataclass(frozen=True)
class DataConfig:
    """The built-in synthetic data set (``nasrec.SyntheticConfig``), or ``path`` to a
    prepared data folder (``nasrec prepare``)."""

    # nasrec.SyntheticConfig's defaults: the task where architectures separate (issue 13)
    rows: int = 1_000_000
    max_cardinality: int = 10_000
    zipf_exponent: float = 1.1
    path: str = ""
    pooling: str = "none"  # "none" (one-hot) or "mlperf" (the MLPerf DLRM-v2 multi-hot mix)
    bag: str = "mean"  # "mean" or "sum": how multi-hot rows combine (teacher and models)

    def __post_init__(self):
        _pos_int(self, "rows", "max_cardinality")
        if self.bag not in BAGS:
            raise ValueError(f"DataConfig.bag must be one of {', '.join(BAGS)}, got {self.bag!r}")
        if self.pooling not in ("none", "mlperf"):
            raise ValueError(f"DataConfig.pooling must be 'none' or 'mlperf', got {self.pooling!r}")
        if self.rows < 10_000:
            raise ValueError(f"DataConfig.rows must be >= 10000, got {self.rows}")
        if not self.zipf_exponent > 0:
            raise ValueError(f"DataConfig.zipf_exponent must be > 0, got {self.zipf_exponent!r}")


@dataclass(frozen=True)
class SupernetConfig:
    """Supernet training (NASRec settings apart from the number of steps)."""

    space: str = "full"
    # 600 steps: on an idle 2-core machine the whole default run takes about 5 min from a
    # cold cache; at 120 steps the median candidate scored 0.652 against 0.579 (seed 0,
    # lr 0.03), i.e. the scores were mostly noise
    steps: int = 600
    batch_size: int = 512
    # NASRec's Adagrad lr 0.12 belongs to its 71k-step runs; over a few hundred steps it
    # blows the first updates up (nasrec's quality benchmark: mean loss 6.8 over the first
    # 25 of 200 steps at 0.12, 2.6 at 0.03), so short co-search supernets use 0.03
    lr: float = 0.03
    # "extended" (default): per-field embedding dims {0,...,64} and precisions join the
    # search; "published": NASRec's 16-dim fp32 embedding of every field
    embeddings: str = "extended"
    # Share of the steps over which the whole supernet is trained with falling probability
    # (NASRec's warm-up: about 0.2). 0 by default: a full-path step costs about 9x a
    # random path's CPU (600 steps: 916 CPU-s with the warm-up, 615 without, the latter
    # measured beside another job), and the
    # warm-up bought no ranking: Kendall tau 0.015 with it, -0.009 without, both chance
    # over 40 architectures and 3 supernets (benchmarks/results/supernet_ranking_summary.csv).
    full_path_fraction: float = 0.0
    # The extended space's per-field choices. No 0 (a dropped field) by default: the
    # supernet score does not see a field's absence (run j's verified 46638fff scores
    # 0.5584 whether 0, 3 or 9 fields are dropped, or all sit at 4 or 64 dims), so cost
    # alone decided, and the searched models dropped 2-8 of 26 fields. Trained from
    # scratch, giving the dropped fields back (8 dims) gained 0.0016 test log loss on both
    # (cad16d93 0.5129 -> 0.5113, 46638fff 0.5113 -> 0.5097), and dropping 6 of them cost
    # 0.010-0.013. Precision moved test log loss by at most 0.0004, so it stays a
    # cost-only choice (benchmarks/results/embedding_sensitivity.csv). End to end, over
    # three tasks (--seed 0, 1, 2) the default run verified 0.5119, 0.5177 and 0.5158
    # without 0 against 0.5113, 0.5208 and 0.5225 with it (cosearch_default_run_time.csv).
    embedding_dims: tuple[int, ...] = (4, 8, 16, 32, 64)
    embedding_precisions: tuple[str, ...] = ("fp32", "fp16", "int8")

    def __post_init__(self):
        object.__setattr__(self, "embedding_dims", tuple(self.embedding_dims))
        object.__setattr__(self, "embedding_precisions", tuple(self.embedding_precisions))
        if self.space not in SPACES:
            raise ValueError(f"SupernetConfig.space must be one of {sorted(SPACES)}, got {self.space!r}")
        _pos_int(self, "steps", "batch_size")
        _number(self, "lr", lambda v: v > 0, "a positive number")
        _number(self, "full_path_fraction", lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
        if self.embeddings not in ("published", "extended"):
            raise ValueError(f"SupernetConfig.embeddings must be 'published' or 'extended', got {self.embeddings!r}")
        try:  # the space validates its choices; the error names the setting
            self.embedding_space()
        except ValueError as e:
            raise ValueError(f"SupernetConfig.embedding_{e}") from None

    def embedding_space(self):
        """The extended space's per-field choices (a ``nasrec.EmbeddingSpace``)."""
        from nasrec.space import EmbeddingSpace
        space = EmbeddingSpace(self.embedding_dims, self.embedding_precisions)  # validated before sorting
        return replace(space, dims=tuple(sorted(space.dims)))


@dataclass(frozen=True)
class ScoringConfig:
    """Supernet scoring: head fine-tuning steps (of ``batch_size`` training rows) and
    validation rows per architecture (the same rows for every architecture).

    ``head_fit``: "adagrad" (NASRec: ``finetune_steps`` Adagrad steps on the head) or
    "probe" (the head fitted to convergence on the same rows, L2 ``probe_l2``;
    ``cosearch.scoring.InheritedScorer``)."""

    finetune_steps: int = 8
    batch_size: int = 128
    val_rows: int = 2048
    head_fit: str = "adagrad"
    probe_l2: float = 1e-4

    def __post_init__(self):
        if self.head_fit not in HEAD_FITS:
            raise ValueError(f"ScoringConfig.head_fit must be one of {', '.join(HEAD_FITS)}, got {self.head_fit!r}")
        _number(self, "probe_l2", lambda v: v >= 0, "a number >= 0")
        _pos_int(self, "finetune_steps", minimum=0)
        _pos_int(self, "val_rows", "batch_size")


@dataclass(frozen=True)
class SearchConfig:
    """Algorithm, budget and sizes; objectives (minimised metrics); ``weights`` for
    the scalarised 'evolution' (one per objective); ``arch_prob``: probability that a
    mutation changes the architecture rather than a hardware knob; ``screen``: cost-first
    screening factor (1: off; 2..32: after the initial population, make that many
    children per child evaluated, cost them with pimsim and evaluate only those most
    likely to enter the front, see ``cosearch.search.screen_order``)."""

    # the best of issue 17's race (5 seeds x 320 evaluations, benchmarks/cosearch_synthetic.py):
    # pymoo's NSGA-II with cost-first screening of factor 8
    algorithm: str = "nsga2"
    budget: int = 320
    population: int = 40
    sample_size: int = 10
    children: int = 16
    mutations_start: int = 3
    mutations_end: int = 1
    survival: str = "elitist"  # or "age": NASRec's regularised evolution (see cosearch.search)
    arch_prob: float = 0.5
    objectives: tuple[str, ...] = ("logloss", "latency_s", "energy_per_sample_j")
    weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    screen: int = 8

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"SearchConfig.algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.algorithm in ENGINE_NAMES and self.survival != "elitist":
            raise ValueError(f"SearchConfig.survival {self.survival!r} applies to 'moea' and 'evolution'; "
                             f"{self.algorithm!r} has its own")
        object.__setattr__(self, "objectives", tuple(self.objectives))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"SearchConfig.objectives must be distinct metric names, got {self.objectives!r}")
        for o in self.objectives:
            if o not in METRICS:
                raise ValueError(f"SearchConfig.objectives: unknown metric {o!r}; known: {', '.join(METRICS)}")
        if len(self.weights) != len(self.objectives):
            raise ValueError(f"SearchConfig.weights needs one weight per objective ({len(self.objectives)}), "
                             f"got {len(self.weights)}")
        if not 0.0 <= self.arch_prob <= 1.0:
            raise ValueError(f"SearchConfig.arch_prob must lie in [0, 1], got {self.arch_prob!r}")
        if isinstance(self.screen, bool) or not isinstance(self.screen, int) or not 1 <= self.screen <= SCREEN_MAX:
            raise ValueError(f"SearchConfig.screen must be an integer in 1..{SCREEN_MAX} (1: off), got {self.screen!r}")
        if self.screen > 1 and not set(self.objectives) & set(COST_METRICS):
            raise ValueError(f"SearchConfig.screen {self.screen} needs a cost objective to screen by "
                             f"({', '.join(COST_METRICS)}); the objectives are {', '.join(self.objectives)} "
                             f"(set screen = 1 to search without screening)")
        self.evolution()

    def evolution(self) -> EvolutionConfig:
        return EvolutionConfig(self.budget, self.population, self.sample_size, self.children,
                               self.mutations_start, self.mutations_end, self.survival)


@dataclass(frozen=True)
class InferenceConfig:
    """What the cost model is asked about: the inference batch, and ``table_rows_scale``,
    a multiplier on every embedding table's rows (cost a deployment with larger tables
    than the training data's; 1 = the data's own sizes)."""

    batch_size: int = 256
    table_rows_scale: int = 1

    def __post_init__(self):
        _pos_int(self, "batch_size", "table_rows_scale")


@dataclass(frozen=True)
class BaselineConfig:
    """Hand-crafted baselines: costed on ``hardware`` (a preset) and, when
    ``[verify] baselines`` is on, trained from scratch with the verification recipe."""

    names: tuple[str, ...] = tuple(sorted(BASELINES))
    hardware: str = "recnmp"

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        for n in self.names:
            if n not in BASELINES:
                raise ValueError(f"BaselineConfig.names: unknown baseline {n!r}; known: {sorted(BASELINES)}")


VERIFY_POOLS = ("front", "layers", "spread")


@dataclass(frozen=True)
class VerifyConfig:
    """After the search: train the ``top_k`` distinct front architectures with the lowest
    search log loss, and the baselines, from scratch with one recipe
    (``nasrec.scratch.TruthRecipe``: ``steps`` x ``batch_size`` fresh rows, Adagrad
    ``lr``) and test them. Results are cached per data set, recipe and seed.

    ``rescore`` > ``top_k`` adds a first round (successive halving): the ``rescore``
    distinct architectures of the pool with the lowest search log loss train
    ``rescore_steps`` steps of the same recipe, and the ``top_k`` with the lowest
    validation log loss after that round are the ones verified. 0 (or <= ``top_k``): no
    first round. ``pool``: "front" draws from the Pareto front only; "layers" from the
    front, then the front of what is left, and so on (non-dominated sorting of all
    feasible evaluations), layer by layer until ``rescore`` architectures are found;
    "spread" from all feasible evaluations, spread over the first cost objective's range
    (``cosearch.pipeline.spread_pool``)."""

    # 2, after a first round over up to 32 spread over the search's latency range
    # (successive halving): the supernet score ranks the 40 truth architectures at
    # Kendall tau 0.20, a 50-step training at 0.39 (100 steps: 0.39 over 3 seeds) for
    # about 18 CPU-s each (benchmarks/results/supernet_ranking_summary.csv, variants
    # emb1e-4 and short-*), so the front the supernet builds is no better than what lies
    # behind it: on the default run's search, the best verified model reached test log
    # loss 0.5159 from the front, 0.5129 from the Pareto layers, 0.5113 spread
    # (benchmarks/results/cosearch_default_run_time.csv, runs h, i, j); two full
    # trainings run at once
    top_k: int = 2
    baselines: bool = True
    steps: int = 250
    batch_size: int = 512
    lr: float = 0.04
    # trainings at once, each with cores / workers torch threads: on 2 cores two 1-thread
    # trainings get through about 15% more work than one 2-thread training
    workers: int = 2
    rescore: int = 32
    rescore_steps: int = 50
    pool: str = "spread"
    # TruthRecipe.lr_fan_in for the architectures (0: one learning rate); baselines
    # train with their own settings (nasrec.baselines.TRAINING). 64: on the 40 truth
    # architectures it cuts the seed noise of one training from 0.0035 to 0.0010-0.0019
    # (poor basins: 4 architectures -> 1 in 40) and a two-seed truth repeats at Kendall
    # 0.81 against 0.79 (benchmarks/results/task_separation.csv, task_truth_seeds.csv);
    # the default runs verified as well on average (runs f64s0-f64s2 against v167, s1,
    # s2 in cosearch_default_run_time.csv: 0.0011 against 0.0010 behind the best
    # baseline) in the same time
    lr_fan_in: int = 64

    def __post_init__(self):
        _pos_int(self, "top_k", "rescore", "lr_fan_in", minimum=0)
        _pos_int(self, "steps", "batch_size", "workers", "rescore_steps")
        if self.pool not in VERIFY_POOLS:
            raise ValueError(f"VerifyConfig.pool must be one of {VERIFY_POOLS}, got {self.pool!r}")
        if not isinstance(self.baselines, bool):
            raise ValueError(f"VerifyConfig.baselines must be true or false, got {self.baselines!r}")
        _number(self, "lr", lambda v: v > 0, "a positive number")


@dataclass(frozen=True)
class ExecutionConfig:
    """Where evaluations run: 'inprocess', 'process' (local pool) or 'ray'."""

    executor: str = "inprocess"
    workers: int = 1

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ValueError(f"ExecutionConfig.executor must be one of {EXECUTORS}, got {self.executor!r}")
        _pos_int(self, "workers")


DEFAULT_KNOBS = KnobSpace(families=("recnmp", "recnmp-isaac"), embeddings=("host", "nmp"),
                          gemm=("host", "nmp", "crossbar"), ranks=(0, 2, 4, 8), crossbar_sizes=(64, 128, 256),
                          adc_bits=(4, 6, 8), host_rows_max=(0, 1_000, 100_000))


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; recorded in ``run.json``."""

    seed: int = 0
    data: DataConfig = DataConfig()
    supernet: SupernetConfig = SupernetConfig()
    scoring: ScoringConfig = ScoringConfig()
    search: SearchConfig = SearchConfig()
    hardware: KnobSpace = DEFAULT_KNOBS
    constraints: dict = field(default_factory=dict)
    inference: InferenceConfig = InferenceConfig()
    baselines: BaselineConfig = BaselineConfig()
    verify: VerifyConfig = VerifyConfig()
    execution: ExecutionConfig = ExecutionConfig()

    def __post_init__(self):
        _pos_int(self, "seed", minimum=0)
        if not isinstance(self.constraints, dict):
            raise ValueError(f"constraints must be a table of metric = limit, got {self.constraints!r}")
        for k, v in self.constraints.items():
            if k not in METRICS:
                raise ValueError(f"constraints: unknown metric {k!r}; known: {', '.join(METRICS)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"constraints: {k} limit must be a positive number, got {v!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hardware"] = self.hardware.to_dict()
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: dict, base: "RunConfig | None" = None) -> "RunConfig":
        """``base`` (default :data:`DEFAULT`) updated by the sections of ``d``."""
        base = base or DEFAULT
        if not isinstance(d, dict):
            raise ValueError("config must be a table")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"config: unknown section or key {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")
        changes = {}
        for name, value in d.items():
            current = getattr(base, name)
            if name == "hardware":
                merged = dict(current.to_dict(), **_table(name, value))
                changes[name] = KnobSpace.from_dict(merged)
            elif name == "constraints":
                changes[name] = dict(_table(name, value))
            elif dataclasses.is_dataclass(current):
                sec = _table(name, value)
                allowed = {f.name for f in fields(current)}
                bad = set(sec) - allowed
                if bad:
                    raise ValueError(f"config [{name}]: unknown key {sorted(bad)[0]!r} "
                                     f"(known: {', '.join(sorted(allowed))})")
                sec = {k: tuple(v) if isinstance(v, list) else v for k, v in sec.items()}
                try:
                    changes[name] = replace(current, **sec)
                except TypeError as e:
                    raise ValueError(f"config [{name}]: {e}") from None
            else:
                changes[name] = value
        return replace(base, **changes)


def _table(name, value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"config: [{name}] must be a table, got {value!r}")
    return value


DEFAULT = RunConfig()
#: ``--quick``: a small data set, a short supernet, a small budget (a minute or two).
QUICK = replace(DEFAULT, data=DataConfig(rows=20_000), supernet=SupernetConfig(steps=30),
                scoring=ScoringConfig(finetune_steps=5, val_rows=1024),
                search=replace(DEFAULT.search, budget=64, population=16, sample_size=4, children=8),
                verify=VerifyConfig(top_k=1, steps=20, rescore=3, rescore_steps=5))


def load_config(path, base: RunConfig | None = None) -> RunConfig:
    """A TOML config file over ``base``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read config {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: invalid TOML: {e}") from None
    try:
        return RunConfig.from_dict(data, base)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def config_hash(obj) -> str:
    """sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
