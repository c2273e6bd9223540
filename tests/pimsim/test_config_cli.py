"""Hardware descriptions, presets, trace files and the command line."""

import dataclasses
import json

import numpy as np
import pytest

from pimsim import (DramOrg, EnergyTable, Trace, list_presets, load_hardware, read_indices_npz,
                    read_trace, write_trace)
from pimsim.cli import main

EXPECTED_PRESETS = {"ddr4-2400", "ddr4-3200", "hbm2", "recnmp", "trim-bg", "trim-bank", "hbm-pim", "upmem"}


def test_presets_listed_and_loadable():
    presets = list_presets()
    assert EXPECTED_PRESETS <= set(presets)
    for name, desc in presets.items():
        assert desc
        assert load_hardware(name).name == name


def test_ddr4_2400_preset_matches_reference_numbers():
    hw = load_hardware("ddr4-2400")
    t, o = hw.timing, hw.org
    assert (t.cl, t.trcd, t.trp, t.tras, t.trrd_s, t.trrd_l, t.tfaw, t.tccd_s, t.tccd_l, t.trfc, t.trefi) == \
        (17, 17, 17, 39, 4, 6, 26, 4, 6, 420, 9360)
    assert (o.channels, o.ranks, o.address_mapping, o.page_policy.value) == (1, 2, "rochrababgco", "open")
    assert o.capacity_bytes == 16 * 2**30
    e = EnergyTable.from_hardware(hw)
    # REFERENCE.md: rank ACT+PRE about 3.45 nJ, 64 B read about 2.9 nJ, background 0.41 / 0.33 W
    assert e.act_pre_pj == pytest.approx(3450, rel=0.02)
    assert e.read_pj == pytest.approx(2900, rel=0.03)
    assert e.active_standby_pj_per_cycle / hw.timing.tck_ns == pytest.approx(0.41 * 1000, rel=0.02)
    assert e.precharged_standby_pj_per_cycle / hw.timing.tck_ns == pytest.approx(0.33 * 1000, rel=0.02)


def test_peak_bandwidths_match_reference():
    assert load_hardware("ddr4-2400").peak_channel_gbps == pytest.approx(19.2, rel=0.01)
    assert load_hardware("ddr4-3200").peak_channel_gbps == pytest.approx(25.6, rel=0.02)
    hbm = load_hardware("hbm2")
    assert hbm.peak_channel_gbps * hbm.org.channels == pytest.approx(256, rel=0.01)


def test_host_presets_have_their_published_channel_counts():
    # Xeon Platinum 8180: 6 DDR4 channels per socket (REFERENCE.md "Hosts"), here DDR4-2400 x 2 ranks
    cpu = load_hardware("cpu-server")
    assert (cpu.org.channels, cpu.org.ranks) == (6, 2)
    assert cpu.org.capacity_bytes == 6 * 16 * 2**30
    # the host's DRAM bandwidth is all six channels: 6 x 19.2 GB/s, the 8180's 128 GB/s at 2400 not 2666
    assert cpu.host.mem_gbps == 0
    assert cpu.peak_channel_gbps * cpu.org.channels == pytest.approx(128 * 2400 / 2666, rel=0.01)
    # A100 40 GB: five active HBM2 stacks of 16 pseudo-channels and 8 GB each
    gpu = load_hardware("gpu-a100")
    assert gpu.org.channels == 5 * 16
    assert gpu.org.capacity_bytes == 40 * 2**30
    assert gpu.peak_channel_gbps * gpu.org.channels == pytest.approx(5 * 256, rel=0.01)
    assert gpu.host.mem_gbps == 1555.0


@pytest.mark.parametrize("field,value", [("ranks", 0), ("rows", 1000), ("channels", -1), ("bus_width", 32)])
def test_bad_org_values_name_the_field(field, value):
    org = load_hardware("ddr4-2400").org
    with pytest.raises(ValueError, match=field if field != "bus_width" else "bus_width"):
        dataclasses.replace(org, **{field: value})


def test_bad_mapping_and_policy_rejected():
    org = load_hardware("ddr4-2400").org
    with pytest.raises(ValueError, match="address_mapping"):
        dataclasses.replace(org, address_mapping="rochrababgbg")
    with pytest.raises(ValueError, match="page_policy"):
        dataclasses.replace(org, page_policy="sometimes")
    assert isinstance(org, DramOrg)


def test_user_toml_with_base_and_unknown_key(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('name = "mine"\nbase = "recnmp"\n[org]\nranks = 4\n[nmp]\nclock_mhz = 800.0\n')
    hw = load_hardware(str(good))
    assert (hw.name, hw.org.ranks, hw.nmp.clock_mhz, hw.timing.cl) == ("mine", 4, 800.0, 17)
    bad = tmp_path / "bad.toml"
    bad.write_text('base = "ddr4-2400"\n[timing]\nfoo = 3\n')
    with pytest.raises(ValueError, match="unknown key 'foo'"):
        load_hardware(str(bad))
    with pytest.raises(ValueError, match="unknown hardware"):
        load_hardware("no-such-preset")


def test_trace_round_trip_and_errors(tmp_path):
    tr = Trace(np.array([0, 64, 4096]), np.array([False, True, False]), np.array([0, 3, 3]))
    path = tmp_path / "t.trace"
    write_trace(tr, path)
    back = read_trace(path)
    assert back.addresses.tolist() == [0, 64, 4096]
    assert back.is_write.tolist() == [False, True, False]
    assert back.arrival_cycles.tolist() == [0, 3, 3]
    bad = tmp_path / "bad.trace"
    bad.write_text("0x0 READ 0\n0x40 FETCH 1\n")
    with pytest.raises(ValueError, match=r"bad.trace:2: operation"):
        read_trace(bad)


def test_indices_npz(tmp_path):
    path = tmp_path / "idx.npz"
    np.savez(path, indices_0=np.array([1, 2, 3]), offsets_0=np.array([0, 1, 3]),
             indices_1=np.array([4, 5]), offsets_1=np.array([0, 2, 2]))
    pairs = read_indices_npz(path)
    assert [p[0].tolist() for p in pairs] == [[1, 2, 3], [4, 5]]
    np.savez(path, indices_0=np.array([1, 2]), offsets_0=np.array([0, 3]))
    with pytest.raises(ValueError, match="offsets"):
        read_indices_npz(path)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_presets(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    assert {line.split()[0] for line in out.splitlines()} == set(list_presets())


def test_cli_trace_json_keys(tmp_path, capsys):
    path = tmp_path / "t.trace"
    path.write_text("".join(f"0x{a:x} READ {i}\n" for i, a in enumerate(range(0, 64 * 100, 64))))
    code, out, _ = run_cli(capsys, "trace", str(path), "--hardware", "ddr4-2400", "--json")
    assert code == 0
    d = json.loads(out)
    for key in ("cycles", "seconds", "requests", "activations", "reads", "writes", "row_hits",
                "mean_read_latency_cycles", "energy_pj", "energy_breakdown_pj", "bandwidth_gbps"):
        assert key in d
    assert d["requests"] == 100 and d["reads"] == 100


@pytest.mark.parametrize("content,needle", [
    ("0x0 READ 0\nnot a line\n", ":2:"),
    ("0x0 READ 0\n0xffffffffffff READ 1\n", "beyond the capacity"),
    ("", "no requests"),
])
def test_cli_bad_trace_one_line_exit_2(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.trace"
    path.write_text(content)
    code, out, err = run_cli(capsys, "trace", str(path))
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("argv,needle", [
    (["trace", "missing.trace"], "cannot read trace"),
    (["trace", "x", "--hardware", "nope"], "unknown hardware"),
    (["embed", "--batch", "0"], "--batch"),
    (["embed", "--nmp", "ddr4-2400"], "no near-memory units"),
    (["frobnicate"], "invalid choice"),
    (["trace", "x", "--threads", "0"], "--threads"),
    (["query", "--threads", "-2"], "--threads"),
])
def test_cli_bad_arguments_exit_2(capsys, argv, needle, tmp_path):
    if argv[0] == "trace" and argv[1] == "x":
        p = tmp_path / "x"
        p.write_text("0x0 READ 0\n")
        argv = ["trace", str(p)] + argv[2:]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1


def test_cli_embed_json_and_workload_file(tmp_path, capsys):
    wl = tmp_path / "wl.toml"
    # tables larger than the host's last-level cache, so the host gathers from DRAM
    wl.write_text('batch_size = 8\n[[tables]]\ncount = 3\nrows = 1000000\ndim = 16\npooling = 20\n')
    code, out, _ = run_cli(capsys, "embed", "--workload", str(wl), "--json", "--seed", "4")
    assert code == 0
    d = json.loads(out)
    assert d["host"]["mode"] == "host" and d["nmp"]["mode"] == "nmp-rank"
    assert d["host"]["lookups"] == 8 * 3 * 20
    assert d["nmp"]["seed"] == 4
    assert d["speedup"] > 1
    wl.write_text('batch_size = 8\nbogus = 1\n[[tables]]\nrows = 10\ndim = 16\n')
    code, _, err = run_cli(capsys, "embed", "--workload", str(wl))
    assert code == 2 and "unknown key 'bogus'" in err


def test_cli_embed_with_explicit_indices(tmp_path, capsys):
    path = tmp_path / "idx.npz"
    np.savez(path, indices=np.arange(40) * 7, offsets=np.arange(0, 41, 10))
    code, out, _ = run_cli(capsys, "embed", "--indices", str(path), "--tables", "1", "--rows", "1000",
                           "--dim", "16", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["host"]["lookups"] == 40 and d["host"]["batch_size"] == 4 and d["host"]["seed"] is None
