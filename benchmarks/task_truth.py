"""Does the default task separate architectures? From-scratch truth for random
NASRec-Full architectures, two (or more) seeds each, and how well the seeds agree.

Every architecture is trained with ``nasrec.scratch.TruthRecipe`` (one pass over fresh
rows) once per seed; a seed fixes both the initial weights and the data order, and all
architectures of one seed see the same batches. Results are cached by (data hash,
architecture hash, recipe, seed): in ``benchmarks/results/scratch_truth.csv`` (committed,
one row per training) and in the truth cache folder, so a rerun, a longer run
(``--archs 60``) or another benchmark trains nothing twice. Interrupt it at any time.

Writes ``scratch_truth.csv`` (rows of other data sets and recipes are kept) and
``task_separation.csv`` (one row per data set, recipe, truth version and pair of
``--seeds``; rows without a ``truth_version`` are version 1, and rows without ``seed_a``,
``seed_b`` compare seeds 0 and 1):

- (a) ``arch_std``: standard deviation over architectures of their mean test log loss;
  ``seed_std``: seed-to-seed standard deviation of one training (std of the two seeds'
  difference / sqrt 2); target ``arch_std >= 3 seed_std``;
- (b) Kendall tau between the seeds' rankings with a bootstrap 95% interval; target >= 0.8;
- (c) ``rows_fraction``: training rows drawn / training split (<= 1: no row is seen
  twice) and ``val_minus_train``: validation log loss minus the last steps' training loss
  (about 0 when nothing overfits).

With three or more seeds it also writes ``task_truth_seeds.csv``: the truth of each
architecture's median over the seeds, how far seeds spread, and every pair's Kendall tau;
with four or more, how well a two-seed truth repeats, measured directly against an
independent one, and with six or more, a three-seed truth (``seed_agreement``).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks._csv import write_rows
from benchmarks._rank import kendall_ci, kendall_tau, spearman
from nasrec import ArchSpec, Dataset, SyntheticConfig, generate_synthetic, sample
from nasrec.data import binary_entropy
from nasrec.scratch import TRUTH_VERSION, TruthCache, TruthRecipe, key_hash, truth_key

RESULTS = Path(__file__).resolve().parent / "results"
TRUTH_CSV = RESULTS / "scratch_truth.csv"


def default_cache() -> Path:
    base = os.environ.get("COSEARCH_CACHE") or Path.home() / ".cache" / "cosearch"
    return Path(base) / "truth"


def published_configs_dir() -> Path | None:
    """The folder of NASRec's six published architectures: ``$NASREC_CONFIGS`` when set
    (as given, so that a wrong one is reported, not replaced), else ``shared/nasrec-configs``
    beside the project, or None if there is none."""
    env = os.environ.get("NASREC_CONFIGS")
    if env:
        return Path(env)
    for cand in (Path("/work/shared/nasrec-configs"),
                 Path(__file__).resolve().parents[2] / "shared" / "nasrec-configs"):
        if cand.is_dir() and list(cand.glob("*.json")):
            return cand
    return None


def default_data(rows: int | None = None, seed: int = 0, max_cardinality: int | None = None) -> Dataset:
    """The default synthetic data set (``rows``/``max_cardinality`` override its size)."""
    d = SyntheticConfig()
    return bench_data(SyntheticConfig(rows=rows or d.rows, max_cardinality=max_cardinality or d.max_cardinality,
                                      seed=seed))


def write_csv(df: pd.DataFrame, name: str) -> Path:
    return write_rows(df.to_dict("records"), RESULTS / name)


def bench_data(cfg: SyntheticConfig, data_dir: Path | None = None) -> Dataset:
    """The synthetic data set of ``cfg`` (generated once under the temp folder)."""
    import tempfile
    base = data_dir or Path(tempfile.gettempdir()) / "nasrec-bench-data"
    path = base / f"synthetic-r{cfg.rows}-c{cfg.max_cardinality}-s{cfg.seed}"
    if (path / "meta.json").is_file():
        try:
            return Dataset(path)
        except ValueError:
            pass
    return generate_synthetic(cfg, path, overwrite=True)


def bench_archs(n: int, seed: int) -> list[ArchSpec]:
    """``n`` distinct random NASRec-Full architectures (the same list for every benchmark)."""
    rng = np.random.default_rng([seed, 100])
    out, seen = [], set()
    for _ in range(100 * n):
        if len(out) == n:
            break
        s = sample(rng)
        if s.hash not in seen:
            seen.add(s.hash)
            out.append(s)
    return out


def load_truth(path: Path = TRUTH_CSV) -> dict[str, dict]:
    """Stored truth rows by key hash; rows written before the ``clip`` column say NASRec's 5,
    which they were trained with."""
    if not path.is_file():
        return {}
    df = pd.read_csv(path)
    df["clip"] = df["clip"].fillna(5.0) if "clip" in df else 5.0
    df["lr_fan_in"] = df["lr_fan_in"].fillna(0).astype(int) if "lr_fan_in" in df else 0
    return {r["key"]: r for r in df.to_dict("records")}


def _row(result: dict) -> dict:
    rec = result["recipe"]
    recipe = TruthRecipe(**rec)
    return {"key": key_hash(truth_key(result["data"], ArchSpec.from_json(result["arch"]), recipe, result["seed"])),
            "data": result["data"], "model": result["model"], "seed": result["seed"],
            "steps": rec["steps"], "batch_size": rec["batch_size"], "lr": rec["lr"],
            "initial_accumulator": rec["initial_accumulator"], "clip": recipe.clip,
            "lr_fan_in": recipe.lr_fan_in, "version": result["version"],
            "test_logloss": result["test_logloss"], "test_auc": result["test_auc"],
            "val_logloss": result["val_logloss"], "val_auc": result["val_auc"],
            "final_train_loss": result["final_train_loss"], "params": result["params"],
            "train_seconds": result["train_seconds"], "cpu_seconds": result["cpu_seconds"],
            "arch": result["arch"]}


def truth_table(specs, ds: Dataset, recipe: TruthRecipe, seeds, *, cache: TruthCache, stored: dict,
                on_new=None, deadline: float | None = None, jobs: int = 1, threads: int = 2) -> pd.DataFrame:
    """One row per (architecture, seed), from ``stored`` rows, the cache or training
    (``jobs`` processes of ``threads`` torch threads each; ``TruthCache.get_or_train_jobs``)."""
    todo = [(k, spec, seed) for k, spec in enumerate(specs) for seed in seeds
            if key_hash(truth_key(ds.content_hash, spec, recipe, seed)) not in stored]

    def done(i, result):
        k, _, seed = todo[i]
        row = _row(result)
        stored[row["key"]] = row
        if on_new is not None:
            on_new(row)
        print(f"arch {k + 1}/{len(specs)} seed {seed}: test log loss {row['test_logloss']:.4f} "
              f"({row['train_seconds']:.0f} s)", file=sys.stderr, flush=True)

    if todo:
        got = cache.get_or_train_jobs([(spec, seed) for _, spec, seed in todo], ds, recipe, workers=jobs,
                                      threads=threads, on_done=done, deadline=deadline)
        for i, result in enumerate(got):  # cache hits that the stored table lacked
            if result is not None and key_hash(truth_key(ds.content_hash, todo[i][1], recipe, todo[i][2])) not in stored:
                done(i, result)
    keys = [key_hash(truth_key(ds.content_hash, spec, recipe, seed)) for spec in specs for seed in seeds]
    return pd.DataFrame([stored[k] for k in keys if k in stored])


def separation(df: pd.DataFrame, ds: Dataset, recipe: TruthRecipe, seeds, rng) -> dict:
    """Item (a)-(c) figures of one truth table, over the two seeds ``seeds``
    (``seed_a`` and ``seed_b``; the ``*_seed0_vs_seed1`` columns compare these two)."""
    s0, s1 = seeds[0], seeds[1]
    df = df[df["seed"].isin([s0, s1])]
    wide = df.pivot_table(index="model", columns="seed", values="test_logloss")
    wide = wide.dropna()
    a, b = wide[s0].to_numpy(), wide[s1].to_numpy()
    mean = (a + b) / 2
    arch_std = float(np.std(mean, ddof=1))
    seed_std = float(np.std(a - b, ddof=1) / np.sqrt(2))
    lo, hi = kendall_ci(a, b, rng)
    ctr = float(ds.split("train").label.mean())
    n_train = len(ds.split("train"))
    return {"data": ds.content_hash[:16], "seed_a": s0, "seed_b": s1, "rows": ds.meta.get("config", {}).get("rows"),
            "max_cardinality": ds.meta.get("config", {}).get("max_cardinality"),
            "archs": len(wide), "steps": recipe.steps, "batch_size": recipe.batch_size, "lr": recipe.lr,
            "initial_accumulator": recipe.initial_accumulator, "clip": recipe.clip,
            "lr_fan_in": recipe.lr_fan_in,
            "arch_std": arch_std, "seed_std": seed_std, "ratio": arch_std / seed_std if seed_std else float("inf"),
            "kendall_seed0_vs_seed1": kendall_tau(a, b), "kendall_lo": lo, "kendall_hi": hi,
            "spearman_seed0_vs_seed1": spearman(a, b),
            "best_test_logloss": float(mean.min()), "median_test_logloss": float(np.median(mean)),
            "worst_test_logloss": float(mean.max()),
            "bayes_test_logloss": (ds.bayes_logloss or {}).get("test", float("nan")),
            "constant_test_logloss": float(binary_entropy(np.array([ctr]))[0]),
            "rows_fraction": recipe.steps * recipe.batch_size / n_train,
            "val_minus_train": float((df["val_logloss"] - df["final_train_loss"]).mean()),
            "mean_train_seconds": float(df["train_seconds"].mean()),
            "mean_cpu_seconds": float(df["cpu_seconds"].mean())}


def seed_agreement(df: pd.DataFrame, ds: Dataset, recipe: TruthRecipe, seeds) -> dict:
    """With three or more seeds: the truth of each architecture's median over them, how far
    its seeds spread, and the Kendall tau of every pair of seeds. With 2k or more seeds (k =
    2, 3), a k-seed truth measured against an independent one: the Kendall tau between the
    means of two disjoint sets of k seeds, their noise std (std of the two means'
    difference / sqrt 2) and the spread over architectures of the 2k-seed mean, over every
    way of splitting the first 2k seeds in two (``mean2_*``: 3 splits of four seeds;
    ``mean3_*``: 10 splits of six)."""
    wide = df[df["seed"].isin(seeds)].pivot_table(index="model", columns="seed", values="test_logloss")
    x = wide[list(seeds)].dropna().to_numpy()
    med = np.median(x, axis=1)
    pairs = [kendall_tau(x[:, i], x[:, j]) for i in range(len(seeds)) for j in range(i + 1, len(seeds))]
    gap = x.max(axis=1) - x.min(axis=1)
    nan = float("nan")
    out = {"data": ds.content_hash[:16], "seeds": " ".join(map(str, seeds)), "archs": len(x),
            "steps": recipe.steps, "batch_size": recipe.batch_size, "lr": recipe.lr,
            "initial_accumulator": recipe.initial_accumulator, "clip": recipe.clip,
            "lr_fan_in": recipe.lr_fan_in,
            "pair_kendall_mean": float(np.mean(pairs)), "pair_kendall_min": float(np.min(pairs)),
            "pair_kendall_max": float(np.max(pairs)),
            "median_truth_std": float(np.std(med, ddof=1)), "median_truth_best": float(med.min()),
            "median_truth_median": float(np.median(med)), "median_truth_worst": float(med.max()),
            "seed_std_per_arch_median": float(np.median(x.std(axis=1, ddof=1))),
            "seed_std_per_arch_max": float(x.std(axis=1, ddof=1).max()),
            "archs_range_over_0.005": int((gap > 0.005).sum()), "median_range": float(np.median(gap))}
    for k in (2, 3):
        # splits of the first 2k seeds into halves; the first seed always in half a, so
        # each split counts once
        splits = [(a, tuple(j for j in range(2 * k) if j not in a))
                  for a in ((0, *rest) for rest in itertools.combinations(range(1, 2 * k), k - 1))
                  ] if len(seeds) >= 2 * k else []
        taus, noise, spread = [], [], []
        for a, b in splits:
            ma, mb = x[:, list(a)].mean(axis=1), x[:, list(b)].mean(axis=1)
            taus.append(kendall_tau(ma, mb))
            noise.append(float(np.std(ma - mb, ddof=1) / np.sqrt(2)))
            spread.append(float(np.std((ma + mb) / 2, ddof=1)))
        out.update({f"mean{k}_splits": len(splits),
                    f"mean{k}_kendall_mean": float(np.mean(taus)) if taus else nan,
                    f"mean{k}_kendall_min": float(np.min(taus)) if taus else nan,
                    f"mean{k}_kendall_max": float(np.max(taus)) if taus else nan,
                    f"mean{k}_noise_std": float(np.mean(noise)) if noise else nan,
                    f"mean{k}_arch_std": float(np.mean(spread)) if spread else nan,
                    f"mean{k}_ratio": float(np.mean(spread) / np.mean(noise)) if noise else nan})
    return out


def _same(a, b) -> bool:
    """Equal as numbers where both are (a CSV gives 5.0 for 5), else as text."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _stored_rows(path: Path, fill: dict | None = None) -> list[dict]:
    """The rows of a result file (none if it is missing); ``fill`` gives rows written
    before a column its value for them."""
    # lr_fan_in as integers even where older rows leave it empty (else it is written back as 64.0)
    rows = pd.read_csv(path, dtype={"lr_fan_in": "Int64"}).to_dict("records") if path.is_file() else []
    for r in rows:
        for k, v in (fill or {}).items():
            if k not in r or pd.isna(r[k]):
                r[k] = v
    return rows


def _matches(row: dict, match: dict) -> bool:
    return all(_same(row.get(k), v) for k, v in match.items())


def _merge_write(path: Path, rows: list[dict], key: str, match: dict | None = None,
                 fill: dict | None = None) -> Path:
    """Write ``rows`` to ``path``, keeping stored rows of other keys (or other ``match``)."""
    old = _stored_rows(path, fill)
    if match is None:
        new_keys = {r[key] for r in rows}
        old = [r for r in old if r[key] not in new_keys]
    else:
        old = [r for r in old if not _matches(r, match)]
    return write_rows(old + rows, path)


def main(argv=None) -> int:
    d = SyntheticConfig()
    r = TruthRecipe()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", type=int, default=40)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                    help="two or more seeds: every pair gets a task_separation.csv row; three or more "
                         "also write task_truth_seeds.csv (median truth; with four, two-seed truths "
                         "against each other; with six, three-seed truths)")
    ap.add_argument("--rows", type=int, default=d.rows)
    ap.add_argument("--max-cardinality", type=int, default=d.max_cardinality)
    ap.add_argument("--steps", type=int, default=r.steps)
    ap.add_argument("--batch-size", type=int, default=r.batch_size)
    ap.add_argument("--lr", type=float, default=r.lr)
    ap.add_argument("--initial-accumulator", type=float, default=r.initial_accumulator)
    ap.add_argument("--clip", type=float, default=r.clip, help="gradient-norm clipping")
    ap.add_argument("--lr-fan-in", type=int, default=r.lr_fan_in,
                    help="0: one learning rate; n: weight matrices train at lr x min(1, n / fan_in)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per training process")
    ap.add_argument("--jobs", type=int, default=1, help="training processes at once")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=None, help="truth cache folder (default $COSEARCH_CACHE/truth)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop starting new trainings after this long (0: summarise the stored truth only)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the result files")
    args = ap.parse_args(argv)
    if len(args.seeds) < 2 or len(set(args.seeds)) != len(args.seeds):
        ap.error(f"--seeds: give two or more distinct seeds, got {' '.join(map(str, args.seeds))}")
    torch.set_num_threads(args.threads)
    ds = bench_data(SyntheticConfig(rows=args.rows, max_cardinality=args.max_cardinality, seed=args.data_seed))
    try:
        recipe = TruthRecipe(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                             initial_accumulator=args.initial_accumulator, clip=args.clip,
                             lr_fan_in=args.lr_fan_in)
    except ValueError as e:
        ap.error(str(e))
    truth_csv = args.results / TRUTH_CSV.name
    stored = load_truth(truth_csv)
    deadline = time.time() + 60 * args.minutes if args.minutes is not None else None
    specs = bench_archs(args.archs, args.data_seed)
    new_rows: list[dict] = []

    def on_new(row):
        new_rows.append(row)
        _merge_write(truth_csv, new_rows, "key")

    df = truth_table(specs, ds, recipe, args.seeds, cache=TruthCache(args.cache or default_cache()),
                     stored=stored, on_new=on_new, deadline=deadline, jobs=args.jobs, threads=args.threads)
    written = [truth_csv]
    separation_csv = args.results / "task_separation.csv"
    # rows from before the seed columns compare seeds 0 and 1; rows from before
    # lr_fan_in trained with one learning rate
    pair_fill = {"seed_a": 0, "seed_b": 1, "lr_fan_in": 0}
    for a, b in itertools.combinations(args.seeds, 2):
        summary = separation(df, ds, recipe, (a, b), np.random.default_rng(args.data_seed))
        summary.update(jobs=args.jobs, threads=args.threads, cores=os.cpu_count(), truth_version=TRUTH_VERSION)
        match = {k: summary[k] for k in ("data", "seed_a", "seed_b", "steps", "batch_size", "lr",
                                          "initial_accumulator", "clip", "lr_fan_in", "truth_version")}
        if not new_rows:  # nothing trained now: how the stored trainings ran stays as recorded
            summary.update(next(({k: r[k] for k in ("jobs", "threads", "cores") if k in r}
                                 for r in _stored_rows(separation_csv, pair_fill) if _matches(r, match)), {}))
        written.append(_merge_write(separation_csv, [summary], "data", match, fill=pair_fill))
        print(pd.Series(summary).to_string())
    if len(args.seeds) >= 3:
        row = {**seed_agreement(df, ds, recipe, args.seeds), "truth_version": TRUTH_VERSION}
        match = {k: row[k] for k in ("data", "seeds", "steps", "batch_size", "lr", "initial_accumulator",
                                      "clip", "lr_fan_in", "truth_version")}
        written.append(_merge_write(args.results / "task_truth_seeds.csv", [row], "data", match,
                                    fill={"lr_fan_in": 0}))
        print(pd.Series(row).to_string())
    print("wrote " + ", ".join(str(p) for p in dict.fromkeys(written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
