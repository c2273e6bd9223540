"""Stand-in candidate spaces and metric providers for search tests."""
import numpy as np
import pytest

from cosearch.executor import InProcess
from cosearch.hardware import KnobSpace
from cosearch.objectives import CoSpace, Evaluator
from nasrec import SMALL


class GridSpace:
    """Candidates: integer pairs (a, b) in [0, N)^2. Mutation moves one coordinate by +-1..3."""

    def __init__(self, n=21):
        self.n = n

    def sample(self, rng):
        return (int(rng.integers(self.n)), int(rng.integers(self.n)))

    def mutate(self, c, rng, n_mutations=1):
        c = list(c)
        for _ in range(n_mutations):
            j = int(rng.integers(2))
            c[j] = int(np.clip(c[j] + rng.choice([-3, -2, -1, 1, 2, 3]), 0, self.n - 1))
        return tuple(c)

    def key(self, c):
        return f"{c[0]},{c[1]}"

    def encode(self, c):
        return {"c": list(c)}

    def decode(self, d):
        return tuple(d["c"])


class GridMetrics:
    """f1 = a, f2 = (N-1-a) + 2b: the Pareto front is exactly b == 0 (N points)."""

    names = ("f1", "f2")

    def __init__(self, n=21):
        self.n = n
        self.calls = 0

    def key(self, c):
        return f"{c[0]},{c[1]}"

    def __call__(self, cands):
        self.calls += len(cands)
        return np.array([[a, (self.n - 1 - a) + 2 * b] for a, b in cands], dtype=float)


class ArchStandIn:
    """Cheap stand-in metrics on real candidates: a size proxy and a 'quality' proxy
    that rewards width and the dot operator; hardware changes the size proxy."""

    names = ("logloss", "latency_s")

    def key(self, c):
        return c.key

    def __call__(self, cands):
        out = []
        for c in cands:
            width = sum(b.dense_width for b in c.arch.blocks)
            dots = sum(b.dense_op == "dot" for b in c.arch.blocks)
            speed = {"host": 1.0, "nmp": 0.6}[c.hw.embeddings] * c.hw.precision.bytes / 4
            out.append([1.0 / (1 + width / 1000 + 0.3 * dots), width * 1e-6 + speed * 1e-4])
        return np.array(out)


@pytest.fixture
def co_space():
    return CoSpace(SMALL, KnobSpace(families=("recnmp",), embeddings=("host", "nmp")))


def standin_evaluator(executor=None):
    return Evaluator([ArchStandIn()], ("logloss", "latency_s"), executor=executor or InProcess())


def drive(algo, ev, generations=None) -> list:
    """ask/evaluate/tell until ``algo`` is done (or for ``generations``); the candidates asked."""
    out, g = [], 0
    while not algo.done and (generations is None or g < generations):
        c = algo.ask()
        e = ev.evaluate(c)
        algo.tell(c, e.objectives, e.feasible)
        out += c
        g += 1
    return out
