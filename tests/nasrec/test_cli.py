import json

import pandas as pd
import pytest

from nasrec.cli import main

from .test_space import CONFIGS


def test_cli_pipeline(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["generate", str(data), "--rows", "2000", "--max-cardinality", "100", "--quiet"]) == 0
    assert str(data) in capsys.readouterr().out
    ck = tmp_path / "sn.pt"
    assert main(["train-supernet", str(data), str(ck), "--space", "small", "--steps", "3",
                 "--batch-size", "64", "--quiet", "--device", "cpu"]) == 0
    assert ck.is_file() and str(ck) in capsys.readouterr().out
    scores = tmp_path / "scores.csv"
    assert main(["score", str(ck), str(data), "--sample", "2", "--finetune-steps", "2",
                 "--batch-size", "64", "--out", str(scores), "--quiet", "--seed", "4"]) == 0
    df = pd.read_csv(scores)
    assert len(df) == 2 and {"logloss", "auc", "hash", "data", "seed", "arch"} <= set(df.columns)
    assert (df["seed"] == 4).all()
    out = tmp_path / "r.json"
    small = next(p for p in CONFIGS if "autoctr" in p.name)
    assert main(["train", str(data), "--arch", str(small), "--steps", "3", "--batch-size", "64",
                 "--out", str(out), "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert r["test"]["data"].endswith(":test") and r["bayes_logloss"]["test"] > 0
    assert main(["train", str(data), "--baseline", "dlrm", "--steps", "3", "--batch-size", "64",
                 "--out", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["model"] == "dlrm"


@pytest.mark.parametrize("argv", [
    ["train", "/nonexistent/data", "--baseline", "dlrm"],
    ["generate", "x", "--rows", "not-a-number"],
    ["frobnicate"],
    ["generate", "x", "--rows", "3"],
    ["train-supernet", "/nonexistent/data", "out.pt"],
    ["generate", "x", "--bag", "max"],
])
def test_cli_bad_input_is_one_line_and_status_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasrec:") and err.count("\n") == 1


def test_cli_bad_initial_accumulator_names_the_value(tmp_path, capsys, tiny_data):
    assert main(["train", str(tiny_data.path), "--baseline", "dlrm", "--initial-accumulator", "-1",
                 "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "initial_accumulator must be >= 0, got -1" in err and err.count("\n") == 1


def test_cli_train_lr_fan_in_reaches_the_recipe(tmp_path, capsys, tiny_data):
    out = tmp_path / "r.json"
    small = next(p for p in CONFIGS if "autoctr" in p.name)
    common = ["--steps", "2", "--batch-size", "64", "--out", str(out), "--quiet"]
    assert main(["train", str(tiny_data.path), "--arch", str(small), "--lr-fan-in", "32", *common]) == 0
    assert json.loads(out.read_text())["config"]["lr_fan_in"] == 32
    # a baseline keeps one learning rate unless told otherwise
    assert main(["train", str(tiny_data.path), "--baseline", "dlrm", *common]) == 0
    assert json.loads(out.read_text())["config"]["lr_fan_in"] == 0
    assert main(["train", str(tiny_data.path), "--baseline", "dlrm", "--lr-fan-in", "16", *common]) == 0
    assert json.loads(out.read_text())["config"]["lr_fan_in"] == 16
    capsys.readouterr()
    assert main(["train", str(tiny_data.path), "--baseline", "dlrm", "--lr-fan-in", "-3", *common]) == 2
    err = capsys.readouterr().err
    assert "lr_fan_in must be an integer >= 0, got -3" in err and err.count("\n") == 1


def test_cli_bad_paths_per_step_names_the_value(tmp_path, capsys, tiny_data):
    assert main(["train-supernet", str(tiny_data.path), str(tmp_path / "s.pt"), "--batch-size", "64",
                 "--paths-per-step", "3"]) == 2
    err = capsys.readouterr().err
    assert "batch_size 64 is not divisible by paths_per_step 3" in err and err.count("\n") == 1
    assert not (tmp_path / "s.pt").exists()


def test_cli_bad_arch_json(tmp_path, capsys, tiny_data):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert main(["train", str(tiny_data.path), "--arch", str(bad), "--out", str(tmp_path / "r.json")]) == 2
    assert "bad architecture JSON" in capsys.readouterr().err


def test_cli_prepare_reports_malformed_lines(tmp_path, capsys):
    good = "\t".join(["1"] + ["3"] * 13 + ["a1b2"] * 26) + "\n"
    (tmp_path / "train.txt").write_text(good * 20 + "garbage\n")
    assert main(["prepare", "criteo", str(tmp_path / "train.txt"), str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "20 rows" in out and "1 malformed" in out and str(tmp_path / "out") in out
    assert main(["prepare", "criteo", str(tmp_path / "missing.txt"), str(tmp_path / "o2")]) == 2


def test_cli_multi_hot_data_and_extended_supernet(tmp_path, capsys):
    data = tmp_path / "mh"
    assert main(["generate", str(data), "--rows", "600", "--sparse", "4", "--max-cardinality", "50",
                 "--pooling", "3,1,2,1", "--quiet"]) == 0
    meta = json.loads((data / "meta.json").read_text())
    assert meta["schema"]["pooling"] == [3, 1, 2, 1]
    ck = tmp_path / "sn.pt"
    assert main(["train-supernet", str(data), str(ck), "--space", "small", "--embeddings", "extended",
                 "--steps", "2", "--batch-size", "32", "--quiet"]) == 0
    scores = tmp_path / "s.csv"
    assert main(["score", str(ck), str(data), "--sample", "2", "--finetune-steps", "1", "--batch-size", "32",
                 "--out", str(scores), "--quiet"]) == 0
    archs = [json.loads(a) for a in pd.read_csv(scores)["arch"]]
    assert all(len(a["embedding"]["dims"]) == 4 for a in archs)
    capsys.readouterr()
    for bad in (["--pooling", "x"], ["--pooling", "1,2"], ["--pooling", "mlperf"]):
        assert main(["generate", str(tmp_path / "bad"), "--rows", "100", "--sparse", "4"] + bad) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "pooling" in err
