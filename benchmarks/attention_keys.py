"""How a CPU's fused attention kernel spends its time over the number of keys.

Times eager ``scaled_dot_product_attention`` with one block of queries (32) over key
counts from 16 to 96, at head dimensions 2 and 16, and writes the time per (batch, head)
pair (``results/attention_keys.csv``): the evidence behind ``[host]
attention_key_align`` and ``attention_tail_ns``. Fastest sample of ``--sample-s``
seconds per point, ``--threads`` torch threads, ``torch.inference_mode``.

    python -m benchmarks.attention_keys [--threads 1] [--sample-s 0.3]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks._csv import write_rows

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = (16, 24, 31, 32, 33, 36, 40, 44, 47, 48, 50, 56, 63, 64, 80, 96)
BATCH, HEADS, QUERIES = 256, 2, 32


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sample-s", type=float, default=0.3, help="seconds of samples per point")
    ap.add_argument("--out", type=Path, default=RESULTS / "attention_keys.csv")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.sample_s <= 0:
        ap.error(f"need --threads >= 1 and --sample-s > 0, got {args.threads} and {args.sample_s}")
    import torch
    import torch.nn.functional as F

    from cosearch.calibrate import _per_call_s
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    rows = []
    for dim in (2, 16):
        q = torch.randn(BATCH, HEADS, QUERIES, dim, generator=g)
        for keys in KEYS:
            k = torch.randn(BATCH, HEADS, keys, dim, generator=g)
            with torch.inference_mode():
                s = _per_call_s(lambda: F.scaled_dot_product_attention(q, k, k), args.sample_s, stat=min)
            rows.append({"head_dim": dim, "queries": QUERIES, "keys": keys, "keys_past_16": keys % 16,
                         "us_per_pair": s / (BATCH * HEADS) * 1e6, "batch": BATCH, "heads": HEADS,
                         "threads": args.threads, "torch": torch.__version__, "cores": os.cpu_count()})
            print(f"head dim {dim:2d}, {keys:3d} keys: {rows[-1]['us_per_pair']:.2f} us per pair", file=sys.stderr)
    print(f"wrote {write_rows(rows, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
