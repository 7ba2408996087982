"""protocol/_speedups.c against its pure-Python references (protocol/cbor_subset.py, values.py).

The compiled ``check_cbor`` and ``decode_values`` must give exactly the reference's
result, the same list or the same ``Malformed`` message, on every vector body and on
random, damaged and hostile input; and the HMAC with cached key pads must equal
``hmac.digest``.
"""

from __future__ import annotations

import hmac
import json
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import _speedups
from protocol import body as codec_body
from protocol import codec as c
from protocol import frames as codec_frames
from protocol import values as codec_values
from protocol.errors import Malformed

VECTORS = Path(c.__file__).with_name("vectors")


def outcome(fn: Callable[[bytes], Any], data: bytes) -> Any:
    try:
        return fn(data)
    except Malformed as e:
        return ("Malformed", str(e))


def same(compiled: Callable[[bytes], Any], reference: Callable[[bytes], Any], data: bytes) -> Any:
    got, want = outcome(compiled, data), outcome(reference, data)
    assert got == want, f"{data.hex()}: compiled {got!r}, reference {want!r}"
    return got


def test_the_codec_runs_the_compiled_versions() -> None:
    # `make setup` builds the extension (setup.py); a machine without a C compiler would
    # silently fall back to the references, so CI insists on it.
    assert c.check_cbor is _speedups.check_cbor
    assert c.decode_values is _speedups.decode_values


def vector_bodies() -> list[bytes]:
    valid = json.loads((VECTORS / "valid.json").read_text())
    invalid = json.loads((VECTORS / "invalid.json").read_text())
    return ([bytes.fromhex(v["frame"])[c.HEADER_SIZE : -(c.TAG_SIZE + c.CRC_SIZE)] for v in valid]
            + [bytes.fromhex(v["body"]) for v in invalid if "body" in v])


def test_vector_bodies_agree() -> None:
    bodies = vector_bodies()
    results = [same(_speedups.check_cbor, c.check_cbor_py, b) for b in bodies]
    assert results.count(None) > 30 and len(set(map(str, results))) > 5  # both kinds seen


# ---- check_cbor


def test_subset_edges() -> None:
    ok, bad = [], []
    ok += [b"\x1b" + (2**64 - 1).to_bytes(8, "big"), b"\x3b" + (2**63 - 1).to_bytes(8, "big")]
    bad += [b"\x3b" + (2**63).to_bytes(8, "big")]  # -2^63 - 1
    ok += [b"\xfb" + struct.pack(">d", math.nan), b"\xfb" + struct.pack(">d", 1.5)]
    bad += [b"\xf9\x7e\x00", b"\xfa\x3f\xc0\x00\x00", b"\xf7", b"\xf8\x20"]  # half, single, undefined
    ok += [b"\x81" * 15 + b"\x80"]  # 16 nested arrays
    bad += [b"\x81" * 16 + b"\x80"]  # 17
    ok += [b"\xa2\x61a\x01\x62aa\x02", b"\xa2\x17\x01\x18\x18\x02"]  # text keys by length first
    bad += [b"\xa2\x62aa\x01\x61b\x02", b"\xa2\x01\x01\x61a\x02", b"\xa1\x20\x01", b"\xa1\x41a\x01"]
    bad += [b"\x18\x17", b"\x19\x00\xff", b"\x5f\xff", b"\xc0\x00", b"\x1c", b"\x00\x00", b"\x82\x01"]
    for data in ok:
        assert same(_speedups.check_cbor, c.check_cbor_py, data) is None, data.hex()
    for data in bad:
        assert same(_speedups.check_cbor, c.check_cbor_py, data) is not None, data.hex()


leaves = (st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=30) | st.text(max_size=10)
          | st.floats(allow_nan=True) | st.booleans() | st.none())
items = st.recursive(
    leaves,
    lambda kids: (st.lists(kids, max_size=5)
                  | st.dictionaries(st.integers(0, 2**40) | st.text(max_size=5), kids, max_size=5)
                  | st.dictionaries(st.integers(-5, 5) | st.text(max_size=2), kids, max_size=3)),
    max_leaves=25,
)


@settings(max_examples=1500, derandomize=True)
@given(items, st.lists(st.tuples(st.sampled_from("fcix"), st.integers(0, 10**6), st.binary(max_size=4)),
                       max_size=3))
def test_random_and_damaged_cbor_agree(item: Any, damage: list[tuple[str, int, bytes]]) -> None:
    data = bytearray(cbor2.dumps(item))  # insertion order: often unsorted keys, mixed keys
    for op, at, extra in damage:
        at %= len(data) + 1
        if op == "f" and at < len(data):
            data[at] ^= 1 << (at % 8)
        elif op == "c":
            del data[at:]
        elif op == "i":
            data[at:at] = extra
        else:
            data += extra
    same(_speedups.check_cbor, c.check_cbor_py, bytes(data))


@settings(max_examples=500, derandomize=True)
@given(items)
def test_accepted_means_deterministic(item: Any) -> None:
    """What the check accepts is what cbor2 re-encodes to the same bytes (the definition of
    SPEC §4), but for cbor2 writing NaN and infinities as float16, which SPEC §4 forbids."""
    data = cbor2.dumps(codec_body._det(item))
    if outcome(c.check_cbor_py, data) is None and not _has_special_float(item):
        assert cbor2.dumps(cbor2.loads(data)) == data


def _has_special_float(item: Any) -> bool:
    if isinstance(item, float):
        return not math.isfinite(item)
    if isinstance(item, dict):
        return any(map(_has_special_float, item.values()))
    if isinstance(item, list):
        return any(map(_has_special_float, item))
    return False


@settings(max_examples=500, derandomize=True)
@given(st.binary(max_size=64))
def test_garbage_agrees(data: bytes) -> None:
    same(_speedups.check_cbor, c.check_cbor_py, data)


# ---- decode_values


@settings(max_examples=1000, derandomize=True)
@given(st.lists(st.integers(-(2**31), 2**31 - 1) | st.sampled_from([0, 1, -1]), max_size=200))
def test_values_round_trip(values: list[int]) -> None:
    data = c.encode_values(values)
    assert same(_speedups.decode_values, c.decode_values_py, data) == values


def varints(tokens: list[int]) -> bytes:
    out = bytearray()
    for n in tokens:
        codec_values._varint(out, n)
    return bytes(out)


@settings(max_examples=1500, derandomize=True)
@given(st.binary(max_size=80) | st.lists(st.integers(0, 2**36), max_size=20).map(varints))
def test_any_values_bytes_agree(data: bytes) -> None:
    same(_speedups.decode_values, c.decode_values_py, data)


def test_values_limits() -> None:
    run = c.encode_values([5] * c.MAX_VALUES)
    assert same(_speedups.decode_values, c.decode_values_py, run) == [5] * c.MAX_VALUES
    for data in (run + b"\x02", b"\x00\xff\x3f", c.encode_values([2**31 - 1]) + b"\x04",
                 b"\x80\x80\x80\x80\x80\x01", b"\x02\x80"):
        assert same(_speedups.decode_values, c.decode_values_py, data)[0] == "Malformed"


# ---- tag


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=100), st.binary(max_size=300))
def test_tag_is_truncated_hmac_sha256(key: bytes, msg: bytes) -> None:
    assert c.tag(key, msg) == hmac.digest(key, msg, "sha256")[: c.TAG_SIZE]
    assert c.tag(key, msg) == c.tag(key, msg)  # from the cache, the state not used up


def test_tag_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec_frames, "_PADS", {})
    monkeypatch.setattr(codec_frames, "_PADS_MAX", 4)
    for k in range(10):
        key = bytes([k]) * 32
        assert c.tag(key, b"m") == hmac.digest(key, b"m", "sha256")[:8]
        assert len(codec_frames._PADS) <= 4
