import csv
import json

import numpy as np
import pytest

from cosearch.cli import main
from cosearch.config import DEFAULT, QUICK, RunConfig, load_config

TINY = """
seed = 3
[data]
rows = 10000
max_cardinality = 1000
[supernet]
space = "small"
steps = 2
batch_size = 64
[scoring]
finetune_steps = 1
batch_size = 64
val_rows = 256
[search]
budget = 12
population = 6
sample_size = 3
children = 3
[hardware]
families = ["recnmp"]
gemm = ["host"]
[baselines]
names = ["dlrm"]
[verify]
top_k = 2
rescore = 0
steps = 3
batch_size = 64
[inference]
batch_size = 32
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(config file, cache dir holding its data set and supernet)."""
    import tomllib
    from cosearch.pipeline import ensure_dataset, ensure_supernet
    root = tmp_path_factory.mktemp("tiny")
    cfgp = root / "tiny.toml"
    cfgp.write_text(TINY)
    cfg = RunConfig.from_dict(tomllib.loads(TINY))
    ensure_supernet(cfg, ensure_dataset(cfg, root / "cache"), root / "cache")
    return cfgp, root / "cache"


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("text, needle", [
    ("[search]\nbudget = 0\n", "budget"),
    ("[search]\nscreen = 64\n", "screen"),
    ("[search]\nalgorithm = 'simulated-annealing'\n", "algorithm"),
    ("[search]\nobjectives = ['logloss', 'speed']\n", "speed"),
    ("[search]\nobjectives = ['logloss']\nweights = [1.0, 2.0]\n", "weights"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ("[data]\nrowz = 10\n", "rowz"),
    ("[hardware]\ngemm = ['gpu']\n", "gpu"),
    ("[hardware]\nprecisions = ['fp64']\n", "precisions"),
    ("[constraints]\narea_mm2 = -1\n", "area_mm2"),
    ("[scoring]\nhead_fit = 'sgd'\n", "sgd"),
    ("[supernet]\nfull_path_fraction = 1.5\n", "full_path_fraction"),
    ("[scoring]\nprobe_l2 = -1.0\n", "probe_l2"),
    ("[execution]\nexecutor = 'mpi'\n", "executor"),
    ("[verify]\nlr_fan_in = -64\n", "lr_fan_in"),
    ("this is not toml", "invalid TOML"),
])
def test_bad_config_one_line_exit_2(tmp_path, capsys, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    assert main(["run", "--config", str(p), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]) == 2
    line = _err(capsys)
    assert line.startswith("cosearch") and needle in line and "Traceback" not in line


@pytest.mark.parametrize("argv, needle", [
    (["run", "--budget", "x"], "invalid int"),
    (["run", "--budget", "0"], "budget"),
    (["frobnicate"], "invalid choice"),
    (["run", "--config", "/nonexistent/cfg.toml"], "cannot read config"),
    (["resume", "/nonexistent/run"], "not a cosearch run"),
    (["plot", "/nonexistent/run"], "no results"),
    (["retrain", "/nonexistent/run", "--top", "2"], "not a cosearch run"),
    (["query", "/nonexistent/arch.json", "--hardware", "recnmp", "--data", "/nonexistent/data"], "meta.json"),
    (["query", "dlrm"], "--hardware"),
])
def test_bad_flags_and_paths(tmp_path, capsys, argv, needle):
    assert main(argv) == 2
    assert needle in _err(capsys)


def test_config_round_trip_and_quick():
    assert RunConfig.from_dict(DEFAULT.to_dict()) == DEFAULT
    assert RunConfig.from_dict(QUICK.to_dict()) == QUICK
    assert QUICK.search.budget < DEFAULT.search.budget


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    """A finished tiny run: (run dir, supernet file's mtime before the run)."""
    cfgp, cache = tiny
    out = tmp_path_factory.mktemp("tinyrun") / "run"
    sn_mtime = next(cache.glob("supernet-*.pt")).stat().st_mtime_ns
    assert main(["run", "--config", str(cfgp), "--out", str(out), "--cache", str(cache), "--quiet"]) == 0
    return out, sn_mtime


def test_tiny_run_resume_plot_query_retrain(tmp_path, capsys, tiny, tiny_run):
    cfgp, cache = tiny
    out, sn_mtime = tiny_run
    for f in ("run.json", "results.csv", "checkpoint.json", "front.csv", "baselines.csv", "summary.md",
              "baselines_fronts.csv", "logloss_vs_latency.png", "logloss_vs_energy.png", "cost_fronts.png",
              "hypervolume.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == 3 and len(meta["dataset_hash"]) == 64 and len(meta["supernet_hash"]) == 64
    assert meta["config"] == load_config(cfgp).to_dict()
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 12 and {r["seed"] for r in rows} == {"3"}
    assert all(float(r["latency_s"]) > 0 and float(r["logloss"]) > 0 for r in rows)
    # the run reused the data set and supernet cached by the fixture
    assert len(list(cache.glob("supernet-*.pt"))) == 1 and len(list(cache.glob("data-*"))) == 1
    assert meta["supernet"] == str(next(cache.glob("supernet-*.pt")))
    assert next(cache.glob("supernet-*.pt")).stat().st_mtime_ns == sn_mtime
    # a finished run resumes to the same result; plot redraws
    capsys.readouterr()
    before = (out / "results.csv").read_text()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert (out / "results.csv").read_text() == before
    # a run written before [search] screen existed (so without screening) still resumes,
    # though today's default screens
    cfg_off = tmp_path / "off.toml"
    cfg_off.write_text(TINY.replace("[search]\n", "[search]\nscreen = 1\n"))
    out_off = tmp_path / "off"
    assert main(["run", "--config", str(cfg_off), "--out", str(out_off), "--cache", str(cache), "--quiet"]) == 0
    before_off = (out_off / "results.csv").read_text()
    old = json.loads((out_off / "run.json").read_text())
    del old["config"]["search"]["screen"]
    (out_off / "run.json").write_text(json.dumps(old))
    assert main(["resume", str(out_off), "--quiet"]) == 0
    assert (out_off / "results.csv").read_text() == before_off
    (out / "run.json").write_text(json.dumps(meta))
    assert main(["plot", str(out)]) == 0
    # query an architecture from the front and a baseline
    arch = tmp_path / "a.json"
    arch.write_text(rows[0]["arch"])
    data = meta["dataset"]
    assert main(["query", str(arch), "--hardware", "recnmp", "--data", data]) == 0
    assert "latency" in capsys.readouterr().out
    assert main(["query", "dlrm", "--hardware", "recnmp", "--data", data, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["latency_s"] > 0 and rep["energy_per_sample_j"] > 0
    assert main(["query", "dlrm", "--hardware", "recnmp", "--data", data, "--json", "--table-rows-scale", "0"]) == 2
    assert "rows_scale must be a positive integer, got 0" in capsys.readouterr().err
    assert main(["retrain", str(out), "--top", "1", "--steps", "2", "--quiet"]) == 0
    rt = list(csv.DictReader(open(out / "retrain.csv")))
    assert len(rt) == 1 and float(rt[0]["test_logloss"]) > 0 and rt[0]["train_steps"] == "2"


def test_embedding_sensitivity_varies_only_the_embedding(tmp_path, capsys, tiny_run):
    """benchmarks.embedding_sensitivity scores and trains embedding variants of a run's
    verified architectures, reusing the run's own training for the unchanged one."""
    import pandas as pd
    from benchmarks.embedding_sensitivity import main as sensitivity
    out, _ = tiny_run
    front = pd.read_csv(out / "front.csv", dtype={"arch_hash": str})
    ver = front[front["verified"] == 1].drop_duplicates("arch_hash").set_index("arch_hash")
    assert sensitivity([str(out), "--dims", "4", "--drop", "1", "--workers", "1", "--results", str(tmp_path)]) == 0
    t = pd.read_csv(tmp_path / "embedding_sensitivity.csv", dtype={"arch_hash": str})
    assert set(t["arch_hash"]) == set(ver.index)
    assert set(t["run"]) == {out.resolve().name}  # the folder's name, not a machine's path
    for h, g in t.groupby("arch_hash"):
        g = g.set_index("variant")
        assert set(g.index) == {"as-is", "no-drop", "fp32", "no-drop+fp32", "all-4", "drop1"}
        # the run searched without dropping fields: as-is and no-drop are one model, one training
        assert g.loc["as-is", "fields_dropped"] == 0 and g.loc["drop1", "fields_dropped"] == 1
        assert g.loc["as-is", "test_logloss"] == g.loc["no-drop", "test_logloss"] == ver.loc[h, "test_logloss"]
        assert g.loc["all-4", "mean_dim"] == 4 and g.loc["fp32", "fp32_fields"] == 26
        assert g["supernet_score"].gt(0).all() and g["test_logloss"].gt(0).all()
        assert g["supernet_logit_std"].ge(0).all() and g["supernet_logit_std"].notna().all()
    printed = capsys.readouterr().out
    assert "Kendall tau of supernet score" in printed
    assert "supernet logit standard deviation over 40 random candidates" in printed
    assert "the same, for the run's verified models trained from scratch: " in printed
    with pytest.raises(SystemExit) as e:
        sensitivity([str(out), "--archs", "zzzz", "--results", str(tmp_path)])
    assert e.value.code == 2 and "no architecture 'zzzz'" in capsys.readouterr().err


def test_run_verifies_front_and_baselines(tmp_path, capsys, tiny, tiny_run):
    """The front's best distinct architectures and the baselines are trained from
    scratch and tested; their figures reach front.csv, baselines.csv and summary.md,
    their model files are queryable, and a second run reuses every cached training."""
    import pandas as pd
    cfgp, cache = tiny
    out = tiny_run[0]
    front = pd.read_csv(out / "front.csv")
    # equivalent points (same architecture, same objectives) appear once
    assert not front.duplicated(["arch_hash", "logloss", "latency_s", "energy_per_sample_j"]).any()
    ver = front[front["verified"] == 1]
    assert 1 <= ver["arch_hash"].nunique() <= 2
    assert (ver["test_logloss"] > 0).all() and ver["test_auc"].between(0, 1).all()
    assert front[front["verified"] == 0]["test_logloss"].isna().all()
    # the verified ones are those with the lowest search log loss among distinct architectures
    best = front.sort_values("logloss").drop_duplicates("arch_hash")["arch_hash"].head(2)
    assert set(ver["arch_hash"]) == set(best)
    base = pd.read_csv(out / "baselines.csv")
    assert list(base["model"]) == ["dlrm"] and base["test_logloss"].iloc[0] > 0 and base["train_steps"].iloc[0] == 3
    summary = (out / "summary.md").read_text()
    assert "best verified searched model" in summary and "best baseline (dlrm" in summary
    model = out / ver["model_file"].iloc[0]
    assert model.is_file()
    capsys.readouterr()
    assert main(["query", str(model), "--hardware", "recnmp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_s"] > 0
    entries = sorted((cache / "truth").glob("truth-*.json"))
    stamps = [p.stat().st_mtime_ns for p in entries]
    out2 = tmp_path / "run2"
    assert main(["run", "--config", str(cfgp), "--out", str(out2), "--cache", str(cache), "--quiet"]) == 0
    assert sorted((cache / "truth").glob("truth-*.json")) == entries
    assert [p.stat().st_mtime_ns for p in entries] == stamps
    cols = ["arch_hash", "hardware", "logloss", "verified", "test_logloss", "test_auc"]
    pd.testing.assert_frame_equal(pd.read_csv(out2 / "front.csv")[cols], front[cols])


def _run_with_verify(tmp_path, tiny, verify: str):
    """(run folder, config text) of a tiny run whose ``[verify]`` table is ``verify``."""
    cfgp, cache = tiny
    text = cfgp.read_text().replace("[verify]\ntop_k = 2\nrescore = 0\n", "[verify]\n" + verify)
    assert "[verify]\n" + verify in text
    p = tmp_path / "verify.toml"
    p.write_text(text)
    out = tmp_path / "run"
    assert main(["run", "--config", str(p), "--out", str(out), "--cache", str(cache), "--quiet"]) == 0
    return out, text


def test_first_round_verifies_the_best_after_short_training(tmp_path, tiny):
    """With ``rescore``, the front's best distinct architectures by search log loss train
    a few steps first, and the verified one is the best of them by validation log loss
    after that round, not by search score."""
    import pandas as pd
    cache = tiny[1]
    out, _ = _run_with_verify(tmp_path, tiny, "top_k = 1\nrescore = 3\nrescore_steps = 2\nbaselines = false\n"
                                              "pool = \"front\"\nlr_fan_in = 8\n")
    front = pd.read_csv(out / "front.csv")
    distinct = front.sort_values("logloss", kind="stable").drop_duplicates("arch_hash")
    assert len(distinct) > 1, "the tiny run's front needs two architectures for a first round"
    pool = distinct.head(3)
    # exactly the pool's rows carry the round's validation log loss
    assert front["rescore_logloss"].notna().eq(front["arch_hash"].isin(pool["arch_hash"])).all()
    assert (pool["rescore_logloss"] > 0).all()
    ver = front[front["verified"] == 1]
    assert ver["arch_hash"].nunique() == 1
    assert ver["arch_hash"].iloc[0] == pool.sort_values("rescore_logloss", kind="stable")["arch_hash"].iloc[0]
    # the round's trainings are cached under their own recipe (2 steps, validation only),
    # without model files
    short = {e: json.loads(e.read_text())["result"] for e in (cache / "truth").glob("truth-*.json")}
    short = {e: r for e, r in short.items() if r["recipe"] == {**r["recipe"], "steps": 2, "test": False}}
    assert {r["model"][5:21] for r in short.values()} >= set(pool["arch_hash"])
    assert not any(e.with_suffix(".pt").exists() for e in short)
    assert f"best of the {len(pool)} front architectures" in (out / "summary.md").read_text()
    assert "first round of 2 training steps" in (out / "summary.md").read_text()
    # [verify] lr_fan_in reaches both rounds' trainings and the summary
    assert short and all(r["recipe"]["lr_fan_in"] == 8 for r in short.values())
    assert "at lr x min(1, 8 / fan-in)" in (out / "summary.md").read_text()


def _layers_by_peeling(F: np.ndarray) -> np.ndarray:
    """1-based Pareto layer of each row of ``F`` (minimised), by repeatedly removing the
    points that nothing left dominates."""
    layer = np.zeros(len(F), dtype=int)
    k = 0
    while (layer == 0).any() and k < len(F):
        k += 1
        left = np.flatnonzero(layer == 0)
        for i in left:
            if not any((F[j] <= F[i]).all() and (F[j] < F[i]).any() for j in left):
                layer[i] = k
    return layer


def test_layered_pool_reaches_behind_the_front(tmp_path, tiny):
    """With ``pool = "layers"``, the first round takes every distinct front architecture
    and then the next Pareto layers, lowest search log loss first within a layer; the
    off-front ones get rows of their own with their layer."""
    import pandas as pd
    from cosearch.pipeline import load_run
    out, _ = _run_with_verify(tmp_path, tiny, "top_k = 1\nrescore = 6\nrescore_steps = 2\nbaselines = false\n"
                                              "pool = \"layers\"\n")
    cfg, _ = load_run(out)
    res = pd.read_csv(out / "results.csv", dtype={"arch_hash": str})
    res = res[res["feasible"] == 1].copy()
    res["layer"] = _layers_by_peeling(res[list(cfg.search.objectives)].to_numpy(float))
    want = []
    for _, r in res.sort_values(["layer", "logloss"], kind="stable").iterrows():
        if r["arch_hash"] not in want and len(want) < 6:
            want.append(r["arch_hash"])
    assert len(want) == 6, "the tiny run needs 6 distinct feasible architectures"
    front = pd.read_csv(out / "front.csv", dtype={"arch_hash": str})
    on_front = front[front["pareto_layer"] == 1]
    assert set(on_front["arch_hash"]) == set(res.loc[res["layer"] == 1, "arch_hash"])
    assert set(front.loc[front["rescore_logloss"].notna(), "arch_hash"]) == set(want)
    behind = front[front["pareto_layer"] > 1]
    assert behind["arch_hash"].is_unique and set(behind["arch_hash"]) == set(want) - set(on_front["arch_hash"])
    assert len(behind) > 0, "the tiny run's front must hold fewer than 6 architectures"
    for _, r in behind.iterrows():
        assert r["pareto_layer"] == res.loc[res["arch_hash"] == r["arch_hash"], "layer"].min()
    ver = front[front["verified"] == 1].drop_duplicates("arch_hash")
    best = front.dropna(subset=["rescore_logloss"]).sort_values("rescore_logloss", kind="stable")
    assert list(ver["arch_hash"]) == [best["arch_hash"].iloc[0]]
    summary = (out / "summary.md").read_text()
    assert f"## Pareto front ({len(on_front)} candidates)" in summary
    assert "best of the 6 architectures of the front and the Pareto layers behind it" in summary
    # benchmarks.verify_pool trains the whole pool in full, reusing the run's verified training
    from benchmarks.verify_pool import main as verify_pool
    assert verify_pool([str(out), "--results", str(tmp_path), "--workers", "1", "--label", "tiny"]) == 0
    vp = pd.read_csv(tmp_path / "verify_pool.csv", dtype={"arch_hash": str})
    assert set(vp["run"]) == {"tiny"}
    # a second call under the same label replaces its rows; the default label is the folder's name
    assert verify_pool([str(out), "--results", str(tmp_path), "--workers", "1", "--label", "tiny"]) == 0
    assert verify_pool([str(out), "--results", str(tmp_path), "--workers", "1"]) == 0
    again = pd.read_csv(tmp_path / "verify_pool.csv", dtype={"arch_hash": str, "run": str})
    assert again["run"].value_counts().to_dict() == {"tiny": len(vp), out.resolve().name: len(vp)}
    assert sorted(vp["arch_hash"]) == sorted(want) and vp["full_test_logloss"].gt(0).all()
    mine = vp.set_index("arch_hash").loc[ver["arch_hash"].iloc[0]]
    assert mine["verified_by_run"] == 1 and mine["full_test_logloss"] == ver["test_logloss"].iloc[0]


def test_spread_pool_is_the_default_first_round(tmp_path, tiny):
    """Without a ``pool`` setting, the first round trains the architectures that
    ``spread_pool`` spreads over the latency range of all feasible candidates, and the
    off-front ones get rows with their Pareto layer."""
    import pandas as pd
    from cosearch.pipeline import layered_rows, load_run, spread_pool
    out, text = _run_with_verify(tmp_path, tiny, "top_k = 1\nrescore = 6\nrescore_steps = 2\nbaselines = false\n")
    assert "pool" not in text
    cfg, _ = load_run(out)
    assert cfg.verify.pool == "spread"
    want = spread_pool(layered_rows(out, cfg.search.objectives), cfg.search.objectives, 6)
    front = pd.read_csv(out / "front.csv", dtype={"arch_hash": str})
    assert set(front.loc[front["rescore_logloss"].notna(), "arch_hash"]) == {r["arch_hash"] for r in want}
    res = pd.read_csv(out / "results.csv", dtype={"arch_hash": str})
    res = res[res["feasible"] == 1].copy()
    res["layer"] = _layers_by_peeling(res[list(cfg.search.objectives)].to_numpy(float))
    for _, r in front[front["pareto_layer"] > 1].iterrows():
        assert r["pareto_layer"] in set(res.loc[res["arch_hash"] == r["arch_hash"], "layer"])
    # both ends of the candidates' log latency range are in the pool (the first and last bins)
    lo, hi = np.log10(res["latency_s"].min()), np.log10(res["latency_s"].max())
    lat = np.log10([float(r["latency_s"]) for r in want])
    assert lat.min() <= lo + (hi - lo) / 8 and lat.max() >= hi - (hi - lo) / 8
    assert "spread over the search's latency_s range" in (out / "summary.md").read_text()


def test_baselines_are_costed_on_the_searchs_hardware(tiny, tiny_run):
    """Each baseline on every valid configuration of the run's knob space (36 distinct
    here, plus the default): its own non-dominated front flagged, the default no better
    than the front, drawn and compared in summary.md."""
    import pandas as pd
    from cosearch.pipeline import baseline_hardware
    out = tiny_run[0]
    rows = pd.read_csv(out / "baselines_fronts.csv")
    base = pd.read_csv(out / "baselines.csv")
    knobs, sampled = baseline_hardware(load_config(tiny[0]))
    assert list(rows["model"].unique()) == ["dlrm"] and (rows["seed"] == 3).all()
    assert len(rows) == rows["configs"].iloc[0] == len(knobs) == 37 and not sampled and not rows["sampled"].any()
    assert list(rows["hardware"]) == [k.label for k in knobs]
    assert set(rows["hw_precision"]) == {"fp32", "fp16", "int8"}
    assert set(rows["hw_embeddings"]) == {"auto", "host", "nmp"}
    pts = rows[["latency_s", "energy_per_sample_j"]].to_numpy()
    assert np.isfinite(pts).all() and (pts > 0).all()
    on = rows["on_front"].to_numpy() == 1
    assert on.any()

    def dominated(p):
        return any((q <= p).all() and (q < p).any() for q in pts)

    assert not any(dominated(p) for p in pts[on])
    assert all(dominated(p) or any((q == p).all() for q in pts[on]) for p in pts[~on])
    (default,) = pts[rows["default_hw"].to_numpy() == 1]
    # the default row is the baselines.csv figure, and it is no better than the front
    assert default.tolist() == [base["latency_s"].iloc[0], base["energy_per_sample_j"].iloc[0]]
    assert any((q <= default).all() for q in pts[on])
    assert pts[:, 0].min() < default[0] or pts[:, 1].min() < default[1]  # the knobs matter here
    summary = (out / "summary.md").read_text()
    assert "## Baselines at equal hardware freedom" in summary and "all its valid configurations (37 with the default)" in summary
    assert (out / "cost_fronts.png").stat().st_size > 0


def test_inherited_scorer_equals_nasrec_scorer(tiny):
    import numpy as np
    import tomllib
    from cosearch.pipeline import ensure_dataset, ensure_supernet
    from cosearch.scoring import InheritedScorer
    from nasrec import SupernetScorer, sample
    cfg = RunConfig.from_dict(tomllib.loads(TINY))
    ds = ensure_dataset(cfg, tiny[1])
    sn, _ = ensure_supernet(cfg, ds, tiny[1])
    tr, va = ds.split("train"), ds.split("val", 200)
    specs = [sample(np.random.default_rng(i), sn.space) for i in range(2)]
    a = SupernetScorer(sn, tr, va, finetune_steps=3, batch_size=32, seed=1).score(specs)
    b = InheritedScorer(sn, tr, va, finetune_steps=3, batch_size=32, seed=1).score(specs)
    assert np.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert b[0] != b[1]  # the architectures really differ


def test_probe_head_fits_its_rows_better_than_adagrad_steps(tiny):
    import numpy as np
    import tomllib
    from cosearch.pipeline import ensure_dataset, ensure_supernet
    from cosearch.scoring import InheritedScorer
    from nasrec import sample
    cfg = RunConfig.from_dict(tomllib.loads(TINY))
    ds = ensure_dataset(cfg, tiny[1])
    sn, _ = ensure_supernet(cfg, ds, tiny[1])
    tr = ds.split("train")
    fit_rows = ds.split("train", 256)  # scored on rows it is fitted on: the probe must fit them best
    spec = sample(np.random.default_rng(0), sn.space)
    kw = dict(finetune_steps=8, batch_size=32, seed=1)
    steps = InheritedScorer(sn, tr, fit_rows, **kw)
    probe = InheritedScorer(sn, tr, fit_rows, head_fit="probe", probe_l2=0.0, **kw)
    probe.ft = steps.ft = tuple(t[:256] for t in next(fit_rows.batches(256)))
    assert probe.evaluate(spec) < steps.evaluate(spec) - 1e-3
    with pytest.raises(ValueError, match="head_fit"):
        InheritedScorer(sn, tr, fit_rows, head_fit="sgd")


def test_supernet_full_path_fraction_reaches_its_training():
    from dataclasses import replace

    from cosearch.config import RunConfig
    from cosearch.pipeline import _train_config
    cfg = RunConfig()
    assert _train_config(cfg).full_path_fraction == 0.0  # default: no whole-supernet warm-up
    cfg = replace(cfg, supernet=replace(cfg.supernet, full_path_fraction=0.2))
    assert _train_config(cfg).full_path_fraction == 0.2


def test_baselines_train_beside_the_search(tmp_path, tiny):
    """The baselines' verification trainings start before the search's last generation,
    and the report waits for them."""
    import shutil
    import tomllib
    import pandas as pd
    from cosearch.pipeline import run_pipeline
    cfgp, cache = tiny
    fresh = tmp_path / "cache"
    shutil.copytree(cache, fresh, ignore=shutil.ignore_patterns("truth"))
    cfg = RunConfig.from_dict(tomllib.loads(TINY))
    events = []
    run_pipeline(cfg, tmp_path / "out", fresh, on_stage=events.append,
                 on_generation=lambda info: events.append(("generation", info.generation)))
    beside = events.index("verify dlrm (beside the search)")
    last = max(i for i, e in enumerate(events) if isinstance(e, tuple))
    assert events.index("search") < beside < last < events.index("report")
    base = pd.read_csv(tmp_path / "out" / "baselines.csv")
    assert base["test_logloss"].iloc[0] > 0


def test_verify_lr_fan_in_reaches_the_recipe_of_architectures_only():
    from dataclasses import replace as dc_replace

    from cosearch.config import RunConfig
    from cosearch.pipeline import _with_added_settings, truth_recipe
    cfg = RunConfig()
    assert truth_recipe(cfg).lr_fan_in == 64  # the default
    cfg = dc_replace(cfg, verify=dc_replace(cfg.verify, lr_fan_in=32))
    recipe = truth_recipe(cfg)
    assert recipe.lr_fan_in == 32 and recipe.for_model("dcnv2").lr_fan_in == 0
    # a run written before the setting existed resumes with one learning rate, as it ran
    assert _with_added_settings({"verify": {"top_k": 2}})["verify"]["lr_fan_in"] == 0
