"""Atomic outputs shared by the benchmark scripts: CSV tables and PNG figures."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def write_rows(rows: list[dict], out: str | os.PathLike) -> Path:
    """Write dict rows (columns: union of keys, first-seen order) via a temp file and rename."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out)
    return out


def replace_rows(rows: list[dict], out: str | os.PathLike, key: str) -> Path:
    """Write ``rows`` into the CSV ``out`` in place of its earlier rows with the same ``key``
    value (compared as text, as the file holds it); every other row is kept as written."""
    out = Path(out)
    new = {str(r[key]) for r in rows}
    old = []
    if out.is_file():
        with out.open(newline="") as fh:
            old = [r for r in csv.DictReader(fh) if r.get(key) not in new]
    return write_rows(old + rows, out)


def save_figure(fig, out: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG via a temp file and rename, then close it."""
    import matplotlib.pyplot as plt

    out = Path(out)
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, out)
    return out
