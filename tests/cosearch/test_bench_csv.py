"""benchmarks._csv.replace_rows: a rerun replaces its own rows and keeps everyone else's."""
import csv

from benchmarks._csv import replace_rows


def _read(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_replace_rows_swaps_one_labels_rows_and_keeps_the_rest_as_written(tmp_path):
    out = tmp_path / "t.csv"
    replace_rows([{"run": "a", "x": 0.1}, {"run": "a", "x": 0.2}], out, "run")
    replace_rows([{"run": 1, "x": "1.50"}], out, "run")  # a numeric label, a value in its own text
    replace_rows([{"run": "a", "x": 0.3, "y": 7}], out, "run")
    rows = _read(out)
    assert [(r["run"], r["x"]) for r in rows] == [("1", "1.50"), ("a", "0.3")]
    assert rows[1]["y"] == "7" and rows[0]["y"] == ""  # columns: the union, in first-seen order
    replace_rows([{"run": 1, "x": 2}], out, "run")  # the numeric label read back as text still matches
    assert [(r["run"], r["x"]) for r in _read(out)] == [("a", "0.3"), ("1", "2")]
    assert not list(tmp_path.glob("*.tmp"))
