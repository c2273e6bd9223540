"""numpy's huge-page request around long-trace work (pimsim._pages)."""

import threading

import pytest

from pimsim import _pages
from pimsim.cli import main


@pytest.fixture
def setter(monkeypatch):
    """numpy's switch, set to True for the test and put back after; the cached decision
    is cleared before and after, so each test decides anew."""
    s = _pages.madvise_setter()
    if s is None:
        pytest.skip("this numpy has no huge-page switch")
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    _pages._should_turn_off.cache_clear()
    before = s(True)
    yield s
    s(before)
    _pages._should_turn_off.cache_clear()


def current(s) -> bool:
    now = s(True)
    s(now)
    return now


@pytest.mark.parametrize("mode,off_inside", [("always", True), ("madvise", True), ("defer+madvise", True),
                                             ("defer", False), ("never", False), (None, False)])
def test_off_inside_only_where_faults_compact_and_restored(monkeypatch, setter, mode, off_inside):
    monkeypatch.setattr(_pages, "defrag_mode", lambda: mode)
    with _pages.small_pages():
        inside = current(setter)
        with _pages.small_pages():  # nested: the inner exit must not restore
            pass
        inner_after = current(setter)
    assert (inside, inner_after) == (not off_inside, not off_inside)
    assert current(setter) is True


def test_an_explicit_environment_setting_is_left_alone(monkeypatch, setter):
    monkeypatch.setattr(_pages, "defrag_mode", lambda: "madvise")
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    with _pages.small_pages():
        assert current(setter) is True


def test_overlapping_threads_restore_once_both_leave(monkeypatch, setter):
    monkeypatch.setattr(_pages, "defrag_mode", lambda: "madvise")
    entered, second_may_leave = threading.Event(), threading.Event()
    seen = {}

    def second():
        with _pages.small_pages():
            entered.set()
            second_may_leave.wait(5)

    with _pages.small_pages():
        t = threading.Thread(target=second)
        t.start()
        assert entered.wait(5)
    seen["after_first"] = current(setter)  # the second thread is still inside
    second_may_leave.set()
    t.join(5)
    assert seen["after_first"] is False and current(setter) is True


def test_decorated_entry_points_and_the_command_line_run_inside(monkeypatch, setter):
    monkeypatch.setattr(_pages, "defrag_mode", lambda: "madvise")
    from pimsim import cli
    seen = []

    def presets(out):
        seen.append(current(setter))
        return 0

    monkeypatch.setattr(cli, "_cmd_presets", presets)
    assert main(["presets"]) == 0

    @_pages.small_pages()
    def work(x):
        """doc"""
        seen.append(current(setter))
        return x + 1

    assert work(1) == 2 and work.__doc__ == "doc"
    assert seen == [False, False] and current(setter) is True


def test_defrag_mode_reads_the_bracketed_word(tmp_path):
    path = tmp_path / "defrag"
    path.write_text("always defer defer+madvise [madvise] never\n")
    assert _pages.defrag_mode(path) == "madvise"
    assert _pages.defrag_mode(tmp_path / "missing") is None


def test_exit_undoes_what_the_entry_did_even_if_the_decision_changes(monkeypatch, setter):
    monkeypatch.setattr(_pages, "defrag_mode", lambda: "madvise")
    with _pages.small_pages():
        assert current(setter) is False
        monkeypatch.setattr(_pages, "defrag_mode", lambda: "never")
        _pages._should_turn_off.cache_clear()
    assert current(setter) is True and _pages._depth == 0
