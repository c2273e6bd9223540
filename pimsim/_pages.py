"""numpy's huge-page request, turned off while pimsim handles long traces where the
Linux kernel would compact memory to serve it.

numpy marks big arrays (4 MiB and up) for transparent huge pages with ``madvise``. Where
``/sys/kernel/mm/transparent_hugepage/defrag`` is ``always``, ``madvise`` or
``defer+madvise``, a fault in such an array compacts memory before it returns. On this
project's 2-core VMs (``madvise``), ``simulate_trace`` on 10M random reads took 5.9-6.7 s
on its first call with huge pages and 4.5-4.6 s without (system time 2.1-2.8 s against 0.6-0.7 s),
and a 10M-line ``pimsim trace`` process 7.4 s against 5.3 s
(``benchmarks/results/trace_process_speed_huge_pages.csv``). The request is a hint: turning
it off changes no result. An explicit ``NUMPY_MADVISE_HUGEPAGE`` in the environment is
left to decide.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

#: ``defrag`` modes in which a fault in a region marked for huge pages compacts memory.
STALLING_DEFRAG = ("always", "madvise", "defer+madvise")
DEFRAG_FILE = Path("/sys/kernel/mm/transparent_hugepage/defrag")

_lock = threading.Lock()
_depth = 0
_saved = True


def defrag_mode(path: Path | None = None) -> str | None:
    """The kernel's selected huge-page ``defrag`` mode (the bracketed word), or None."""
    try:
        text = (path or DEFRAG_FILE).read_text()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return None


def madvise_setter():
    """numpy's switch (``_set_madvise_hugepage``: sets, returns the previous setting), or
    None; the documented ``NUMPY_MADVISE_HUGEPAGE`` only acts when numpy is imported."""
    import numpy as np
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    return getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)


@functools.lru_cache(maxsize=1)
def _should_turn_off() -> bool:
    return ("NUMPY_MADVISE_HUGEPAGE" not in os.environ and madvise_setter() is not None
            and defrag_mode() in STALLING_DEFRAG)


class small_pages:
    """Context manager and decorator: numpy asks for no huge pages inside, if
    ``_should_turn_off()``; the outermost exit restores numpy's setting (nesting and
    threads share one count)."""

    def __enter__(self):
        global _depth, _saved
        self._counted = _should_turn_off()  # the exit undoes exactly what the entry did
        if self._counted:
            with _lock:
                if _depth == 0:
                    _saved = madvise_setter()(False)
                _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth
        if self._counted:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    madvise_setter()(_saved)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with small_pages():
                return fn(*args, **kwargs)
        return wrapped
