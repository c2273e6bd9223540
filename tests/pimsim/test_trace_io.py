"""Trace files: the compiled text parser against the slow reference, the binary .npz format, the CLI."""

import json
import zipfile

import numpy as np
import pytest

from pimsim import OP_READ, OP_WRITE, Trace, read_trace, write_trace
from pimsim.cli import main

from .reference_trace import read_trace_reference

SEPARATORS = [" ", "  ", "\t", " \t ", "\x0b", "\x0c", "\xa0", "\u3000"]
ENDINGS = ["\n"] * 8 + ["\r\n", "\r"]


def _addr_text(rng, a):
    forms = ["0x{:x}", "0X{:X}", "{:x}", "0x{:016x}", "0x{:x}", "0x{:x}", "+0x{:x}", "0x_{:x}", "00{:x}"]
    return forms[rng.integers(len(forms))].format(a)


def _op_text(rng, write):
    return rng.choice(["WRITE", "write", "Write", "wRiTe"] if write else ["READ", "read", "Read", "rEAd"])


def _cycle_text(rng, c):
    forms = ["{}", "{}", "{}", "000{}", "+{}", "{:_}"]
    return forms[rng.integers(len(forms))].format(c)


def random_good_line(rng, odd=0.2):
    """A line the format accepts; with probability ``odd`` in a rarer spelling."""
    kind = rng.random()
    if kind < 0.05:
        return rng.choice(["", "   ", "\t", "# a comment", "  #", "# caf\u00e9 \u2603"])
    a = int(rng.integers(0, 2**40)) if rng.random() < 0.9 else int(rng.integers(0, 2**62))
    c = int(rng.integers(0, 10**6)) if rng.random() < 0.9 else int(rng.integers(0, 2**62))
    w = bool(rng.random() < 0.3)
    if rng.random() >= odd:
        return f"0x{a:x} {'WRITE' if w else 'READ'} {c}"
    sep = [SEPARATORS[rng.integers(len(SEPARATORS))] for _ in range(2)]
    line = f"{_addr_text(rng, a)}{sep[0]}{_op_text(rng, w)}{sep[1]}{_cycle_text(rng, c)}"
    if rng.random() < 0.3:
        line = SEPARATORS[rng.integers(len(SEPARATORS))] + line
    if rng.random() < 0.3:
        line += rng.choice(["  ", "\t", "# trailing", "#x", "   # caf\u00e9"])
    return line


BAD_LINES = [
    "0xZZ READ 1", "0x READ 1", "g1 READ 1", "0x-5 READ 1", "-0x5 READ 1", "0x1.0 READ 1",
    "0x0 FETCH 1", "0x0 READX 1", "0x0 RD 1", "0x0 READ\u00e9 1",
    "0x0 READ 12a", "0x0 READ 1.5", "0x0 READ -3", "0x0 READ 0x10", "0x0 READ \u0661\u0662x",
    "0x0 READ", "0x0 READ 1 2", "READ", "0x0READ 1", "0x0 REA D 1", "0x0 READ 1 2 # c",
    "\ufeff0x0 READ 1", "0x0\x00 READ 1",
]


def write_lines(path, lines, rng, final_newline=True):
    text = "".join(line + ENDINGS[rng.integers(len(ENDINGS))] for line in lines)
    if not final_newline:
        text = text.rstrip("\r\n")
    path.write_bytes(text.encode("utf-8"))


def outcome(fn, path):
    try:
        r = fn(path)
    except ValueError as exc:
        return "error", str(exc)
    if isinstance(r, Trace):
        return "ok", (r.addresses.tolist(), r.is_write.tolist(), r.arrival_cycles.tolist())
    return "ok", tuple(r)


@pytest.mark.parametrize("seed", range(40))
def test_parser_agrees_with_reference_on_random_traces(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    lines = [random_good_line(rng) for _ in range(n)]
    if seed % 2:  # half the traces hold one bad line somewhere
        bad = BAD_LINES[seed // 2 % len(BAD_LINES)]
        lines.insert(int(rng.integers(0, n + 1)), bad)
        if rng.random() < 0.5:
            lines.insert(int(rng.integers(0, n + 2)), rng.choice(BAD_LINES))
    path = tmp_path / f"r{seed}.trace"
    write_lines(path, lines, rng, final_newline=bool(seed % 3))
    fast, ref = outcome(read_trace, path), outcome(read_trace_reference, path)
    assert fast == ref
    if seed % 2:
        assert fast[0] == "error"


@pytest.mark.parametrize("bad", BAD_LINES)
def test_every_bad_line_gives_the_reference_error(tmp_path, bad):
    path = tmp_path / "b.trace"
    path.write_text(f"# header\n\n0x40 READ 0\n{bad}\n0x80 WRITE 9\n", encoding="utf-8")
    fast, ref = outcome(read_trace, path), outcome(read_trace_reference, path)
    assert fast == ref
    assert fast[0] == "error" and f"b.trace:4: " in fast[1]


def test_parser_agrees_with_reference_on_a_long_plain_trace(tmp_path):
    rng = np.random.default_rng(1)
    n = 50_000
    addr = rng.integers(0, 2**34, n)
    wr = rng.random(n) < 0.3
    cyc = np.cumsum(rng.integers(0, 5, n))
    path = tmp_path / "long.trace"
    write_trace(Trace(addr, wr, cyc), path)
    assert outcome(read_trace, path) == outcome(read_trace_reference, path)
    back = read_trace(path)
    assert np.array_equal(back.addresses, addr) and np.array_equal(back.is_write, wr)
    assert np.array_equal(back.arrival_cycles, cyc)


def test_shortest_lines_fill_the_buffers_exactly(tmp_path):
    # the parser sizes its output by the shortest possible request line, 8 bytes and a newline
    path = tmp_path / "short.trace"
    lines = ["0 read 0", "f\x0bREAD\x0b7", "1\tWRITE\t2", "0 READ 0"] * 25
    path.write_bytes("\n".join(lines).encode())
    back = read_trace(path)
    assert outcome(read_trace, path) == outcome(read_trace_reference, path)
    assert len(back) == 100 and back.addresses[:4].tolist() == [0, 15, 1, 0]
    assert back.is_write[:4].tolist() == [False, False, True, False]


@pytest.mark.parametrize("content,needle", [
    ("0x0 READ 0\n0xZZ READ 1\n", r"t.trace:2: bad hex address '0xZZ'"),
    ("0x0 READ 0\n0x40 FETCH 1\n", r"t.trace:2: operation must be READ or WRITE, got 'FETCH'"),
    ("0x0 READ 0\n0x40 READ 1x\n", r"t.trace:2: bad arrival cycle '1x'"),
    ("0x0 READ 0\n0x40 READ\n", r"t.trace:2: expected '<hex address> <READ|WRITE> <cycle>', got '0x40 READ'"),
    ("0x0 READ 0\n0x40 READ 1 2 # c\n", r"t.trace:2: expected .*, got '0x40 READ 1 2 # c'"),
    ("0x0 READ 0\n0x40 READ -1\n", r"t.trace:2: address and cycle must be non-negative"),
    # blank, comment-only and CR / CRLF line ends count as lines
    ("# c\n\n  \r\n0x0 READ 0\r\r0x40 FETCH 1\n", r"t.trace:6: operation"),
    ("0x0 READ 0 # READ\n0x8000000000000000 READ 1\n", r"t.trace:2: address and cycle must be below 2\*\*63"),
    ("0x0 READ 0\n0x1 READ 100000000000000000000\n", r"t.trace:2: address and cycle must be below 2\*\*63"),
    ("# only a comment\n\n", r"t.trace: trace holds no requests"),
    ("", r"t.trace: trace holds no requests"),
])
def test_bad_text_lines_name_file_and_line(tmp_path, content, needle):
    path = tmp_path / "t.trace"
    path.write_bytes(content.encode())
    with pytest.raises(ValueError, match=needle):
        read_trace(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "t.trace"
    path.write_bytes(b"0x0 READ 0\n0x40 READ 1 # \xff\n")
    with pytest.raises(ValueError, match=r"t.trace:2: not UTF-8 text"):
        read_trace(path)


def test_accepted_spellings(tmp_path):
    path = tmp_path / "t.trace"
    path.write_bytes(b"  0X7fffffffffffffff\twrite\t007 # c\n00040 Read 5#c\n\x0c0x_1_0\x0bREAD +1_0 \n"
                     b"0x0000000000000000fff READ 000000000000000000000003")
    tr = read_trace(path)
    assert tr.addresses.tolist() == [2**63 - 1, 0x40, 0x10, 0xFFF]
    assert tr.is_write.tolist() == [True, False, False, False]
    assert tr.arrival_cycles.tolist() == [7, 5, 10, 3]


def test_binary_round_trip_and_dtype(tmp_path):
    tr = Trace(np.array([0, 64, 2**40]), np.array([False, True, False]), np.array([0, 3, 2**40]))
    path = tmp_path / "t.npz"
    write_trace(tr, path)
    with np.load(path) as data:
        assert sorted(data.files) == ["address", "cycle", "op"]
        assert (data["address"].dtype, data["op"].dtype, data["cycle"].dtype) == (np.int64, np.uint8, np.int64)
        assert data["op"].tolist() == [OP_READ, OP_WRITE, OP_READ] == [0, 1, 0]
    back = read_trace(path)
    assert back.addresses.tolist() == tr.addresses.tolist()
    assert back.is_write.tolist() == tr.is_write.tolist()
    assert back.arrival_cycles.tolist() == tr.arrival_cycles.tolist()
    assert not list(tmp_path.glob(".*tmp"))
    # other integer types, bool ops and a compressed archive are read too
    with open(tmp_path / "c.NPZ", "wb") as fh:  # savez would append .npz to a name
        np.savez_compressed(fh, address=np.array([64], np.uint32), op=np.array([True]),
                            cycle=np.array([5], np.int16))
    c = read_trace(tmp_path / "c.NPZ")
    assert (c.addresses.tolist(), c.is_write.tolist(), c.arrival_cycles.tolist()) == ([64], [True], [5])


@pytest.mark.parametrize("arrays,needle", [
    ({"address": [0], "op": [0]}, r"exactly the arrays address, op, cycle; missing \['cycle'\]"),
    ({"address": [0], "op": [0], "cycle": [0], "extra": [1]}, r"unexpected \['extra'\]"),
    ({"address": [0, 64], "op": [0, 2], "cycle": [0, 1]}, r"op\[1\] = 2: must be 0 \(READ\) or 1 \(WRITE\)"),
    ({"address": [0, -64], "op": [0, 0], "cycle": [0, 1]}, r"address\[1\] = -64: address must be in 0\.\.2\*\*63-1"),
    ({"address": np.array([2**63], np.uint64), "op": [0], "cycle": [0]}, r"address\[0\] = 9223372036854775808"),
    ({"address": [0], "op": [0], "cycle": [-1]}, r"cycle\[0\] = -1: arrival cycle must be"),
    ({"address": [0.5], "op": [0], "cycle": [0]}, r"'address' must be an integer array, got dtype float64"),
    ({"address": [[0]], "op": [0], "cycle": [0]}, r"'address' must be a 1-D array"),
    ({"address": [0, 1], "op": [0], "cycle": [0, 1]}, r"arrays of different lengths: address 2, op 1"),
    ({"address": np.zeros(0, np.int64), "op": np.zeros(0, np.uint8), "cycle": np.zeros(0, np.int64)},
     r"trace holds no requests"),
])
def test_bad_binary_traces_name_the_problem(tmp_path, arrays, needle):
    path = tmp_path / "t.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(ValueError, match=needle):
        read_trace(path)


def test_unreadable_binary_traces(tmp_path):
    with pytest.raises(ValueError, match="cannot read trace .*missing.npz"):
        read_trace(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("0x0 READ 0\n")
    with pytest.raises(ValueError, match="not an .npz archive"):
        read_trace(tmp_path / "text.npz")
    with open(tmp_path / "one.npz", "wb") as fh:
        np.save(fh, np.arange(3))
    with pytest.raises(ValueError, match="got a single array"):
        read_trace(tmp_path / "one.npz")
    with zipfile.ZipFile(tmp_path / "obj.npz", "w") as z:
        with z.open("address.npy", "w") as fh:
            np.save(fh, np.array([object()], dtype=object), allow_pickle=True)
        for k in ("op", "cycle"):
            with z.open(f"{k}.npy", "w") as fh:
                np.save(fh, np.array([0]))
    with pytest.raises(ValueError, match="cannot read trace"):
        read_trace(tmp_path / "obj.npz")


def test_write_trace_rejects_non_traces(tmp_path):
    with pytest.raises(ValueError, match="must be a pimsim Trace"):
        write_trace([1, 2], tmp_path / "t.npz")


TRACE_JSON_KEYS = {"hardware", "scheduler", "requests", "cycles", "seconds", "activations", "precharges",
                   "reads", "writes", "refreshes", "row_hits", "coalesced", "forwarded", "bus_busy_cycles",
                   "mean_read_latency_cycles", "p99_read_latency_cycles", "bandwidth_gbps", "energy_pj",
                   "energy_breakdown_pj"}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trace_json_same_keys_and_results_for_text_and_binary(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 300
    tr = Trace(rng.integers(0, 2**27, n) * 64, rng.random(n) < 0.3, np.cumsum(rng.integers(0, 8, n)))
    text, binary = tmp_path / "t.trace", tmp_path / "t.npz"
    write_trace(tr, text)
    code, out, _ = run_cli(capsys, "convert", text, binary)
    assert code == 0 and out.strip() == f"{n} requests: {binary}"
    results = []
    for path in (text, binary):
        code, out, _ = run_cli(capsys, "trace", path, "--hardware", "ddr4-2400", "--json")
        assert code == 0
        d = json.loads(out)
        assert set(d) == TRACE_JSON_KEYS
        assert d["requests"] == n and d["reads"] + d["writes"] + d["coalesced"] + d["forwarded"] == n
        results.append(d)
    assert results[0] == results[1]
    # and back to text: the same lines write_trace wrote
    again = tmp_path / "again.trace"
    assert run_cli(capsys, "convert", binary, again)[0] == 0
    assert again.read_text() == text.read_text()


@pytest.mark.parametrize("files,needle", [
    ({"in.npz": None}, "cannot read trace"),
    ({"in.trace": "0x0 READ 0\n0x40 READ one\n"}, "in.trace:2: bad arrival cycle 'one'"),
    ({"in.npz": {"address": [0], "op": [7], "cycle": [0]}}, "op[0] = 7"),
])
def test_cli_convert_and_trace_bad_input_one_line_exit_2(tmp_path, capsys, files, needle):
    (name, content), = files.items()
    src = tmp_path / name
    if isinstance(content, str):
        src.write_text(content)
    elif isinstance(content, dict):
        np.savez(src, **{k: np.asarray(v) for k, v in content.items()})
    for argv in (["convert", src, tmp_path / "out.npz"], ["trace", src]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and needle in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out.npz").exists()


def test_cli_convert_to_a_missing_folder_exit_2(tmp_path, capsys):
    src = tmp_path / "in.trace"
    src.write_text("0x0 READ 0\n")
    code, _, err = run_cli(capsys, "convert", src, tmp_path / "no" / "out.npz")
    assert code == 2 and len(err.strip().splitlines()) == 1
