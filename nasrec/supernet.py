"""The weight-sharing NASRec supernet.

Every operator of the space is built once per block at maximum width; an ArchSpec
selects inputs (weight column ranges), operators and width prefixes. Inactive
inputs contribute nothing, exactly as the official supernet's zero-filled inputs.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from nasrec.data import Schema
from nasrec.model import Block, Choice, NasRecModel, Path, _Layout, _Network, path_of
from nasrec.ops import D2S_TOKENS, EMB_DIM, ElasticLayerNorm, ElasticLinear
from nasrec.space import FULL, ArchSpec, EmbeddingSpace, EmbeddingSpec, SearchSpace, sample


class Supernet(_Network):
    """``forward(dense [B, n_dense], ids [B, n_fields], spec) -> logits [B]``, where
    ``spec`` is an ArchSpec or a path of Choices (see ``full_path``)."""

    def __init__(self, schema: Schema, space: SearchSpace = FULL, embedding_space: EmbeddingSpace | None = None):
        super().__init__(schema, space, embedding_space.max_dim if embedding_space is not None else None)
        self.embedding_space = embedding_space
        w, t = space.max_width, space.max_tokens
        self.layout = _Layout(schema.n_dense, schema.n_sparse, w, t)
        slot = t + D2S_TOKENS
        self.blocks = nn.ModuleList(
            Block(dense_in=schema.n_dense + i * w, sparse_in=schema.n_sparse + i * slot,
                  binary_in=max(schema.n_dense, w), max_width=w, max_tokens=t,
                  dense_ops=space.dense_ops, sparse_ops=space.sparse_ops, d2s=True, fm=True,
                  dot_rows=self.dot_rows)
            for i in range(space.num_blocks))
        self.head = ElasticLinear(w + slot * EMB_DIM, 1)

    def _path(self, spec):
        if isinstance(spec, ArchSpec):
            if spec.space != self.space.name:
                raise ValueError(f"spec is from space {spec.space!r}, supernet is {self.space.name!r}")
            if spec.embedding is not None and self.embedding_space is None:
                raise ValueError("spec chooses per-field embeddings; this supernet has none "
                                 "(build it with an embedding_space)")
            return path_of(spec)
        return spec if isinstance(spec, Path) else Path(spec)

    def forward(self, dense: torch.Tensor, ids: torch.Tensor, spec) -> torch.Tensor:
        return self._run(dense, ids, self._path(spec), self.layout)

    def features(self, dense: torch.Tensor, ids: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
        """Input of the head for ``spec``: ``[B, width + tokens*16]`` (last block)."""
        return self._run(dense, ids, self._path(spec), self.layout, features_only=True)

    def head_slice(self, spec: ArchSpec) -> tuple[torch.Tensor, torch.Tensor]:
        """The head weight ``[1, features]`` and bias ``[1]`` that ``spec`` uses."""
        ranges = self.layout.head_ranges(path_of(spec)[-1])
        w = torch.cat([self.head.weight[:, a:b] for a, b in ranges], dim=1)
        return w.detach().clone(), self.head.bias.detach().clone()

    def full_path(self, rng: np.random.Generator) -> tuple[Choice, ...]:
        """Warm-up path: every operator, input and merger at maximum width. The binary
        operators take one random left and right input each (their only form in the space)."""
        s = self.space
        choices = tuple(Choice(tuple(range(i + 1)), tuple(range(i + 1)), int(rng.integers(i + 1)),
                               int(rng.integers(i + 1)), s.dense_ops, s.sparse_ops, s.max_width,
                               s.max_tokens, True, True) for i in range(s.num_blocks))
        emb = None
        if self.embedding_space is not None:  # every field at the largest dimension, fp32
            n = self.schema.n_sparse
            emb = EmbeddingSpec((self.embedding_space.max_dim,) * n, ("fp32",) * n)
        return Path(choices, emb)

    def sample_path(self, rng: np.random.Generator, full_prob: float) -> tuple[Choice, ...]:
        """NASRec training path: the full supernet with probability ``full_prob``,
        otherwise single-operator any-connection sampling (a random ArchSpec)."""
        if rng.random() < full_prob:
            return self.full_path(rng)
        if self.embedding_space is not None:
            return path_of(sample(rng, self.space, self.schema.n_sparse, self.embedding_space))
        return path_of(sample(rng, self.space))

    def sample_paths(self, rng: np.random.Generator, full_prob: float, n: int, sampler=None) -> list[Path]:
        """``n`` training paths for one step: the full supernet alone with probability
        ``full_prob``, else ``n`` random ArchSpecs whose operators are spread fairly
        (FairNAS, Chu et al. 2021): in every block the n paths take the operators of a
        random permutation in turn, so each operator is trained equally often per step.
        ``n == 1`` draws exactly what ``sample_path`` draws.

        ``sampler(rng) -> ArchSpec``, if given, draws the ``n`` ArchSpecs instead (no
        fair spreading; ``rng`` is consulted for the full path only while ``full_prob`` > 0)."""
        if sampler is not None:
            if full_prob > 0 and rng.random() < full_prob:
                return [self.full_path(rng)]
            return [path_of(sampler(rng)) for _ in range(n)]
        if n == 1:
            return [self.sample_path(rng, full_prob)]
        if rng.random() < full_prob:
            return [self.full_path(rng)]
        n_fields = self.schema.n_sparse if self.embedding_space is not None else None
        kw = {"embedding_space": self.embedding_space} if n_fields is not None else {}
        specs = [sample(rng, self.space, n_fields, **kw) for _ in range(n)]
        s = self.space
        dense = [rng.permutation(len(s.dense_ops)) for _ in range(s.num_blocks)]
        sparse = [rng.permutation(len(s.sparse_ops)) for _ in range(s.num_blocks)]
        out = []
        for k, spec in enumerate(specs):
            blocks = tuple(replace(b, dense_op=s.dense_ops[dense[i][k % len(s.dense_ops)]],
                                   sparse_op=s.sparse_ops[sparse[i][k % len(s.sparse_ops)]])
                           for i, b in enumerate(spec.blocks))
            out.append(path_of(replace(spec, blocks=blocks)))
        return out

    @torch.no_grad()
    def extract(self, spec: ArchSpec) -> NasRecModel:
        """A standalone model for ``spec`` carrying this supernet's (sliced) weights."""
        model = NasRecModel(spec, self.schema).to(self.head.weight.device)
        was_training = self.training
        self.eval()
        dense = torch.zeros(2, self.schema.n_dense, device=self.head.weight.device)
        ids = torch.zeros(2, self.schema.n_id_columns, dtype=torch.int64, device=dense.device)
        elastic = [m for m in self.modules() if isinstance(m, (ElasticLinear, ElasticLayerNorm))]
        for m in elastic:
            m.last_slice = None
        self(dense, ids, spec)  # records which slice of every layer the subnet uses
        self.train(was_training)
        model.embedding.load_prefix(self.embedding)
        for name, mod in model.named_modules():
            # layers of blocks that nothing reads did not run: they keep their own weights
            if isinstance(mod, (ElasticLinear, ElasticLayerNorm)) and self.get_submodule(name).last_slice is not None:
                mod.load_state_dict(self.get_submodule(name).sliced_state())
        return model
