"""NASRec: data, the NASRec search space, a weight-sharing supernet, standalone
models, hand-crafted baselines, training and scoring (Zhang et al., WWW 2023)."""
from nasrec.baselines import BASELINES, build_baseline
from nasrec.data import (Dataset, Schema, Split, SyntheticConfig, generate_synthetic, log_loss,
                         prepare_real)
from nasrec.model import NasRecModel
from nasrec.space import (FULL, SMALL, ArchSpec, BlockSpec, EmbeddingSpace, EmbeddingSpec, SearchSpace, get_space,
                          load_arch, mutate, crossover, sample, sample_embedding)
from nasrec.supernet import Supernet
from nasrec.train import (SupernetScorer, TrainConfig, auc, build_supernet, evaluate, load_checkpoint,
                          train_model, train_supernet)

__all__ = [
    "ArchSpec", "BlockSpec", "SearchSpace", "EmbeddingSpace", "EmbeddingSpec", "sample_embedding", "FULL", "SMALL", "get_space", "load_arch", "sample", "mutate", "crossover",
    "Dataset", "Schema", "Split", "SyntheticConfig", "generate_synthetic", "prepare_real", "log_loss",
    "NasRecModel", "Supernet", "BASELINES", "build_baseline",
    "TrainConfig", "train_supernet", "build_supernet", "load_checkpoint", "SupernetScorer",
    "train_model", "evaluate", "auc",
]
