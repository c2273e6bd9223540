"""Whole-inference latency and energy on host CPU, host GPU, rank-level NMP, bank-level PIM and crossbars.

Three parts, each with its CSV in ``benchmarks/results/``:

- ``pim_vs_host.csv`` and ``.png``: latency per batch and energy per sample of the
  DeepRecSys-like RM1/RM2/RM3 and the DLRM (Criteo Kaggle) shape on every target.
- ``pim_vs_host_recnmp.csv``: RecNMP's trend check. Rank-level units against the
  host gathering from the same DDR4 ranks (1, 2, 4, 8 ranks): embedding-stage
  ("memory") latency speedup, end-to-end throughput gain and memory-energy saving,
  beside RecNMP's published figures (up to 9.8x memory latency, 4.2x throughput,
  45.8% memory energy saved with 8 ranks; REFERENCE.md).
- ``pim_vs_host_hbmpim.csv``: an HBM-PIM-like FP16 GEMV against its published
  1.2 TFLOPS per cube (REFERENCE.md), over matrix sizes and batch sizes.
- ``pim_vs_host_crossbar.csv``: operations per joule of the crossbars on large
  layers, beside ISAAC's published 628 GOPS/W (16-bit), and the ADCs' share.

    python -m benchmarks.pim_vs_host [--batch 256] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks._csv import save_figure, write_rows

RESULTS = Path(__file__).resolve().parent / "results"

# target label -> preset; every preset's mapping says where each part runs
TARGETS = {
    "host CPU": "cpu-server",
    "host GPU": "gpu-a100",
    "rank NMP": "recnmp",
    "bank PIM": "hbm-pim",
    "crossbar": "isaac",
    "rank NMP + crossbar": "recnmp-isaac",
}
WORKLOADS = ("rm1", "rm2", "rm3", "dlrm")
# RecNMP, ISCA 2020 (REFERENCE.md): with 8 ranks, up to these
RECNMP_MEMORY_SPEEDUP, RECNMP_THROUGHPUT, RECNMP_ENERGY_SAVED = 9.8, 4.2, 0.458
HBM_PIM_PEAK_TFLOPS = 1.2  # Samsung HBM-PIM per cube (REFERENCE.md)
ISAAC_GOPS_PER_W = 628.0  # ISAAC, 16-bit (REFERENCE.md)
MEMORY_ACTIONS = ("act_pre", "read", "write", "refresh", "background", "io", "compute")


def _median_reports(workload, hw, seeds):
    from pimsim import query

    reports = [query(workload, hw, seed=s) for s in range(seeds)]
    key = lambda r: r.latency_s  # noqa: E731
    return sorted(reports, key=key)[len(reports) // 2], reports


def targets_table(batch: int, seeds: int) -> list[dict]:
    from pimsim import builtin_workloads, load_hardware

    workloads = builtin_workloads(batch)
    rows = []
    for wname in WORKLOADS:
        for label, preset in TARGETS.items():
            hw = load_hardware(preset)
            med, reports = _median_reports(workloads[wname], hw, seeds)
            rows.append({
                "workload": wname, "target": label, "preset": preset, "batch": batch, "seeds": seeds,
                "latency_us": med.latency_s * 1e6,
                "throughput_samples_per_s": statistics.median(r.throughput_samples_per_s for r in reports),
                "energy_per_sample_uj": statistics.median(r.energy_per_sample_j for r in reports) * 1e6,
                "bound_by": med.bound_by,
                **{f"busy_{k}_us": v * 1e6 for k, v in med.stages.items()},
                "area_mm2": med.area_mm2, "peak_power_w": med.peak_power_w,
            })
    return rows


def recnmp_trend(batch: int, seeds: int) -> list[dict]:
    from pimsim import builtin_workloads, query, with_overrides

    workloads = builtin_workloads(batch)
    rows = []
    for wname in ("rm1", "rm2", "rm3"):
        for ranks in (1, 2, 4, 8):
            nmp = with_overrides("recnmp", {"org.ranks": ranks})
            host = with_overrides(nmp, {"mapping.embeddings": "host"})
            mem_speed, thr, saved = [], [], []
            for s in range(seeds):
                rn, rh = query(workloads[wname], nmp, seed=s), query(workloads[wname], host, seed=s)
                en, eh = rn.layers[0], rh.layers[0]  # the embedding stage
                mem_speed.append(eh.time_s / en.time_s)
                thr.append(rn.throughput_samples_per_s / rh.throughput_samples_per_s)
                mem_n = sum(rn.embedding.energy_breakdown_pj[k] for k in MEMORY_ACTIONS)
                mem_h = sum(rh.embedding.energy_breakdown_pj[k] for k in MEMORY_ACTIONS)
                saved.append(1 - mem_n / mem_h)
            rows.append({
                "workload": wname, "ranks": ranks, "batch": batch, "seeds": seeds,
                "memory_latency_speedup": statistics.median(mem_speed),
                "throughput_gain": statistics.median(thr),
                "memory_energy_saved": statistics.median(saved),
                "published_memory_speedup_up_to": RECNMP_MEMORY_SPEEDUP,
                "published_throughput_up_to": RECNMP_THROUGHPUT,
                "published_energy_saved": RECNMP_ENERGY_SAVED,
            })
    return rows


def hbm_pim_gemv() -> list[dict]:
    from pimsim import Gemm, Workload, load_hardware, query

    hw = load_hardware("hbm-pim")
    peak = hw.nmp_units() * hw.nmp.simd_lanes * hw.nmp.clock_mhz * 1e6 * 2 / 1e12
    rows = []
    for size in (1024, 4096, 8192):
        for m in (1, 4, 16):
            g = Gemm(m=m, n=size, k=size, bytes_per_element=2, name="gemv")
            r = query(Workload(batch_size=m, dense=(g,)), hw)
            t = next(s for s in r.layers if s.name == "gemv").time_s
            rows.append({"n": size, "k": size, "batch": m, "time_us": t * 1e6, "tflops": g.flops / t / 1e12,
                         "model_peak_tflops": peak, "published_peak_tflops": HBM_PIM_PEAK_TFLOPS,
                         "fraction_of_published": g.flops / t / 1e12 / HBM_PIM_PEAK_TFLOPS})
    return rows


def crossbar_efficiency() -> list[dict]:
    """Operations per joule of the crossbar alone on large layers, beside ISAAC's published figure."""
    from pimsim import Gemm, Workload, load_hardware, query

    rows = []
    for preset in ("isaac", "neurosim"):
        hw = load_hardware(preset)
        for size in (512, 1024, 2048):
            g = Gemm(m=1024, n=size, k=size, name="fc")
            r = query(Workload(batch_size=1024, dense=(g,)), hw)
            xb = {k: v for k, v in r.energy_breakdown_pj.items() if k.startswith("xbar")}
            joules = sum(xb.values()) * 1e-12
            t = next(s for s in r.layers if s.name == "fc").time_s
            rows.append({"preset": preset, "n": size, "k": size, "batch": 1024, "gops": g.flops / t / 1e9,
                         "gops_per_w": g.flops / joules / 1e9, "adc_share": xb["xbar_adc"] / sum(xb.values()),
                         "static_share": xb["xbar_static"] / sum(xb.values()),
                         "published_isaac_gops_per_w": ISAAC_GOPS_PER_W})
    return rows


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(TARGETS)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    width = 0.8 / len(labels)
    x = np.arange(len(WORKLOADS))
    for i, label in enumerate(labels):
        sel = [next(r for r in rows if r["workload"] == w and r["target"] == label) for w in WORKLOADS]
        axes[0].bar(x + i * width, [r["latency_us"] for r in sel], width, label=label)
        axes[1].bar(x + i * width, [r["energy_per_sample_uj"] for r in sel], width, label=label)
    for ax, title in zip(axes, ("latency per batch (us)", "energy per sample (uJ)")):
        ax.set_xticks(x + 0.4 - width / 2, [w.upper() for w in WORKLOADS])
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"pimsim whole-inference, batch {rows[0]['batch']}")
    fig.tight_layout()
    save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seeds", type=int, default=3, help="index seeds per configuration (medians reported)")
    args = p.parse_args(argv)
    rows = targets_table(args.batch, args.seeds)
    write_rows(rows, RESULTS / "pim_vs_host.csv")
    plot(rows, RESULTS / "pim_vs_host.png")
    for r in rows:
        print(f"{r['workload']:5s} {r['target']:20s} {r['latency_us']:10.1f} us {r['energy_per_sample_uj']:9.3f} uJ/sample"
              f"  bound by {r['bound_by']}")
    trend = recnmp_trend(args.batch, args.seeds)
    write_rows(trend, RESULTS / "pim_vs_host_recnmp.csv")
    for r in trend:
        print(f"RecNMP {r['workload']} {r['ranks']} ranks: memory {r['memory_latency_speedup']:.2f}x, "
              f"throughput {r['throughput_gain']:.2f}x, memory energy saved {r['memory_energy_saved']:.1%}")
    gemv = hbm_pim_gemv()
    write_rows(gemv, RESULTS / "pim_vs_host_hbmpim.csv")
    for r in gemv:
        print(f"HBM-PIM GEMV {r['n']}x{r['k']} batch {r['batch']}: {r['tflops']:.3f} TFLOPS "
              f"({r['fraction_of_published']:.0%} of published {HBM_PIM_PEAK_TFLOPS})")
    eff = crossbar_efficiency()
    write_rows(eff, RESULTS / "pim_vs_host_crossbar.csv")
    for r in eff:
        print(f"crossbar {r['preset']} {r['n']}x{r['k']}: {r['gops_per_w']:.0f} GOPS/W (ISAAC published "
              f"{ISAAC_GOPS_PER_W:.0f}), ADC share {r['adc_share']:.0%}, static share {r['static_share']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
