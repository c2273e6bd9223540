"""Independent controllers on threads: same results for every thread count, bad counts rejected."""

import threading

import numpy as np
import pytest

from pimsim import EmbeddingTable, EmbeddingWorkload, Trace, load_hardware, query, simulate, simulate_trace
from pimsim import sim as S


def random_trace(hw, n, seed=0, writes=0.3):
    rng = np.random.default_rng(seed)
    lines = hw.org.capacity_bytes // hw.org.line_bytes
    # a few hot lines so that coalescing and forwarding happen too
    addr = np.where(rng.random(n) < 0.2, rng.integers(0, 64, n), rng.integers(0, lines, n)) * hw.org.line_bytes
    return Trace(addr, rng.random(n) < writes, np.cumsum(rng.integers(0, 3, n)))


@pytest.fixture(autouse=True)
def no_thread_environment(monkeypatch):
    """The tests decide PIMSIM_THREADS themselves, whatever the caller's environment says."""
    monkeypatch.delenv("PIMSIM_THREADS", raising=False)


@pytest.fixture
def thread_names(monkeypatch):
    """Names of the threads that ran each controller."""
    names = []
    inner = S.run_controller

    def recording(*args):
        names.append(threading.current_thread().name)
        return inner(*args)

    monkeypatch.setattr(S, "run_controller", recording)
    return names


def test_trace_same_result_on_any_thread_count(thread_names):
    hw = load_hardware("cpu-server")  # 6 channels
    tr = random_trace(hw, 6000)
    one = simulate_trace(tr, hw, threads=1)
    assert len(thread_names) == 6 and all(not n.startswith("pimsim") for n in thread_names)
    del thread_names[:]
    three = simulate_trace(tr, hw, threads=3)
    assert len(thread_names) == 6 and all(n.startswith("pimsim") for n in thread_names)
    assert one.to_dict() == three.to_dict()
    # per request, in trace order, although the longest channel ran first
    assert np.array_equal(one.completion_cycles, three.completion_cycles)
    assert np.array_equal(one.accept_cycles, three.accept_cycles)
    assert one.coalesced > 0 and one.forwarded > 0 and one.writes > 0


def test_default_uses_threads_only_for_large_inputs(monkeypatch, thread_names):
    monkeypatch.setattr(S, "_usable_cores", lambda: 4)
    hw = load_hardware("cpu-server")
    tr = random_trace(hw, 3000, seed=1)
    small = simulate_trace(tr, hw)
    assert not any(n.startswith("pimsim") for n in thread_names)
    del thread_names[:]
    monkeypatch.setattr(S, "PARALLEL_MIN_REQUESTS", 3000)
    large = simulate_trace(tr, hw)
    assert len(thread_names) == 6 and all(n.startswith("pimsim") for n in thread_names)
    assert small.to_dict() == large.to_dict()


@pytest.mark.parametrize("threads,jobs,requests,cores,expected", [
    (None, 6, 10, 4, 1),                        # small: no threads
    (None, 6, S.PARALLEL_MIN_REQUESTS, 4, 4),   # large: one per core
    (None, 2, S.PARALLEL_MIN_REQUESTS, 4, 2),   # never more than the controllers
    (3, 6, 10, 1, 3),                           # an explicit count holds at any size
    (8, 5, 10, 4, 5),
    (1, 6, 10**9, 4, 1),
])
def test_controller_threads(monkeypatch, threads, jobs, requests, cores, expected):
    monkeypatch.setattr(S, "_usable_cores", lambda: cores)
    assert S.controller_threads(threads, jobs, requests) == expected


def test_embedding_same_result_on_any_thread_count(thread_names):
    wl = EmbeddingWorkload((EmbeddingTable(rows=200_000, dim=32, pooling=20),) * 4, batch_size=16)
    for hw in ("recnmp", "cpu-server"):  # near-memory ranks; host channels
        del thread_names[:]
        one = simulate(wl, hw, seed=3, threads=1)
        many = simulate(wl, hw, seed=3, threads=2)
        assert len(thread_names) >= 4 and any(n.startswith("pimsim") for n in thread_names)
        assert one.to_dict() == many.to_dict()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_thread_counts_name_the_value(bad):
    hw = load_hardware("cpu-server")
    with pytest.raises(ValueError, match=f"threads must be None or an integer >= 1, got {bad!r}"):
        simulate_trace(random_trace(hw, 10), hw, threads=bad)
    with pytest.raises(ValueError, match="threads must be"):
        simulate(EmbeddingWorkload((EmbeddingTable(rows=100, dim=4, pooling=2),), batch_size=2), "recnmp",
                 threads=bad)
    with pytest.raises(ValueError, match="threads must be"):
        query("dlrm", "cpu-server", threads=bad)


def test_pimsim_threads_environment(monkeypatch, thread_names):
    monkeypatch.setattr(S, "_usable_cores", lambda: 4)
    monkeypatch.setenv("PIMSIM_THREADS", "1")
    assert S.controller_threads(None, 6, 10**9) == 1  # a pool worker's share holds for large inputs
    assert S.controller_threads(3, 6, 10**9) == 3  # an explicit count wins
    monkeypatch.setenv("PIMSIM_THREADS", "2")
    assert S.controller_threads(None, 6, 10) == 2  # as if passed: at any size
    hw = load_hardware("cpu-server")
    simulate_trace(random_trace(hw, 500), hw)
    assert len(thread_names) == 6 and all(n.startswith("pimsim") for n in thread_names)
    for bad in ("0", "-3", "two", "1.5"):
        monkeypatch.setenv("PIMSIM_THREADS", bad)
        with pytest.raises(ValueError, match=f"PIMSIM_THREADS must be an integer >= 1, got {bad!r}"):
            simulate_trace(random_trace(hw, 10), hw)


def test_cli_bad_pimsim_threads_one_line_exit_2(monkeypatch, tmp_path, capsys):
    from pimsim.cli import main

    path = tmp_path / "t.trace"
    path.write_text("0x0 READ 0\n")
    monkeypatch.setenv("PIMSIM_THREADS", "zero")
    assert main(["trace", str(path)]) == 2
    err = capsys.readouterr().err
    assert "PIMSIM_THREADS" in err and len(err.strip().splitlines()) == 1


def test_numpy_integer_thread_count_accepted():
    hw = load_hardware("cpu-server")
    tr = random_trace(hw, 2000, seed=2)
    assert simulate_trace(tr, hw, threads=np.int64(2)).to_dict() == simulate_trace(tr, hw, threads=1).to_dict()


def test_a_failing_controller_fails_the_call_and_the_rest_do_not_start(monkeypatch):
    started = []

    def failing(bank, *rest):
        started.append(len(bank))
        raise RuntimeError("controller failed")

    monkeypatch.setattr(S, "run_controller", failing)
    arrays = tuple(np.zeros(40, np.int64) for _ in range(5))
    sels = [np.arange(k, k + 10) for k in range(0, 40, 10)]
    with pytest.raises(RuntimeError, match="controller failed"):
        S.run_controllers(arrays, sels, np.zeros(1, np.int64), threads=1)
    assert len(started) == 1
    del started[:]
    with pytest.raises(RuntimeError, match="controller failed"):
        S.run_controllers(arrays, sels, np.zeros(1, np.int64), threads=2)
    assert 1 <= len(started) <= 4
