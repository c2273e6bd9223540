"""Datasets: the synthetic teacher-labelled default, readers for Criteo, Avazu and KDD
Cup 2012, the prepared on-disk format and a fast in-memory batch iterator.

A prepared dataset is a folder of memory-mapped ``.npy`` arrays::

    dense.npy   float32 [N, n_dense]   already log(max(x,0)+1)-transformed
    sparse.npy  int32   [N, n_fields]  hashed ids, 0 = missing
    label.npy   float32 [N]            0/1
    prob.npy    float32 [N]            true click probability (synthetic only)
    split_train.npy, split_val.npy, split_test.npy   int64 row indices
    meta.json   schema, content hash, Bayes log loss, malformed-line count, seed

The folder is written under a temporary name and renamed into place when complete.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from nasrec.util import atomic_write_json, progress

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
SPLIT_SEED = 2018  # NASRec official split: StratifiedKFold(10, shuffle, random_state=2018)
SPLIT_PARTS = (8, 1, 1)  # NASRec official split 8:1:1


#: How a multi-hot field's rows combine into one vector.
BAGS = ("mean", "sum")

#: MLPerf DLRM-v2 multi-hot sizes of the 26 Criteo fields (REFERENCE.md "Workloads").
MLPERF_POOLING = (3, 2, 1, 2, 6, 1, 1, 1, 1, 7, 3, 8, 1, 6, 9, 5, 1, 1, 1, 12, 100, 27, 10, 3, 1, 1)


@dataclass(frozen=True)
class Schema:
    """Input shape of a dataset: dense feature count, per-field embedding rows and
    per-field lookups per sample (``pooling``; None means one-hot, 1 per field).

    A sample's ids are ``sum(pooling)`` columns, field by field: field f owns
    ``pooling[f]`` consecutive columns, and models pool them into one vector by
    ``bag`` ("mean" or "sum", as the data's generator did).
    """

    n_dense: int
    cardinalities: tuple[int, ...]
    pooling: tuple[int, ...] | None = None
    bag: str = "mean"

    def __post_init__(self):
        if self.bag not in BAGS:
            raise ValueError(f"bag must be one of {', '.join(BAGS)}, got {self.bag!r}")
        if self.n_dense < 1:
            raise ValueError(f"n_dense must be >= 1, got {self.n_dense}")
        if not self.cardinalities or min(self.cardinalities) < 1:
            raise ValueError(f"cardinalities must be non-empty and positive, got {self.cardinalities}")
        if self.pooling is not None:
            object.__setattr__(self, "pooling", tuple(int(p) for p in self.pooling))
            if len(self.pooling) != len(self.cardinalities) or min(self.pooling) < 1:
                raise ValueError(f"pooling must give a positive lookup count per field "
                                 f"({len(self.cardinalities)} fields), got {self.pooling}")
            if max(self.pooling) == 1:
                object.__setattr__(self, "pooling", None)  # one-hot: the plain form

    @property
    def n_sparse(self) -> int:
        return len(self.cardinalities)

    @property
    def lookups(self) -> tuple[int, ...]:
        """Lookups per sample of each field."""
        return self.pooling or (1,) * self.n_sparse

    @property
    def n_id_columns(self) -> int:
        return sum(self.lookups)

    def to_dict(self) -> dict:
        out = {"n_dense": self.n_dense, "cardinalities": list(self.cardinalities)}
        if self.pooling is not None:
            out["pooling"] = list(self.pooling)
        if self.bag != "mean":  # the default is left out: older files stay as they were
            out["bag"] = self.bag
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Schema":
        pooling = d.get("pooling")
        return cls(int(d["n_dense"]), tuple(int(c) for c in d["cardinalities"]),
                   tuple(int(p) for p in pooling) if pooling is not None else None, d.get("bag", "mean"))


@dataclass(frozen=True)
class SyntheticConfig:
    """Synthetic Criteo-like data set drawn from a hidden teacher model.

    Cardinalities are log-uniform in [min_cardinality, max_cardinality] and values
    follow a Zipf law with ``zipf_exponent`` (long tails). The teacher's logit mixes
    first-order effects, FM terms on ``fm_pairs`` field pairs and
    ``higher_order_terms`` three-way products; its bias is set so that the mean
    click probability is ``target_ctr``.
    """

    # 1M rows and at most 10k values per field: the task where architectures separate
    # (issue 13; benchmarks/results/task_separation.csv). The earlier default (200k rows,
    # 100k values) is data-starved: architectures differ less than seeds do.
    rows: int = 1_000_000
    n_dense: int = 13  # Criteo: 13 integer features
    n_sparse: int = 26  # Criteo: 26 categorical fields
    min_cardinality: int = 4
    max_cardinality: int = 10_000
    zipf_exponent: float = 1.1
    fm_pairs: int = 12
    fm_dim: int = 4
    higher_order_terms: int = 4
    target_ctr: float = 0.25  # Criteo Kaggle click rate is about 0.256
    chunk_rows: int = 131_072
    seed: int = 0
    pooling: tuple[int, ...] | None = None  # lookups per sample per field; None: one-hot
    bag: str = "mean"  # how a multi-hot field's rows combine, in the teacher and the models

    def __post_init__(self):
        for name in ("rows", "n_dense", "n_sparse", "min_cardinality", "fm_dim", "chunk_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rows < 10:
            raise ValueError(f"rows must be >= 10 for an 8:1:1 split, got {self.rows}")
        if self.max_cardinality < self.min_cardinality:
            raise ValueError(f"max_cardinality {self.max_cardinality} < min_cardinality {self.min_cardinality}")
        if not 0.0 < self.target_ctr < 1.0:
            raise ValueError(f"target_ctr must lie in (0, 1), got {self.target_ctr}")
        if self.zipf_exponent <= 0:
            raise ValueError(f"zipf_exponent must be > 0, got {self.zipf_exponent}")
        if self.fm_pairs < 0 or self.higher_order_terms < 0:
            raise ValueError("fm_pairs and higher_order_terms must be >= 0")
        if self.n_sparse < 3 and (self.fm_pairs or self.higher_order_terms):
            raise ValueError(f"n_sparse must be >= 3 for interaction terms, got {self.n_sparse}")
        if self.bag not in BAGS:
            raise ValueError(f"bag must be one of {', '.join(BAGS)}, got {self.bag!r}")
        if self.pooling is not None:
            object.__setattr__(self, "pooling", tuple(self.pooling))
            if len(self.pooling) != self.n_sparse or min(self.pooling) < 1:
                raise ValueError(f"pooling must give a positive lookup count for each of the {self.n_sparse} "
                                 f"fields, got {self.pooling}")

    @property
    def lookups(self) -> tuple[int, ...]:
        return self.pooling or (1,) * self.n_sparse


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy (nats) of Bernoulli(p), elementwise."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy (nats) of probabilities ``p`` against labels ``y``."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


class _Teacher:
    """Hidden click model; all parameters drawn from ``np.random.default_rng([seed, 0])``."""

    def __init__(self, cfg: SyntheticConfig):
        rng = np.random.default_rng([cfg.seed, 0])
        self.cfg = cfg
        lo, hi = math.log(cfg.min_cardinality), math.log(cfg.max_cardinality)
        self.cards = np.round(np.exp(rng.uniform(lo, hi, cfg.n_sparse))).astype(np.int64)
        self.cdfs = []
        for c in self.cards:
            w = np.arange(1, c + 1, dtype=np.float64) ** -cfg.zipf_exponent
            self.cdfs.append(np.cumsum(w) / w.sum())
        self.dense_mu = rng.uniform(0.0, 4.0, cfg.n_dense)
        self.dense_sigma = rng.uniform(0.5, 2.0, cfg.n_dense)
        self.dense_missing = rng.uniform(0.0, 0.4, cfg.n_dense)
        # Scales chosen so that interactions carry about two thirds of the logit
        # variance: models without interaction operators fall visibly short.
        self.w_dense = rng.normal(0, 0.15, cfg.n_dense)
        self.w_first = [rng.normal(0, 0.15, c) for c in self.cards]
        pairs = set()
        max_pairs = cfg.n_sparse * (cfg.n_sparse - 1) // 2
        while len(pairs) < min(cfg.fm_pairs, max_pairs):
            a, b = sorted(int(v) for v in rng.choice(cfg.n_sparse, 2, replace=False))
            pairs.add((a, b))
        self.pairs = sorted(pairs)
        fm_fields = sorted({f for p in self.pairs for f in p})
        self.fm_emb = {f: rng.normal(0, 0.35, (self.cards[f], cfg.fm_dim)) for f in fm_fields}
        self.triples = [tuple(int(v) for v in rng.choice(cfg.n_sparse, 3, replace=False))
                        for _ in range(cfg.higher_order_terms)]
        tri_fields = sorted({f for t in self.triples for f in t})
        self.tri_emb = {f: rng.normal(0, 1.0, self.cards[f]) for f in tri_fields}
        self.tri_dense = rng.integers(cfg.n_dense, size=cfg.higher_order_terms)
        self.starts = np.concatenate([[0], np.cumsum(cfg.lookups)[:-1]]).astype(np.int64)
        self.tri_scale = 0.3
        pilot_dense, pilot_sparse = self._features(np.random.default_rng([cfg.seed, 2]), 20_000)
        self.dense_center = pilot_dense.mean(0)
        self.dense_scale = pilot_dense.std(0) + 1e-6
        self.bias = 0.0
        z = self.logit(pilot_dense, pilot_sparse)
        lo_b, hi_b = -20.0, 20.0
        for _ in range(60):  # bisection: mean sigmoid is monotone in the bias
            mid = 0.5 * (lo_b + hi_b)
            if np.mean(1 / (1 + np.exp(-(z + mid)))) < cfg.target_ctr:
                lo_b = mid
            else:
                hi_b = mid
        self.bias = 0.5 * (lo_b + hi_b)

    def _features(self, rng: np.random.Generator, n: int):
        cfg = self.cfg
        raw = np.floor(np.exp(rng.normal(self.dense_mu, self.dense_sigma, (n, cfg.n_dense))))
        raw[rng.random((n, cfg.n_dense)) < self.dense_missing] = 0
        dense = np.log(np.maximum(raw, 0) + 1).astype(np.float32)  # NASRec dense transform
        lookups = cfg.lookups
        sparse = np.empty((n, sum(lookups)), dtype=np.int32)
        if cfg.pooling is None:
            u = rng.random((n, cfg.n_sparse))  # one-hot: the original draw, unchanged
        else:
            u = rng.random((n, sum(lookups)))
        col = 0
        for f, cdf in enumerate(self.cdfs):
            # Value k >= 0 of field f stored as id k + 1: id 0 means "missing".
            p = lookups[f]
            sparse[:, col:col + p] = np.minimum(np.searchsorted(cdf, u[:, col:col + p]), len(cdf) - 1) + 1
            col += p
        return dense, sparse

    def _pooled(self, table: np.ndarray, v: np.ndarray, f: int) -> np.ndarray:
        """Mean (or sum, ``cfg.bag``) of field f's rows of ``table`` over its bag
        (one-hot: the row itself)."""
        a = self.starts[f]
        rows = table[v[:, a:a + self.cfg.lookups[f]]]
        return rows.sum(axis=1) if self.cfg.bag == "sum" else rows.mean(axis=1)

    def logit(self, dense: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        v = sparse.astype(np.int64) - 1
        xd = (dense - self.dense_center) / self.dense_scale
        z = self.bias + xd @ self.w_dense
        for f, w in enumerate(self.w_first):
            z += self._pooled(w, v, f)
        for a, b in self.pairs:
            z += np.einsum("nk,nk->n", self._pooled(self.fm_emb[a], v, a), self._pooled(self.fm_emb[b], v, b))
        for (a, b, c), d in zip(self.triples, self.tri_dense):
            prod = self._pooled(self.tri_emb[a], v, a) * self._pooled(self.tri_emb[b], v, b) \
                * self._pooled(self.tri_emb[c], v, c)
            z += self.tri_scale * np.tanh(prod + 0.5 * xd[:, d])
        return z

    def chunk(self, index: int, n: int):
        rng = np.random.default_rng([self.cfg.seed, 1, index])
        dense, sparse = self._features(rng, n)
        p = 1.0 / (1.0 + np.exp(-self.logit(dense, sparse)))
        y = (rng.random(n) < p).astype(np.float32)
        return dense, sparse, y, p.astype(np.float32)


class _Writer:
    """Writes the prepared-dataset folder under a temporary name, then renames it."""

    def __init__(self, out_dir, n_rows: int, n_dense: int, n_sparse: int, with_prob: bool,
                 overwrite: bool):
        self.out = Path(out_dir)
        if self.out.exists() and not overwrite:
            raise ValueError(f"output {self.out} already exists (use overwrite)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        mm = np.lib.format.open_memmap
        self.arrays = {
            "dense": mm(self.tmp / "dense.npy", "w+", np.float32, (n_rows, n_dense)),
            "sparse": mm(self.tmp / "sparse.npy", "w+", np.int32, (n_rows, n_sparse)),
            "label": mm(self.tmp / "label.npy", "w+", np.float32, (n_rows,)),
        }
        if with_prob:
            self.arrays["prob"] = mm(self.tmp / "prob.npy", "w+", np.float32, (n_rows,))

    def shrink(self, n_rows: int) -> None:
        """Cut every array to its first ``n_rows`` rows (after malformed lines)."""
        for name, arr in list(self.arrays.items()):
            if arr.shape[0] == n_rows:
                continue
            path = self.tmp / f"{name}.npy"
            small = np.lib.format.open_memmap(self.tmp / f"{name}.small.npy", "w+", arr.dtype,
                                              (n_rows,) + arr.shape[1:])
            small[:] = arr[:n_rows]
            small.flush()
            del arr, self.arrays[name]
            os.replace(self.tmp / f"{name}.small.npy", path)
            self.arrays[name] = np.lib.format.open_memmap(path, "r+")

    def finish(self, splits: dict, meta: dict) -> "Dataset":
        for arr in self.arrays.values():
            arr.flush()
        for name, idx in splits.items():
            np.save(self.tmp / f"split_{name}.npy", np.asarray(idx, dtype=np.int64))
        meta = dict(meta, format_version=FORMAT_VERSION, rows=int(self.arrays["label"].shape[0]),
                    split_rows={k: int(len(v)) for k, v in splits.items()})
        meta["content_hash"] = _content_hash(self.tmp, sorted(self.arrays) + [f"split_{s}" for s in splits])
        self.arrays.clear()
        atomic_write_json(self.tmp / "meta.json", meta)
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        return Dataset(self.out)


def _content_hash(folder: Path, names) -> str:
    h = hashlib.sha256()
    for name in names:
        arr = np.load(folder / f"{name}.npy", mmap_mode="r")
        h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
        flat = arr.reshape(arr.shape[0], -1) if arr.ndim else arr
        step = max(1, (1 << 24) // max(1, flat[:1].nbytes))
        for s in range(0, arr.shape[0], step):
            h.update(np.ascontiguousarray(flat[s:s + step]).tobytes())
    return h.hexdigest()


def generate_synthetic(cfg: SyntheticConfig, out_dir, *, overwrite: bool = False,
                       quiet: bool = True) -> "Dataset":
    """Generate the synthetic data set into ``out_dir``; splits are contiguous 8:1:1
    ranges (rows are i.i.d.). Deterministic for ``cfg`` (including ``chunk_rows``)."""
    teacher = _Teacher(cfg)
    w = _Writer(out_dir, cfg.rows, cfg.n_dense, sum(cfg.lookups), True, overwrite)
    n_train = cfg.rows * SPLIT_PARTS[0] // sum(SPLIT_PARTS)
    n_val = cfg.rows * SPLIT_PARTS[1] // sum(SPLIT_PARTS)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, cfg.rows)}
    entropy_sum = dict.fromkeys(bounds, 0.0)
    n_chunks = -(-cfg.rows // cfg.chunk_rows)
    for c in progress(range(n_chunks), desc="generate", quiet=quiet):
        s = c * cfg.chunk_rows
        n = min(cfg.chunk_rows, cfg.rows - s)
        dense, sparse, y, p = teacher.chunk(c, n)
        for name, arr in zip(("dense", "sparse", "label", "prob"), (dense, sparse, y, p)):
            w.arrays[name][s:s + n] = arr
        h = binary_entropy(p.astype(np.float64))
        for k, (a, b) in bounds.items():
            lo, hi = max(a, s), min(b, s + n)
            if lo < hi:
                entropy_sum[k] += float(h[lo - s:hi - s].sum())
    splits = {k: np.arange(a, b) for k, (a, b) in bounds.items()}
    bayes = {k: entropy_sum[k] / (b - a) for k, (a, b) in bounds.items()}
    bayes["all"] = sum(entropy_sum.values()) / cfg.rows
    cards = tuple(int(c) + 1 for c in teacher.cards)  # + 1 for the "missing" id 0
    meta = {"source": "synthetic", "seed": cfg.seed, "config": asdict(cfg),
            "schema": Schema(cfg.n_dense, cards, cfg.pooling, cfg.bag).to_dict(),
            "bayes_logloss": bayes, "ctr": float(np.asarray(w.arrays["label"]).mean(dtype=np.float64)),
            "malformed_lines": 0}
    return w.finish(splits, meta)


def stratified_split(labels: np.ndarray, seed: int = SPLIT_SEED,
                     parts: tuple[int, ...] = SPLIT_PARTS) -> dict:
    """Stratified split of row indices into train/val/test by ``parts`` folds.

    As in the official NASRec tools: ``sum(parts)`` stratified folds, the first
    ``parts[0]`` to train, the next to val, the rest to test, indices sorted. The fold
    assignment uses numpy, so it is not bit-identical to scikit-learn's.
    """
    rng = np.random.default_rng(seed)
    n_folds = sum(parts)
    fold = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % n_folds
    bounds = np.cumsum((0,) + tuple(parts))
    return {name: np.flatnonzero((fold >= bounds[i]) & (fold < bounds[i + 1]))
            for i, name in enumerate(SPLITS)}


class Malformed(Exception):
    """A line that does not parse in the expected format."""


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            n += block.count(b"\n")
    return n + 1


def _dense(tok: str) -> float:
    if tok == "":
        return 0.0
    try:
        x = int(tok)
    except ValueError:
        raise Malformed(tok) from None
    return math.log(max(x, 0) + 1)  # NASRec: log(max(x, 0) + 1)


def _hashed(value: int, vocab: int) -> int:
    return value % (vocab - 1) + 1  # NASRec: mod (vocab - 1) + 1, 0 kept for missing


def _hex_id(tok: str, vocab: int) -> int:
    if tok == "":
        return 0
    try:
        return _hashed(int(tok, 16), vocab)
    except ValueError:
        raise Malformed(tok) from None


def _dec_or_hex_id(tok: str, vocab: int) -> int:
    # Official Avazu/KDD tools: decimal (else hex) modulo 2147483647, then hex-hashed.
    if tok == "":
        return 0
    try:
        v = int(tok, 10)
    except ValueError:
        try:
            v = int(tok, 16)
        except ValueError:
            raise Malformed(tok) from None
    return _hashed(v % 2147483647, vocab)


def _label(tok: str) -> float:
    if tok not in ("0", "1"):
        raise Malformed(tok)
    return float(tok)


def _parse_criteo(line: str, vocab: int):
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != 40:
        raise Malformed(f"{len(parts)} fields")
    return (_label(parts[0]), [_dense(t) for t in parts[1:14]],
            [_hex_id(t, vocab) for t in parts[14:40]])


AVAZU_HEADER = ("id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,"
                "app_domain,app_category,device_id,device_ip,device_model,device_type,"
                "device_conn_type,C14,C15,C16,C17,C18,C19,C20,C21")


def _parse_avazu(line: str, vocab: int):
    parts = line.rstrip("\r\n").split(",")
    if len(parts) != 24:
        raise Malformed(f"{len(parts)} fields")
    # Official NASRec Avazu: 23 categorical fields (id plus the 22 after click) and
    # one pseudo dense feature "-1", i.e. 0 after log(max(x,0)+1).
    return (_label(parts[1]), [0.0],
            [_dec_or_hex_id(t, vocab) for t in [parts[0]] + parts[2:]])


def _parse_kdd(line: str, vocab: int, users: dict):
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != 12:
        raise Malformed(f"{len(parts)} fields")
    try:
        label = 1.0 if int(parts[0]) > 0 else 0.0  # official: clicks > 0
    except ValueError:
        raise Malformed(parts[0]) from None
    gender, age = users.get(parts[11], ("0", "0"))
    # Official order: dense impression, depth, position; sparse display_url, ad_id,
    # advertiser_id, query_id, keyword_id, title_id, description_id, user_id, gender, age.
    dense = [_dense(parts[i]) for i in (1, 5, 6)]
    sparse = [_dec_or_hex_id(t, vocab) for t in [parts[i] for i in (2, 3, 4, 7, 8, 9, 10, 11)] + [gender, age]]
    return label, dense, sparse


def _read_users(path: Path) -> dict:
    users = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) == 3:
                users[parts[0]] = (parts[1], parts[2])
    return users


FORMATS = {"criteo": (13, 26), "avazu": (1, 23), "kdd": (3, 10)}


def prepare_real(fmt: str, source, out_dir, *, vocab_size: int = 1_000_000,
                 overwrite: bool = False, quiet: bool = True, chunk_rows: int = 65_536) -> "Dataset":
    """Preprocess a real data set into the prepared format (NASRec preprocessing).

    ``source``: Criteo ``train.txt``; Avazu ``train`` CSV; KDD: the folder holding
    ``training.txt`` and ``userid_profile.txt``. Malformed lines are skipped and
    counted (``meta['malformed_lines']``). Per-field cardinality is the largest id
    seen plus one, so small files give small tables.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {sorted(FORMATS)}")
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    source = Path(source)
    if fmt == "kdd":
        path = source / "training.txt" if source.is_dir() else source
        users_path = path.parent / "userid_profile.txt"
        if not users_path.is_file():
            raise ValueError(f"KDD user profile file not found: {users_path}")
        users = _read_users(users_path)

        def parse(line, v):
            return _parse_kdd(line, v, users)
    else:
        path = source
        parse = {"criteo": _parse_criteo, "avazu": _parse_avazu}[fmt]
    if not path.is_file():
        raise ValueError(f"input file not found: {path}")
    n_dense, n_sparse = FORMATS[fmt]
    n_max = _count_lines(path)
    w = _Writer(out_dir, n_max, n_dense, n_sparse, False, overwrite)
    row, malformed = 0, 0
    buf_y, buf_d, buf_s = [], [], []

    def flush():
        nonlocal row
        n = len(buf_y)
        if n:
            w.arrays["label"][row:row + n] = buf_y
            w.arrays["dense"][row:row + n] = buf_d
            w.arrays["sparse"][row:row + n] = buf_s
            row += n
            buf_y.clear(), buf_d.clear(), buf_s.clear()

    with open(path, encoding="utf-8", errors="replace") as f:
        if fmt == "avazu":
            header = f.readline().rstrip("\r\n")
            if header != AVAZU_HEADER:
                raise ValueError(f"{path}: not an Avazu train file (header {header[:60]!r})")
        for line in progress(f, total=n_max, desc=f"prepare {fmt}", quiet=quiet):
            if line.strip() == "":
                continue
            try:
                y, d, s = parse(line, vocab_size)
            except Malformed:
                malformed += 1
                continue
            buf_y.append(y), buf_d.append(d), buf_s.append(s)
            if len(buf_y) >= chunk_rows:
                flush()
        flush()
    if row < 10:
        raise ValueError(f"{path}: only {row} well-formed lines ({malformed} malformed); need >= 10")
    w.shrink(row)
    labels = np.asarray(w.arrays["label"])
    cards = (np.asarray(w.arrays["sparse"]).max(axis=0).astype(np.int64) + 1).tolist()
    meta = {"source": fmt, "input": str(path.resolve()), "seed": SPLIT_SEED,
            "vocab_size": vocab_size, "schema": {"n_dense": n_dense, "cardinalities": cards},
            "malformed_lines": malformed, "ctr": float(labels.mean()), "bayes_logloss": None}
    return w.finish(stratified_split(labels), meta)


@dataclass
class Split:
    """One split held in memory; ``tag`` names data and split for every result."""

    name: str
    dense: np.ndarray
    sparse: np.ndarray
    label: np.ndarray
    dataset_hash: str
    prob: np.ndarray | None = None
    tag: str = field(init=False)

    def __post_init__(self):
        self.tag = f"{self.dataset_hash[:16]}:{self.name}"

    def __len__(self) -> int:
        return len(self.label)

    def batches(self, batch_size: int, rng: np.random.Generator | None = None,
                device: str | torch.device = "cpu", drop_last: bool = False):
        """Yield ``(dense [B, n_dense] f32, sparse [B, n_fields] i64, label [B] f32)``
        tensors by index slicing; shuffled once per call when ``rng`` is given."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = rng.permutation(n) if rng is not None else None
        stop = n - n % batch_size if drop_last else n
        for s in range(0, stop, batch_size):
            sl = order[s:s + batch_size] if order is not None else slice(s, s + batch_size)
            yield (torch.from_numpy(self.dense[sl]).to(device),
                   torch.from_numpy(self.sparse[sl].astype(np.int64)).to(device),
                   torch.from_numpy(self.label[sl]).to(device))

    def infinite_batches(self, batch_size: int, rng: np.random.Generator,
                         device: str | torch.device = "cpu"):
        """Shuffled batches forever, reshuffling at every epoch."""
        if len(self) < batch_size:
            raise ValueError(f"split {self.name} has {len(self)} rows < batch size {batch_size}")
        while True:
            yield from self.batches(batch_size, rng, device, drop_last=True)


class Dataset:
    """A prepared data set folder (see the module docstring)."""

    def __init__(self, path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise ValueError(f"not a prepared dataset (no meta.json): {self.path}")
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_path}: bad JSON: {e}") from None
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: unsupported format_version {self.meta.get('format_version')!r}")
        self.schema = Schema.from_dict(self.meta["schema"])

    @property
    def content_hash(self) -> str:
        return self.meta["content_hash"]

    def verify(self) -> None:
        """Check every array file against ``meta.json`` (readable, full length, same
        content hash); a ``ValueError`` names the first bad file."""
        arrays = sorted(n for n in ("dense", "label", "prob", "sparse") if (self.path / f"{n}.npy").is_file()
                        or n != "prob")
        names = arrays + [f"split_{s}" for s in SPLITS]
        rows = self.meta.get("rows")
        for name in names:
            f = self.path / f"{name}.npy"
            try:
                arr = np.load(f, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise ValueError(f"{f}: missing or truncated ({type(e).__name__})") from None
            if name in arrays and rows is not None and arr.shape[0] != rows:
                raise ValueError(f"{f}: {arr.shape[0]} rows, meta.json says {rows}")
        if _content_hash(self.path, names) != self.content_hash:
            raise ValueError(f"{self.path}: content does not match the hash in meta.json")

    @property
    def bayes_logloss(self) -> dict | None:
        return self.meta.get("bayes_logloss")

    def split(self, name: str, max_rows: int | None = None) -> Split:
        """Load split ``name`` ('train'/'val'/'test') into memory, optionally its first rows."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; known: {SPLITS}")
        idx = np.load(self.path / f"split_{name}.npy")
        if max_rows is not None:
            idx = idx[:max_rows]

        def load(name):
            return np.ascontiguousarray(np.load(self.path / f"{name}.npy", mmap_mode="r")[idx])
        prob = load("prob") if (self.path / "prob.npy").is_file() else None
        return Split(name, load("dense"), load("sparse"), load("label"), self.content_hash, prob)
