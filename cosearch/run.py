"""The search loop: ask, evaluate, tell, record, checkpoint; resumable.

A run directory holds ``results.csv`` (one row per evaluated candidate, rewritten
atomically after every generation) and ``checkpoint.json`` (the algorithm's full
state with its random generator, the evaluator's cost cache, the archive of
objective values and the hypervolume history), written atomically after the
results. Resuming truncates the table to the rows the checkpoint knows, so a run
killed at any moment and resumed ends exactly as an uninterrupted one.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cosearch.pareto import Normalization, hypervolume, non_dominated_sort
from nasrec.util import atomic_write_json, atomic_write_text

__all__ = ["GenerationInfo", "SearchResult", "run_search", "atomic_write_text", "atomic_write_json",
           "read_results", "CHECKPOINT", "RESULTS", "EXCLUDED_FROM_EQUALITY"]

CHECKPOINT = "checkpoint.json"
RESULTS = "results.csv"
CHECKPOINT_VERSION = 1
#: Columns that measure the machine rather than the search (differ between equal runs).
EXCLUDED_FROM_EQUALITY = ("eval_seconds",)


@dataclass(frozen=True)
class GenerationInfo:
    """Progress after one generation."""

    generation: int
    evaluations: int
    budget: int
    hypervolume: float
    front_size: int
    feasible: int
    seconds: float
    #: children costed and screened out before this generation's evaluation (cost-first
    #: screening, ``cosearch.search.Screen``; not evaluations)
    screened: int = 0


@dataclass(frozen=True)
class SearchResult:
    """Final archive: candidate keys, objectives ``[n, k]``, feasibility, Pareto mask,
    hypervolume history ``[(evaluations, hv)]`` and the normalisation used for it;
    ``screened``: children costed by cost-first screening and never evaluated."""

    keys: tuple[str, ...]
    objectives: np.ndarray
    feasible: np.ndarray
    front: np.ndarray
    hv_history: tuple[tuple[int, float], ...]
    normalization: Normalization
    complete: bool
    #: children costed and screened out over the whole run (not evaluations)
    screened: int = 0


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    return str(v)


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def read_results(run_dir) -> list[dict]:
    """Rows of ``results.csv`` as dicts of strings (empty if absent)."""
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _front_mask(F: np.ndarray, ok: np.ndarray) -> np.ndarray:
    mask = np.zeros(len(F), dtype=bool)
    if ok.any():
        idx = np.flatnonzero(ok)
        mask[idx[non_dominated_sort(F[idx]) == 0]] = True
    return mask


def run_search(out_dir, algorithm, evaluator, *, row_fields: Callable[[object], dict],
               normalization: Normalization | None = None, hv_log: tuple[bool, ...] = (),
               hv_cap: tuple = (), seed: int = 0,
               on_generation: Callable[[GenerationInfo], None] | None = None,
               max_generations: int | None = None) -> SearchResult:
    """Run (or resume, when ``out_dir`` holds a checkpoint) ``algorithm`` with
    ``evaluator`` until its budget is spent, or for at most ``max_generations``
    more generations. ``row_fields(candidate)`` gives the descriptive columns of a
    result row. ``normalization``: for the hypervolume; None takes the bounds of the
    first generation's feasible points (then fixed and recorded), log-scaled where
    ``hv_log`` says so, upper bounds capped by ``hv_cap`` (see ``Normalization.from_points``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ck_path = out / CHECKPOINT
    keys: list[str] = []
    F_rows: list[list[float]] = []
    ok_rows: list[bool] = []
    hv_hist: list[list[float]] = []
    rows: list[dict] = []
    columns: list[str] | None = None
    if ck_path.is_file():
        try:
            ck = json.loads(ck_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{ck_path}: corrupt checkpoint ({e})") from None
        if ck.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{ck_path}: unsupported checkpoint version {ck.get('version')!r}")
        algorithm.load_state_dict(ck["algorithm"])
        evaluator.load_cache_state(ck["cache"])
        keys, F_rows, ok_rows = ck["archive"]["keys"], ck["archive"]["objectives"], ck["archive"]["feasible"]
        hv_hist = ck["hv_history"]
        n = ck["normalization"]
        normalization = None if n is None else Normalization.from_dict(n)
        rows = read_results(out)[:ck["rows"]]
        if len(rows) != ck["rows"]:
            raise ValueError(f"{out / RESULTS} holds {len(rows)} rows, the checkpoint expects {ck['rows']}")
        columns = ck["columns"]
        seed = ck["seed"]  # the run's own seed, whatever the caller passed
    generations = 0
    while not algorithm.done and (max_generations is None or generations < max_generations):
        t0 = time.perf_counter()
        cands = algorithm.ask()
        ev = evaluator.evaluate(cands)
        algorithm.tell(cands, ev.objectives, ev.feasible)
        gen = algorithm.generation - 1
        for i, c in enumerate(cands):
            keys.append(c.key if hasattr(c, "key") else str(c))
            F_rows.append([float(v) for v in ev.objectives[i]])
            ok_rows.append(bool(ev.feasible[i]))
            row = {"generation": gen, "index": len(rows), "seed": seed}
            row.update(row_fields(c))
            row.update({m: ev.metrics[i, j] for j, m in enumerate(ev.metric_names)})
            row.update({"feasible": ev.feasible[i], "eval_seconds": ev.seconds[i]})
            rows.append({k: _fmt(v) for k, v in row.items()})
        F, ok = np.array(F_rows, dtype=np.float64), np.array(ok_rows, dtype=bool)
        if normalization is None and ok.any():
            normalization = Normalization.from_points(F[ok], hv_log, hv_cap)
        front = _front_mask(F, ok)
        hv = hypervolume(F[front], normalization) if normalization is not None else 0.0
        hv_hist.append([algorithm.evaluations, hv])
        if columns is None:
            columns = list(rows[0]) if rows else []
        atomic_write_text(out / RESULTS, _csv_text(rows, columns))
        atomic_write_json(ck_path, {
            "version": CHECKPOINT_VERSION, "algorithm": algorithm.state_dict(), "cache": evaluator.cache_state(),
            "archive": {"keys": keys, "objectives": F_rows, "feasible": ok_rows}, "hv_history": hv_hist,
            "normalization": None if normalization is None else normalization.to_dict(), "rows": len(rows),
            "columns": columns, "seed": seed})
        generations += 1
        if on_generation is not None:
            on_generation(GenerationInfo(gen, algorithm.evaluations, algorithm.config.budget, hv,
                                         int(front.sum()), int(ok.sum()), time.perf_counter() - t0,
                                         getattr(algorithm, "last_screened", 0)))
    F = np.array(F_rows, dtype=np.float64).reshape(len(F_rows), -1)
    ok = np.array(ok_rows, dtype=bool)
    if normalization is None:
        raise ValueError("no feasible candidate was found; nothing to normalise the hypervolume by")
    return SearchResult(tuple(keys), F, ok, _front_mask(F, ok), tuple((int(e), float(h)) for e, h in hv_hist),
                        normalization, algorithm.done, getattr(algorithm, "screened", 0))
