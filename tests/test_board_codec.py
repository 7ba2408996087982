"""The board codec (``firmware/cbor.py``, ``firmware/frame.py``) on the MicroPython VM.

Three tiers, each a few VM runs (every run checks many cases and prints one line per case):

1. the golden vectors through ``tests/vm_vectors.py``, firmware compiled to ``.mpy``,
   on a 128 KB heap;
2. unit cases of the delta coding, quality runs, COBS, CBOR, deframer and replay window,
   each compared with the host's libraries (``protocol.codec``, ``cobs``, ``cbor2``) or with
   the SPEC's own examples;
3. hypothesis properties (derandomized, batches of messages per VM run): frames encoded on
   the VM equal the host codec's byte for byte and decode back on the host, host frames
   decode on the VM to the same message, and the deframer and replay window agree with the
   host's on random streams.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import mpvm
import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec as c
from protocol.errors import FrameError

VECTORS = mpvm.ROOT / "protocol" / "vectors"
TESTS = Path(__file__).resolve().parent
PROPS = settings(max_examples=5, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="session")
def mpy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every firmware module compiled with mpy-cross, as a board would load it."""
    d = tmp_path_factory.mktemp("mpy")
    mpvm.build_mpy(d)
    return d


def vm_lines(code: str, mpy_dir: Path, heapsize: str = "128K") -> list[str]:
    """Run code on the VM, fail the test with its stderr if it fails; stdout lines."""
    res = mpvm.run(code=code, mpy_dir=mpy_dir, heapsize=heapsize)
    assert res.returncode == 0, f"VM exit {res.returncode}:\n{res.stdout}\n{res.stderr}"
    # not splitlines(): that also splits at U+0085 and U+2028 inside JSON text
    return res.stdout.rstrip("\n").split("\n") if res.stdout else []


def same(a: Any, b: Any) -> bool:
    """Equality that tells int from float from bool, as JSON messages need."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


# ---------------------------------------------------------------- 1. vectors


def test_vectors_on_vm(mpy_dir: Path) -> None:
    n = sum(len(json.loads((VECTORS / f).read_text())) for f in ("valid.json", "invalid.json"))
    res = mpvm.run(TESTS / "vm_vectors.py", args=(str(VECTORS),), heapsize="128K",
                   mpy_dir=mpy_dir)
    assert res.returncode == 0, res.stdout + res.stderr
    m = re.fullmatch(r"vectors: (\d+) passed, (\d+) failed", res.stdout.splitlines()[-1])
    assert m, res.stdout
    assert (int(m[1]), int(m[2])) == (n, 0)


def test_modules_compile_and_import(mpy_dir: Path) -> None:
    # from .mpy and from source, on a board-sized heap; also what the import costs
    code = "import gc\ngc.collect()\na = gc.mem_alloc()\nimport cbor, frame, frame_full\ngc.collect()\n" \
           "print(gc.mem_alloc() - a)"
    for d in (mpy_dir, None):
        res = mpvm.run(code=code, mpy_dir=d, heapsize="128K")
        assert res.returncode == 0, res.stderr
        assert int(res.stdout) < 32 * 1024


# ---------------------------------------------------------------- 2. unit cases

# values: (values with None where there is no value, quality or None)
SPEC_EXAMPLE = [70123, 70124, 70124, 70124, 70121]
_rng = random.Random(651)
VALUE_CASES: dict[str, tuple[list[int | None], list[int] | None]] = {
    "empty": ([], None),
    "one": ([0], None),
    "spec_example": (list(SPEC_EXAMPLE), None),  # d6c708 04 03 0a
    "delta_31": ([0, 31], None),  # one byte
    "delta_32": ([0, 32], None),  # two bytes
    "delta_-32": ([0, -32], None),
    "delta_-33": ([0, -33], None),
    "run_64": ([5] * 65, None),  # one byte for 64 unchanged
    "run_65": ([5] * 66, None),
    "run_1000": ([0] * 1001, None),
    "int32_extremes": ([2**31 - 1, -(2**31), 2**31 - 1, 0], None),
    "first_negative": ([-1, -1, 0], None),
    "missing_middle": ([70120, None, None, 70126], [0, 3, 3, 0]),
    "missing_leading": ([None, None, 70126, 70127], [4, 4, 0, 0]),
    "missing_trailing": ([1, 2, None], [0, 0, 3]),
    "all_fault": ([None] * 12, [4] * 12),
    "quality_keeps_value": ([1, 2, 3, 4, 5], [1, 2, 5, 6, 0]),
    "bstr_head_2": ([(-1) ** i * 1000 for i in range(20)], None),  # 24..255 bytes
    "bstr_head_3": ([(-1) ** i * 1000 for i in range(200)], None),  # >= 256 bytes
    "random_walk": ([sum(_rng.randint(-300, 300) for _ in range(i)) for i in range(60)], None),
}

# decode_values: hex -> list, or the error
UNVALUE_CASES: dict[str, tuple[str, list[int] | str]] = {
    "spec_example": ("d6c70804030a", SPEC_EXAMPLE),
    "empty": ("", []),
    "zero_delta_even_token": ("0000", [0, 0]),  # not canonical, accepted as the host does
    "split_runs": ("000101", [0, 0, 0]),
    "padded_varints": ("8000848000", [0, 1]),  # SPEC §5.2: non-minimal within 5 bytes
    "unterminated": ("0280", "Malformed"),
    "varint_6_bytes": ("808080808001", "Malformed"),
    "int32_overflow": ("feffffff0f04", "Malformed"),
    "int32_underflow": ("ffffffff0f02", "Malformed"),
    "run_of_2_20": ("00ffff7f", "Malformed"),  # 2^20 values: over the board's limit
}

QUALITY_CASES: dict[str, list[int]] = {
    "one": [0, 3, 0],
    "adjacent_codes": [1, 1, 2, 2, 2, 0, 6],
    "leading_trailing": [4, 4, 0, 0, 5],
    "long": [3] * 30 + [0] * 250 + [1] * 3,
}

COBS_CASES: dict[str, bytes] = {
    "empty": b"",
    "zero": b"\x00",
    "zeros": b"\x00\x00\x00",
    "mixed": b"\x11\x22\x00\x33",
    "trailing_zero": b"\x11\x00",
    "nonzero_253": bytes(range(1, 254)),
    "nonzero_254": bytes(range(1, 255)),  # no empty piece after the final 254
    "nonzero_255": bytes(range(1, 256)),
    "nonzero_254_then_zero": bytes(range(1, 255)) + b"\x00",
    "nonzero_508": b"\x01" * 508,
    "random_1024": bytes(_rng.randrange(256) for _ in range(1024)),
    "sparse_1024": bytes(_rng.choice((0, 0, 7)) for _ in range(1024)),
}

UNCOBS_BAD: dict[str, str] = {
    "code_past_end": "054142",
    "zero_inside": "034100",
    "lone_code_past_end": "ff01",
}

CBOR_OBJS: dict[str, Any] = {
    "ints": [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63, 2**64 - 1],
    "negints": [-1, -24, -25, -256, -257, -65537, -(2**32), -(2**32) - 1, -(2**63)],
    "text": ["", "a", "hydrolink", "é€😀", "x" * 23, "y" * 24, "z" * 300],
    "bytes": [b"", b"\x00", bytes(range(24)), bytes(300)],
    "simple": [True, False, None],
    "floats": [0.0, -0.0, 1.0, 0.2, -1.5, 1e300, 5e-324, 123456.789],
    "nested": [[], [[[]]], [1, [2, [3, [4]]]]],
    "int_map": {1: 2, 0: 3, 24: [1], 256: {}, 23: None},
    "text_map": {"b": 1, "a": 2, "aa": 3, "é": 4, "": 5, "report_interval": 6, "z": 7},
    "nested_maps": {"cfg": {"x": 1.5, "y": [True, None]}, "ids": {2: 3, 1: 4}},
}

CBOR_BAD: dict[str, str] = {
    "indefinite_array": "9fff",
    "indefinite_bytes": "5f4100ff",
    "indefinite_map": "bfff",
    "tag": "c100",
    "non_shortest_1": "1805",
    "non_shortest_2": "1900ff",
    "non_shortest_4": "1a0000ffff",
    "non_shortest_8": "1b00000000ffffffff",
    "non_shortest_len": "580100",
    "non_shortest_array_len": "9800",
    "half_float": "f93c00",
    "single_float": "fa3f800000",
    "undefined": "f7",
    "simple_0": "e0",
    "simple_ext": "f820",
    "break": "ff",
    "reserved_info": "1c",
    "trailing": "0000",
    "short_bytes": "4301",
    "short_array": "8201",
    "short_int": "1a0001",
    "empty": "",
    "unsorted_int_keys": "a2020001",
    "duplicate_keys": "a201000100",
    "unsorted_text_keys": "a2616200616100",
    "longer_text_key_first": "a262616100616200",
    "mixed_keys": "a20100616100",
    "negative_key": "a12000",
    "bytes_key": "a1410000",
    "bad_utf8": "62c328",
    "surrogate_utf8": "63eda080",
    "overlong_utf8": "62c0af",
    "int_below_int64": "3b8000000000000000",
    "too_deep": "81" * 40 + "00",
    "huge_array_count": "9affffffff",
}


# encoder calls (VM expressions) that must raise ValueError: they would build invalid frames
REJECT: dict[str, str] = {
    "fine": "rep([S])",  # the baseline: encodes
    "negative_dropped": "rep([S], -1)",
    "negative_flags": "rep([S], 0, None, -4)",
    "window_on_level_high": "rep([S], 0, [[2, 1, 5, 4, 60]])",
    "rain_without_window": "rep([S], 0, [[1, 1, 5, 4]])",
    "negative_window": "rep([S], 0, [[1, 1, 5, 4, -1]])",
    "alarm_kind_6": "rep([S], 0, [[6, 1, 5, 4]])",
    "alarm_state_3": "rep([S], 0, [[2, 3, 5, 4]])",
    "alarm_frame_without_alarms": "rep([S], ft=2)",
    "status_type_for_report": "rep([S], ft=3)",
    "value_over_int32": "rep([(2, 300, 300, [2**31], None)])",
    "value_under_int32": "rep([(2, 300, 300, [-2**31 - 1], None)])",
    "none_with_good_quality": "rep([(2, 300, 300, [1, None], [0, 0])])",
    "float_value": "rep([(2, 300, 300, [1.5], None)])",
    "quality_length": "rep([(2, 300, 300, [1, 2], [0])])",
    "quality_code_7": "rep([(2, 300, 300, [1, 2], [0, 7])])",
    "start_off_interval": "rep([(2, 300, 301, [1], None)])",
    "interval_0": "rep([(2, 0, 0, [1], None)])",
    "interval_over_31_days": "rep([(2, 2678401, 0, [1], None)])",
    "negative_element": "rep([(-2, 300, 300, [1], None)])",
    "element_over_uint32": "rep([(2**32, 300, 300, [1], None)])",
    "station_0": "rep([S], station=0)",
    "station_over_uint32": "rep([S], station=2**32)",
    "seq_over_uint32": "rep([S], seq=2**32)",
    "negative_time": "rep([S], time=-1)",
    "ack_without_its_seq": "frame.encode_ack(mv, 1, 42, 0, K, [41])",
    "command_id_0": "frame.encode_command(mv, 1, 42, 0, K, [[0, 4]])",
    "command_null_args": "frame.encode_command(mv, 1, 42, 0, K, [[1, 4, None]])",
    "no_commands": "frame.encode_command(mv, 1, 42, 0, K, [])",
    "result_code_5": "frame.encode_result(mv, 1, 42, 0, K, [[1, 5]])",
    "no_results": "frame.encode_result(mv, 1, 42, 0, K, [])",
    "reset_cause_6": "frame.encode_status(mv, 1, 42, 0, K, {5: 6})",
    "mixed_map_keys": "frame.encode_result(mv, 1, 42, 0, K, [[1, 0, {1: 2, 'a': 3}]])",
}


def _values_item(values: list[int | None], quality: list[int] | None) -> bytes:
    if quality is not None:
        values = [None if q in (3, 4) else v for v, q in zip(values, quality, strict=True)]
    return cbor2.dumps(c.encode_values(c.fill_no_value(values)))


def _canonical(obj: Any) -> Any:
    """Map keys in the order of their encodings (RFC 8949 §4.2.1), recursively."""
    if isinstance(obj, dict):
        return {k: _canonical(obj[k]) for k in sorted(obj, key=cbor2.dumps)}
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    return obj


UNIT_VM = r"""
import json
from binascii import hexlify, unhexlify
import cbor
import frame_full as frame

def h(b):
    return hexlify(bytes(b)).decode()

def err(e):
    return "E:" + type(e).__name__

def out(name, v):
    print(name + " " + v)

buf = bytearray(4096)
mv = memoryview(buf)
for name, (vals, q) in VALUES.items():
    try:
        n = frame.put_values(mv, 0, vals, q, len(vals))
        out("values/" + name, h(mv[:n]))
    except Exception as e:
        out("values/" + name, err(e))
for name, (x, want) in UNVALUES.items():
    try:
        out("unvalues/" + name, json.dumps(frame.decode_values(unhexlify(x))))
    except Exception as e:
        out("unvalues/" + name, err(e))
for name, q in QUALITY.items():
    runs = frame.quality_runs(q, len(q))
    n = frame.put_quality(mv, 0, q, len(q), runs)
    out("quality/" + name, h(mv[:n]))
for name, x in COBS.items():
    src = unhexlify(x)
    n = frame.cobs_encode(src, len(src), buf)
    enc = bytes(buf[:n])
    dst = bytearray(2048)
    m = frame.cobs_decode(enc, len(enc), dst)
    out("cobs/" + name, h(enc) + ("" if dst[:m] == src else " ROUNDTRIP-FAILED"))
for name, x in UNCOBS.items():
    try:
        frame.cobs_decode(unhexlify(x), len(x) // 2, bytearray(64))
        out("uncobs/" + name, "ok")
    except Exception as e:
        out("uncobs/" + name, err(e))
for name, o in CBOR.items():
    n = cbor.put(mv, 0, o)
    enc = bytes(mv[:n])
    back = cbor.decode(enc)
    again = cbor.put(mv, 0, back)
    out("cbor/" + name, h(enc) + ("" if bytes(mv[:again]) == enc else " ROUNDTRIP-FAILED"))
for name, x in CBOR_BAD.items():
    try:
        cbor.decode(unhexlify(x))
        out("cbor_bad/" + name, "ok")
    except Exception as e:
        out("cbor_bad/" + name, err(e))
# encoder buffers that are too small, frames that are too large
for name, fn in (
    ("int", lambda: cbor.put(bytearray(4), 0, 2**32)),
    ("bytes", lambda: cbor.put(bytearray(8), 0, bytes(8))),
    ("float", lambda: cbor.put(bytearray(8), 0, 1.5)),
    ("frame", lambda: frame.encode_report(memoryview(bytearray(1024)), 1, 1, 1, 0,
                                          frame.Key(b"k"), [(2, 1, 0, [i % 2 * 1000 for i in range(600)], None)])),
    ("values", lambda: frame.encode_report(memoryview(bytearray(30)), 1, 1, 1, 0,
                                           frame.Key(b"k"), [(2, 1, 0, list(range(0, 9000, 900)), None)])),
):
    try:
        fn()
        out("full/" + name, "ok")
    except Exception as e:
        out("full/" + name, err(e))
# inputs that would make an invalid frame: the encoders refuse them
K = frame.Key(b"k")
def rep(*a, ft=1, station=1, seq=1, time=600):
    return frame.encode_report(mv, ft, station, seq, time, K, *a)
S = (2, 300, 300, [1, 2], None)
for name, fn in REJECT.items():
    try:
        eval(fn)
        out("reject/" + name, "ok")
    except Exception as e:
        out("reject/" + name, err(e))
"""


def _vm_literal(obj: Any) -> str:
    """A Python literal the VM parses (repr of ints, floats, bytes, str, containers)."""
    return repr(obj)


@pytest.fixture(scope="module")
def unit_results(mpy_dir: Path) -> dict[str, str]:
    prelude = "\n".join([
        f"VALUES = {_vm_literal(VALUE_CASES)}",
        f"UNVALUES = {_vm_literal(UNVALUE_CASES)}",
        f"QUALITY = {_vm_literal(QUALITY_CASES)}",
        f"COBS = {_vm_literal({k: v.hex() for k, v in COBS_CASES.items()})}",
        f"UNCOBS = {_vm_literal(UNCOBS_BAD)}",
        f"CBOR = {_vm_literal(CBOR_OBJS)}",
        f"CBOR_BAD = {_vm_literal(CBOR_BAD)}",
        f"REJECT = {_vm_literal(REJECT)}",
    ])
    results = {}
    for line in vm_lines(prelude + UNIT_VM, mpy_dir, heapsize="512K"):  # the cases are big
        name, _, value = line.partition(" ")
        results[name] = value
    return results


@pytest.mark.parametrize("name", VALUE_CASES)
def test_values_encode_like_host(unit_results: dict[str, str], name: str) -> None:
    assert unit_results[f"values/{name}"] == _values_item(*VALUE_CASES[name]).hex()


def test_values_spec_example_and_sizes(unit_results: dict[str, str]) -> None:
    assert unit_results["values/spec_example"] == "46" + "d6c70804030a"
    token_len = {k: len(bytes.fromhex(unit_results[f"values/{k}"])) - 1 - 1
                 for k in ("delta_31", "delta_32", "delta_-32", "delta_-33", "run_64", "run_65")}
    assert token_len == {"delta_31": 1, "delta_32": 2, "delta_-32": 1, "delta_-33": 2,
                         "run_64": 1, "run_65": 2}


@pytest.mark.parametrize("name", UNVALUE_CASES)
def test_values_decode(unit_results: dict[str, str], name: str) -> None:
    data, want = UNVALUE_CASES[name]
    got = unit_results[f"unvalues/{name}"]
    if isinstance(want, str):
        assert got == f"E:{want}"
        return
    assert json.loads(got) == want
    assert c.decode_values(bytes.fromhex(data)) == want  # the host agrees


@pytest.mark.parametrize("name", QUALITY_CASES)
def test_quality_runs_like_host(unit_results: dict[str, str], name: str) -> None:
    assert unit_results[f"quality/{name}"] == cbor2.dumps(c.quality_runs(QUALITY_CASES[name])).hex()


@pytest.mark.parametrize("name", COBS_CASES)
def test_cobs_like_pypi_cobs(unit_results: dict[str, str], name: str) -> None:
    assert unit_results[f"cobs/{name}"] == cobs.encode(COBS_CASES[name]).hex()


@pytest.mark.parametrize("name", UNCOBS_BAD)
def test_cobs_decode_errors(unit_results: dict[str, str], name: str) -> None:
    assert unit_results[f"uncobs/{name}"] == "E:Malformed"
    with pytest.raises(cobs.DecodeError):
        cobs.decode(bytes.fromhex(UNCOBS_BAD[name]))


@pytest.mark.parametrize("name", CBOR_OBJS)
def test_cbor_encode_like_cbor2(unit_results: dict[str, str], name: str) -> None:
    assert unit_results[f"cbor/{name}"] == cbor2.dumps(_canonical(CBOR_OBJS[name])).hex()


@pytest.mark.parametrize("name", CBOR_BAD)
def test_cbor_decode_rejects(unit_results: dict[str, str], name: str) -> None:
    assert unit_results[f"cbor_bad/{name}"] == "E:Malformed"


@pytest.mark.parametrize("name", ["int", "bytes", "float", "frame", "values"])
def test_encoder_full_buffer_is_oversize(unit_results: dict[str, str], name: str) -> None:
    assert unit_results[f"full/{name}"] == "E:Oversize"


@pytest.mark.parametrize("name", REJECT)
def test_encoder_refuses_invalid_input(unit_results: dict[str, str], name: str) -> None:
    assert unit_results[f"reject/{name}"] == ("ok" if name == "fine" else "E:ValueError")


REPORT_ALLOC_VM = r"""
import gc
import frame_full as frame
key = frame.Key(bytes(32))
T = 77450403
S = T - T % 300 - 3300
series = [(1, 300, S, [0] * 12, None),
          (2, 300, S, [70123, 70124, 70124, 70124, 70121, 70121, 70122, 70122, 70123, 70123,
                       70123, 70124], bytearray(12))]
buf = memoryview(bytearray(frame.MAX_FRAME))
wire = bytearray(frame.MAX_WIRE + 1)
signed = buf[:40]
def enc():
    frame.wrap(buf, frame.encode_report(buf, 1, 1001, 42, T, key, series), wire)
def tag():
    key.sign(signed)
for fn in (enc, tag):
    for _ in range(10):
        fn()
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(50):
        fn()
    print((gc.mem_alloc() - a) // 50)
    gc.enable()
"""


def test_report_encoder_allocates_little(mpy_dir: Path) -> None:
    # the HMAC (hashlib objects and digests) is the floor; the codec adds one memoryview
    frame_bytes, hmac_bytes = (int(x) for x in vm_lines(REPORT_ALLOC_VM, mpy_dir))
    assert frame_bytes - hmac_bytes <= 64, (frame_bytes, hmac_bytes)


DEFRAMER_VM = r"""
import frame_full as frame
from binascii import unhexlify
d = frame.Deframer()
most = 0
for chunk in CHUNKS:
    for item in d.feed(unhexlify(chunk)):
        print(type(item).__name__ if isinstance(item, frame.FrameError) else bytes(item).hex())
    most = max(most, d.buffered())
print("most", most)
"""


def test_deframer_resynchronises(mpy_dir: Path) -> None:
    raw = bytes.fromhex(json.loads((VECTORS / "valid.json").read_text())[0]["frame"])
    wire = c.wrap(raw)
    stream = (b"\x00\x00" + wire + bytes(range(1, 256)) * 5 + b"\x00" + wire + b"\x7f" * 1029
              + b"\x00" + b"\x01" * 1030 + wire + b"\x05\x41\x00" + wire)
    chunks = [stream[i:i + 97].hex() for i in range(0, len(stream), 97)]
    lines = vm_lines(f"CHUNKS = {chunks!r}" + DEFRAMER_VM, mpy_dir)
    # 1029 bytes reach the COBS decoder (and fail there), 1030 are Oversize
    assert lines[:-1] == [raw.hex(), "Oversize", raw.hex(), "Malformed", "Oversize",
                          "Malformed", raw.hex()]
    assert 0 < int(lines[-1].split()[1]) <= 1029
    assert lines[:-1] == _host_deframe([bytes.fromhex(ch) for ch in chunks])


# ---------------------------------------------------------------- 3. properties

I32 = st.integers(-(2**31), 2**31 - 1)
U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def series_msg(draw: st.DrawFn, time: int) -> dict[str, Any]:
    interval = draw(st.sampled_from([1, 60, 300, 3600, 86400]) | st.integers(1, 86400 * 31))
    n = draw(st.integers(0, 40))
    quality = draw(st.lists(st.sampled_from([0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6]),
                            min_size=n, max_size=n))
    deltas = draw(st.lists(st.sampled_from([0, 0, 0, 1, -1]) | st.integers(-64, 64) | I32,
                           min_size=n, max_size=n))
    v = draw(I32)
    values: list[int | None] = []
    for d, q in zip(deltas, quality, strict=True):
        v = min(max(v + d, -(2**31)), 2**31 - 1)
        values.append(None if q in (3, 4) else v)
    k = draw(st.integers(-3, 400))
    return {"element": draw(st.integers(0, 300) | U32), "interval": interval,
            "start": time - time % interval - k * interval, "values": values,
            "quality": quality}


@st.composite
def report_msg(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["data", "alarm", "test"]))
    time = draw(st.integers(0, 10**8) | U32)
    alarms = []
    for _ in range(draw(st.integers(1 if kind == "alarm" else 0, 3))):
        a = {"kind": draw(st.integers(1, 5)), "state": draw(st.integers(0, 2)),
             "value": draw(I64), "threshold": draw(I64)}
        if a["kind"] in (1, 3):  # rain and level_rise have a window, the others none
            a["window"] = draw(U32)
        alarms.append(a)
    return {"type": kind, "station": draw(st.integers(1, 2**30 - 1)), "seq": draw(U32),
            "time": time,
            "body": {"series": draw(st.lists(series_msg(time), max_size=4)),
                     "dropped": draw(st.just(0) | U64), "alarms": alarms,
                     "flags": draw(st.sampled_from([0, 1, 2, 4, 8, 15]) | U64)}}


ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
ARG = ANY.filter(lambda x: x is not None)


def _cmd(draw: st.DrawFn, second: str, top: int) -> dict[str, Any]:
    d: dict[str, Any] = {"id": draw(st.integers(1, 2**64 - 1)), second: draw(st.integers(0, top))}
    if draw(st.booleans()):
        d["args" if second == "op" else "detail"] = draw(ARG)
    return d


@st.composite
def other_msg(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["status", "result", "ack", "command"]))
    body: dict[str, Any]
    if kind == "status":
        fields: dict[str, st.SearchStrategy[Any]] = {
            "battery_mv": I64, "temperature": I64, "firmware": st.text(max_size=20),
            "uptime": U64, "reset_cause": st.integers(0, 5), "queue_depth": U64,
            "oldest_unacked": U32, "free_heap": U64, "free_flash": U64, "clock_offset": I64,
            "counters": st.dictionaries(U32.map(str), U64, max_size=5), "flags": U64}
        body = draw(st.fixed_dictionaries({}, optional=fields))
    elif kind == "result":
        body = {"results": [_cmd(draw, "code", 4) for _ in range(draw(st.integers(1, 3)))]}
    else:
        cmds = [_cmd(draw, "op", 2**64 - 1)
                for _ in range(draw(st.integers(1 if kind == "command" else 0, 3)))]
        body = {"commands": cmds}
    seq = draw(U32)
    if kind == "ack":  # an ACK lists the seq it answers, and maybe more
        acks = draw(st.lists(U64, max_size=4))
        acks.insert(draw(st.integers(0, len(acks))), seq)
        body = {"acks": acks, "commands": cmds}
    return {"type": kind, "station": draw(st.integers(1, 2**30 - 1)), "seq": seq,
            "time": draw(U32), "body": body}


KEYS = st.binary(min_size=1, max_size=100)  # > 64 bytes: HMAC hashes the key first

BATCH_VM = r"""
import sys, json
sys.path.append(TESTS)
import vm_vectors as vv
import frame_full as frame
from binascii import hexlify, unhexlify
with open(PATH) as f:
    items = json.load(f)
buf = memoryview(bytearray(frame.MAX_FRAME))
for it in items:
    key = frame.Key(unhexlify(it["key"]))
    try:
        n = vv.encode_message(buf, it["message"], key)
        raw = hexlify(bytes(buf[:n])).decode()
    except Exception as e:
        raw = "E:" + type(e).__name__
    msg = None
    if it["raw"]:
        try:
            msg = vv.to_message(frame.decode(unhexlify(it["raw"]), lambda s: key))
        except Exception as e:
            msg = "E:" + type(e).__name__
    print(json.dumps({"raw": raw, "msg": msg}))
"""


def _host_raw(msg: dict[str, Any], key: bytes) -> bytes | None:
    try:
        return c.encode_message(msg, key)
    except ValueError:  # larger than MAX_FRAME
        return None


def check_batch(messages: list[tuple[dict[str, Any], bytes]], mpy_dir: Path,
                tmp: Path) -> None:
    raws = [_host_raw(m, k) for m, k in messages]
    path = tmp / "batch.json"
    path.write_text(json.dumps(
        [{"message": m, "key": k.hex(), "raw": r.hex() if r else ""}
         for (m, k), r in zip(messages, raws, strict=True)], ensure_ascii=False),
        encoding="utf-8")
    code = f"TESTS = {str(TESTS)!r}\nPATH = {str(path)!r}\n" + BATCH_VM
    lines = vm_lines(code, mpy_dir, heapsize="256K")
    assert len(lines) == len(messages)
    for (msg, key), raw, line in zip(messages, raws, lines, strict=True):
        got = json.loads(line, strict=False)
        if raw is None:
            assert got["raw"] == "E:Oversize", msg
            continue
        assert got["raw"] == raw.hex(), msg  # the VM encodes exactly as the host
        host = c.frame_to_message(c.decode_frame(bytes.fromhex(got["raw"]), {msg["station"]: key}))
        assert same(host, msg)
        assert same(got["msg"], msg), (got["msg"], msg)  # host frames decode on the VM


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batches")


@PROPS
@given(st.lists(st.tuples(report_msg(), KEYS), min_size=1, max_size=15))
def test_reports_agree_with_host(mpy_dir: Path, batch_dir: Path,
                                 messages: list[tuple[dict[str, Any], bytes]]) -> None:
    check_batch(messages, mpy_dir, batch_dir)


@PROPS
@given(st.lists(st.tuples(other_msg(), KEYS), min_size=1, max_size=15))
def test_other_frames_agree_with_host(mpy_dir: Path, batch_dir: Path,
                                      messages: list[tuple[dict[str, Any], bytes]]) -> None:
    check_batch(messages, mpy_dir, batch_dir)


REPLAY_VM = r"""
import frame_full as frame
w = frame.ReplayWindow()
out = []
for s in SEQS:
    try:
        if w.check(s):
            out.append("dup")
        else:
            w.accept(s)
            out.append("new")
    except frame.Replay:
        out.append("Replay")
print(" ".join(out))
"""


def _host_replay(seqs: list[int]) -> list[str]:
    w = c.ReplayWindow()
    out = []
    for s in seqs:
        try:
            if w.check(1, s):
                w.accept(1, s)
                out.append("new")
            else:
                out.append("dup")
        except FrameError:
            out.append("Replay")
    return out


@st.composite
def seq_walk(draw: st.DrawFn) -> list[int]:
    # around a moving high-water mark, so that the window edges are hit
    h = draw(st.integers(1, 10))
    seqs = []
    for _ in range(draw(st.integers(1, 60))):
        step = draw(st.sampled_from([1, 1, 2, -1, -4095, -4096, -4097, 4095, 4096, 4097])
                    | st.integers(-5000, 5000))
        s = max(1, h + step)
        seqs.append(s)
        h = max(h, s)
    return seqs


@PROPS
@given(st.lists(seq_walk(), min_size=5, max_size=5))
def test_replay_window_agrees_with_host(mpy_dir: Path, walks: list[list[int]]) -> None:
    code = "SEQ_WALKS = " + repr(walks) + "\nfor SEQS in SEQ_WALKS:\n" + "\n".join(
        "    " + line for line in REPLAY_VM.strip().splitlines() if not line.startswith("import"))
    lines = vm_lines("import frame_full as frame\n" + code, mpy_dir)
    assert [line.split() for line in lines] == [_host_replay(w) for w in walks]


def _host_deframe(chunks: list[bytes]) -> list[str]:
    d = c.Deframer()
    return [type(x).__name__ if isinstance(x, FrameError) else x.hex()
            for ch in chunks for x in d.feed(ch)]


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    valid = json.loads((VECTORS / "valid.json").read_text())
    parts = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["frame", "frame", "zeros", "noise", "long_noise", "cut"]))
        if kind == "frame":
            parts.append(bytes.fromhex(draw(st.sampled_from(valid))["wire"]))
        elif kind == "zeros":
            parts.append(b"\x00" * draw(st.integers(1, 3)))
        elif kind == "noise":
            parts.append(draw(st.binary(max_size=40)))
        elif kind == "long_noise":
            parts.append(b"\x42" * draw(st.integers(1020, 1040)))
        else:
            w = bytes.fromhex(draw(st.sampled_from(valid))["wire"])
            parts.append(w[: draw(st.integers(0, len(w)))])
    stream = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


def _chunked(items: list[list[bytes]]) -> Iterator[str]:
    for chunks in items:
        yield repr([ch.hex() for ch in chunks])


DEFRAME_PROP_VM = r"""
import frame_full as frame
from binascii import unhexlify
for chunks in STREAMS:
    d = frame.Deframer()
    out = []
    for ch in chunks:
        for x in d.feed(unhexlify(ch)):
            out.append(type(x).__name__ if isinstance(x, frame.FrameError) else bytes(x).hex())
    print(" ".join(out) if out else "-")
"""


@PROPS
@given(st.lists(streams(), min_size=5, max_size=5))
def test_deframer_agrees_with_host(mpy_dir: Path, items: list[list[bytes]]) -> None:
    code = "STREAMS = [" + ", ".join(_chunked(items)) + "]\n" + DEFRAME_PROP_VM
    lines = vm_lines(code, mpy_dir)
    want = [" ".join(_host_deframe(chunks)) or "-" for chunks in items]
    assert lines == want


FUZZ_VM = r"""
import sys, json
sys.path.append(TESTS)
import vm_vectors as vv
import frame_full as frame
from binascii import unhexlify
with open(PATH) as f:
    items = json.load(f)
keys = {int(s): frame.Key(unhexlify(k)) for s, k in KEYS.items()}
for raw in items:
    try:
        out = vv.to_message(frame.decode(unhexlify(raw), keys.get))
    except frame.FrameError as e:
        out = "E:" + type(e).__name__ + ":" + str(e)
    print(json.dumps(out))
"""


def _resign(raw: bytes, body: bytes, key: bytes) -> bytes:
    signed = raw[:13] + body
    framed = signed + c.tag(key, signed)
    return framed + zlib.crc32(framed).to_bytes(4, "big")


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    # a valid frame with a damaged body, signed again so that the body check is reached
    valid = json.loads((VECTORS / "valid.json").read_text())
    keys = json.loads((VECTORS / "keys.json").read_text())
    v = draw(st.sampled_from(valid))
    raw = bytes.fromhex(v["frame"])
    body = bytearray(raw[13:-12])
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(body) - 1))
        op = draw(st.sampled_from(["set", "set", "flip", "insert", "delete"]))
        byte = draw(st.sampled_from([0x00, 0x01, 0x02, 0x17, 0x18, 0x19, 0x20, 0x3b, 0x40,
                                     0x41, 0x60, 0x80, 0x81, 0x9f, 0xa0, 0xa1, 0xc0, 0xf4,
                                     0xf6, 0xf9, 0xfb, 0xff]) | st.integers(0, 255))
        if op == "set":
            body[i] = byte
        elif op == "flip":
            body[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            body.insert(i, byte)
        elif len(body) > 1:
            del body[i]
    return _resign(raw, bytes(body), bytes.fromhex(keys[str(v["message"]["station"])]))


@PROPS
@given(st.lists(mutated_frames(), min_size=30, max_size=30))
def test_damaged_bodies_judged_like_host(mpy_dir: Path, batch_dir: Path,
                                         frames: list[bytes]) -> None:
    keys = json.loads((VECTORS / "keys.json").read_text())
    path = batch_dir / "fuzz.json"
    path.write_text(json.dumps([f.hex() for f in frames]))
    code = f"TESTS = {str(TESTS)!r}\nPATH = {str(path)!r}\nKEYS = {keys!r}\n" + FUZZ_VM
    lines = vm_lines(code, mpy_dir, heapsize="256K")
    host_keys = {int(s): bytes.fromhex(k) for s, k in keys.items()}
    for raw, line in zip(frames, lines, strict=True):
        got = json.loads(line, strict=False)
        if got == "E:Malformed:too many values":
            continue  # the board's limit; the host has none (and would build the list)
        try:
            want: Any = c.frame_to_message(c.decode_frame(raw, host_keys))
        except FrameError as e:
            want = f"E:{type(e).__name__}"
        if isinstance(got, str):
            got = got.rsplit(":", 1)[0]
        assert same(got, want), (raw.hex(), got, want)
