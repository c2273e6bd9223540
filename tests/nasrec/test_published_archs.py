"""benchmarks/published_archs.py: its argument checks, its rows, and the ranking against
random architectures."""
import numpy as np
import pandas as pd
import pytest

from benchmarks import published_archs
from benchmarks.task_truth import bench_archs
from nasrec.scratch import TruthRecipe, key_hash, truth_key
from nasrec.space import sample


@pytest.fixture
def configs(tmp_path):
    """A folder with one architecture JSON file."""
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "one.json").write_text(sample(np.random.default_rng(5)).to_json())
    return folder


@pytest.mark.parametrize("argv, message", [
    (["--baselines", "dcnv2", "widedeep"], "--baselines: unknown widedeep"),
    (["--baselines", "dlrm", "dlrm"], "--baselines: give each once, got dlrm dlrm"),
    (["--seeds", "1", "1"], "--seeds: give distinct seeds, got 1 1"),
    (["--archs", "0"], "--archs must be >= 1, got 0"),
    (["--lr-fan-in", "-2"], "lr_fan_in must be an integer >= 0, got -2"),
])
def test_bad_arguments_are_one_line_and_status_2(argv, message, configs, capsys):
    with pytest.raises(SystemExit) as e:
        published_archs.main(["--configs", str(configs), *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_a_folder_without_architectures_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        published_archs.main(["--configs", str(tmp_path)])
    assert e.value.code == 2
    assert f"no architecture JSON files in {tmp_path}" in capsys.readouterr().err


def test_rows_per_model_and_a_rerun_replaces_them(configs, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(published_archs, "bench_data", lambda cfg: tiny_data)
    argv = ["--configs", str(configs), "--baselines", "dlrm", "--steps", "2", "--batch-size", "32",
            "--lr-fan-in", "16", "--cache", str(tmp_path / "cache"), "--results", str(tmp_path), "--threads", "1"]
    assert published_archs.main([*argv, "--seeds", "3", "0"]) == 0
    df = pd.read_csv(tmp_path / published_archs.OUT)
    assert list(df["model"]) == ["one", "dlrm"] and list(df["kind"]) == ["published", "baseline"]
    assert (df["seeds"] == "0 3").all() and (df["trained_now"] == 2).all()
    # the architecture trains with the run's lr_fan_in, the baseline with one rate
    assert list(df["lr_fan_in"]) == [16, 0] and (df["arch_lr_fan_in"] == 16).all()
    np.testing.assert_allclose(df["test_logloss_mean"], (df["test_logloss_seed0"] + df["test_logloss_seed3"]) / 2)
    assert df["random_better"].isna().all()  # no stored truth of the random architectures here
    # the same seeds in another order: the same rows, from the cache
    assert published_archs.main([*argv, "--seeds", "0", "3"]) == 0
    again = pd.read_csv(tmp_path / published_archs.OUT)
    assert len(again) == 2 and (again["trained_now"] == 0).all()
    np.testing.assert_array_equal(again["test_logloss_mean"], df["test_logloss_mean"])


class _Data:
    content_hash = "d" * 64


def test_random_means_need_every_architecture_and_seed():
    recipe = TruthRecipe(lr_fan_in=64)
    specs = bench_archs(3, 0)
    stored = {key_hash(truth_key(_Data.content_hash, spec, recipe, s)): {"test_logloss": 0.5 + k / 100 + s / 1000}
              for k, spec in enumerate(specs) for s in (0, 1)}
    assert published_archs._random_means(_Data, recipe, [0, 1], 3, stored) == pytest.approx(
        [0.5005, 0.5105, 0.5205])
    # another recipe's rows do not count
    assert published_archs._random_means(_Data, TruthRecipe(), [0, 1], 3, stored) is None
    assert published_archs._random_means(_Data, recipe, [0, 2], 3, stored) is None
