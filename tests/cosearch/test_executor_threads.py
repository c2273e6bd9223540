"""Pool workers cap pimsim's threads at their own share."""

import os

from cosearch.executor import ProcessPool


def _pimsim_threads(cands):
    from pimsim.sim import controller_threads

    return [(os.environ.get("PIMSIM_THREADS"), controller_threads(None, 6, 10**9)) for _ in cands]


def test_process_pool_workers_set_pimsim_threads():
    pool = ProcessPool(1, threads=1)
    try:
        out = pool.map([_pimsim_threads], [(0, [None, None])])
    finally:
        pool.close()
    # a large query in a worker stays on the worker's one thread
    assert out == [[("1", 1), ("1", 1)]]


def test_process_pool_rejects_a_bad_thread_count():
    import pytest

    for bad in (0, None, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            ProcessPool(1, threads=bad)
