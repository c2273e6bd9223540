"""From-scratch training as ground truth, and a disk cache of its results.

A *truth run* trains one architecture (an ``ArchSpec``) or one baseline (by name) from
fresh weights with a fixed recipe and reports validation and test log loss and AUC.
Benchmarks and ``cosearch run`` share the recipe and the cache, so a model trained once
for one data set, recipe and seed is never trained again.

The cache is a folder of ``<key>.json`` entries (and ``<key>.pt`` model files when
asked for). Every entry records the sha256 of its own content and of its model file;
a missing, truncated or corrupt entry is reported by one warning line naming the file
(logger ``nasrec``) and trained again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from torch import nn

from nasrec.baselines import BASELINES, REVISION, TRAINING, build_baseline
from nasrec.data import Dataset
from nasrec.model import NasRecModel
from nasrec.space import ArchSpec
from nasrec.train import TrainConfig, evaluate, train_model
from nasrec.util import atomic_write_json, seeded_torch

log = logging.getLogger("nasrec")

#: Bumped whenever a change of the models or the training loop changes truth results
#: (2: NASRec embeddings start at N(0, 1e-4), ``nasrec.model.NETWORK_REVISION`` 2).
TRUTH_VERSION = 2
#: Validation rows a truth run is checked on (the test split is used whole): enough to
#: see overfitting, and a forward pass over 100k rows costs a big model about 20 s.
VAL_ROWS = 20_000


def truth_splits(ds: Dataset) -> dict:
    """The splits a truth run reads: whole train and test, the first ``VAL_ROWS`` of val."""
    return {"train": ds.split("train"), "val": ds.split("val", VAL_ROWS), "test": ds.split("test")}


@dataclass(frozen=True)
class TruthRecipe:
    """How ground truth is trained: one pass over ``steps x batch_size`` fresh training
    rows (never more than the split holds, so nothing is seen twice), Adagrad with
    cosine decay after a 10% warm-up, gradient clipping ``clip`` (NASRec's loop: 5).

    ``lr`` 0.04 instead of NASRec's 0.12: at a few hundred steps 0.12 lets some seeds
    blow up (issue 13's pilot: one of two seeds of an architecture lost 0.04 log loss at
    500 steps), while at 0.04 the two seeds of each of two pilot architectures agreed
    within 0.0016 (``benchmarks/results/truth_recipe_pilot.csv``); 250 steps x 512 rows
    fit the issue's budget of 80 trainings in about two hours of a 2-core machine.

    ``test`` False: the result is measured on the validation rows only (``test_logloss``
    and ``test_auc`` NaN), for short screening runs that must not see the test split; on
    the 100k test rows evaluation costs more than a 50-step training.
    """

    steps: int = 250
    batch_size: int = 512
    lr: float = 0.04
    initial_accumulator: float = 0.0
    schedule: str = "cosine"
    test: bool = True
    eps: float = 1e-2  # Adagrad's; NASRec's value (TrainConfig)
    clip: float = 5.0  # gradient-norm clipping; NASRec's value (TrainConfig)
    lr_fan_in: int = 0  # 0: one learning rate (NASRec); n: TrainConfig.lr_fan_in

    def __post_init__(self):
        self.train_config(0)  # validates the numbers
        if not isinstance(self.test, bool):
            raise ValueError(f"TruthRecipe.test must be true or false, got {self.test!r}")

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           initial_accumulator=self.initial_accumulator, seed=seed, schedule=self.schedule,
                           eps=self.eps, clip=self.clip, lr_fan_in=self.lr_fan_in)

    def for_model(self, model: ArchSpec | str) -> "TruthRecipe":
        """The recipe ``model`` trains with: a baseline's own learning rate, schedule and
        Adagrad eps (``nasrec.baselines.TRAINING``, tuned on validation at this budget) replace the
        shared ones; architectures train with the recipe as it is."""
        if isinstance(model, ArchSpec):
            return self
        # baselines train with one learning rate, as independent implementations do,
        # unless their own settings say otherwise
        return replace(self, **{"lr_fan_in": 0, **TRAINING.get(model, {})})

    def to_dict(self) -> dict:
        d = asdict(self)
        # keys written before these fields existed stay valid
        for name, before in (("schedule", "cosine"), ("test", True), ("eps", 1e-2), ("clip", 5.0),
                               ("lr_fan_in", 0)):
            if d[name] == before:
                del d[name]
        return d


def model_key(model: ArchSpec | str) -> str:
    """``arch:<canonical hash>`` or ``baseline:<name>``."""
    if isinstance(model, ArchSpec):
        return f"arch:{model.hash}"
    if model not in BASELINES:
        raise ValueError(f"unknown baseline {model!r}; known: {sorted(BASELINES)}")
    return f"baseline:{model}"


def build(model: ArchSpec | str, schema, seed: int) -> nn.Module:
    """Fresh weights for an ArchSpec or a baseline name; depends only on ``seed``."""
    if isinstance(model, ArchSpec):
        with seeded_torch(seed):
            return NasRecModel(model, schema)
    return build_baseline(model, schema, seed)


def truth_key(data_hash: str, model: ArchSpec | str, recipe: TruthRecipe, seed: int) -> dict:
    """What a truth result depends on."""
    key = {"data": data_hash, "model": model_key(model), "recipe": recipe.for_model(model).to_dict(),
           "seed": int(seed), "version": TRUTH_VERSION}
    if isinstance(model, str) and REVISION.get(model, 1) != 1:
        key["model_revision"] = REVISION[model]
    return key


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def train_truth(model: ArchSpec | str, ds: Dataset, recipe: TruthRecipe, seed: int, *,
                device="cpu", quiet: bool = True, splits: dict | None = None) -> tuple[dict, nn.Module]:
    """Train ``model`` from scratch on ``ds``; returns (result, trained module).

    ``result``: ``val_logloss``, ``val_auc``, ``test_logloss``, ``test_auc``, ``params``,
    ``train_seconds``, ``cpu_seconds`` (process CPU time of training), the key fields.
    ``splits``: already loaded ``truth_splits(ds)``."""
    splits = splits or truth_splits(ds)
    train = splits["train"]
    rows = recipe.steps * recipe.batch_size
    if rows > len(train):
        raise ValueError(f"truth recipe needs {rows} fresh training rows ({recipe.steps} steps x "
                         f"{recipe.batch_size}), the training split has {len(train)}")
    net = build(model, ds.schema, seed).to(device)
    c0, t0 = time.process_time(), time.perf_counter()
    hist = train_model(net, train, recipe.for_model(model).train_config(seed), quiet=quiet)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    val = evaluate(net, splits["val"])
    test = evaluate(net, splits["test"]) if recipe.test else {"logloss": float("nan"), "auc": float("nan")}
    result = dict(truth_key(ds.content_hash, model, recipe, seed),
                  val_logloss=val["logloss"], val_auc=val["auc"], test_logloss=test["logloss"],
                  test_auc=test["auc"], params=int(sum(p.numel() for p in net.parameters())),
                  train_seconds=wall, cpu_seconds=cpu,
                  final_train_loss=float(sum(hist["train_losses"][-20:]) / max(1, len(hist["train_losses"][-20:]))))
    if isinstance(model, ArchSpec):
        result["arch"] = model.to_json()
    return result, net


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class TruthCache:
    """Truth results on disk, keyed by (data hash, model, recipe, seed).

    ``get`` returns None for a missing entry and, after one warning naming the file,
    for a truncated or corrupt one (which it deletes); ``put`` writes atomically, so
    two processes sharing a folder at worst train one model twice."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def _paths(self, key: dict) -> tuple[Path, Path]:
        h = key_hash(key)[:32]
        return self.folder / f"truth-{h}.json", self.folder / f"truth-{h}.pt"

    def get(self, key: dict, *, need_model: bool = False) -> dict | None:
        path, model_path = self._paths(key)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            body = entry["result"]
            if entry["sha256"] != key_hash(body) or {k: body.get(k) for k in key} != key:
                raise ValueError("content hash does not match")
        except (OSError, ValueError, KeyError, TypeError) as e:
            self._drop(path, model_path, f"corrupt cache entry {path} ({type(e).__name__}); training again")
            return None
        if need_model or entry.get("model_sha256"):
            ok = model_path.is_file() and entry.get("model_sha256") == _sha256_file(model_path)
            if not ok and (need_model or model_path.exists()):
                self._drop(path, model_path, f"missing or corrupt model file {model_path}; training again")
                return None
        return dict(body, model_file=str(model_path) if entry.get("model_sha256") else None)

    def put(self, key: dict, result: dict, model_file: Path | None = None) -> None:
        """Store ``result``; ``model_file`` (a file already written) moves into the cache."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path, model_path = self._paths(key)
        body = {k: v for k, v in result.items() if k != "model_file"}
        entry = {"result": body, "sha256": key_hash(body)}
        if model_file is not None:
            os.replace(model_file, model_path)
            entry["model_sha256"] = _sha256_file(model_path)
        atomic_write_json(path, entry)

    def _drop(self, path: Path, model_path: Path, message: str) -> None:
        log.warning(message)
        for p in (path, model_path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def get_or_train(self, model: ArchSpec | str, ds: Dataset, recipe: TruthRecipe, seed: int, *,
                     save_model: bool = False, device="cpu", quiet: bool = True,
                     splits: dict | None = None) -> dict:
        """The cached result, or train, store and return it. ``save_model``: the trained
        weights are kept too (``result['model_file']``, a ``nasrec.modelio`` file)."""
        key = truth_key(ds.content_hash, model, recipe, seed)
        hit = self.get(key, need_model=save_model)
        if hit is not None:
            return hit
        result, net = train_truth(model, ds, recipe, seed, device=device, quiet=quiet, splits=splits)
        tmp = None
        if save_model:
            from nasrec.modelio import save_model as _save
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = _save(net.cpu(), self.folder / f".tmp-{key_hash(key)[:32]}-{os.getpid()}.pt",
                        schema=ds.schema, meta={k: result[k] for k in ("model", "seed", "test_logloss", "data")})
        self.put(key, result, tmp)
        return self.get(key, need_model=save_model) or dict(result, model_file=None)

    def get_or_train_many(self, models, ds: Dataset, recipe: TruthRecipe, seed: int, *, save_model: bool = False,
                          workers: int = 1, quiet: bool = True, on_start=None) -> list[dict]:
        """``get_or_train`` for each of ``models`` (ArchSpecs or baseline names) at one
        seed, in order (``get_or_train_jobs``); ``on_start(model)`` as each starts."""
        start = (lambda m, s: on_start(m)) if on_start else None
        return self.get_or_train_jobs([(m, seed) for m in models], ds, recipe, save_model=save_model,
                                      workers=workers, quiet=quiet, on_start=start)

    def get_or_train_jobs(self, jobs, ds: Dataset, recipe: TruthRecipe, *, save_model: bool = False,
                          workers: int = 1, threads: int | None = None, quiet: bool = True, on_start=None,
                          on_done=None, deadline: float | None = None) -> list[dict | None]:
        """``get_or_train`` for each ``(model, seed)`` of ``jobs``, results in order.

        Uncached jobs train in ``workers`` processes of ``threads`` torch threads each
        (default ``cpu_count // workers``; ``workers`` 1: in this process, its threads
        untouched). ``on_start(model, seed)`` is called as a training starts and
        ``on_done(index, result)`` as it ends. No training starts after ``deadline``
        (a ``time.time()`` value); the results of those stay None."""
        jobs = list(jobs)
        out: list[dict | None] = []
        todo = []
        for i, (m, seed) in enumerate(jobs):
            hit = self.get(truth_key(ds.content_hash, m, recipe, seed), need_model=save_model)
            out.append(hit)
            if hit is None:
                todo.append(i)

        def open_():
            return deadline is None or time.time() < deadline

        if workers <= 1 or len(todo) <= 1:
            splits = truth_splits(ds) if todo else None
            for i in todo:
                if not open_():
                    break
                m, seed = jobs[i]
                if on_start:
                    on_start(m, seed)
                out[i] = self.get_or_train(m, ds, recipe, seed, save_model=save_model, quiet=quiet, splits=splits)
                if on_done:
                    on_done(i, out[i])
            return out
        from concurrent.futures import as_completed
        with TrainingQueue(self, ds, recipe, workers=workers, threads=threads, save_model=save_model,
                           on_start=on_start, deadline=deadline) as queue:
            futures = {queue.submit(*jobs[i]): i for i in todo}
            for f in as_completed(futures):
                i = futures[f]
                out[i] = f.result()
                if on_done and out[i] is not None:
                    on_done(i, out[i])
        return out


class TrainingQueue:
    """Truth trainings in background processes, while the caller goes on.

    ``submit(model, seed)`` returns a ``concurrent.futures.Future`` of the
    ``get_or_train`` result (None for a job that had not started by ``deadline``, a
    ``time.time()`` value, or when the queue closed first). Jobs start by ``priority``
    (lower first), then in submission order, at most ``limit`` at once (0..``workers``, 0
    holds every job; ``set_limit`` changes it at any time, e.g. to leave a core to other
    work). Each of
    the ``workers`` spawned processes trains with ``threads`` torch threads (default
    ``cpu_count // workers``). Use it as a context manager: leaving the block waits for
    every started job, or, on an exception, cancels what has not started."""

    def __init__(self, cache: "TruthCache", ds: Dataset, recipe: TruthRecipe, *, workers: int = 1,
                 threads: int | None = None, limit: int | None = None, save_model: bool = False,
                 on_start=None, deadline: float | None = None):
        import multiprocessing as mp
        import threading
        from concurrent.futures import ProcessPoolExecutor
        if workers < 1:
            raise ValueError(f"TrainingQueue: workers must be >= 1, got {workers!r}")
        self.cache, self.ds, self.recipe = cache, ds, recipe
        self.workers, self.save_model = workers, save_model
        self._on_start, self._deadline = on_start, deadline
        self._limit = workers
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.threads = threads
        self._pool = ProcessPoolExecutor(workers, mp.get_context("spawn"), initializer=_pool_init,
                                         initargs=(str(ds.path), str(cache.folder), threads))
        self._cond = threading.Condition()
        self._waiting: list = []  # (priority, order, model, seed, future, recipe, save_model)
        self._order = 0
        self._running = 0
        self._closed = False
        self.set_limit(workers if limit is None else limit)
        # one dispatcher thread starts jobs; the pool's done-callbacks only count them
        # off, so nothing submits to the pool from inside its own callbacks
        self._thread = threading.Thread(target=self._dispatch, name="truth-queue", daemon=True)
        self._thread.start()

    def set_limit(self, n: int) -> None:
        """Run at most ``n`` trainings at once (clamped to 0..workers)."""
        with self._cond:
            self._limit = max(0, min(int(n), self.workers))
            self._cond.notify_all()

    @property
    def busy_threads(self) -> int:
        """Torch threads of the trainings running now or about to start (those waiting,
        up to the limit), ``threads`` each."""
        with self._cond:
            return max(self._running, min(self._limit, self._running + len(self._waiting))) * self.threads

    def submit(self, model: ArchSpec | str, seed: int, priority: int = 0, *, recipe: TruthRecipe | None = None,
               save_model: bool | None = None):
        """Future of ``model``'s result at ``seed``: at once when cached, else queued.
        ``recipe`` and ``save_model`` replace the queue's for this job (e.g. a short
        screening run beside full ones)."""
        from concurrent.futures import Future
        recipe = self.recipe if recipe is None else recipe
        save_model = self.save_model if save_model is None else save_model
        fut: Future = Future()
        hit = self.cache.get(truth_key(self.ds.content_hash, model, recipe, seed), need_model=save_model)
        if hit is not None:
            fut.set_result(hit)
            return fut
        with self._cond:
            if self._closed:
                raise RuntimeError("TrainingQueue: submit after close")
            self._waiting.append((priority, self._order, model, seed, fut, recipe, save_model))
            self._order += 1
            self._waiting.sort(key=lambda w: (w[0], w[1]))
            self._cond.notify_all()
        return fut

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not (self._waiting and self._running < self._limit):
                    self._cond.wait()
                if self._closed:
                    return
                _, _, model, seed, fut, recipe, save_model = self._waiting.pop(0)
                if self._deadline is not None and time.time() >= self._deadline:
                    fut.set_result(None)
                    continue
                self._running += 1
            if self._on_start:
                self._on_start(model, seed)
            arg = model.to_json() if isinstance(model, ArchSpec) else model
            inner = self._pool.submit(_pool_train, arg, isinstance(model, ArchSpec), asdict(recipe), seed,
                                      save_model)
            inner.add_done_callback(lambda f, fut=fut: self._finished(f, fut))

    def _finished(self, inner, fut) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()
        if inner.cancelled():
            fut.set_result(None)
        elif inner.exception() is not None:
            fut.set_exception(inner.exception())
        else:
            fut.set_result(inner.result())

    def close(self, cancel: bool = False) -> None:
        """Stop starting jobs; jobs not started get None. ``cancel``: do not wait for
        the running ones either (their processes are stopped)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            waiting, self._waiting = self._waiting, []
            self._cond.notify_all()
        self._thread.join()
        for _, _, _, _, fut, _, _ in waiting:
            fut.set_result(None)
        if cancel:
            # a training cannot be interrupted from outside its process; stop the
            # processes so that an interrupted run does not keep the cores busy
            for p in list(getattr(self._pool, "_processes", {}).values()):
                p.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
        else:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "TrainingQueue":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            # every submitted job has started or got None by now only if the caller
            # waited for them; wait for the queue to drain before closing
            self.drain()
        self.close(cancel=exc_type is not None)

    def drain(self) -> None:
        """Wait until no job waits or runs."""
        with self._cond:
            while self._waiting or self._running:
                self._cond.wait()


_POOL: dict = {}


def _pool_init(path: str, folder: str, threads: int) -> None:
    import torch
    torch.set_num_threads(threads)
    ds = Dataset(path)
    _POOL.update(ds=ds, cache=TruthCache(folder), splits=truth_splits(ds))


def _pool_train(model: str, is_arch: bool, recipe: dict, seed: int, save_model: bool) -> dict:
    m = ArchSpec.from_json(model) if is_arch else model
    return _POOL["cache"].get_or_train(m, _POOL["ds"], TruthRecipe(**recipe), seed, save_model=save_model,
                                       splits=_POOL["splits"])

