"""Atomic CSV output shared by the benchmark scripts."""

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
