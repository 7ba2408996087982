"""Host codec against the golden vectors, and its behaviour on hostile input."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import body as codec_body
from protocol import codec as c
from protocol import make_vectors
from protocol.errors import ERRORS, FrameError

VECTORS = Path(c.__file__).with_name("vectors")
VALID: list[dict[str, Any]] = json.loads((VECTORS / "valid.json").read_text())
INVALID: list[dict[str, Any]] = json.loads((VECTORS / "invalid.json").read_text())
KEYS = {int(k): bytes.fromhex(v) for k, v in json.loads((VECTORS / "keys.json").read_text()).items()}


def receive(wire: bytes, accepted: list[int] = ()) -> list[c.Frame | FrameError]:  # type: ignore[assignment]
    """What a receiver makes of a byte stream: frames, or the error for each rejected one."""
    out: list[c.Frame | FrameError] = []
    window = c.ReplayWindow()
    for item in c.Deframer().feed(wire):
        if isinstance(item, FrameError):
            out.append(item)
            continue
        try:
            frame = c.decode_frame(item, KEYS)
            for seq in accepted:
                window.accept(frame.station, seq)
            window.check(frame.station, frame.seq)
            out.append(frame)
        except FrameError as e:
            out.append(e)
    return out


def test_vector_files_are_what_the_generator_makes() -> None:
    for name, text in make_vectors.build().items():
        assert (VECTORS / name).read_text() == text, f"{name} is stale: run make vectors"


def test_vector_counts_cover_every_type_and_error() -> None:
    assert len(VALID) >= 25 and len(INVALID) >= 25
    assert {v["message"]["type"] for v in VALID} == set(c.TYPE_NAMES.values())
    assert {v["error"] for v in INVALID} == set(ERRORS)
    assert max(len(bytes.fromhex(v["frame"])) for v in VALID) == c.MAX_FRAME


@pytest.fixture(params=["compiled", "python"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The vectors pass with the compiled CBOR check and value decoder and with their references."""
    if request.param == "python":
        for module in (c, codec_body):  # the body decoder looks them up in protocol.body
            monkeypatch.setattr(module, "check_cbor", c.check_cbor_py)
            monkeypatch.setattr(module, "decode_values", c.decode_values_py)
    return str(request.param)


@pytest.mark.parametrize("v", VALID, ids=[v["name"] for v in VALID])
def test_valid_vector(v: dict[str, Any], impl: str) -> None:
    raw = c.encode_message(v["message"], KEYS[v["message"]["station"]])
    assert raw.hex() == v["frame"]
    assert c.wrap(raw).hex() == v["wire"]
    (frame,) = receive(bytes.fromhex(v["wire"]))
    assert isinstance(frame, c.Frame)
    assert c.frame_to_message(frame) == v["message"]
    assert frame.raw == raw


@pytest.mark.parametrize("v", INVALID, ids=[v["name"] for v in INVALID])
def test_invalid_vector(v: dict[str, Any], impl: str) -> None:
    results = receive(bytes.fromhex(v["wire"]), v.get("accepted", []))
    assert len(results) == 1
    assert type(results[0]).__name__ == v["error"], results[0]
    assert str(results[0])  # every rejection says why


def test_resynchronises_after_garbage_between_frames() -> None:
    rng = random.Random(7)
    stream = b""
    for v in VALID:
        stream += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))) + b"\x00"
        stream += bytes.fromhex(v["wire"])
    frames = [r for r in receive(stream) if isinstance(r, c.Frame)]
    assert [f.raw.hex() for f in frames] == [v["frame"] for v in VALID]


def test_deframer_any_chunking() -> None:
    stream = b"".join(bytes.fromhex(v["wire"]) for v in VALID)
    rng = random.Random(3)
    d = c.Deframer()
    got: list[bytes] = []
    pos = 0
    while pos < len(stream):
        n = rng.randrange(1, 64)
        got += [r for r in d.feed(stream[pos : pos + n]) if isinstance(r, bytes)]
        pos += n
    assert [g.hex() for g in got] == [v["frame"] for v in VALID]


def test_replay_window_duplicate_then_replay() -> None:
    w = c.ReplayWindow()
    assert w.check(1, 10)
    w.accept(1, 10)
    assert not w.check(1, 10)  # duplicate: ACK again, do not forward
    assert w.check(1, 9)  # older but unseen: a backfill or retry
    w.accept(1, 4000)
    assert not w.check(1, 10)  # 10 > 4000-4096: still remembered as a duplicate
    w.accept(1, 5000)
    with pytest.raises(ERRORS["Replay"]):
        w.check(1, 904)  # 904 <= 5000-4096
    assert w.check(1, 905)
    assert w.check(2, 904)  # windows are per station


def test_encoder_refuses_what_the_spec_forbids() -> None:
    s = c.Series(2, 300, 301, (1,), (0,))
    with pytest.raises(ValueError, match="multiple of its interval"):
        c.encode_frame(c.DATA, 1, 1, 1000, c.Report((s,)), KEYS[1001])
    with pytest.raises(ValueError, match="alarm frame needs"):
        c.encode_frame(c.ALARM, 1, 1, 1000, c.Report(()), KEYS[1001])
    with pytest.raises(ValueError, match="None exactly where"):
        c.encode_frame(c.DATA, 1, 1, 1000, c.Report((c.Series(2, 300, 0, (None,), (0,)),)), b"k")
    with pytest.raises(ValueError, match="exceeds MAX_FRAME"):
        big = tuple((i % 2) * 2**30 for i in range(300))  # five bytes per delta
        c.encode_frame(c.DATA, 1, 1, 0, c.Report((c.Series(2, 1, 0, big, (0,) * 300),)), b"k")
    # free-form args and details: only what the decoder would accept
    for bad, why in (({"a": 1, 2: 3}, "all unsigned integers or all text"),
                     (float("nan"), "float other than"), ([[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]], "deeper")):
        with pytest.raises(ValueError, match=why):
            c.encode_frame(c.COMMAND, 1, 1, 0, c.Commands((c.Command(1, 1, bad),)), b"k")
        with pytest.raises(ValueError, match=why):
            c.encode_frame(c.RESULT, 1, 1, 0, c.Results((c.Result(1, 0, bad),)), b"k")
    assert c.decode_body(c.RESULT, bytes.fromhex("a10181830100fb7ff8000000000000"), 0) is not None  # NaN
    # console changes (status key 13): the bounds of SPEC §8, in one line each
    for bad, why in (([], "1 .. 8 entries, not 0"), ([[1, "x"]] * 9, "1 .. 8 entries, not 9"),
                     ([[1, "x" * 71]], "entry 0: text must be at most 70 bytes"),
                     ([[1, "x"], [1, "高" * 24]], "entry 1: text must be at most 70 bytes"),
                     ([[-1, "x"]], "entry 0: time must be"), ([[1, 2]], "entry 0: text"),
                     ([[1, "x", 3]], r"entry 0 must be \[time, text\]")):
        with pytest.raises(ValueError, match=why):
            c.encode_frame(c.STATUS, 1, 1, 0, c.Status({"console": bad}), b"k")
        body = cbor2.dumps({13: bad})
        with pytest.raises(c.Malformed, match=why):
            c.decode_body(c.STATUS, body, 0)
    raw = c.encode_frame(c.STATUS, 1, 1, 0, c.Status({"console": [[5, "高" * 23]]}), b"k")
    assert c.decode_frame(raw, {1: b"k"}).body == c.Status({"console": [[5, "高" * 23]]})  # 69 bytes


# ---------------------------------------------------------------- properties

values_st = st.lists(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)), max_size=40)


@st.composite
def series_st(draw: st.DrawFn, time: int) -> c.Series:
    vals = draw(values_st)
    quality = [draw(st.sampled_from((3, 4))) if v is None else draw(st.sampled_from((0, 0, 0, 1, 2, 5, 6)))
               for v in vals]
    interval = draw(st.sampled_from((1, 60, 300, 3600, 86400)))
    mark = time - time % interval
    start = mark - draw(st.integers(-3, 300)) * interval
    return c.Series(draw(st.integers(1, 300)), interval, max(start, 0) - max(start, 0) % interval,
                    tuple(vals), tuple(quality))


@st.composite
def report_frames(draw: st.DrawFn) -> tuple[int, int, int, int, c.Report]:
    time = draw(st.integers(0, 2**32 - 1))
    series = tuple(draw(st.lists(series_st(time), max_size=4)))
    return (draw(st.sampled_from((c.DATA, c.TEST))), draw(st.integers(1, c.MAX_STATION)),
            draw(st.integers(0, 2**32 - 1)), time,
            c.Report(series, draw(st.integers(0, 2**40)), (), draw(st.integers(0, 15))))


@settings(max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(report_frames())
def test_any_report_round_trips(f: tuple[int, int, int, int, c.Report]) -> None:
    key = bytes(32)
    try:
        raw = c.encode_frame(*f, key=key)
    except ValueError as e:
        assert "MAX_FRAME" in str(e)
        return
    frame = c.decode_frame(raw, {f[1]: key})
    assert (frame.type, frame.station, frame.seq, frame.time, frame.body) == f


SENT = [bytes.fromhex(v["frame"]) for v in VALID]


@settings(max_examples=500, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, len(SENT) - 1),
                          st.sampled_from(("flip", "cut", "drop", "garbage", "none")),
                          st.integers(0, 2**16), st.binary(max_size=30)), min_size=1, max_size=8))
def test_damaged_streams_never_crash_or_invent_frames(ops: list[tuple[int, str, int, bytes]]) -> None:
    stream = bytearray()
    for idx, op, pos, junk in ops:
        wire = bytearray(c.wrap(SENT[idx]))
        p = pos % len(wire)
        if op == "flip":
            wire[p] ^= 1 << (pos % 8)
        elif op == "cut":
            del wire[p:]
        elif op == "drop":
            del wire[p]
        elif op == "garbage":
            wire[p:p] = junk
        stream += wire
    for result in receive(bytes(stream)):
        assert isinstance(result, c.Frame | FrameError)
        if isinstance(result, c.Frame):
            assert result.raw in SENT


@settings(max_examples=100, derandomize=True)
@given(st.binary(min_size=1, max_size=5000).map(lambda b: b.replace(b"\x00", b"\x01")),
       st.integers(1, 700))
def test_garbage_without_delimiters_stays_bounded(junk: bytes, chunk: int) -> None:
    d = c.Deframer()
    for i in range(0, len(junk), chunk):
        for r in d.feed(junk[i : i + chunk]):
            assert isinstance(r, FrameError)
        assert d.buffered <= c.MAX_WIRE
    # and the next good frame after a delimiter still decodes
    tail = list(d.feed(b"\x00" + c.wrap(SENT[0])))
    assert tail[-1] == SENT[0]
