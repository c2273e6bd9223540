"""benchmarks/published_archs.py: its argument checks and the ranking against random architectures."""
import pytest

from benchmarks import published_archs
from benchmarks.task_truth import bench_archs
from nasrec.scratch import TruthRecipe, key_hash, truth_key


@pytest.mark.parametrize("argv, message", [
    (["--baselines", "dcnv2", "widedeep"], "--baselines: unknown widedeep"),
    (["--seeds", "1", "1"], "--seeds: give distinct seeds, got 1 1"),
    (["--lr-fan-in", "-2"], "lr_fan_in must be an integer >= 0, got -2"),
])
def test_bad_arguments_are_one_line_and_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        published_archs.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_a_folder_without_architectures_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        published_archs.main(["--configs", str(tmp_path)])
    assert e.value.code == 2
    assert f"no architecture JSON files in {tmp_path}" in capsys.readouterr().err


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
