"""Plots of a run (matplotlib, Agg backend, PNG): log loss against latency and
against energy with the front highlighted and the baselines marked, energy against
latency with the searched cost front and each baseline's own front over the same
hardware knobs, and hypervolume against evaluations."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from cosearch.pareto import pareto_mask
from cosearch.run import CHECKPOINT, read_results

__all__ = ["plot_run", "plot_tradeoff", "plot_cost_fronts", "plot_hypervolume", "save_png"]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path, dpi: int = 110) -> None:
    """Save ``fig`` as PNG atomically (temp file + rename) and close it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _plt().close(fig)


def plot_tradeoff(rows: list[dict], x: str, path, *, baselines: list[dict] = (), verified: list[dict] = (),
                  title: str = "", xlabel: str = "", fronts: list[dict] = ()) -> None:
    """Search log loss against metric ``x`` (log axis) for every feasible row, the 2-d
    front of (x, logloss) highlighted; baselines (``test_logloss``) and ``verified``
    searched models (``test_logloss`` after training from scratch) as points at their
    measured test log loss; a baseline without one is a vertical line. ``fronts``
    (rows of ``baselines_fronts.csv``): each baseline's cost-front points as ticks
    joined by a line at its test log loss (a dotted vertical line at its best ``x``
    when it has none), so its best hardware shows beside its default one."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ok = [r for r in rows if r.get("feasible") == "1"]
    ys = []
    if ok:
        X = np.array([float(r[x]) for r in ok])
        Y = np.array([float(r["logloss"]) for r in ok])
        ax.scatter(X, Y, s=9, c="0.7", label=f"evaluated ({len(ok)}, search score)")
        front = pareto_mask(np.c_[X, Y])
        order = np.argsort(X[front])
        ax.plot(X[front][order], Y[front][order], "o-", c="tab:red", ms=4, lw=1.2, label="front (search score)")
        # keep the interesting part in view: diverged scores above the upper quartile are cut
        ys += [float(Y.min()), float(np.quantile(Y, 0.75))]
    vx = [(float(r[x]), float(r["test_logloss"]), float(r["logloss"])) for r in verified
          if np.isfinite(float(r.get("test_logloss", "nan")))]
    for i, (a, t, sc) in enumerate(vx):
        ax.plot([a, a], [sc, t], ":", c="tab:red", lw=0.8)
        ax.scatter([a], [t], marker="D", s=40, c="tab:red", edgecolors="k", zorder=6,
                   label="verified searched model (test, from scratch)" if i == 0 else None)
        ys += [t]
    for i, b in enumerate(baselines):
        bx, by = float(b[x]), float(b.get("test_logloss", "nan"))
        color = f"C{i % 10}"
        fx = sorted(float(r[x]) for r in fronts if r["model"] == b["model"] and int(r["on_front"]))
        if np.isfinite(by):
            ax.scatter([bx], [by], marker="*", s=130, c=color, edgecolors="k", zorder=5,
                       label=f"{b['model']} (test, from scratch)")
            ys += [by]
            if fx:
                ax.plot(fx, [by] * len(fx), "|-", c=color, ms=9, lw=1, zorder=4,
                        label=f"{b['model']} on its cost front ({len(fx)} hardware)")
        else:
            ax.axvline(bx, c=color, ls="--", lw=1, label=f"{b['model']} (cost only)")
            if fx:
                ax.axvline(fx[0], c=color, ls=":", lw=1, label=f"{b['model']} on its best hardware (cost only)")
    if ys:
        lo, hi = min(ys), max(ys)
        span = max(hi - lo, 1e-3)
        ax.set_ylim(lo - 0.05 * span, hi + 0.15 * span)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel("log loss (search: validation score; markers: test)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6.5, loc="best")
    fig.tight_layout()
    save_png(fig, path)


def _steps(ax, X, Y, **kw) -> None:
    """A 2-d front (lower is better in both) as a staircase through its points."""
    order = np.argsort(X, kind="stable")
    ax.step(np.asarray(X)[order], np.asarray(Y)[order], where="post", **kw)


def plot_cost_fronts(rows: list[dict], fronts: list[dict], path, *, baselines: list[dict] = (),
                     title: str = "") -> None:
    """Energy per sample against latency (log-log): every feasible searched candidate, the
    searched (latency, energy) front, and each baseline's own front over the hardware it
    was costed on (``fronts``, rows of ``baselines_fronts.csv``) as a staircase with
    markers, its default-hardware point hollow."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ok = [r for r in rows if r.get("feasible") == "1"]
    if ok:
        X = np.array([float(r["latency_s"]) for r in ok])
        Y = np.array([float(r["energy_per_sample_j"]) for r in ok])
        ax.scatter(X, Y, s=9, c="0.7", label=f"searched, evaluated ({len(ok)})")
        m = pareto_mask(np.c_[X, Y])
        _steps(ax, X[m], Y[m], c="tab:red", lw=1.4, label="searched cost front")
        ax.scatter(X[m], Y[m], s=16, c="tab:red", zorder=4)
    names = list(dict.fromkeys([b["model"] for b in baselines] + [r["model"] for r in fronts]))
    for i, name in enumerate(names):
        color = f"C{i % 10}"
        mine = [r for r in fronts if r["model"] == name and int(r["on_front"])]
        if mine:
            fx = [float(r["latency_s"]) for r in mine]
            fy = [float(r["energy_per_sample_j"]) for r in mine]
            _steps(ax, fx, fy, c=color, lw=1.1, ls="--")
            ax.scatter(fx, fy, marker="*", s=70, c=color, edgecolors="k", zorder=5,
                       label=f"{name}: own front ({len(mine)} hardware)")
        default = next((r for r in fronts if r["model"] == name and int(r["default_hw"])), None)
        if default is not None and np.isfinite(float(default["latency_s"])):
            ax.scatter([float(default["latency_s"])], [float(default["energy_per_sample_j"])], marker="o", s=60,
                       facecolors="none", edgecolors=color, lw=1.4, zorder=6,
                       label=f"{name} on {default['hardware'].split('/')[0]} (default)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency per batch (s)")
    ax.set_ylabel("energy per sample (J)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6.5, loc="best")
    fig.tight_layout()
    save_png(fig, path)


def plot_hypervolume(series: dict[str, list[tuple[int, float]]], path, *, title: str = "") -> None:
    """Hypervolume against evaluations, one line per name."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, pts in series.items():
        if pts:
            e, h = zip(*pts)
            ax.plot(e, h, "-", lw=1.5, label=name)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume (normalised)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def plot_run(run_dir) -> list[Path]:
    """The three plots of a run directory; returns their paths."""
    import pandas as pd
    run_dir = Path(run_dir)
    rows = read_results(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}: no results to plot")
    if "logloss" not in rows[0]:
        raise ValueError(f"{run_dir}: results have no logloss column")
    bpath = run_dir / "baselines.csv"
    baselines = []
    if bpath.is_file() and bpath.stat().st_size:
        baselines = pd.read_csv(bpath).to_dict("records")
    fpath = run_dir / "front.csv"
    verified = []
    if fpath.is_file() and fpath.stat().st_size:
        f = pd.read_csv(fpath)
        if "verified" in f:
            verified = f[f["verified"] == 1].to_dict("records")
    hpath = run_dir / "baselines_fronts.csv"
    fronts = pd.read_csv(hpath).to_dict("records") if hpath.is_file() and hpath.stat().st_size else []
    hw = baselines[0]["hardware"] if baselines else ""
    out = []
    for x, label in (("latency_s", "latency per batch (s)"), ("energy_per_sample_j", "energy per sample (J)")):
        p = run_dir / f"logloss_vs_{x.split('_')[0]}.png"
        plot_tradeoff(rows, x, p, baselines=baselines, verified=verified, xlabel=label, fronts=fronts,
                      title=f"co-search: log loss vs {x.split('_')[0]}" + (f" (baselines on {hw})" if hw else ""))
        out.append(p)
    if fronts or baselines:
        p = run_dir / "cost_fronts.png"
        plot_cost_fronts(rows, fronts, p, baselines=baselines,
                         title="cost fronts: searched pairs and each baseline over the same hardware knobs")
        out.append(p)
    ck = json.loads((run_dir / CHECKPOINT).read_text(encoding="utf-8"))
    p = run_dir / "hypervolume.png"
    plot_hypervolume({ck["algorithm"]["algorithm"]: [tuple(v) for v in ck["hv_history"]]}, p,
                     title="hypervolume of the front")
    out.append(p)
    return out
