"""Training and evaluation: supernet training, subnet scoring, training from scratch.

Defaults are NASRec's published ones (REFERENCE.md; official ``train_supernet.py``):
Adagrad lr 0.12, eps 1e-2, cosine schedule with 10% warm-up, gradient clipping 5.0,
batch 512; scoring fine-tunes only the final layer with Adagrad lr 0.04.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nasrec.data import Schema, Split, log_loss
from nasrec.space import ArchSpec, EmbeddingSpace, get_space
from nasrec.sliced import SlicedAdagrad, SliceRecorder, recording
from nasrec.supernet import Supernet
from nasrec.util import atomic_torch_save, progress, seeded_torch


SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``full_path_fraction``: the supernet trains the full network
    with probability 1 - step/T for T = fraction x steps (NASRec: T = 15000 of about
    71.5k steps of one Criteo epoch at batch 512, i.e. about 0.2)."""

    steps: int = 1000
    batch_size: int = 512  # NASRec
    lr: float = 0.12  # NASRec Adagrad
    eps: float = 1e-2  # NASRec Adagrad
    # Adagrad's starting sum of squared gradients (torch's initial_accumulator_value;
    # NASRec: 0). A positive value damps the sign-like first updates that make short
    # runs blow up before their warm-up ends.
    initial_accumulator: float = 0.0
    warmup_fraction: float = 0.1  # NASRec cosine schedule with 10% warm-up
    # "cosine" (NASRec: linear warm-up, then cosine decay to 0) or "constant" (lr
    # throughout, Adagrad's own decay only, as CTR libraries such as deepctr-torch train)
    schedule: str = "cosine"
    clip: float = 5.0  # NASRec gradient clipping
    # 0: one learning rate for every parameter (NASRec). n > 0: every weight matrix
    # outside an embedding table trains at lr x min(1, n / fan_in), as muP scales the
    # hidden layers of Adam-type optimisers (Yang et al. 2022, "Tensor Programs V",
    # arXiv 2203.03466, Table 3: hidden-weight learning rate ~ 1/fan_in). Adagrad's first
    # steps are sign-like, so one step moves a unit's pre-activation by about
    # lr x fan_in x mean |input|: in wide layers all units move together and the logit
    # swings by several units per step during warm-up (``benchmarks/truth_stability.py``).
    lr_fan_in: int = 0
    full_path_fraction: float = 0.2
    # Supernet paths per step (NASRec: 1). With n > 1 the batch is split into n equal
    # parts, each through its own sampled subnet with operators spread fairly over the
    # parts (``Supernet.sample_paths``), and one update averages them.
    paths_per_step: int = 1
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "paths_per_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "eps", "clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.batch_size % self.paths_per_step:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by "
                             f"paths_per_step {self.paths_per_step}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if isinstance(self.lr_fan_in, bool) or not (isinstance(self.lr_fan_in, int) and self.lr_fan_in >= 0):
            raise ValueError(f"lr_fan_in must be an integer >= 0, got {self.lr_fan_in!r}")
        if not self.initial_accumulator >= 0:
            raise ValueError(f"initial_accumulator must be >= 0, got {self.initial_accumulator}")
        for name in ("warmup_fraction", "full_path_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict:
        """The settings; ``lr_fan_in`` is left out at 0, so that supernet cache keys and
        checkpoints written before it existed still match."""
        d = asdict(self)
        if d["lr_fan_in"] == 0:
            del d["lr_fan_in"]
        return d


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) statistic, ties averaged."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    sp = p[order]
    ranks = np.empty(len(p), dtype=np.float64)
    # Tie groups get the mean of their 1-based ranks.
    starts = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])
    ends = np.r_[starts[1:], len(sp)]
    mean_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    if cfg.schedule == "constant":
        return 1.0
    warm = int(cfg.warmup_fraction * cfg.steps)
    if step < warm:
        return (step + 1) / warm
    span = max(1, cfg.steps - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / span)))


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """``model``'s parameters as optimiser groups: one group at ``cfg.lr`` when
    ``cfg.lr_fan_in`` is 0, else one group per learning-rate factor
    ``min(1, lr_fan_in / fan_in)`` for the 2-D weights outside ``nn.Embedding`` tables
    (fan_in = ``weight.shape[1]``); embeddings, biases and norms keep ``cfg.lr``."""
    if not cfg.lr_fan_in:
        return [{"params": list(model.parameters())}]
    embedding = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    groups: dict[float, list] = {}
    for p in model.parameters():
        factor = 1.0
        if p.dim() == 2 and id(p) not in embedding:
            factor = min(1.0, cfg.lr_fan_in / p.shape[1])
        groups.setdefault(factor, []).append(p)
    return [{"params": ps, "lr": cfg.lr * f} for f, ps in sorted(groups.items(), reverse=True)]


def _optimizer(params, cfg: TrainConfig, sliced: bool = False):
    kind = SlicedAdagrad if sliced else torch.optim.Adagrad
    opt = kind(params, lr=cfg.lr, eps=cfg.eps, initial_accumulator_value=cfg.initial_accumulator)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    return opt, sched


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _distributed() -> tuple[int, int]:
    """(rank, world size) of the initialised torch.distributed group, else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _fit(model: nn.Module, forward, train: Split, cfg: TrainConfig, rng: np.random.Generator,
         quiet: bool, desc: str, start_step: int = 0, opt=None, sched=None, on_step=None,
         sliced: bool = False) -> dict:
    """Shared loop: ``forward(net, dense, ids, step) -> logits``; returns loss history.

    ``sliced`` (one process, ``opt`` a ``SlicedAdagrad``): gradients, clipping and
    Adagrad touch only the weight slices the step used (``nasrec.sliced``); the
    update equals the ordinary one.

    Under torch.distributed every rank draws the same global batch (same ``rng``) and
    trains on its slice of it through DDP, so a W-process run follows the one-process
    run with the same global batch.
    """
    device = _device_of(model)
    rank, world = _distributed()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} not divisible by world size {world}")
    local = cfg.batch_size // world
    net = model
    if world > 1:
        # Subnets use a different subset of the supernet's parameters at every step.
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=isinstance(model, Supernet))
    if opt is None:
        opt, sched = _optimizer(param_groups(model, cfg), cfg)
    sliced = sliced and world == 1 and isinstance(opt, SlicedAdagrad)
    loss_fn = nn.BCEWithLogitsLoss()
    batches = train.infinite_batches(cfg.batch_size, rng, device)
    losses = []
    model.train()
    t0 = time.perf_counter()
    for step in progress(range(start_step, cfg.steps), desc=desc, quiet=quiet or rank > 0):
        dense, ids, y = (t[rank * local:(rank + 1) * local] for t in next(batches))
        if sliced:
            rec = SliceRecorder()
            with recording(rec):
                loss = loss_fn(forward(net, dense, ids, step), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step_recorded(rec, cfg.clip)
        else:
            loss = loss_fn(forward(net, dense, ids, step), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
        sched.step()
        loss = loss.detach()
        if world > 1:
            torch.distributed.all_reduce(loss)
            loss /= world
        losses.append(loss)  # kept on the device: no synchronisation per step
        if on_step is not None:
            on_step(step, opt, sched)
    losses = torch.stack(losses).tolist() if losses else []
    seconds = time.perf_counter() - t0
    n = cfg.steps - start_step
    return {"train_losses": losses, "seconds": seconds, "world_size": world,
            "samples_per_second": n * cfg.batch_size / seconds if seconds > 0 else float("nan")}


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int = 8192) -> np.ndarray:
    """Click probabilities ``[N]`` of ``model(dense, ids)`` on ``split``."""
    model.eval()
    device = _device_of(model)
    out = [torch.sigmoid(model(d, s)).cpu().numpy()
           for d, s, _ in split.batches(batch_size, device=device)]
    return np.concatenate(out).astype(np.float64)


def evaluate(model: nn.Module, split: Split, batch_size: int = 8192) -> dict:
    """Log loss (nats) and AUC on ``split``, tagged with the data hash and split name."""
    p = predict(model, split, batch_size)
    return {"logloss": log_loss(split.label, p), "auc": auc(split.label, p),
            "rows": len(split), "data": split.tag}


def train_model(model: nn.Module, train: Split, cfg: TrainConfig, *, quiet: bool = True) -> dict:
    """Train a standalone model or baseline from its current weights."""
    rng = np.random.default_rng([cfg.seed, 1])
    hist = _fit(model, lambda net, d, s, step: net(d, s), train, cfg, rng, quiet, "train")
    return dict(hist, seed=cfg.seed, data=train.tag)


def build_supernet(schema: Schema, space_name: str, seed: int, device="cpu",
                   embedding_space: EmbeddingSpace | None = None) -> Supernet:
    """A freshly initialised supernet; initial weights depend only on ``seed``.

    ``embedding_space``: also share weights over per-field embedding dimensions and
    precisions (the extended space); None keeps NASRec's 16-dim fp32 embedding.
    """
    with seeded_torch(seed):
        return Supernet(schema, get_space(space_name), embedding_space).to(device)


def train_supernet(supernet: Supernet, train: Split, cfg: TrainConfig, *, quiet: bool = True,
                   checkpoint=None, checkpoint_every: int = 0, resume: dict | None = None,
                   sliced: bool = True, sampler=None) -> dict:
    """NASRec supernet training: with probability 1 - step/T the full supernet, else
    one random dense and sparse operator per block with any-connection inputs.

    ``sliced``: update only the weight slices each step uses (``nasrec.sliced``; the
    same update as the plain loop, several times faster); off under DDP.

    ``checkpoint``: path written every ``checkpoint_every`` steps and at the end.
    ``resume``: a dict from ``load_checkpoint`` to continue from its step with the
    saved optimiser, schedule and sampler state (the data order restarts with a fresh
    shuffle, so a resumed run is not bit-identical to an uninterrupted one).

    ``sampler``: ``sampler(rng) -> ArchSpec`` draws every trained path (``paths_per_step``
    draws per step, each on its part of the batch) instead of NASRec's sampling, e.g.
    to train only a pool of architectures; the full-path warm-up still applies. Its
    ``__name__`` is recorded in the checkpoint's metadata.
    """
    t_full = max(1, int(cfg.full_path_fraction * cfg.steps))
    world = _distributed()[1]
    if (cfg.batch_size // world) % cfg.paths_per_step:
        raise ValueError(f"per-process batch {cfg.batch_size // world} is not divisible by "
                         f"paths_per_step {cfg.paths_per_step}")
    if cfg.lr_fan_in:
        # a supernet layer's fan-in is its widest choice, not the path's
        raise ValueError(f"lr_fan_in applies to standalone models, not to supernet training "
                         f"(got {cfg.lr_fan_in})")
    rng = np.random.default_rng([cfg.seed, 2])
    opt, sched = _optimizer(supernet.parameters(), cfg, sliced=True)
    start = 0
    if resume is not None:
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        rng.bit_generator.state = resume["rng_state"]
        start = resume["step"]

    def forward(net, d, s, step):
        full_prob = max(0.0, 1.0 - step / t_full) if cfg.full_path_fraction > 0 else 0.0
        paths = supernet.sample_paths(rng, full_prob, cfg.paths_per_step, sampler)
        if len(paths) == 1:
            return net(d, s, paths[0])
        # equal parts, so the mean loss over the batch is the mean of the paths' losses
        return torch.cat([net(dc, sc, p) for dc, sc, p in
                          zip(d.chunk(len(paths)), s.chunk(len(paths)), paths)])

    meta = {"config": cfg.to_dict(), "seed": cfg.seed, "data": train.tag,
            "space": supernet.space.name, "schema": supernet.schema.to_dict()}
    if supernet.embedding_space is not None:
        meta["embedding_space"] = asdict(supernet.embedding_space)
    if sampler is not None:
        meta["sampler"] = getattr(sampler, "__name__", type(sampler).__name__)

    def on_step(step, o, sc):
        if checkpoint and _distributed()[0] == 0 and checkpoint_every and (step + 1) % checkpoint_every == 0:
            save_checkpoint(checkpoint, supernet, o, sc, rng, step + 1, meta)

    hist = _fit(supernet, forward, train, cfg, rng, quiet, "supernet", start, opt, sched, on_step,
                sliced=sliced)
    if checkpoint and _distributed()[0] == 0:
        save_checkpoint(checkpoint, supernet, opt, sched, rng, cfg.steps, meta)
    return dict(hist, **meta)


def save_checkpoint(path, supernet: Supernet, opt, sched, rng: np.random.Generator, step: int,
                    meta: dict) -> None:
    """Write the supernet, optimiser and sampler state atomically (temp file + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": supernet.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "rng_state": rng.bit_generator.state,
             "step": step, "meta": meta}
    atomic_torch_save(state, path)


def load_checkpoint(path, device="cpu") -> tuple[Supernet, dict]:
    """The supernet stored at ``path`` and the whole checkpoint dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        meta = state["meta"]
        schema = Schema.from_dict(meta["schema"])
        es = meta.get("embedding_space")
        embedding_space = EmbeddingSpace(tuple(es["dims"]), tuple(es["precisions"])) if es else None
        supernet = Supernet(schema, get_space(meta["space"]), embedding_space).to(device)
        supernet.load_state_dict(state["model"])
    except (KeyError, RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a supernet checkpoint ({e})") from None
    return supernet, state


class SupernetScorer:
    """Scores architectures with inherited supernet weights (NASRec one-shot score).

    For each ArchSpec: copy its slice of the head, fine-tune only that with Adagrad
    (lr 0.04, NASRec) for ``finetune_steps`` on training batches (body frozen), then
    report log loss and AUC on ``val``. Batches are drawn from ``seed`` afresh for
    every spec, so a score does not depend on what was scored before.
    """

    #: Rows per supernet forward when computing the frozen body's features.
    CHUNK_ROWS = 8192

    def __init__(self, supernet: Supernet, train: Split, val: Split, *, finetune_steps: int = 500,
                 batch_size: int = 512, lr: float = 0.04, seed: int = 0, quiet: bool = True):
        if finetune_steps < 0:
            raise ValueError(f"finetune_steps must be >= 0, got {finetune_steps}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.supernet, self.train, self.val = supernet, train, val
        self.finetune_steps, self.batch_size, self.lr = finetune_steps, batch_size, lr
        self.seed, self.quiet = seed, quiet
        self.device = _device_of(supernet)

    @torch.no_grad()
    def _features(self, d, s, spec):
        return self.supernet.features(d, s, spec)

    def evaluate(self, spec: ArchSpec) -> dict:
        """``{'logloss', 'auc', 'rows', 'data', 'seed', 'hash'}`` on the validation split."""
        self.supernet.eval()
        w, b = self.supernet.head_slice(spec)
        w.requires_grad_(True)
        b.requires_grad_(True)
        if self.finetune_steps:
            opt = torch.optim.Adagrad([w, b], lr=self.lr)
            batches = self.train.infinite_batches(self.batch_size, np.random.default_rng([self.seed, 3]),
                                                  self.device)
            # The body is frozen, so the head's inputs of several batches come from one
            # supernet forward (same batches, same steps, fewer and larger forwards).
            per_chunk = max(1, self.CHUNK_ROWS // self.batch_size)
            done = 0
            while done < self.finetune_steps:
                n = min(per_chunk, self.finetune_steps - done)
                chunk = [next(batches) for _ in range(n)]
                x = self._features(torch.cat([c[0] for c in chunk]), torch.cat([c[1] for c in chunk]), spec)
                for i, (_, _, y) in enumerate(chunk):
                    xi = x[i * self.batch_size:(i + 1) * self.batch_size]
                    loss = nn.functional.binary_cross_entropy_with_logits((xi @ w.T).squeeze(1) + b, y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                done += n
        with torch.no_grad():
            p = np.concatenate([
                torch.sigmoid((self._features(d, s, spec) @ w.T).squeeze(1) + b).cpu().numpy()
                for d, s, _ in self.val.batches(8192, device=self.device)]).astype(np.float64)
        return {"logloss": log_loss(self.val.label, p), "auc": auc(self.val.label, p),
                "rows": len(self.val), "data": self.val.tag, "seed": self.seed, "hash": spec.hash}

    def score(self, specs) -> np.ndarray:
        """Validation log loss of each spec, ``[len(specs)]``."""
        specs = list(specs)
        return np.array([self.evaluate(s)["logloss"]
                         for s in progress(specs, desc="score", quiet=self.quiet)], dtype=np.float64)
