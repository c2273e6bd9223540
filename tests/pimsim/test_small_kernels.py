"""The helper kernels against plain Python references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pimsim import _engine as E


def prev_same_reference(lines):
    last, out = {}, []
    for i, x in enumerate(lines):
        out.append(last.get(x, -1))
        last[x] = i
    return out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**40), max_size=60), st.integers(1, 8))
def test_prev_same_line_matches_reference(values, modulo):
    lines = np.array([v % (modulo * 70000) for v in values], np.int64)
    assert E._prev_same_line(lines).tolist() == prev_same_reference(lines.tolist())


@pytest.mark.parametrize("n", [5_000, E.RADIX_MIN_REQUESTS + 1000])  # comparison sort, radix sort
def test_prev_same_line_sorts_stably_on_both_paths(n):
    """Many repeats of each line (a stable sort keeps their order) on both sort paths."""
    rng = np.random.default_rng(5)
    for top in (50, 70_000, 2**40):  # one, two and four radix passes
        lines = rng.integers(0, top, n).astype(np.int64)
        assert E._prev_same_line(lines).tolist() == prev_same_reference(lines.tolist())


def test_prev_same_line_when_line_and_index_do_not_fit_one_key():
    """Lines of 50 bits and 9,000 requests (14 index bits) take the index sort."""
    rng = np.random.default_rng(6)
    lines = rng.integers(0, 40, 9_000).astype(np.int64) * (1 << 44) + rng.integers(0, 3, 9_000)
    assert int(lines.max()).bit_length() + 14 > 62
    assert E._prev_same_line(lines).tolist() == prev_same_reference(lines.tolist())


@pytest.mark.parametrize("n", [300, E.RADIX_MIN_REQUESTS + 10])
def test_prev_same_line_on_lines_that_never_decrease(n):
    """A stream (each line a few times, in order) needs no sort; one step back must sort."""
    lines = np.repeat(np.arange(n // 3 + 1, dtype=np.int64), 3)[:n]
    assert E._prev_same_line(lines).tolist() == prev_same_reference(lines.tolist())
    lines[n // 2] = 0
    assert E._prev_same_line(lines).tolist() == prev_same_reference(lines.tolist())


def active_reference(records, n_ranks, end):
    busy = [set() for _ in range(n_ranks)]
    for r, s, e in records:
        e = end if e < 0 else min(e, end)
        busy[r].update(range(min(s, end), e))
    return sum(len(b) for b in busy)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 30), st.integers(-1, 40)), max_size=20),
       st.integers(1, 60))
def test_active_rank_cycles_matches_reference(raw, end):
    # starts of one rank never decrease, as the engine issues them
    recs = []
    last = [0, 0]
    for r, gap, length in raw:
        last[r] += gap
        recs.append((r, last[r], -1 if length < 0 else last[r] + length))
    arr = np.array(recs, np.int64).reshape(-1, 3)
    got = E._active_rank_cycles(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), 2, end)
    assert got == active_reference(recs, 2, end)


def lru_reference(lines, units, sets, ways):
    caches = {}
    out = []
    for line, u in zip(lines, units):
        s = caches.setdefault((u, line % sets), [])  # most recent last
        if line in s:
            s.remove(line)
            s.append(line)
            out.append(True)
        else:
            if len(s) == ways:
                s.pop(0)
            s.append(line)
            out.append(False)
    return out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 2)), max_size=80),
       st.integers(1, 4), st.integers(1, 4))
def test_cache_hits_match_lru_reference(accesses, sets, ways):
    lines = np.array([a[0] for a in accesses], np.int64)
    units = np.array([a[1] for a in accesses], np.int64)
    got = E._cache_hits(lines, units, 3, sets, ways)
    assert got.tolist() == lru_reference(lines.tolist(), units.tolist(), sets, ways)


@pytest.mark.parametrize("direct", [0, 10**9])
@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 2)), min_size=1, max_size=40),
                min_size=1, max_size=3),
       st.integers(1, 4), st.integers(1, 3))
def test_warm_hits_either_set_numbering_match_lru_reference(direct, batches, sets, ways):
    """Dense numbering of the touched sets (direct 0) and direct set indexing (direct huge)
    both give the LRU reference's flags for the last batch after the earlier ones."""
    import pimsim.embedding as EM

    arrays = [(np.array([a[0] for a in b], np.int64), np.array([a[1] for a in b], np.int64)) for b in batches]
    *warm, (lines, units) = arrays
    old = EM.DIRECT_SETS_PER_ACCESS
    EM.DIRECT_SETS_PER_ACCESS = direct
    try:
        got = EM._warm_hits(lines, [w[0] for w in warm], units, [w[1] for w in warm], 3, sets, ways)
    finally:
        EM.DIRECT_SETS_PER_ACCESS = old
    all_lines = np.concatenate([w[0] for w in warm] + [lines]).tolist()
    all_units = np.concatenate([w[1] for w in warm] + [units]).tolist()
    assert got.tolist() == lru_reference(all_lines, all_units, sets, ways)[len(all_lines) - len(lines):]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=60), st.integers(0, 3))
def test_group_by_matches_reference(keys, extra_groups):
    from pimsim.sim import split_by

    n_groups = (max(keys) + 1 if keys else 1) + extra_groups
    arr = np.array(keys, np.int64)
    order, counts = E._group_by(arr, n_groups)
    groups = [[k for k, x in enumerate(keys) if x == g] for g in range(n_groups)]
    assert counts.tolist() == [len(g) for g in groups]
    assert order.tolist() == [k for g in groups for k in g]
    index = np.arange(len(keys)) * 10 + 3
    assert [s.tolist() for s in split_by(arr, n_groups, index)] == [[k * 10 + 3 for k in g] for g in groups if g]


@pytest.mark.parametrize("keys", [[0, 3, 1], [0, -1]])
def test_group_by_rejects_keys_out_of_range(keys):
    with pytest.raises(ValueError, match="outside"):
        E._group_by(np.array(keys, np.int64), 3)
