"""Small shared helpers, public (cosearch and the benchmarks use them): atomic writes,
progress bars, seeded torch, devices."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm


def progress(iterable=None, *, total=None, desc=None, quiet=False):
    """A tqdm bar on stderr, silent when ``quiet`` or when stderr is not a terminal."""
    return tqdm(iterable, total=total, desc=desc, leave=False,
                disable=quiet or not sys.stderr.isatty())


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and os.replace."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def atomic_torch_save(obj, path) -> None:
    """``torch.save`` via a temporary file in the same folder and os.replace."""
    import torch

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def seeded_torch(seed: int):
    """Run a block (e.g. model construction) under torch seed ``seed`` without
    touching the caller's global torch random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def resolve_device(name: str | None) -> torch.device:
    """'auto'/None: cuda if available else cpu; otherwise the named device."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return dev
