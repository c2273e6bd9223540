"""A real kill: SIGKILL a `cosearch run` process mid-run, resume it, compare."""
import os
import signal
import subprocess
import sys
import time

import pytest

from cosearch.cli import main
from cosearch.run import CHECKPOINT, EXCLUDED_FROM_EQUALITY, read_results
from tests.cosearch.test_cli import tiny  # noqa: F401  (module-scoped fixture)


def _table(d):
    return [{k: v for k, v in r.items() if k not in EXCLUDED_FROM_EQUALITY} for r in read_results(d)]


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, tiny):  # noqa: F811
    cfgp, cache = tiny
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert main(["run", "--config", str(cfgp), "--out", str(ref), "--cache", str(cache), "--quiet"]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "cosearch", "run", "--config", str(cfgp), "--out", str(killed),
                             "--cache", str(cache), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 300
        while not (killed / CHECKPOINT).is_file():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert len(read_results(killed)) < 12
    assert main(["resume", str(killed), "--quiet"]) == 0
    assert _table(killed) == _table(ref)
    assert (killed / "front.csv").read_text() != ""
