"""Executors: where the evaluations of one generation run.

``map(providers, tasks)`` runs each task ``(provider index, candidates)`` as
``providers[i](candidates)`` and returns the results in task order. The providers
are shipped to each worker once (process-pool initializer, one Ray object), not
with every task.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

__all__ = ["Executor", "InProcess", "ProcessPool", "RayExecutor", "make_executor", "EXECUTORS"]

EXECUTORS = ("inprocess", "process", "ray")


class Executor(Protocol):
    workers: int

    def map(self, providers: Sequence, tasks: list) -> list: ...

    def close(self) -> None: ...


class InProcess:
    """Runs every task in the calling process, one after another."""

    workers = 1

    def map(self, providers, tasks):
        return [providers[i](cands) for i, cands in tasks]

    def close(self):
        pass


_WORKER_PROVIDERS: tuple = ()


def _init_worker(providers, threads: int) -> None:
    global _WORKER_PROVIDERS
    _WORKER_PROVIDERS = tuple(providers)
    # pimsim would otherwise give a large query one thread per core in every worker
    os.environ["PIMSIM_THREADS"] = str(threads)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass


def _run_task(i: int, cands):
    return _WORKER_PROVIDERS[i](cands)


class ProcessPool:
    """A local pool of ``workers`` processes (spawned, ``threads`` torch threads each),
    started on first use and kept while the providers stay the same objects."""

    def __init__(self, workers: int = 2, threads: int = 1):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        self.workers, self.threads = workers, threads
        self._pool = None
        self._providers = None

    def map(self, providers, tasks):
        import concurrent.futures as cf
        import multiprocessing as mp
        providers = tuple(providers)
        if self._pool is None or self._providers is None or any(
                a is not b for a, b in zip(self._providers, providers)) or len(providers) != len(self._providers):
            self.close()
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                                initializer=_init_worker, initargs=(providers, self.threads))
            self._providers = providers
        futures = [self._pool.submit(_run_task, i, cands) for i, cands in tasks]
        return [f.result() for f in futures]

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
        self._providers = None


class RayExecutor:
    """Ray tasks (optional extra ``ray``): connects to ``address`` (None: start or join a
    local instance) and runs up to ``workers`` tasks at once."""

    def __init__(self, workers: int = 2, address: str | None = None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ValueError("the ray executor needs Ray: pip install 'pim-nasrec[ray]'") from None
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers, self.address = workers, address
        self._ref = None
        self._providers = None
        self._remote = None

    def map(self, providers, tasks):
        import ray
        if not ray.is_initialized():
            ray.init(address=self.address, num_cpus=None if self.address else self.workers,
                     include_dashboard=False, log_to_driver=False)
        providers = tuple(providers)
        if self._providers is None or any(a is not b for a, b in zip(self._providers, providers)):
            self._ref = ray.put(providers)
            self._providers = providers
        if self._remote is None:
            self._remote = ray.remote(_ray_task)
        return ray.get([self._remote.remote(self._ref, i, cands) for i, cands in tasks])

    def close(self):
        self._ref = None
        self._providers = None


def _ray_task(providers, i, cands):
    os.environ.setdefault("PIMSIM_THREADS", "1")  # a task holds one CPU
    return providers[i](cands)


def make_executor(name: str, workers: int = 1) -> Executor:
    """'inprocess', 'process' (local pool) or 'ray'."""
    if name == "inprocess":
        return InProcess()
    if name == "process":
        return ProcessPool(workers)
    if name == "ray":
        return RayExecutor(workers)
    raise ValueError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}")
