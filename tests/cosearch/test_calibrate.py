"""``cosearch calibrate``: the file it writes, how it refuses bad input, the OS's cache size."""
import json
from dataclasses import fields, replace

import pytest

import pimsim
from cosearch.calibrate import (Calibration, CalibrationSettings, calibrate, calibration_toml, llc_bytes,
                                write_calibration)
from cosearch.cli import main
from pimsim.config import Host

HOST = {
    "kind": "cpu", "peak_fp32_gflops": 123.5, "peak_fp16_gflops": 4.25, "peak_int8_gops": 3.0,
    "cache_bytes": 33554432, "mem_gbps": 11.5, "cache_gbps": 40.0, "act_cache_gbps": 40.0,
    "vector_gflops": 9.5, "matmul_gflops": 7.25, "softmax_gflops": 1.375, "weight_cache_gbps": 21.5,
    "first_touch_gbps": 1.625, "strided_copy_gbps": 5.5,
    "kernel_overhead_ns": 1600.0,
    "overhead_ns_by_kind": {"gemm": 6800.0, "layernorm": 7300.0, "attention": 12900.0},
    "call_overhead_ns": 2300.0, "glue_ops": True, "batch_overhead_ns": 0.0,
    "fuse": ["attention"], "fuse_into_gemm": False,
    "pj_per_flop_fp32": 45.8, "pj_per_flop_fp16": 45.8, "pj_per_op_int8": 22.9, "dram_pj_per_byte": 160.0,
    "tdp_w": 205.0, "static_w": 0.0, "cache_pj_per_byte": 10.0,
    "gemm_m": [1, 64, 1024], "gemm_kn": [256, 4096],
    "gemm_fp32_gflops": [[0.25, 1.5], [6.0, 31.125], [40.5, 88.0]],
    "first_touch_min_bytes": 33554432, "attention_block_rows": 32, "attention_block_ns": 1350.5, "attention_block_score_ns": 26.75,
    "attention_key_align": 16, "attention_tail_ns": 9.5,
}


def _calibration(**host) -> Calibration:
    return Calibration(settings=CalibrationSettings(threads=1), host={**HOST, **host},
                       methods={"peak_fp32_gflops": 'torch.mm 1024x1024, "median"', "cache_bytes": "from the OS"},
                       raw={"eager_call_ns": {"view": 1700.0, "module": 2100.5}, "bmm_gflops": 20.5},
                       machine="test: a CPU", torch_version="2.x", when="2026-01-01T00:00:00+00:00",
                       seconds=12.5, backend="eager", notes=("a note with \\ and \"quotes\"",))


def test_the_written_file_loads_as_hardware_with_every_measured_number(tmp_path):
    path = write_calibration(_calibration(), tmp_path / "host.toml")
    hw = pimsim.load_hardware(str(path))
    host = hw.host
    for f in fields(Host):
        expected = HOST[f.name]
        got = getattr(host, f.name)
        if f.name == "fuse":
            expected = tuple(expected)
        elif f.name == "overhead_ns_by_kind":
            expected = tuple(sorted(expected.items()))
        elif f.name in ("gemm_m", "gemm_kn"):
            expected = tuple(expected)
        elif f.name == "gemm_fp32_gflops":
            expected = tuple(map(tuple, expected))
        elif f.name == "kind":
            got = got.value
        assert got == expected, f.name
    # everything but the host is the base preset's
    base = pimsim.load_hardware("cpu-server")
    assert (hw.org, hw.timing, hw.power, hw.mapping) == (base.org, base.timing, base.power, base.mapping)
    assert hw.name == "calibrated-eager-1t"
    import tomllib
    record = tomllib.loads(path.read_text(encoding="utf-8"))["calibration"]
    assert record["when"] == "2026-01-01T00:00:00+00:00" and record["threads"] == 1
    assert record["method"]["peak_fp32_gflops"] == 'torch.mm 1024x1024, "median"'
    assert record["raw"]["eager_call_ns"]["module"] == 2100.5 and record["notes"] == ['a note with \\ and "quotes"']
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    # the GEMM table is written one row per line under a comment saying its units and keys
    text = path.read_text(encoding="utf-8")
    assert "# GFLOP/s of one fp32 product: row i has M = gemm_m[i], column j has K * N = gemm_kn[j]" in text
    assert "    [6.0, 31.125],\n" in text


def test_the_gemm_table_is_measured_on_its_grid(monkeypatch):
    """A tiny grid, so that it stays fast: every point a positive rate, rows by M."""
    import cosearch.calibrate as c
    monkeypatch.setattr(c, "_GEMM_M", (1, 8, 32))
    monkeypatch.setattr(c, "_GEMM_SIDES", (8, 16))
    table = c._gemm_table(gemm_ns=0.0, sample_s=0.01)
    assert len(table) == 3 and all(len(row) == 2 and all(v > 0 for v in row) for row in table)
    # with each call taking 1 ms: 2 M K K over the call less the dispatch, at least 5% of the call
    monkeypatch.setattr(c, "_per_call_s", lambda fn, *a, **k: 1e-3)
    assert c._gemm_table(gemm_ns=0.0, sample_s=0.01)[2] == [2 * 32 * 8 * 8 / 1e-3 / 1e9, 2 * 32 * 16 * 16 / 1e-3 / 1e9]
    assert c._gemm_table(gemm_ns=5e5, sample_s=0.01)[1][0] == pytest.approx(2 * 8 * 8 * 8 / 5e-4 / 1e9, rel=1e-12)
    assert c._gemm_table(gemm_ns=1e9, sample_s=0.01)[0][1] == pytest.approx(2 * 16 * 16 / 5e-5 / 1e9, rel=1e-12)


def test_attention_blocks_and_tail_keys_are_solved_from_three_shapes(monkeypatch):
    import cosearch.calibrate as c
    a, b, tail = c._attention_blocks(attention_ns=0.0, sample_s=0.01)
    assert a >= 0 and b >= 0 and tail >= 0 and a + b > 0
    (batch, heads), (n1, n4) = c._ATTENTION_BLOCKS
    pairs = batch * heads
    rows, align, keys = c.ATTENTION_BLOCK_ROWS, c.ATTENTION_KEY_ALIGN, c._ATTENTION_TAIL_KEYS
    assert keys % align  # the tail fit needs keys past a whole group

    def fake(fn, *args, **kwargs):
        # a kernel whose block costs 1000 ns + 20 ns per key, plus 7 ns per query per key past a
        # multiple of the alignment, plus 3 us dispatch
        q, k = fake.shapes.pop(0)
        blocks = -(-q // rows)
        return (pairs * (blocks * (1000 + 20 * k) + q * (k % align) * 7) + 3000) * 1e-9
    fake.shapes = [(n1, n1), (n4, n4), (rows, keys)]
    monkeypatch.setattr(c, "_per_call_s", fake)
    a, b, tail = c._attention_blocks(attention_ns=3000.0, sample_s=0.01)
    assert a == pytest.approx(1000.0, rel=1e-9) and b == pytest.approx(20.0, rel=1e-9)
    assert tail == pytest.approx(7.0, rel=1e-9)
    assert not fake.shapes


def test_the_file_works_wherever_a_preset_does(tmp_path, capsys):
    path = write_calibration(_calibration(), tmp_path / "host.toml")
    from pimsim.cli import main as pimsim_main
    assert pimsim_main(["query", "--workload", "dlrm", "--batch", "16", "--hardware", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["latency_s"] > 0 and d["hardware"] == "calibrated-eager-1t"
    assert pimsim_main(["sweep", "--workload", "dlrm", "--batch", "16", "--hardware", str(path),
                        "--knob", "host.kernel_overhead_ns=1000,5000", "--out", str(tmp_path / "s")]) == 0
    import csv
    rows = list(csv.DictReader((tmp_path / "s.csv").open(encoding="utf-8")))
    assert len(rows) == 2 and float(rows[0]["latency_s"]) < float(rows[1]["latency_s"])
    # a relative base in the settings is written as an absolute path, so the file loads from anywhere
    base = tmp_path / "mybase.toml"
    base.write_text('base = "cpu-server"\n[org]\nchannels = 2\n', encoding="utf-8")
    cal = _calibration()
    cal = replace(cal, settings=replace(cal.settings, base=str(base.resolve())))
    assert pimsim.load_hardware(str(write_calibration(cal, tmp_path / "b.toml"))).org.channels == 2


def test_cosearch_query_predicts_the_host_latency_from_the_file(tmp_path, capsys):
    from nasrec.data import SyntheticConfig, generate_synthetic
    data = generate_synthetic(SyntheticConfig(rows=2000, max_cardinality=50), tmp_path / "data", quiet=True)
    path = write_calibration(_calibration(), tmp_path / "host.toml")
    out = {}
    for model in ("dcnv2", "autoint"):
        assert main(["query", model, "--hardware", str(path), "--data", str(data.path), "--batch-size", "64",
                     "--json"]) == 0
        out[model] = json.loads(capsys.readouterr().out)
    for d in out.values():
        assert d["batch_size"] == 64 and d["latency_s"] > 0
        # eager glue is dispatched: module calls cost the measured call overhead
        calls = [l for l in d["layers"] if l["name"].endswith(".module")]
        assert calls and all(l["time_s"] == pytest.approx(2300e-9) for l in calls)


def test_a_file_pimsim_would_refuse_never_replaces_a_good_one(tmp_path):
    path = write_calibration(_calibration(), tmp_path / "host.toml")
    before = path.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="kernel_overhead_ns must be >= 0"):
        write_calibration(_calibration(kernel_overhead_ns=-1.0), path)
    assert path.read_text(encoding="utf-8") == before and not list(tmp_path.glob(".*"))
    with pytest.raises(ValueError, match="non-finite"):
        calibration_toml(_calibration(mem_gbps=float("inf")))
    with pytest.raises(ValueError, match="must end in .toml"):
        write_calibration(_calibration(), tmp_path / "host.txt")


@pytest.mark.parametrize("argv, needle", [
    (["--out", "{tmp}/x.txt"], ".toml"),
    (["--out", "{tmp}/missing/x.toml"], "does not exist"),
    (["--out", "{tmp}/x.toml", "--threads", "0"], "threads must be an integer from 1"),
    (["--out", "{tmp}/x.toml", "--threads", "4096"], "CPUs, got 4096"),
    (["--out", "{tmp}/x.toml", "--threads", "two"], "expected an integer, got 'two'"),
    (["--out", "{tmp}/x.toml", "--runtime", "jit"], "invalid choice: 'jit'"),
    (["--out", "{tmp}/x.toml", "--backend", "xla"], "invalid choice: 'xla'"),
    (["--out", "{tmp}/x.toml", "--base", "nope"], "unknown hardware 'nope'"),
    (["--out", "{tmp}/x.toml", "--sample-seconds", "0"], "sample_s must be"),
    (["--threads", "1"], "--out"),
])
def test_bad_calibrate_input_is_one_line_and_status_2(tmp_path, capsys, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["calibrate"] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cosearch") and needle in err[0], err
    assert not list(tmp_path.glob("*.toml"))


def test_llc_is_read_from_the_os(tmp_path):
    for i, (level, kind, size) in enumerate([(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "512K"),
                                             (3, "Unified", "32768K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    size, where = llc_bytes(tmp_path)
    assert size == 32 << 20 and "level 3 Unified" in where
    assert llc_bytes(tmp_path / "absent") is None


@pytest.mark.slow
@pytest.mark.parametrize("runtime, backend", [("eager", "auto"), ("compiled", "torchscript")])
def test_a_real_calibration_writes_a_loadable_file(tmp_path, runtime, backend):
    """Measures this machine for real (a few seconds at 0.02 s per measurement)."""
    cal = calibrate(CalibrationSettings(threads=1, runtime=runtime, backend=backend, sample_s=0.02))
    hw = pimsim.load_hardware(str(write_calibration(cal, tmp_path / "h.toml")))
    assert hw.host.peak_fp32_gflops > 0 and hw.host.mem_gbps > 0 and hw.host.kernel_overhead_ns > 0
    assert hw.host.first_touch_gbps >= 0 and "fresh output" in cal.methods["first_touch_gbps"]
    assert cal.backend == ("eager" if runtime == "eager" else "torchscript")
    from cosearch.rapl import rapl_meter
    meter, why = rapl_meter()
    assert cal.raw["energy_counters"] == why
    if meter is None:  # energy stays the base preset's, and the file says why
        base = pimsim.load_hardware("cpu-server").host
        assert hw.host.pj_per_flop_fp32 == base.pj_per_flop_fp32 and cal.raw["energy_measured"] == []
        assert why in cal.methods["pj_per_flop_fp32"] and any("energy not measured" in n for n in cal.notes)
    else:
        assert "static_w" in cal.raw["energy_measured"] and cal.methods["static_w"].startswith("package")
    if runtime == "compiled":
        # TorchScript runs LayerNorm, ReLU and the add as kernels of their own: nothing fused
        assert hw.host.fuse == ("attention",) and cal.raw["compiled_blocks_other_kernels"] == 48


@pytest.mark.parametrize("text, needle", [
    (None, "unknown hardware"),
    ("this is [not toml", "invalid TOML"),
    ('base = "cpu-server"\n[host]\nfuse = ["conv"]\n', "unknown operator kind 'conv'"),
    ('base = "cpu-server"\n[host]\nkernel_overhead_ns = -3.0\n', "kernel_overhead_ns must be >= 0"),
    ('base = "cpu-server"\n[host]\ngemm_m = [1, 64]\ngemm_kn = [256]\ngemm_fp32_gflops = [[2.0], [0.0]]\n',
     "gemm_fp32_gflops[1][0] must be a finite number > 0, got 0.0"),
    ('base = "cpu-server"\n[calibration]\nwhen = 1\n[hostt]\nx = 1\n', "unknown key 'hostt'"),
])
def test_bad_or_missing_calibration_files_are_one_line_and_status_2(tmp_path, capsys, text, needle):
    path = tmp_path / "host.toml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    # fails on the file before any data set is made or model profiled
    assert main(["query", "dlrm", "--hardware", str(path), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "cache").exists()


def test_the_dispatch_probe_uses_every_operator_at_the_smallest_sizes():
    from cosearch.calibrate import _probe
    model, inputs, w = _probe()
    spec = model.spec
    assert all(spec.live_blocks()) and w.batch_size == 1
    assert {b.dense_op for b in spec.blocks} == {"fc", "dot", "gating", "sum"}
    assert {b.sparse_op for b in spec.blocks} == {"efc", "attention"}
    assert any(b.dense_sparse_interact for b in spec.blocks) and any(b.deep_fm for b in spec.blocks)
    assert {b.dense_width for b in spec.blocks} == {16} and {b.sparse_tokens for b in spec.blocks} == {16}
    # nearly all of it is dispatch: far more glue and small kernels than products
    assert sum(l.op == "gemm" for l in w.dense) < len(w.dense) / 5


def test_attention_times_split_into_a_product_rate_and_a_per_score_rate():
    from cosearch.calibrate import _split_attention
    scores, dims = 819200, (2, 32)

    def took(matmul, softmax):
        return [scores * 5 / (softmax * 1e9) + 4 * scores * d / (matmul * 1e9) for d in dims]

    m, s, ok = _split_attention(scores, dims, took(48.0, 1.25), 20.0)
    assert ok and m == pytest.approx(48.0, rel=1e-9) and s == pytest.approx(1.25, rel=1e-9)
    # the larger dimension not slower: no split; the softmax keeps the vector rate
    t0 = took(48.0, 1.25)[0]
    m, s, ok = _split_attention(scores, dims, [t0, t0], 20.0)
    assert not ok and s == 20.0 and m > 0
    # products explain nearly all of the small dimension's time: no per-score rate either
    m, s, ok = _split_attention(scores, dims, took(48.0, 1e6), 20.0)
    assert not ok and s == 20.0 and m == pytest.approx(48.0, rel=1e-3)
