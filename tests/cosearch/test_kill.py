"""A real kill: SIGKILL a `cosearch run` process mid-run, resume it, compare."""
import json
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
@pytest.mark.parametrize("algorithm", ["moea", "nsga2"])
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, tiny, algorithm):  # noqa: F811
    cfgp, cache = tiny
    if algorithm != "moea":  # a library engine through the whole command (cosearch.engines)
        pytest.importorskip("pymoo")
        text = cfgp.read_text().replace("[search]\n", f'[search]\nalgorithm = "{algorithm}"\n')
        cfgp = tmp_path / "engine.toml"
        cfgp.write_text(text)
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
    # Everything equal, log loss to float noise: with N(0, 1e-4) embedding rows the tiny
    # supernet's scores move in the 9th digit between processes (measured: up to 2e-8).
    got, want = _table(killed), _table(ref)
    got_loss, want_loss = [float(r.pop("logloss")) for r in got], [float(r.pop("logloss")) for r in want]
    assert got == want
    assert got_loss == pytest.approx(want_loss, rel=1e-7)
    assert (killed / "front.csv").read_text() != ""
    if algorithm != "moea":
        import importlib.metadata
        meta = json.loads((killed / "run.json").read_text())
        assert meta["engine"] == {"library": "pymoo", "version": importlib.metadata.version("pymoo")}
