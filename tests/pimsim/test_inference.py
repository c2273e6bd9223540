"""Whole-inference model: rooflines, bank-level units, crossbars, mapping, reports, commands."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pimsim
from pimsim import Crossbar, Elementwise, Gemm, Reduction, Softmax, Workload, query, with_overrides
from pimsim.cli import main
from pimsim.config import ADC_PJ_BY_BITS
from pimsim.dense import builtin_workloads, load_workload, workload_from_dict
from pimsim.inference import _crossbar_arrays, _crossbar_gemm, _host_bandwidth, _host_layer
from pimsim.workload import EmbeddingTable

CPU = pimsim.load_hardware("cpu-server")
GPU = pimsim.load_hardware("gpu-a100")
HBM_PIM = pimsim.load_hardware("hbm-pim")
ISAAC = pimsim.load_hardware("isaac")


def dense_only(*layers, batch=1) -> Workload:
    return Workload(batch_size=batch, dense=tuple(layers))


def step(report, name):
    return next(s for s in report.layers if s.name == name)


# ---- rooflines -------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 4096), n=st.integers(1, 4096), k=st.integers(1, 4096), bpe=st.sampled_from([1, 2, 4]),
       hw=st.sampled_from([CPU, GPU]), miss=st.floats(0, 1))
def test_host_never_beats_its_peaks(m, n, k, bpe, hw, miss):
    g = Gemm(m=m, n=n, k=k, bytes_per_element=bpe)
    time_s, actions, dram_bytes = _host_layer(g, hw, miss)
    assert time_s >= g.flops / hw.host.peak_flops(bpe) * (1 - 1e-12)
    assert time_s >= dram_bytes / _host_bandwidth(hw) * (1 - 1e-12)
    assert time_s >= hw.host.kernel_overhead_ns * 1e-9
    assert actions["host_compute"] == pytest.approx(g.flops * hw.host.pj_per_flop(bpe))


@pytest.mark.parametrize("hw", [CPU, GPU], ids=["cpu", "gpu"])
def test_gemm_and_gemv_fall_on_either_side_of_the_ridge(hw):
    big = Gemm(m=4096, n=4096, k=4096)  # 2 x 4096^3 FLOP on 3 x 64 MB: compute bound
    gemv = Gemm(m=1, n=16384, k=16384)  # 1 GB of weights, 2 FLOP per weight: memory bound
    peak, bw = hw.host.peak_flops(4), _host_bandwidth(hw)
    overhead = hw.host.kernel_overhead_ns * 1e-9
    t_big, _, bytes_big = _host_layer(big, hw, weight_miss=1.0)
    assert big.flops / peak > bytes_big / bw
    assert t_big == pytest.approx(overhead + big.flops / peak)
    t_gemv, _, bytes_gemv = _host_layer(gemv, hw, weight_miss=1.0)
    assert bytes_gemv >= gemv.weight_bytes
    assert t_gemv == pytest.approx(overhead + bytes_gemv / bw)
    assert gemv.flops / peak < bytes_gemv / bw


def test_weights_that_fit_the_cache_stay_there():
    small = Gemm(m=64, n=256, k=256)
    t_cached, a_cached, b_cached = _host_layer(small, CPU, weight_miss=0.0)
    t_cold, a_cold, b_cold = _host_layer(small, CPU, weight_miss=1.0)
    assert b_cached == 0 and b_cold == small.weight_bytes
    assert a_cold["host_dram"] > a_cached["host_dram"] == 0


@settings(max_examples=30, deadline=None)
@given(elements=st.integers(1, 10**8), more=st.integers(1, 10**6))
def test_host_activation_traffic_grows_smoothly(elements, more):
    small, large = Elementwise(elements=elements), Elementwise(elements=elements + more)
    _, _, b_small = _host_layer(small, CPU, 0.0)
    _, _, b_large = _host_layer(large, CPU, 0.0)
    # no cliff: a few more elements cost at most their own bytes in and out
    assert 0 <= b_large - b_small <= 2 * more * 4


def test_host_weights_beyond_the_cache_stream_in_proportion():
    layer = Gemm(m=1, n=8192, k=8192)  # 256 MB of weights: about 15% fit a 38.5 MB cache
    r = query(dense_only(layer), CPU)
    miss = 1 - CPU.host.cache_bytes / layer.weight_bytes
    assert r.energy_breakdown_pj["host_dram"] == pytest.approx((layer.weight_bytes * miss) * CPU.host.dram_pj_per_byte)


# ---- bank-level units ------------------------------------------------------------------------

def test_hbm_pim_gemv_approaches_but_never_beats_its_published_peak():
    hw = HBM_PIM
    peak = hw.nmp_units() * hw.nmp.simd_lanes * hw.nmp.clock_mhz * 1e6 * 2  # FLOP/s
    # Samsung HBM-PIM: 1.2 TFLOPS per cube (REFERENCE.md); 128 units x 16 lanes x 300 MHz x 2
    assert peak == pytest.approx(1.2288e12)
    g = Gemm(m=1, n=4096, k=4096, bytes_per_element=2)
    r = query(dense_only(g), hw)
    gemm_step = step(r, g.name or "gemm0")
    achieved = g.flops / gemm_step.time_s
    assert achieved <= peak
    assert achieved >= 0.9 * peak


def test_units_are_bounded_by_the_dram_when_lanes_are_plentiful():
    fast = with_overrides(HBM_PIM, {"nmp.simd_lanes": 4096})
    g = Gemm(m=1, n=4096, k=4096, bytes_per_element=2)
    t_fast = step(query(dense_only(g), fast), "gemm0").time_s
    t_slow = step(query(dense_only(g), HBM_PIM), "gemm0").time_s
    assert t_fast < t_slow
    # each unit streams its 256 KB share over one data path: at most one burst per burst time
    o, t = fast.org, fast.timing
    per_unit_bytes = g.weight_bytes / fast.nmp_units()
    min_stream_s = per_unit_bytes / o.line_bytes * (o.burst_length // 2) * t.tck_ns * 1e-9
    assert t_fast >= min_stream_s


def test_unit_energy_counts_every_mac():
    g = Gemm(m=1, n=1024, k=1024, bytes_per_element=2)
    r = query(dense_only(g), HBM_PIM)
    assert r.energy_breakdown_pj["compute"] == pytest.approx(g.macs * (HBM_PIM.nmp.add_pj + HBM_PIM.nmp.mul_pj))
    assert r.energy_breakdown_pj["read"] > 0 and r.energy_breakdown_pj["act_pre"] > 0


# ---- crossbars -------------------------------------------------------------------------------

def xb_cost(layer, **fields):
    hw = with_overrides(ISAAC, {f"crossbar.{k}": v for k, v in fields.items()})
    t, actions = _crossbar_gemm(layer, hw, replicas=1)
    return t, sum(actions.values()), actions, _crossbar_arrays(layer, hw)


LAYER = st.builds(Gemm, m=st.integers(1, 64), n=st.integers(1, 1024), k=st.integers(1, 1024))


@settings(max_examples=30, deadline=None)
@given(layer=LAYER, bits=st.integers(min(ADC_PJ_BY_BITS), max(ADC_PJ_BY_BITS) - 1))
def test_crossbar_costs_grow_with_adc_resolution(layer, bits):
    t0, e0, a0, _ = xb_cost(layer, adc_bits=bits)
    t1, e1, a1, _ = xb_cost(layer, adc_bits=bits + 1)
    assert a1["xbar_adc"] > a0["xbar_adc"]
    assert e1 > e0
    assert t1 >= t0


@settings(max_examples=30, deadline=None)
@given(layer=LAYER, wbits=st.sampled_from([2, 4, 8, 16]))
def test_crossbar_costs_grow_with_weight_precision(layer, wbits):
    _, e0, _, n0 = xb_cost(layer, weight_bits=wbits)
    _, e1, _, n1 = xb_cost(layer, weight_bits=2 * wbits)
    assert n1 >= n0 and e1 > e0


@settings(max_examples=30, deadline=None)
@given(layer=LAYER, size=st.sampled_from([64, 128, 256]))
def test_bigger_arrays_need_fewer_arrays_and_conversions(layer, size):
    _, _, a_small, n_small = xb_cost(layer, rows=size, cols=size, cols_per_adc=size)
    _, _, a_big, n_big = xb_cost(layer, rows=2 * size, cols=2 * size, cols_per_adc=2 * size)
    assert n_big <= n_small
    assert a_big["xbar_adc"] <= a_small["xbar_adc"]


@settings(max_examples=30, deadline=None)
@given(layer=LAYER, ibits=st.sampled_from([4, 8, 16]))
def test_crossbar_latency_scales_with_input_bits(layer, ibits):
    t0, _, _, _ = xb_cost(layer, input_bits=ibits)
    t1, _, _, _ = xb_cost(layer, input_bits=2 * ibits)
    assert t1 == pytest.approx(2 * t0)


def test_crossbar_never_beats_its_peak():
    xb = ISAAC.crossbar
    peak_macs = xb.arrays * xb.rows * (xb.cols // xb.cells_per_weight) / (xb.input_cycles * xb.cycle_ns * 1e-9)
    for layer in (Gemm(m=256, n=128 // 8 * 8, k=128), Gemm(m=1, n=4096, k=4096), Gemm(m=1024, n=512, k=512)):
        r = query(dense_only(layer, batch=layer.m), ISAAC)
        achieved = layer.macs / step(r, "gemm0").time_s
        assert achieved <= peak_macs


def test_isaac_tile_matches_the_published_tile():
    xb = ISAAC.crossbar
    # ISAAC tile: 0.372 mm^2 and 330 mW; ADCs 31% of the area and 58% of the power (REFERENCE.md)
    assert xb.area_mm2 / xb.tiles == pytest.approx(0.372, rel=0.01)
    assert xb.peak_power_w / xb.tiles == pytest.approx(0.330, rel=0.05)


def test_weights_that_do_not_fit_are_reloaded_or_rejected():
    layer = Gemm(m=4, n=2048, k=2048)  # 16 x 128 arrays of 128x128 with 8 cells a weight
    need = _crossbar_arrays(layer, ISAAC)
    tiny = with_overrides(ISAAC, {"crossbar.tiles": 1, "crossbar.arrays_per_tile": need // 4})
    roomy = query(dense_only(layer, batch=4), ISAAC)
    reload = query(dense_only(layer, batch=4), tiny)
    r = step(reload, "crossbar.reload")
    assert r.time_s > 0 and reload.energy_breakdown_pj["xbar_write"] > 0
    assert reload.latency_s > roomy.latency_s
    assert "crossbar.reload" not in {s.name for s in roomy.layers}
    reject = with_overrides(tiny, {"crossbar.overflow": "reject"})
    with pytest.raises(ValueError, match=rf"needs {need} crossbar arrays"):
        query(dense_only(layer, batch=4), reject)


def test_crossbar_static_energy_covers_only_tiles_in_use():
    layer = Gemm(m=64, n=128, k=128)
    one_tile = with_overrides(ISAAC, {"crossbar.tiles": 1, "crossbar.arrays_per_tile": _crossbar_arrays(layer, ISAAC)})
    r = query(dense_only(layer, batch=64), one_tile)
    busy = r.stages["crossbar"]
    assert r.energy_breakdown_pj["xbar_static"] == pytest.approx(ISAAC.crossbar.tile_other_mw * 1e-3 * busy * 1e12)
    assert "xbar_static" not in query(dense_only(layer, batch=64), CPU).energy_breakdown_pj


def test_spare_arrays_replicate_weights():
    layer = Gemm(m=64, n=128, k=128)
    r_many = query(dense_only(layer, batch=64), ISAAC)
    one_copy = with_overrides(ISAAC, {"crossbar.tiles": 1, "crossbar.arrays_per_tile": _crossbar_arrays(layer, ISAAC)})
    r_one = query(dense_only(layer, batch=64), one_copy)
    assert step(r_one, "gemm0").time_s == pytest.approx(64 * step(r_many, "gemm0").time_s)


# ---- mapping, transfers, reports --------------------------------------------------------------

def test_mapping_needs_the_parts_it_names():
    with pytest.raises(ValueError, match="no \\[crossbar\\]"):
        with_overrides(CPU, {"mapping.gemm": "crossbar"})
    with pytest.raises(ValueError, match="no \\[nmp\\]"):
        with_overrides(CPU, {"mapping.embeddings": "nmp"})
    with pytest.raises(ValueError, match="must be one of"):
        with_overrides(CPU, {"mapping.other": "sideways"})


def test_layers_follow_their_producer_and_fall_back_to_the_host():
    w = dense_only(Gemm(m=8, n=64, k=64), Elementwise(elements=512), Softmax(rows=8, cols=64),
                   Gemm(m=8, n=8, k=64, weights=False), Reduction(elements=64, outputs=8), batch=8)
    r = query(w, ISAAC)
    places = [(s.op, s.place) for s in r.layers if s.op not in ("transfer", "static")]
    assert places == [("gemm", "crossbar"), ("elementwise", "crossbar"), ("softmax", "host"),
                      ("gemm", "host"), ("reduction", "host")]
    moves = [s.place for s in r.layers if s.op == "transfer"]
    assert moves == ["host->crossbar", "crossbar->host"]
    on_host = query(w, with_overrides(ISAAC, {"mapping.other": "host"}))
    assert [s.place for s in on_host.layers if s.op == "elementwise"] == ["host"]


def test_report_sums_and_pipelining():
    for hw in ("cpu-server", "recnmp", "hbm-pim", "recnmp-isaac"):
        r = query("dlrm", hw, seed=3)
        total_pj = r.energy_j * 1e12
        assert sum(r.energy_breakdown_pj.values()) == pytest.approx(total_pj)
        assert sum(r.energy_by_part_pj.values()) == pytest.approx(total_pj)
        assert sum(s.time_s for s in r.layers) == pytest.approx(r.latency_s)
        assert r.stages[r.bound_by] == max(r.stages.values())
        # pipelining successive batches is never slower than running them one after another
        assert r.throughput_samples_per_s >= r.batch_size / r.latency_s * (1 - 1e-12)
        assert r.seed == 3
        row = r.to_row()
        assert row["latency_s"] == r.latency_s and "part_embedding_pj" in row
        json.dumps(r.to_dict())


def test_nmp_embeddings_beat_host_embeddings_on_rm1():
    on_units = query("rm1", "recnmp")
    on_host = query("rm1", with_overrides("recnmp", {"mapping.embeddings": "host"}))
    assert step(on_units, "embedding").place == "nmp" and step(on_host, "embedding").place == "host"
    assert step(on_units, "embedding").time_s < step(on_host, "embedding").time_s
    assert step(on_units, "embedding").energy_pj < step(on_host, "embedding").energy_pj


def test_pim_area_and_power_only_for_pim_parts():
    assert query("dlrm", CPU).area_mm2 == 0 and query("dlrm", CPU).peak_power_w == 0
    r = query("dlrm", ISAAC)
    assert r.area_mm2 == pytest.approx(ISAAC.crossbar.area_mm2)
    assert r.peak_power_w == pytest.approx(ISAAC.crossbar.peak_power_w)


def test_hardware_without_a_host_is_refused():
    from dataclasses import replace
    with pytest.raises(ValueError, match="no \\[host\\]"):
        query("dlrm", replace(CPU, host=None))


# ---- workloads ---------------------------------------------------------------------------------

def test_workload_dict_round_trip_and_counts():
    for w in builtin_workloads(batch=32).values():
        again = workload_from_dict(json.loads(json.dumps(w.to_dict())))
        assert again == w
    w = workload_from_dict({"batch_size": 4, "tables": [{"rows": 10, "dim": 4, "count": 3}],
                            "dense": [{"op": "gemm", "m": 4, "n": 2, "k": 3}]})
    assert len(w.tables) == 3 and w.dense_flops == 2 * 4 * 2 * 3


@pytest.mark.parametrize("data, match", [
    ({"batch_size": 4, "dense": [{"op": "conv", "m": 1}]}, "dense\\[0\\].op must be one of"),
    ({"batch_size": 4, "dense": [{"op": "gemm", "m": 1, "n": 1, "k": 0}]}, "Gemm.k must be >= 1"),
    ({"batch_size": 4, "dense": [{"op": "gemm", "m": 1, "n": 1, "k": 1, "bias": 1}]}, "unknown key 'bias'"),
    ({"batch_size": 0, "dense": [{"op": "gemm", "m": 1, "n": 1, "k": 1}]}, "batch_size must be >= 1"),
    ({"batch_size": 4}, "at least one"),
    ({"batch_size": 4, "tables": [{"rows": 10}]}, "needs at least 'rows' and 'dim'"),
    ({"batch_size": 4, "dense": [{"op": "reduction", "elements": 2, "outputs": 4}]}, "exceeds"),
])
def test_bad_workloads_name_the_bad_value(data, match):
    with pytest.raises(ValueError, match=match):
        workload_from_dict(data)


def test_layer_arithmetic():
    g = Gemm(m=3, n=5, k=7, bytes_per_element=2, count=2)
    assert (g.flops, g.macs, g.weight_bytes, g.in_bytes, g.out_bytes) == (420, 210, 140, 84, 60)
    a = Gemm(m=3, n=5, k=7, weights=False)
    assert a.weight_bytes == 0 and a.in_bytes == (21 + 35) * 4
    assert Softmax(rows=2, cols=3).flops == 30 and Reduction(elements=10, outputs=2).flops == 8


def test_load_workload_files(tmp_path):
    toml = tmp_path / "w.toml"
    toml.write_text('name = "t"\nbatch_size = 8\n[[tables]]\nrows = 100\ndim = 8\n'
                    '[[dense]]\nop = "gemm"\nm = 8\nn = 4\nk = 8\n', encoding="utf-8")
    w = load_workload(str(toml))
    assert w.name == "t" and w.batch_size == 8 and len(w.tables) == 1
    js = tmp_path / "w.json"
    js.write_text(json.dumps(w.to_dict()), encoding="utf-8")
    assert load_workload(str(js)) == w
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_workload(str(bad))
    assert load_workload("rm2", batch=16).batch_size == 16


def test_with_overrides_validates():
    hw = with_overrides("recnmp", {"org.ranks": 4, "nmp.simd_lanes": 32, "name": "x"})
    assert (hw.org.ranks, hw.nmp.simd_lanes, hw.name) == (4, 32, "x")
    with pytest.raises(ValueError, match="has no key 'lanes'"):
        with_overrides("recnmp", {"nmp.lanes": 3})
    with pytest.raises(ValueError, match="section.key"):
        with_overrides("recnmp", {"ranks": 3})
    made = with_overrides("cpu-server", {"crossbar.adc_bits": 6, "mapping.gemm": "crossbar"})
    assert made.crossbar == Crossbar(adc_bits=6)


# ---- command line ----------------------------------------------------------------------------

def test_query_command(capsys):
    assert main(["query", "--workload", "dlrm", "--batch", "16", "--hardware", "recnmp-isaac", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["batch_size"] == 16 and d["hardware"] == "recnmp-isaac" and d["latency_s"] > 0
    assert main(["query", "--workload", "rm3", "--batch", "8", "--layers"]) == 0
    text = capsys.readouterr().out
    assert "bound by" in text and "top_mlp.fc0" in text


def test_sweep_command(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--workload", "rm3", "--batch", "8", "--hardware", "recnmp",
                 "--knob", "org.ranks=2,8", "--knob2", "mapping.embeddings=host,nmp", "--out", str(out)]) == 0
    rows = list(csv.DictReader((tmp_path / "s.csv").open(encoding="utf-8")))
    assert [(r["org.ranks"], r["mapping.embeddings"]) for r in rows] == [("2", "host"), ("2", "nmp"),
                                                                          ("8", "host"), ("8", "nmp")]
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert not list(tmp_path.glob(".*"))  # no temporary files left


@pytest.mark.parametrize("argv, match", [
    (["query", "--workload", "nope"], "unknown workload 'nope'"),
    (["query", "--hardware", "nope"], "unknown hardware 'nope'"),
    (["sweep", "--knob", "ranks"], "SECTION.KEY=V1"),
    (["sweep", "--knob", "org.ranks=3"], "ranks must be a power of two, got 3"),
    (["sweep", "--hardware", "isaac", "--knob", "crossbar.adc_bits=12"], "adc_bits must be one of"),
    (["query", "--batch", "0"], "positive integer"),
])
def test_bad_command_input_is_one_line_and_status_2(argv, match, capsys, tmp_path):
    if argv[0] == "sweep":
        argv = argv + ["--out", str(tmp_path / "s")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert match in err or __import__("re").search(match, err)
    assert not list(tmp_path.glob("s.*"))
