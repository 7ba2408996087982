"""Generate the golden vectors in ``protocol/vectors/`` (run: ``python -m protocol.make_vectors``).

The vectors are committed; this script documents how each was made and is rerun
only when SPEC.md changes. A test checks that the committed files equal its output.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2

from protocol import codec as c
from protocol.frames import _crc32

OUT = Path(__file__).with_name("vectors")
T = c.from_datetime(datetime(2026, 6, 15, 10, 0, 3, tzinfo=UTC))  # a report built at 10:00:03
MARK = T - T % 300
KEYS = {sid: hashlib.sha256(b"hydrolink test key %d" % sid).digest() for sid in (1001, 1002, 1073741823)}
OTHER_KEY = hashlib.sha256(b"not the station's key").digest()
LEVEL = [70123, 70124, 70124, 70124, 70121, 70121, 70122, 70122, 70123, 70123, 70123, 70124]


def series(element: int, values: Sequence[int | None], quality: list[int] | None = None,
           interval: int = 300, start: int | None = None) -> dict[str, Any]:
    n = len(values)
    return {"element": element, "interval": interval,
            "start": MARK - (n - 1) * interval if start is None else start,
            "values": list(values), "quality": quality or [0] * n}


def report(kind: str, ser: list[dict[str, Any]], *, dropped: int = 0,
           alarms: list[dict[str, Any]] | None = None, flags: int = 0, station: int = 1001,
           seq: int = 42, time: int = T) -> dict[str, Any]:
    return {"type": kind, "station": station, "seq": seq, "time": time,
            "body": {"series": ser, "dropped": dropped, "alarms": alarms or [], "flags": flags}}


def msg(kind: str, body: dict[str, Any], station: int = 1001, seq: int = 42,
        time: int = T) -> dict[str, Any]:
    return {"type": kind, "station": station, "seq": seq, "time": time, "body": body}


def valid_messages() -> list[tuple[str, str, dict[str, Any]]]:
    rain_storm = [0, 2, 5, 14, 38, 61, 44, 20, 9, 3, 1, 0]
    level_rise = [69850, 69853, 69861, 69880, 69925, 70010, 70140, 70310, 70480, 70600, 70655, 70660]
    v: list[tuple[str, str, dict[str, Any]]] = [
        ("data_hourly_dry", "hourly report: 12 dry rain values and 12 level values, the SPEC example",
         report("data", [series(1, [0] * 12), series(2, LEVEL)])),
        ("data_hourly_storm", "hourly report in a storm: rain bursts, level rising fast (deltas beyond one byte)",
         report("data", [series(1, rain_storm), series(2, level_rise)], flags=4)),
        ("data_empty_series", "a series with no values",
         report("data", [series(2, [], start=MARK)])),
        ("data_no_series", "a report without any series (nothing to send yet)",
         report("data", [])),
        ("data_missing_middle", "level sensor missed two readings in the middle",
         report("data", [series(2, [70120, None, None, 70126], [0, 3, 3, 0])])),
        ("data_missing_leading", "the first values have no value: they carry the first real value",
         report("data", [series(2, [None, None, 70126, 70127], [4, 4, 0, 0])])),
        ("data_all_fault", "sensor in fault for the whole hour: no values at all",
         report("data", [series(2, [None] * 12, [4] * 12)])),
        ("data_quality_codes", "every quality code that keeps a value, and both kinds without",
         report("data", [series(2, [70120, 70400, 99999, None, None, 70125, 70126, 70126],
                                [0, 1, 2, 3, 4, 5, 6, 6])])),
        ("data_dropped_flags", "queue overflow count and flags low_power | clock_unsynced | backfill",
         report("data", [series(1, [0, 0, 1])], dropped=1234, flags=1 | 2 | 8)),
        ("data_negative", "negative values and deltas (logger temperature in winter)",
         report("data", [series(4, [-35, -41, -12, 0, 7], interval=3600)])),
        ("data_int32_extremes", "int32 extremes: deltas of 2^32-1 need five-byte varints",
         report("data", [series(9, [2**31 - 1, -(2**31), 2**31 - 1, 0], interval=60)])),
        ("data_day_backfill", "one day of 5-minute rain, dry: one run token covers 287 zero deltas",
         report("data", [series(1, [0] * 288)], flags=8)),
        ("data_offset_negative", "the first value lies after the header time's mark (clock stepped back)",
         report("data", [series(2, [70100, 70101], start=MARK + 600)])),
        ("data_mixed_intervals", "5-minute rain with hourly battery and logger temperature",
         report("data", [series(1, [0, 0, 3, 5, 0, 0, 0, 0, 0, 0, 0, 0]),
                         series(3, [12840], interval=3600, start=T - T % 3600),
                         series(4, [215], interval=3600, start=T - T % 3600)])),
        ("data_unknown_element", "an element id not in the table is passed on as is",
         report("data", [series(200, [1, 2, 3])])),
        ("data_daily_rain", "daily rain total at a 1-day interval",
         report("data", [series(10, [0, 125, 431], interval=86400,
                                start=T - T % 86400 - 2 * 86400)])),
        ("data_header_extremes", "largest station id and seq; the series starts at the epoch (time 0)",
         report("data", [series(2, [1, 2], interval=1, start=0)], station=1073741823,
                seq=4294967295, time=1)),
        ("alarm_rain_raised", "rain alarm raised: 10.5 mm in 30 min against 10.0 mm",
         report("alarm", [series(1, [38, 61, 6], start=T - T % 300 - 600)],
                alarms=[{"kind": 1, "state": 1, "value": 105, "threshold": 100, "window": 1800}], flags=4)),
        ("alarm_level_high_and_rise", "level at the alarm stage and rising fast, both active",
         report("alarm", [series(2, [70310], interval=1, start=T)],
                alarms=[{"kind": 2, "state": 2, "value": 70310, "threshold": 70000},
                        {"kind": 3, "state": 1, "value": 300, "threshold": 250, "window": 3600}],
                flags=4)),
        ("alarm_cleared", "level alarm cleared with hysteresis; low stage and battery alarms",
         report("alarm", [],
                alarms=[{"kind": 2, "state": 0, "value": 69890, "threshold": 70000},
                        {"kind": 4, "state": 2, "value": 60010, "threshold": 60500},
                        {"kind": 5, "state": 1, "value": 11500, "threshold": 11800}])),
        ("test_instant", "test report: current values at the header time",
         report("test", [series(1, [0], interval=1, start=T), series(2, [70124], interval=1, start=T),
                         series(3, [13012], interval=1, start=T)])),
        ("status_full", "daily status with every field",
         msg("status", {"battery_mv": 12840, "temperature": -15, "firmware": "hydrolink-0.1.0",
                        "uptime": 864000, "reset_cause": 2, "queue_depth": 36,
                        "oldest_unacked": T - 10800, "free_heap": 51234, "free_flash": 1048576,
                        "clock_offset": -3, "counters": {"1": 1523, "2": 0, "3": 17, "10": 1},
                        "flags": 2}, seq=43)),
        ("status_minimal", "status with no fields at all",
         msg("status", {}, seq=44)),
        ("status_console", "status sent at once after two changes at the technician console (key 13)",
         msg("status", {"queue_depth": 12, "flags": 0, "console": [
             [T - 95, "config report_interval 3600 -> 1800 s"],
             [T - 2, "calibrate level: staff 2.415 m, read 2.398 m, cal_offset_mm 0 -> 17"]]},
             seq=47)),
        ("status_console_longest", "the longest console list: 8 entries, texts of 70 bytes (one in UTF-8)",
         msg("status", {"console": [[T - 8 + i, chr(0x61 + i) * 70] for i in range(7)]
                        + [[T, "高桥" + "x" * 64]]}, seq=48)),
        ("result_get_config", "result of get_config: text-keyed map with int, float, bool, null, text",
         msg("result", {"results": [{"id": 7, "code": 0, "detail": {
             "report_interval": 3600, "mm_per_tip": 0.2, "alarm_enabled": True, "modem": None,
             "name": "Gaoqiao upstream", "level_offset_mm": -150}}]}, seq=45)),
        ("result_errors", "results: unknown op without detail, bad args with a reason, refused",
         msg("result", {"results": [{"id": 8, "code": 1}, {"id": 9, "code": 2,
                                                          "detail": "report_interval: 7 is not 300..86400"},
                                    {"id": 10, "code": 4}]}, seq=46)),
        ("ack_simple", "ACK of one frame with the gateway's time",
         msg("ack", {"acks": [42], "commands": []}, time=T + 1)),
        ("ack_many_with_commands", "ACK of three frames carrying set_config, resend and reboot",
         msg("ack", {"acks": [40, 41, 42], "commands": [
             {"id": 11, "op": 1, "args": {"report_interval": 3600, "mm_per_tip": 0.5,
                                          "name": "Jiangkou dam"}},
             {"id": 12, "op": 3, "args": [T - 86400, T]},
             {"id": 13, "op": 5}]}, time=T + 2)),
        ("command_test_and_status", "command frame: test report, status report, get_config of two keys",
         msg("command", {"commands": [{"id": 14, "op": 4}, {"id": 15, "op": 6},
                                      {"id": 16, "op": 2, "args": ["mm_per_tip", "station"]}]})),
        ("command_unknown_op", "a command op this spec does not define is still a valid frame",
         msg("command", {"commands": [{"id": 17, "op": 99}]})),
    ]
    v.append(("data_max_size", "the largest frame: exactly 1024 bytes", _max_size()))
    return v


def _max_size() -> dict[str, Any]:
    """Grow a 1-minute level series (deltas of +-1000: two bytes each), then pad with ``dropped``."""
    def make(n: int, dropped: int = 0) -> dict[str, Any]:
        vals = [70000 + (1000 if i % 2 else 0) for i in range(n)]
        return report("data", [series(2, vals, interval=60)], dropped=dropped)

    def size(m: dict[str, Any]) -> int:
        return len(c.encode_message(m, KEYS[1001])) if _fits(m) else c.MAX_FRAME + 1

    n = 1
    while size(make(n + 1)) <= c.MAX_FRAME:
        n += 1
    for m in range(n, n - 8, -1):
        for dropped in (0, 1, 24, 256, 65536, 2**32):
            if size(make(m, dropped)) == c.MAX_FRAME:
                return make(m, dropped)
    raise AssertionError("cannot pad the frame to exactly MAX_FRAME")


def _fits(m: dict[str, Any]) -> bool:
    try:
        c.encode_message(m, KEYS[1001])
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- invalid


def signed(vt: int, station: int, seq: int, time: int, body: bytes, key: bytes) -> bytes:
    """A raw frame from any header and body bytes, with a correct tag and CRC."""
    s = struct.pack(">BIII", vt, station, seq, time) + body
    raw = s + c.tag(key, s)
    return raw + struct.pack(">I", _crc32(raw))


def recrc(raw: bytes) -> bytes:
    return raw[:-4] + struct.pack(">I", _crc32(raw[:-4]))


def invalid_vectors() -> list[dict[str, Any]]:
    k = KEYS[1001]
    good = c.encode_message(report("data", [series(1, [0] * 12), series(2, LEVEL)]), k)
    out: list[dict[str, Any]] = []

    def add(name: str, why: str, error: str, raw: bytes | None = None, *, wire: bytes | None = None,
            body: bytes | None = None, cddl_detects: bool = True, accepted: list[int] | None = None,
            ) -> None:
        v: dict[str, Any] = {"name": name, "description": why, "error": error,
                             "wire": (wire if wire is not None else c.wrap(raw or b"")).hex()}
        if body is not None:
            v["body"] = body.hex()
            v["cddl_detects"] = cddl_detects
        if accepted is not None:
            v["accepted"] = accepted
        out.append(v)

    def bad_body(name: str, why: str, body: bytes, vt: int = 0x11, cddl_detects: bool = True) -> None:
        add(name, why, "Malformed", signed(vt, 1001, 42, T, body, k), body=body,
            cddl_detects=cddl_detects)

    flip = bytearray(good)
    flip[20] ^= 0x04
    add("crc_bit_flip_body", "one bit flipped in the body", "BadCrc", bytes(flip))
    flip = bytearray(good)
    flip[-1] ^= 0x80
    add("crc_bit_flip_crc", "one bit flipped in the CRC itself", "BadCrc", bytes(flip))
    add("crc_bytes_swapped", "two body bytes swapped", "BadCrc",
        good[:20] + good[21:22] + good[20:21] + good[22:])
    add("tag_wrong_key", "signed with another key (CRC fine)", "BadTag",
        c.encode_message(report("data", [series(1, [0] * 12)]), OTHER_KEY))
    add("tag_unknown_station", "station 9999 has no key", "BadTag",
        c.encode_message(report("data", [series(1, [0])], station=9999), OTHER_KEY))
    alt = bytearray(good)
    alt[8] ^= 0x01
    add("tag_seq_altered", "sequence number changed, CRC recomputed", "BadTag", recrc(bytes(alt)))
    alt = bytearray(good)
    alt[12] ^= 0x01
    add("tag_time_altered", "station time changed, CRC recomputed", "BadTag", recrc(bytes(alt)))
    alt = bytearray(good)
    alt[30] ^= 0x01
    add("tag_body_altered", "one value changed, CRC recomputed", "BadTag", recrc(bytes(alt)))
    alt = bytearray(good)
    alt[-6] ^= 0x01
    add("tag_bits_altered", "tag changed, CRC recomputed", "BadTag", recrc(bytes(alt)))
    alt = bytearray(good)
    alt[0] = 0x13
    add("tag_type_altered", "type changed from data to status, CRC recomputed", "BadTag", recrc(bytes(alt)))
    add("version_2", "protocol version 2", "UnknownVersion", recrc(b"\x21" + good[1:]))
    add("version_0", "protocol version 0", "UnknownVersion", recrc(b"\x01" + good[1:]))
    add("type_reserved_6", "frame type 6 is reserved", "Malformed", recrc(b"\x16" + good[1:]))
    add("type_reserved_0", "frame type 0 is reserved", "Malformed", recrc(b"\x10" + good[1:]))
    add("station_zero", "station id 0", "Malformed", signed(0x11, 0, 1, T, b"\xa1\x01\x80", OTHER_KEY))
    add("station_too_big", "station id 2^30, above the largest (2^30-1)", "Malformed",
        signed(0x11, 2**30, 1, T, b"\xa1\x01\x80", OTHER_KEY))
    add("truncated_25", "25 bytes: one short of the smallest frame", "Truncated", good[:25])
    add("truncated_1", "a single byte between delimiters", "Truncated", b"\x11")
    add("oversize_frame", "a well-framed 1025-byte frame", "Oversize", good + bytes(1025 - len(good)))
    add("oversize_stream", "1100 bytes of noise without a delimiter", "Oversize",
        wire=bytes((i % 255) + 1 for i in range(1100)) + b"\x00")
    add("cobs_code_past_end", "a COBS code byte that points past the end", "Malformed",
        wire=b"\x05\x41\x42\x00")
    bad_body("body_not_cbor", "body byte 0xff (a break outside indefinite items)", b"\xff")
    bad_body("body_trailing", "a valid report followed by one more byte", b"\xa1\x01\x80\x00",
             cddl_detects=True)
    bad_body("body_indefinite", "indefinite-length series array", b"\xa1\x01\x9f\xff")
    bad_body("body_long_int", "dropped count 5 written in two bytes (not shortest)",
             b"\xa2\x01\x80\x02\x18\x05")
    bad_body("body_unsorted", "keys 2 before 1", b"\xa2\x02\x05\x01\x80")
    bad_body("body_duplicate_key", "key 1 twice", b"\xa2\x01\x80\x01\x80")
    bad_body("body_tagged", "a CBOR tag around the series", b"\xa1\x01\xc1\x80")
    bad_body("body_half_float", "flags as a half float", b"\xa2\x01\x80\x04\xf9\x3c\x00")
    bad_body("body_array", "body is an array, not a map", b"\x81\x80")
    bad_body("body_text_keys", "report with text keys", b"\xa1\x66series\x80")
    bad_body("report_no_series", "report without key 1", b"\xa1\x02\x05")
    bad_body("alarm_no_alarms", "alarm frame without key 3", b"\xa1\x01\x80", vt=0x12)
    bad_body("series_short", "series with three fields", b"\xa1\x01\x81\x83\x02\x19\x01\x2c\x00")
    bad_body("series_interval_zero", "series interval 0",
             b"\xa1\x01\x81\x84\x02\x00\x00\x41\x02")
    bad_body("series_values_array", "values as an array instead of a byte string",
             b"\xa1\x01\x81\x84\x02\x19\x01\x2c\x00\x81\x02")
    bad_body("values_unterminated", "values end inside a varint",
             b"\xa1\x01\x81\x84\x02\x19\x01\x2c\x00\x42\x02\x80", cddl_detects=False)
    bad_body("values_varint_6_bytes", "a six-byte varint",
             b"\xa1\x01\x81\x84\x02\x19\x01\x2c\x00\x46\x80\x80\x80\x80\x80\x01", cddl_detects=False)
    bad_body("values_int32_overflow", "a delta that leaves int32",
             b"\xa1\x01\x81\x84\x02\x19\x01\x2c\x00\x46\xfe\xff\xff\xff\x0f\x04", cddl_detects=False)
    bad_body("values_too_many", "one run token claiming 5000 unchanged values (limit 4096)",
             b"\xa1\x01\x81\x84\x02\x19\x01\x2c\x00\x43\x00\x9d\x4e", cddl_detects=False)
    bad_body("values_too_many_in_report", "two series of 2100 values each (limit 4096 per report)",
             b"\xa1\x01\x82\x84\x01\x19\x01\x2c\x00\x43\x00\xe5\x20"
             b"\x84\x02\x19\x01\x2c\x00\x43\x00\xe5\x20", cddl_detects=False)
    bad_body("quality_code_7", "quality code 7 is undefined",
             b"\xa1\x01\x81\x85\x02\x19\x01\x2c\x00\x41\x02\x83\x00\x01\x07")
    bad_body("quality_overlap", "two quality runs overlap",
             b"\xa1\x01\x81\x85\x02\x19\x01\x2c\x00\x42\x02\x01\x86\x00\x02\x01\x01\x01\x02",
             cddl_detects=False)
    bad_body("quality_not_merged", "adjacent runs with the same code",
             b"\xa1\x01\x81\x85\x02\x19\x01\x2c\x00\x42\x02\x01\x86\x00\x01\x01\x01\x01\x01",
             cddl_detects=False)
    bad_body("quality_past_end", "a run beyond the last value",
             b"\xa1\x01\x81\x85\x02\x19\x01\x2c\x00\x41\x02\x83\x00\x02\x01", cddl_detects=False)
    bad_body("alarm_kind_9", "alarm kind 9 is undefined", b"\xa2\x01\x80\x03\x81\x84\x09\x01\x00\x00",
             vt=0x12)
    bad_body("status_firmware_int", "status firmware version as an integer", b"\xa1\x03\x01", vt=0x13)
    bad_body("result_code_9", "result code 9 is undefined", b"\xa1\x01\x81\x82\x01\x09", vt=0x15)
    bad_body("command_args_null", "command with null args", b"\xa1\x02\x81\x83\x01\x04\xf6", vt=0x19)
    bad_body("ack_no_acks", "ack without key 1", b"\xa0", vt=0x18)
    bad_body("ack_empty", "ack listing no seq", b"\xa1\x01\x80", vt=0x18)
    bad_body("ack_other_seq", "ack whose list lacks the seq in its header (42)", b"\xa1\x01\x81\x18\x29",
             vt=0x18, cddl_detects=False)
    bad_body("report_default_dropped", "dropped written as 0 instead of left out", b"\xa2\x01\x80\x02\x00")
    bad_body("report_default_flags", "flags written as 0 instead of left out", b"\xa2\x01\x80\x04\x00")
    bad_body("alarm_level_with_window", "level_high alarm with a window",
             b"\xa2\x01\x80\x03\x81\x85\x02\x01\x00\x00\x18\x3c", vt=0x12)
    bad_body("alarm_rain_without_window", "rain alarm without its window",
             b"\xa2\x01\x80\x03\x81\x84\x01\x01\x00\x00", vt=0x12)
    bad_body("status_reset_cause_9", "reset cause 9 is undefined", b"\xa1\x05\x09", vt=0x13)
    bad_body("command_id_zero", "command ids start at 1", b"\xa1\x02\x81\x82\x00\x04", vt=0x19)
    # body map, commands, command, then args nested 14 deep: 17 arrays and maps in all
    bad_body("command_args_too_deep", "command args nesting arrays 17 deep with the body map (limit 16)",
             b"\xa1\x02\x81\x83\x01\x04" + b"\x81" * 13 + b"\x80", vt=0x19, cddl_detects=False)
    bad_body("status_oldest_past_uint32", "oldest unacknowledged time 2^32 (a uint32 field)",
             b"\xa1\x07\x1b\x00\x00\x00\x01\x00\x00\x00\x00", vt=0x13)
    bad_body("status_counters_unsorted", "status counters with key 2 before key 1",
             b"\xa1\x0b\xa2\x02\x01\x01\x01", vt=0x13)
    def console(v: Any) -> bytes:
        return b"\xa1\x0d" + cbor2.dumps(v)

    bad_body("status_console_text", "console changes as one text instead of an array",
             console("config report_interval 3600 -> 1800 s"), vt=0x13)
    bad_body("status_console_empty", "console changes as an empty array (absent means none)",
             console([]), vt=0x13)
    bad_body("status_console_nine", "nine console entries (at most 8)",
             console([[T, "config x"]] * 9), vt=0x13)
    bad_body("status_console_text_71", "a console text of 71 bytes (at most 70)",
             console([[T, "x" * 71]]), vt=0x13)
    bad_body("status_console_text_utf8_72", "a console text of 70 characters but 72 bytes of UTF-8",
             console([[T, "高" + "x" * 69]]), vt=0x13)
    bad_body("status_console_time_text", "a console entry whose time is text",
             console([["2026-06-15T10:00:00Z", "config x"]]), vt=0x13)
    bad_body("status_console_entry_flat", "a console entry that is not a [time, text] array",
             console([T, "config x"]), vt=0x13)
    bad_body("status_console_time_past_uint32", "a console entry time of 2^32",
             console([[2**32, "config x"]]), vt=0x13)
    replayed = c.encode_message(report("data", [series(1, [0])], seq=904), k)
    add("replay_window_edge", "seq 904 after seq 5000: just outside the 4096 window", "Replay",
        replayed, accepted=[5000])
    add("replay_old", "seq 42 after seq 10000", "Replay", good, accepted=[9000, 10000])
    return out


def _dump(o: Any) -> str:
    return json.dumps(o, indent=1, ensure_ascii=False) + "\n"


def build() -> dict[str, str]:
    """All vector files, as text."""
    valid = []
    for name, why, m in valid_messages():
        raw = c.encode_message(m, KEYS[m["station"]])
        valid.append({"name": name, "description": why, "message": m, "frame": raw.hex(),
                      "wire": c.wrap(raw).hex()})
    keys = {str(sid): key.hex() for sid, key in KEYS.items()}
    return {"valid.json": _dump(valid), "invalid.json": _dump(invalid_vectors()), "keys.json": _dump(keys)}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in build().items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(build())} to {OUT}")


if __name__ == "__main__":
    main()
