"""Smoke test of bench/bytes_per_reading.py: its figure holds and its comparisons are real.

Nothing here is timed; it checks that the byte counts come from frames and messages that
decode back to the day's readings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest

from protocol import codec as c
from protocol.elements import ELEMENTS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is a namespace package

from bench import bytes_per_reading as bpr  # noqa: E402
from bench.common import INTERVAL, LEVEL, PER_DAY, RAIN, station_key  # noqa: E402


@pytest.fixture(scope="module")
def results() -> dict[str, bpr.DayResult]:
    return bpr.run()


def expected_records(res: bpr.DayResult, i: int) -> list[tuple[str, int, float]]:
    """(full name, Unix time, SI value) of every reading of report ``i``."""
    r = res.reports[i]
    out = []
    for element, values in ((RAIN, r.rain), (LEVEL, r.level)):
        e = ELEMENTS[element]
        for k, raw in enumerate(values):
            out.append((f"urn:dev:hydrolink:{bpr.STATION}:{e.name}",
                        c.EPOCH_UNIX + r.first + k * INTERVAL, e.to_si(raw)))
    return out


def test_hydrolink_figure_meets_target(results: dict[str, bpr.DayResult]) -> None:
    for res in results.values():
        assert len(res.hydrolink.messages) == 24
        assert res.hydrolink.per_reading <= bpr.TARGET
        assert res.hydrolink.total == sum(len(c.wrap(raw)) for raw in res.raw_frames)
    assert results["dry"].hydrolink.total < results["storm"].hydrolink.total


def test_hydrolink_frames_decode_to_the_day(results: dict[str, bpr.DayResult]) -> None:
    for res in results.values():
        keys = {bpr.STATION: station_key(bpr.STATION)}
        items = list(c.Deframer().feed(b"".join(res.hydrolink.messages)))
        frames = [c.decode_frame(raw, keys) for raw in items if isinstance(raw, bytes)]
        assert len(frames) == len(items) == 24
        rain, level, times = [], [], []
        for f in frames:
            assert f.type == c.DATA and isinstance(f.body, c.Report)
            s_rain, s_level = f.body.series
            assert (s_rain.element, s_level.element) == (RAIN, LEVEL)
            assert s_rain.interval == s_level.interval == INTERVAL
            assert 2 <= f.time % 3600 <= 9  # built a few seconds after the hour
            rain += s_rain.values
            level += s_level.values
            times += s_rain.times()
        day = res.day
        assert rain == list(day.rain) and level == list(day.level)
        assert times == list(day.times())


def test_the_days_are_what_the_model_promises(results: dict[str, bpr.DayResult]) -> None:
    storm, dry = results["storm"].day, results["dry"].day
    assert len(storm.rain) == len(storm.level) == PER_DAY
    assert all(v % 5 == 0 for v in storm.rain)  # whole tips of a 0.5 mm bucket
    assert sum(storm.rain[: 11 * 12]) == 0  # dry morning
    assert 20 <= max(storm.rain) * 12 / 10 <= 60  # peak 5-minute intensity, mm/h
    assert 500 <= max(storm.level) - storm.level[0] <= 700  # the reservoir rises ~0.6 m
    assert abs(storm.level[0] - 70_000) <= 5
    assert sum(dry.rain) == 0
    assert max(dry.level) - min(dry.level) < 30


def test_senml_cbor_round_trips(results: dict[str, bpr.DayResult]) -> None:
    for res in results.values():
        for i, blob in enumerate(res.encodings["SenML-CBOR"].messages):
            pack = cbor2.loads(blob)
            assert cbor2.dumps(pack, canonical=True) == blob
            assert len(pack) == 24
            assert set(pack[0]) >= {bpr.BN, bpr.BT, bpr.N, bpr.U, bpr.V}
            assert all(set(rec) <= {bpr.N, bpr.U, bpr.V, bpr.T} for rec in pack[1:])
            assert bpr.senml_resolve(pack) == expected_records(res, i)


def test_senml_json_round_trips(results: dict[str, bpr.DayResult]) -> None:
    for res in results.values():
        for i, blob in enumerate(res.encodings["SenML-JSON"].messages):
            pack: list[dict[str, Any]] = json.loads(blob)
            assert len(pack) == 24 and {"bn", "bt"} <= set(pack[0])
            assert bpr.senml_resolve(pack) == expected_records(res, i)


def test_sl651_frames_verify_and_carry_the_values(results: dict[str, bpr.DayResult]) -> None:
    for res in results.values():
        for serial, (frame, r) in enumerate(
            zip(res.encodings["SL 651-2014 HEX"].messages, res.reports, strict=True), 1
        ):
            assert len(frame) == 80
            got = bpr.sl651_parse(frame)
            assert got["function"] == 0x34 and got["serial"] == serial
            assert got["rain"] == list(r.rain)
            assert got["level_cm"] == [round((mm - bpr.SL651_BASE_MM) / 10) for mm in r.level]
            flipped = bytearray(frame)
            flipped[40] ^= 0x04
            with pytest.raises(ValueError, match="CRC"):
                bpr.sl651_parse(bytes(flipped))


def test_sl651_crc_matches_a_published_frame() -> None:
    # A link-maintenance frame (function 2FH) as printed in SL 651-2014 walk-throughs:
    # CRC-16/Modbus over 7E7E .. ETX, high byte first.
    frame = bytes.fromhex("7E7E01001234567812342F0008020003591011155111036BCA")
    assert bpr.crc16_modbus(frame[:-2]).to_bytes(2, "big") == frame[-2:]
