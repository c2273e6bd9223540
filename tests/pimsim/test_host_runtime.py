"""The host's runtime settings: fused kernels, glue between operators, per-batch entry,
cache-bandwidth-bound activations. Defaults must leave every preset's numbers as they were."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import pimsim
from pimsim import Elementwise, Gemm, Softmax, Workload, query, with_overrides
from pimsim.config import FUSE_KINDS, Host
from pimsim.dense import ELEMENTWISE_KINDS, GLUE_KINDS, workload_from_dict

GOLDEN = Path(__file__).parent / "data" / "host_golden.json"
OVERHEAD_NS = 7000.0


def test_presets_reproduce_the_numbers_from_before_the_runtime_settings():
    """Costs recorded by the host model before fusion, glue and calibration existed
    (dense layers of DLRM, RM1, two NASRec models and two baselines on every preset
    whose dense layers avoid the DRAM engine) come back bit for bit."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len(golden["costs"]) >= 60
    for key, expected in golden["costs"].items():
        name, preset = key.split("@")
        r = query(workload_from_dict(golden["workloads"][name]), preset)
        assert [r.latency_s, r.energy_j, r.throughput_samples_per_s] == expected, key


def test_glue_layers_are_free_unless_the_host_dispatches_them():
    w = _blocks(4, batch=8)
    glued = Workload(batch_size=8, dense=sum(((Elementwise(elements=1, ops_per_element=0, kind="call"),
                                               Elementwise(elements=512, ops_per_element=0, kind="copy"), layer)
                                              for layer in w.dense), ()))
    hw = _host(fuse=())
    assert query(glued, hw).latency_s == query(w, hw).latency_s
    on = _host(fuse=(), glue_ops=True, call_overhead_ns=500.0)
    n = len(w.dense)
    copy_s = OVERHEAD_NS * 1e-9 + 2 * 512 * 4 / (on.host.act_cache_gbps * 1e9)
    assert query(glued, on).latency_s == pytest.approx(query(w, on).latency_s + n * (500e-9 + copy_s), rel=1e-12)


def _blocks(n: int, batch: int = 64, width: int = 256) -> Workload:
    """``n`` blocks of Linear, LayerNorm, ReLU (NASRec's FC operator)."""
    dense = []
    for i in range(n):
        dense += [Gemm(m=batch, n=width, k=width, name=f"b{i}.lin"),
                  Elementwise(elements=batch * width, ops_per_element=5, kind="layernorm", name=f"b{i}.ln"),
                  Elementwise(elements=batch * width, kind="activation", name=f"b{i}.relu")]
    return Workload(batch_size=batch, dense=tuple(dense))


def _host(**host) -> pimsim.Hardware:
    hw = pimsim.load_hardware("cpu-server")
    base = {"kernel_overhead_ns": OVERHEAD_NS, "act_cache_gbps": 50.0, "vector_gflops": 20.0}
    return replace(hw, host=replace(hw.host, **{**base, **host}))


@pytest.mark.parametrize("into_gemm, kernels_per_block", [(True, 1), (False, 2)])
def test_fusion_saves_the_dispatches_and_the_traffic_of_the_fused_graph(into_gemm, kernels_per_block):
    """LayerNorm and ReLU after each GEMM: fused into it, each block is one kernel;
    fused only with each other, two. Either way the fused layers read nothing back
    from memory and only a chain's last layer writes its output."""
    n, batch, width = 5, 64, 256
    w = _blocks(n, batch, width)
    plain, fused = _host(fuse=()), _host(fuse=("layernorm", "activation"), fuse_into_gemm=into_gemm)
    r0, r1 = query(w, plain), query(w, fused)
    saved_dispatch = n * (3 - kernels_per_block) * OVERHEAD_NS * 1e-9
    t = width * batch * 4  # bytes of one activation tensor
    bw = 50e9
    gemm_w = width * width * 4
    flops_gemm = 2 * batch * width * width
    peak = plain.host.peak_flops(4)
    # per block unfused: GEMM reads x and its weights, writes y; LN and ReLU read and write t each
    def block(gemm_bytes, ln_bytes, relu_bytes):
        return (max(flops_gemm / peak, gemm_bytes / bw) + max(5 * batch * width / 20e9, ln_bytes / bw)
                + max(batch * width / 20e9, relu_bytes / bw))
    unfused = n * block(2 * t + gemm_w, 2 * t, 2 * t)
    if into_gemm:  # the GEMM's output and the LN's never leave the kernel
        fused_mem = n * block(t + gemm_w, 0, t)
    else:  # the GEMM writes its output, LN reads it; the LN's output stays in the LN+ReLU kernel
        fused_mem = n * block(2 * t + gemm_w, t, t)
    assert r0.latency_s - n * 3 * OVERHEAD_NS * 1e-9 == pytest.approx(unfused, rel=1e-12)
    assert r1.latency_s - n * kernels_per_block * OVERHEAD_NS * 1e-9 == pytest.approx(fused_mem, rel=1e-12)
    assert r0.latency_s - r1.latency_s == pytest.approx(saved_dispatch + unfused - fused_mem, rel=1e-12)


def test_only_the_listed_kinds_fuse():
    w = _blocks(3)
    base = query(w, _host(fuse=())).latency_s
    only_relu = query(w, _host(fuse=("activation",), act_cache_gbps=0.0)).latency_s
    # with activations free in the cache, fusing ReLU into LayerNorm saves exactly its dispatch
    assert query(w, _host(fuse=(), act_cache_gbps=0.0)).latency_s - only_relu == pytest.approx(
        3 * OVERHEAD_NS * 1e-9, rel=1e-9)
    assert query(w, _host(fuse=("add",))).latency_s == base


def test_attention_runs_as_one_kernel():
    scores = Gemm(m=16, n=16, k=2, weights=False, count=64)
    sm = Softmax(rows=64 * 16, cols=16)
    ctx = Gemm(m=16, n=2, k=16, weights=False, count=64)
    w = Workload(batch_size=8, dense=(scores, sm, ctx))
    plain = query(w, _host(fuse=(), act_cache_gbps=0.0)).latency_s
    fused = query(w, _host(fuse=("attention",), act_cache_gbps=0.0)).latency_s
    assert plain - fused == pytest.approx(2 * OVERHEAD_NS * 1e-9, rel=1e-9)


def test_fusion_stays_on_the_host():
    """A host layer never joins a kernel that ran elsewhere: with the GEMMs on the crossbar
    and the rest on the host, LayerNorm starts a host kernel and ReLU joins it."""
    common = {"host.kernel_overhead_ns": OVERHEAD_NS, "mapping.other": "host"}
    hw = with_overrides("isaac", {**common, "host.fuse": ["layernorm", "activation"]})
    off = with_overrides("isaac", common)
    w = _blocks(2)
    assert query(w, off).latency_s - query(w, hw).latency_s == pytest.approx(2 * OVERHEAD_NS * 1e-9, rel=1e-9)


def test_batch_overhead_is_paid_once():
    w = _blocks(2)
    r = query(w, _host(batch_overhead_ns=30_000.0))
    assert r.latency_s - query(w, _host()).latency_s == pytest.approx(30e-6, rel=1e-9)
    assert r.layers[0].name == "host.entry"


@pytest.mark.parametrize("change, match", [
    ({"fuse": ["layernorm", "conv"]}, "unknown operator kind 'conv'"),
    ({"fuse": "layernorm"}, "must be a list"),
    ({"fuse": ["add", "add"]}, "names a kind twice"),
    ({"fuse_into_gemm": 1}, "fuse_into_gemm must be true or false"),
    ({"glue_ops": "yes"}, "glue_ops must be true or false"),
    ({"call_overhead_ns": -1.0}, "call_overhead_ns must be >= 0"),
    ({"act_cache_gbps": float("nan")}, "act_cache_gbps must be a finite number"),
])
def test_bad_runtime_settings_name_the_value(change, match):
    host = pimsim.load_hardware("cpu-server").host
    with pytest.raises(ValueError, match=match):
        replace(host, **change)


def test_kinds_cover_what_hosts_fuse():
    assert set(FUSE_KINDS) - {"reduction", "softmax", "attention"} <= set(ELEMENTWISE_KINDS)
    assert set(GLUE_KINDS) <= set(ELEMENTWISE_KINDS) and not set(GLUE_KINDS) & set(FUSE_KINDS)
    with pytest.raises(ValueError, match="kind must be one of"):
        Elementwise(elements=4, kind="gelu")
    call = Elementwise(elements=4, ops_per_element=0, kind="call")
    assert (call.flops, call.in_bytes, call.out_bytes) == (0, 0, 0)
    with pytest.raises(ValueError, match="ops_per_element must be >= 1"):
        Elementwise(elements=4, ops_per_element=0)


def test_runtime_settings_round_trip_through_a_hardware_file(tmp_path):
    p = tmp_path / "h.toml"
    p.write_text('base = "cpu-server"\n[host]\nfuse = ["layernorm", "activation"]\nfuse_into_gemm = false\n'
                 'glue_ops = true\ncall_overhead_ns = 800.0\n[calibration]\nwhen = "now"\n', encoding="utf-8")
    host = pimsim.load_hardware(str(p)).host
    assert isinstance(host, Host) and host.fuse == ("layernorm", "activation") and not host.fuse_into_gemm
    assert host.glue_ops and host.call_overhead_ns == 800.0
    p.write_text('base = "cpu-server"\ncalibration = 3\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[calibration\] must be a table"):
        pimsim.load_hardware(str(p))


def test_dispatch_cost_by_kernel_kind():
    w = _blocks(3)
    free = {"act_cache_gbps": 0.0}
    base = query(w, _host(**free)).latency_s
    r = query(w, _host(overhead_ns_by_kind={"layernorm": OVERHEAD_NS + 2000.0, "gemm": OVERHEAD_NS - 1000.0}, **free))
    assert r.latency_s - base == pytest.approx(3 * 1000e-9, rel=1e-9)
    scores = Gemm(m=16, n=16, k=2, weights=False, count=64)
    att = Workload(batch_size=8, dense=(scores, Softmax(rows=64 * 16, cols=16), Gemm(m=16, n=2, k=16, weights=False,
                                                                                   count=64)))
    fused = _host(fuse=("attention",), overhead_ns_by_kind={"attention": 20_000.0, "matmul": 1000.0}, **free)
    assert query(att, fused).latency_s - query(att, replace(fused, host=replace(fused.host, overhead_ns_by_kind={
        "attention": 0.0, "matmul": 1000.0}))).latency_s == pytest.approx(20e-6, rel=1e-9)
    with pytest.raises(ValueError, match="unknown kernel kind 'conv'"):
        _host(overhead_ns_by_kind={"conv": 1.0})
    with pytest.raises(ValueError, match="overhead_ns_by_kind.gemm must be a finite number >= 0"):
        _host(overhead_ns_by_kind={"gemm": -1.0})


def test_products_of_activations_run_at_their_own_rate():
    pairs = Gemm(m=40, n=40, k=16, weights=False, count=256)
    weight = Gemm(m=256, n=512, k=429)
    w = Workload(batch_size=256, dense=(pairs, weight))
    free = {"act_cache_gbps": 0.0, "kernel_overhead_ns": 0.0}
    fast, slow = query(w, _host(**free)), query(w, _host(matmul_gflops=5.0, **free))
    peak = fast.layers[0].time_s
    assert peak == pytest.approx(pairs.flops / _host().host.peak_flops(4), rel=1e-12)
    assert slow.layers[0].time_s == pytest.approx(pairs.flops / 5e9, rel=1e-12)
    assert slow.layers[1].time_s == fast.layers[1].time_s  # weight GEMMs keep the GEMM peak


def test_weights_in_the_cache_stream_at_their_own_rate():
    gemv = Gemm(m=1, n=512, k=512)
    w = Workload(batch_size=1, dense=(gemv,))
    r = query(w, _host(kernel_overhead_ns=0.0, act_cache_gbps=40.0, weight_cache_gbps=20.0))
    assert r.latency_s == pytest.approx((gemv.in_bytes + gemv.out_bytes) / 40e9 + gemv.weight_bytes / 20e9, rel=1e-12)


# --- shape-aware GEMM rate (Host.gemm_m, gemm_kn, gemm_fp32_gflops) ---

GEMM_M = (1, 64, 1024)
GEMM_KN = (256, 65536, 1048576)
# rates rising with M and with K * N, as a CPU's do; not a measurement
GEMM_TABLE = ((0.5, 4.0, 10.0), (3.0, 40.0, 60.0), (6.0, 70.0, 95.0))


def _table_host(**host) -> pimsim.Hardware:
    return _host(gemm_m=GEMM_M, gemm_kn=GEMM_KN, gemm_fp32_gflops=GEMM_TABLE, **host)


def _reference_rate(m: float, kn: float, xs=GEMM_M, ys=GEMM_KN, table=GEMM_TABLE) -> float:
    """Slow, independent: np.interp (which clamps at the ends) on log2 of everything,
    along K * N within each row, then along M."""
    logs = np.log2(np.array(table))
    along_kn = [np.interp(np.log2(kn), np.log2(ys), row) for row in logs]
    return float(2 ** np.interp(np.log2(m), np.log2(xs), along_kn)) * 1e9


def test_the_gemm_table_is_exact_at_its_grid_points():
    host = _table_host().host
    for i, m in enumerate(GEMM_M):
        for j, kn in enumerate(GEMM_KN):
            side = int(round(kn ** 0.5))
            assert host.gemm_flops(m, side, side, 4) == GEMM_TABLE[i][j] * 1e9
            # only K * N counts: a skinny weight of the same size gets the same rate
            assert host.gemm_flops(m, side * 4, side // 4, 4) == GEMM_TABLE[i][j] * 1e9


def test_the_gemm_table_is_interpolated_in_log_space_and_clamped_outside():
    host = _table_host().host
    rng = np.random.default_rng(15)
    for m, kn in zip(rng.integers(1, 8192, 200), 2.0 ** rng.uniform(4, 24, 200)):
        k = max(1, int(kn ** 0.5))
        assert host.gemm_flops(int(m), k, k, 4) == pytest.approx(_reference_rate(int(m), k * k), rel=1e-12)
    # halfway in log2 between two grid points: the geometric mean of the four corners
    mid = host.gemm_flops(8, 64, 64, 4)  # log2 8 = 3 halfway 0..6, log2 4096 = 12 halfway 8..16
    assert mid == pytest.approx((0.5 * 4.0 * 3.0 * 40.0) ** 0.25 * 1e9, rel=1e-12)
    # clamped: beyond the grid the rate of the nearest edge, never extrapolated
    assert host.gemm_flops(65536, 16, 16, 4) == GEMM_TABLE[2][0] * 1e9
    assert host.gemm_flops(64, 4096, 4096, 4) == GEMM_TABLE[1][2] * 1e9
    assert host.gemm_flops(1, 2, 2, 4) == GEMM_TABLE[0][0] * 1e9
    # monotone in M and in K * N where the table is, and within its range everywhere
    rates_m = [host.gemm_flops(m, 256, 256, 4) for m in range(1, 5000, 7)]
    rates_kn = [host.gemm_flops(300, k, k, 4) for k in range(1, 2000, 3)]
    for rates in (rates_m, rates_kn):
        assert all(a <= b for a, b in zip(rates, rates[1:]))
        assert 0.5e9 <= min(rates) and max(rates) <= 95e9


def test_the_gemm_table_sets_the_time_of_fp32_weight_gemms_only():
    small = Gemm(m=100, n=300, k=200)
    half = Gemm(m=100, n=300, k=200, bytes_per_element=2)
    pairs = Gemm(m=40, n=40, k=16, weights=False, count=64)
    w = Workload(batch_size=64, dense=(small, half, pairs))
    free = {"act_cache_gbps": 0.0, "kernel_overhead_ns": 0.0}
    plain, shaped = query(w, _host(**free)), query(w, _table_host(**free))
    rate = _table_host().host.gemm_flops(100, 200, 300, 4)
    assert rate == pytest.approx(_reference_rate(100, 60000), rel=1e-12) and 3e9 < rate < 70e9
    assert shaped.layers[0].time_s == pytest.approx(small.flops / rate, rel=1e-12)
    assert plain.layers[0].time_s == pytest.approx(small.flops / _host().host.peak_flops(4), rel=1e-12)
    # bf16 products and products of two activations keep their own rates
    assert [l.time_s for l in shaped.layers[1:]] == [l.time_s for l in plain.layers[1:]]


def test_presets_have_no_gemm_table_and_keep_the_peak():
    for name in pimsim.list_presets():
        host = pimsim.load_hardware(name).host
        if host is not None:
            assert host.gemm_fp32_gflops == () and host.gemm_m == () and host.gemm_kn == ()
            assert host.gemm_flops(7, 300, 5, 4) == host.peak_flops(4)


def test_the_gemm_table_round_trips_through_a_hardware_file(tmp_path):
    p = tmp_path / "h.toml"
    p.write_text('base = "cpu-server"\n[host]\ngemm_m = [1, 64, 1024]\ngemm_kn = [256, 65536, 1048576]\n'
                 'gemm_fp32_gflops = [\n  [0.5, 4, 10.0],\n  [3.0, 40.0, 60.0],\n  [6.0, 70.0, 95.0],\n]\n',
                 encoding="utf-8")
    host = pimsim.load_hardware(str(p)).host
    assert (host.gemm_m, host.gemm_kn, host.gemm_fp32_gflops) == (GEMM_M, GEMM_KN, GEMM_TABLE)
    assert isinstance(host.gemm_fp32_gflops[0][1], float)
    assert hash(host) == hash(replace(host))  # stored as tuples: a hardware stays hashable
    swept = with_overrides(str(p), {"host.gemm_fp32_gflops": [[1.0] * 3] * 3})
    assert swept.host.gemm_flops(64, 256, 256, 4) == 1e9


@pytest.mark.parametrize("change, match", [
    ({"gemm_m": (1, 64)}, r"gemm_fp32_gflops has 3 rows, one per gemm_m \(2\)"),
    ({"gemm_m": (1, 64, 64)}, r"gemm_m\[2\] = 64 must exceed the entry before it"),
    ({"gemm_m": (0, 64, 1024)}, r"gemm_m\[0\] must be a positive integer, got 0"),
    ({"gemm_kn": (256, 65536.5, 1048576)}, r"gemm_kn\[1\] must be a positive integer, got 65536.5"),
    ({"gemm_kn": "256"}, "gemm_kn must be a list of increasing positive integers"),
    ({"gemm_fp32_gflops": ((0.5, 4.0, 10.0), (3.0, -40.0, 60.0), (6.0, 70.0, 95.0))},
     r"gemm_fp32_gflops\[1\]\[1\] must be a finite number > 0, got -40.0"),
    ({"gemm_fp32_gflops": ((0.5, 4.0, 10.0), (3.0, 40.0, float("nan")), (6.0, 70.0, 95.0))},
     r"gemm_fp32_gflops\[1\]\[2\] must be a finite number > 0, got nan"),
    ({"gemm_fp32_gflops": ((0.5, 4.0), (3.0, 40.0, 60.0), (6.0, 70.0, 95.0))},
     r"gemm_fp32_gflops\[0\] must be a list of 3 numbers \(one per gemm_kn\)"),
    ({"gemm_kn": ()}, "set all three or none"),
])
def test_a_bad_gemm_table_names_the_bad_value(change, match):
    with pytest.raises(ValueError, match=match):
        _host(**{"gemm_m": GEMM_M, "gemm_kn": GEMM_KN, "gemm_fp32_gflops": GEMM_TABLE, **change})


def test_a_bad_gemm_table_in_a_file_is_one_clear_error(tmp_path):
    p = tmp_path / "h.toml"
    p.write_text('base = "cpu-server"\n[host]\ngemm_m = [1, 64]\ngemm_kn = [256]\n'
                 'gemm_fp32_gflops = [[2.0], ["fast"]]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{p}: Host.gemm_fp32_gflops\[1\]\[0\] must be a finite number > 0, "
                                         r"got 'fast'$"):
        pimsim.load_hardware(str(p))
    p.write_text('base = "cpu-server"\n[host]\ngemm_fp32_gflops = [[2.0]]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="set all three or none"):
        pimsim.load_hardware(str(p))


def test_softmax_runs_at_its_own_rate_where_set():
    """``softmax_gflops`` prices softmax layers alone: other element-wise work keeps
    ``vector_gflops``, and 0 (every preset) leaves softmax at the vector rate."""
    rows, cols = 4096, 64
    w = Workload(batch_size=64, dense=(Softmax(rows=rows, cols=cols, name="s"),
                                       Elementwise(elements=rows * cols, kind="activation", name="a")))
    plain, slow = _host(fuse=(), act_cache_gbps=0.0), _host(fuse=(), act_cache_gbps=0.0, softmax_gflops=2.0)
    r0, r1 = query(w, plain), query(w, slow)
    (s0, a0), (s1, a1) = ([x.time_s for x in r.layers if x.name in ("s", "a")] for r in (r0, r1))
    assert a1 == a0
    assert s0 == pytest.approx(OVERHEAD_NS * 1e-9 + Softmax(rows=rows, cols=cols).flops / 20e9, rel=1e-12)
    assert s1 == pytest.approx(OVERHEAD_NS * 1e-9 + Softmax(rows=rows, cols=cols).flops / 2e9, rel=1e-12)
    with pytest.raises(ValueError, match="softmax_gflops"):
        _host(softmax_gflops=-1.0)


def test_first_touch_charges_only_the_spilled_share_of_the_output():
    """``first_touch_gbps`` adds the output's share of the bytes beyond the cache at its
    rate; a layer that fits the cache and 0 (every preset) pay nothing more."""
    hw0 = _host(fuse=(), act_cache_gbps=0.0, vector_gflops=1e6)
    cache = hw0.host.cache_bytes
    big, small = cache // 2, cache // 64  # elements: 4 bytes in and 4 out each
    w = Workload(batch_size=64, dense=(Elementwise(elements=big, kind="activation", name="big"),
                                       Elementwise(elements=small, kind="activation", name="small")))
    hw1 = _host(fuse=(), act_cache_gbps=0.0, vector_gflops=1e6, first_touch_gbps=2.0)
    t0, t1 = ({x.name: x.time_s for x in query(w, hw).layers} for hw in (hw0, hw1))
    act = 8 * big
    spill = act - cache
    assert spill > 0
    assert t1["big"] - t0["big"] == pytest.approx(spill * 0.5 / 2e9, rel=1e-9)
    assert t1["small"] == t0["small"]
    with pytest.raises(ValueError, match="first_touch_gbps"):
        _host(first_touch_gbps=-1.0)


def test_strided_copies_run_at_their_own_rate():
    """``strided_copy_gbps`` bounds a strided copy by its bytes read at that rate; plain
    copies and 0 (every preset) keep the cache rate."""
    n = 1 << 18
    w = Workload(batch_size=64, dense=(Elementwise(elements=n, ops_per_element=0, kind="copy", name="t",
                                                   strided=True),
                                       Elementwise(elements=n, ops_per_element=0, kind="copy", name="c")))
    hw0 = _host(fuse=(), glue_ops=True)
    hw1 = _host(fuse=(), glue_ops=True, strided_copy_gbps=2.0)
    t0, t1 = ({x.name: x.time_s for x in query(w, hw).layers} for hw in (hw0, hw1))
    assert t0["t"] == t0["c"] == t1["c"] == pytest.approx(OVERHEAD_NS * 1e-9 + 2 * n * 4 / 50e9, rel=1e-12)
    assert t1["t"] == pytest.approx(OVERHEAD_NS * 1e-9 + n * 4 / 2e9, rel=1e-12)
    with pytest.raises(ValueError, match="strided_copy_gbps"):
        _host(strided_copy_gbps=-1.0)
    with pytest.raises(ValueError, match="strided applies to kind 'copy' only"):
        Elementwise(elements=4, kind="activation", strided=True)


def test_a_runtime_without_glue_still_runs_rated_strided_copies():
    """Without ``glue_ops`` (a compiled graph) copies cost nothing, except a strided copy
    where the host rates it: the compiled graph still transposes before the product."""
    n = 1 << 18
    w = Workload(batch_size=64, dense=(Elementwise(elements=n, ops_per_element=0, kind="copy", name="t",
                                                   strided=True),
                                       Elementwise(elements=n, ops_per_element=0, kind="copy", name="c"),
                                       Gemm(m=64, n=64, k=64, name="g")))
    names = lambda hw: [x.name for x in query(w, hw).layers if x.name in ("t", "c", "g")]
    assert names(_host(fuse=(), glue_ops=False)) == ["g"]
    assert names(_host(fuse=(), glue_ops=False, strided_copy_gbps=2.0)) == ["t", "g"]


# --- attention's softmax timed by blocks of queries (Host.attention_block_*) ---

def test_attention_softmax_is_timed_by_its_blocks_of_queries():
    import math
    # 256 (batch, head) pairs; 50 queries and 50 keys each: two blocks of 32 queries per pair
    sm = Softmax(rows=256 * 50, cols=50, queries=50)
    cross = Softmax(rows=256 * 40, cols=90, queries=40)
    plain = Softmax(rows=256 * 50, cols=50)  # queries 0: not known to be attention, the softmax rate
    hw = _host(kernel_overhead_ns=0.0, act_cache_gbps=0.0, softmax_gflops=1.0,
               attention_block_rows=32, attention_block_ns=1500.0, attention_block_score_ns=25.0)
    for layer, q in ((sm, 50), (cross, 40)):
        r = query(Workload(batch_size=1, dense=(layer,)), hw)
        blocks = 256 * math.ceil(q / 32)
        assert r.latency_s == pytest.approx(blocks * (1500.0 + 25.0 * layer.cols) * 1e-9, rel=1e-12)
    assert query(Workload(batch_size=1, dense=(plain,)), hw).latency_s == pytest.approx(plain.flops / 1e9, rel=1e-12)
    # without blocks the per-score rate holds, as before
    off = query(Workload(batch_size=1, dense=(sm,)), replace(hw, host=replace(hw.host, attention_block_rows=0)))
    assert off.latency_s == pytest.approx(sm.flops / 1e9, rel=1e-12)
    with pytest.raises(ValueError, match=r"Softmax.rows 100 is not a multiple of its queries per \(batch, head\) pair 30"):
        Softmax(rows=100, cols=30, queries=30)
    with pytest.raises(ValueError, match=r"attention_block_rows must be >= 0, got -1"):
        _host(attention_block_rows=-1)
    with pytest.raises(ValueError, match=r"attention_block_ns"):
        _host(attention_block_ns=float("nan"))


def test_attention_keys_past_a_whole_group_cost_per_query_and_key():
    """With ``attention_key_align`` the keys past its last multiple cost ``attention_tail_ns``
    for every query; a key count on the multiple costs what it did without."""
    hw = _host(kernel_overhead_ns=0.0, act_cache_gbps=0.0, softmax_gflops=1.0,
               attention_block_rows=32, attention_block_ns=1500.0, attention_block_score_ns=25.0)
    tailed = replace(hw, host=replace(hw.host, attention_key_align=16, attention_tail_ns=9.0))
    for q, k in ((39, 39), (32, 40), (50, 48), (8, 64)):
        sm = Softmax(rows=256 * q, cols=k, queries=q)
        w = Workload(batch_size=1, dense=(sm,))
        extra = query(w, tailed).latency_s - query(w, hw).latency_s
        assert extra == pytest.approx(256 * q * (k % 16) * 9.0e-9, rel=1e-9, abs=1e-15)
    # not an attention's softmax (queries unknown): the per-score rate, no tail
    plain = Workload(batch_size=1, dense=(Softmax(rows=256 * 39, cols=39),))
    assert query(plain, tailed).latency_s == query(plain, hw).latency_s
    with pytest.raises(ValueError, match=r"attention_key_align must be >= 0, got -16"):
        _host(attention_key_align=-16)
    with pytest.raises(ValueError, match=r"attention_tail_ns"):
        _host(attention_tail_ns=-1.0)


def test_first_touch_above_the_allocators_threshold_charges_the_whole_output():
    """With ``first_touch_min_bytes`` an output of at least that size pays first touch on
    all its bytes, inside the cache or not, and a smaller one pays nothing."""
    base = {"fuse": (), "act_cache_gbps": 0.0, "vector_gflops": 1e6, "cache_bytes": 1 << 30}
    mib = 1 << 20
    layers = (Elementwise(elements=(32 * mib) // 4, kind="activation", name="at"),
              Elementwise(elements=(32 * mib) // 4 - 1, kind="activation", name="below"),
              Elementwise(elements=(64 * mib) // 4, kind="activation", name="big"))
    w = Workload(batch_size=64, dense=layers)
    hw0 = _host(**base)
    hw_spill = _host(first_touch_gbps=2.0, **base)  # the old rule: nothing spills from a 1 GiB cache
    hw_min = _host(first_touch_gbps=2.0, first_touch_min_bytes=32 * mib, **base)
    t0, ts, tm = ({x.name: x.time_s for x in query(w, hw).layers} for hw in (hw0, hw_spill, hw_min))
    assert ts == t0
    assert tm["below"] == t0["below"]
    for name, layer in (("at", layers[0]), ("big", layers[2])):
        assert tm[name] - t0[name] == pytest.approx(layer.out_bytes / 2e9, rel=1e-6)  # less the tiny compute
    with pytest.raises(ValueError, match=r"first_touch_min_bytes must be >= 0, got -5"):
        _host(first_touch_min_bytes=-5)
