"""The ``hydrolink`` CLI, run as a real process, against the golden vectors of protocol/vectors/."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from host_tools.registry import RegistryError, load_registry, parse_registry
from protocol.errors import ERRORS

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "protocol" / "vectors"
VALID: list[dict[str, Any]] = json.loads((VECTORS / "valid.json").read_text())
INVALID: list[dict[str, Any]] = json.loads((VECTORS / "invalid.json").read_text())
KEYS: dict[str, str] = json.loads((VECTORS / "keys.json").read_text())
BY_NAME = {v["name"]: v for v in VALID}
# Replay needs the gateway's memory of accepted seqs; decode shows every frame.
STATELESS_INVALID = [v for v in INVALID if v["error"] != "Replay"]
ALL_WIRE = b"".join(bytes.fromhex(v["wire"]) for v in VALID)


def hydrolink(*args: str | Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "host_tools.cli", *map(str, args)],
        input=stdin, capture_output=True, cwd=ROOT, timeout=120, check=False,
    )


def err_lines(r: subprocess.CompletedProcess[bytes]) -> list[str]:
    return r.stderr.decode().splitlines()


def json_lines(r: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A registry with the vectors' keys; station 1001 with every optional field."""
    path = tmp_path / "stations.toml"
    parts = []
    for sid, key in KEYS.items():
        parts.append(f'[[station]]\nid = {sid}\nname = "vector station {sid}"\nkey = "{key}"\n')
    parts[0] += (
        'sensors = ["rain", "water_level", "battery_voltage"]\n'
        'timezone = "Asia/Shanghai"\nnotes = "golden vectors"\n'
        "location = { lat = 29.871, lon = 119.642, elevation_m = 72.5 }\n"
    )
    path.write_text("\n".join(parts))
    path.chmod(0o600)  # keys: readable by the owner only, as the README says
    return path


# ---------------------------------------------------------------- decode


def test_decode_all_valid_vectors(keys: Path) -> None:
    r = hydrolink("decode", "--keys", keys, stdin=ALL_WIRE)
    assert r.returncode == 0, r.stderr
    assert err_lines(r) == [f"decoded {len(VALID)} frames, rejected 0"]
    out = json_lines(r)
    assert [(o["station"], o["seq"], o["type"]) for o in out] == [
        (v["message"]["station"], v["message"]["seq"], v["message"]["type"]) for v in VALID
    ]
    assert all(o["auth"] is True for o in out)


def test_decode_si_values(keys: Path) -> None:
    r = hydrolink("decode", "--keys", keys, stdin=ALL_WIRE)
    out = {v["name"]: o for v, o in zip(VALID, json_lines(r), strict=True)}

    dry = out["data_hourly_dry"]
    assert dry["time"] == "2026-06-15T10:00:03Z"
    rain, level = dry["series"]
    assert (rain["element"], rain["unit"], rain["interval_s"]) == ("rain", "mm", 300)
    assert rain["values"][0] == {"time": "2026-06-15T09:05:00Z", "value": 0.0, "quality": "good"}
    assert (level["element"], level["unit"]) == ("water_level", "m")
    assert level["values"][0] == {"time": "2026-06-15T09:05:00Z", "value": 70.123,
                                  "quality": "good"}
    assert level["values"][4]["value"] == 70.121
    assert level["values"][-1] == {"time": "2026-06-15T10:00:00Z", "value": 70.124,
                                   "quality": "good"}
    assert (dry["dropped"], dry["alarms"], dry["flags"]) == (0, [], [])

    missing = out["data_missing_middle"]["series"][0]["values"]
    assert [(v["value"], v["quality"]) for v in missing] == [
        (70.12, "good"), (None, "missing"), (None, "missing"), (70.126, "good")
    ]
    assert [v["quality"] for v in out["data_quality_codes"]["series"][0]["values"]] == [
        "good", "suspect", "out_of_range", "missing", "fault", "manual", "maintenance",
        "maintenance",
    ]
    assert out["data_dropped_flags"]["dropped"] == 1234
    assert out["data_dropped_flags"]["flags"] == ["low_power", "clock_unsynced", "backfill"]
    assert [v["value"] for v in out["data_negative"]["series"][0]["values"]] == [
        -3.5, -4.1, -1.2, 0.0, 0.7
    ]
    unknown = out["data_unknown_element"]["series"][0]
    assert (unknown["element"], unknown["unit"]) == (200, None)
    assert [v["value"] for v in unknown["values"]] == [1, 2, 3]

    alarm = out["alarm_rain_raised"]["alarms"][0]
    assert alarm == {"kind": "rain", "state": "raised", "value": 10.5, "threshold": 10.0,
                     "unit": "mm", "window_s": 1800}
    high, rise = out["alarm_level_high_and_rise"]["alarms"]
    assert (high["kind"], high["state"], high["value"], high["threshold"]) == (
        "level_high", "active", 70.31, 70.0)
    assert (rise["value"], rise["unit"], rise["window_s"]) == (0.3, "m", 3600)
    assert out["alarm_level_high_and_rise"]["flags"] == ["in_alarm"]

    status = out["status_full"]
    assert status["battery_v"] == 12.84
    assert status["temperature_degc"] == -1.5
    assert status["reset_cause"] == "watchdog"
    assert status["oldest_unacked"] == "2026-06-15T07:00:03Z"
    assert status["clock_offset_s"] == -3
    assert status["counters"] == {"tips": 1523, "sensor_faults": 0, "retries": 17,
                                  "watchdog_resets": 1}
    assert status["flags"] == ["clock_unsynced"]

    ack = out["ack_many_with_commands"]
    assert ack["acks"] == [40, 41, 42]
    assert [c["op"] for c in ack["commands"]] == ["set_config", "resend", "reboot"]
    assert ack["commands"][1]["args"] == ["2026-06-14T10:00:03Z", "2026-06-15T10:00:03Z"]
    assert out["command_unknown_op"]["commands"] == [{"id": 17, "op": 99}]
    assert [r["code"] for r in out["result_errors"]["results"]] == ["unknown_op", "bad_args",
                                                                   "refused"]
    assert out["data_header_extremes"]["station"] == 2**30 - 1
    assert out["data_header_extremes"]["time"] == "2024-01-01T00:00:01Z"


def test_decode_raw_gives_vector_messages_and_frames(keys: Path) -> None:
    r = hydrolink("decode", "--keys", keys, "--raw", "--with-frame", stdin=ALL_WIRE)
    assert r.returncode == 0
    out = json_lines(r)
    assert [o.pop("frame") for o in out] == [v["frame"] for v in VALID]
    assert out == [v["message"] for v in VALID]


def test_decode_hex_accepts_raw_frames_and_wire(keys: Path, tmp_path: Path) -> None:
    lines = ["# one capture, raw frames and wire bytes mixed", ""]
    lines += [v["frame"] if i % 2 else v["wire"].upper() for i, v in enumerate(VALID)]
    capture = tmp_path / "capture.hex"
    capture.write_text("\n".join(lines) + "\n")
    by_hex = hydrolink("decode", "--keys", keys, "--hex", capture)
    by_stream = hydrolink("decode", "--keys", keys, stdin=ALL_WIRE)
    assert by_hex.returncode == 0, by_hex.stderr
    assert by_hex.stdout == by_stream.stdout
    assert len(json_lines(by_hex)) == len(VALID)


def test_decode_encode_round_trip_is_byte_identical(keys: Path, tmp_path: Path) -> None:
    decoded = hydrolink("decode", "--keys", keys, stdin=ALL_WIRE)
    assert decoded.returncode == 0
    encoded = hydrolink("encode", "--keys", keys, stdin=decoded.stdout)
    assert encoded.returncode == 0, encoded.stderr
    assert err_lines(encoded) == [f"encoded {len(VALID)} frames, skipped 0 lines"]
    assert encoded.stdout == ALL_WIRE

    as_hex = hydrolink("encode", "--keys", keys, "--hex", "-o", tmp_path / "f.hex",
                       stdin=decoded.stdout)
    assert as_hex.returncode == 0
    assert (tmp_path / "f.hex").read_text().split() == [v["frame"] for v in VALID]


def test_encode_raw_messages_gives_vector_frames(keys: Path) -> None:
    messages = "".join(json.dumps(v["message"]) + "\n" for v in VALID).encode()
    r = hydrolink("encode", "--keys", keys, "--raw", "--hex", stdin=messages)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == [v["frame"] for v in VALID]


def test_invalid_vectors_each_rejected_with_reason(keys: Path) -> None:
    stream = b"".join(bytes.fromhex(v["wire"]) for v in STATELESS_INVALID)
    r = hydrolink("decode", "--keys", keys, stdin=stream)
    assert r.returncode == 1
    assert r.stdout == b""
    lines = err_lines(r)
    assert len(lines) == len(STATELESS_INVALID) + 1
    for vector, line in zip(STATELESS_INVALID, lines, strict=False):
        assert line.startswith(f"rejected: {vector['error']}: "), (vector["name"], line)
    counts = Counter(ERRORS[v["error"]].reason for v in STATELESS_INVALID)
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    assert lines[-1] == f"decoded 0 frames, rejected {len(STATELESS_INVALID)} ({detail})"
    assert "Traceback" not in r.stderr.decode()


def test_invalid_vectors_in_hex_mode(keys: Path, tmp_path: Path) -> None:
    capture = tmp_path / "invalid.hex"
    capture.write_text("".join(v["wire"] + "\n" for v in STATELESS_INVALID) + "zz not hex\n")
    r = hydrolink("decode", "--keys", keys, "--hex", capture)
    assert r.returncode == 1
    lines = err_lines(r)
    for n, (vector, line) in enumerate(zip(STATELESS_INVALID, lines, strict=False), 1):
        assert line.startswith(f"rejected: {vector['error']}: "), (vector["name"], line)
        assert line.endswith(f"(line {n})")
    assert lines[-2] == f"rejected: Malformed: not hexadecimal: give one frame per line as hex " \
        f"digits (line {len(STATELESS_INVALID) + 1})"
    assert lines[-1].startswith(f"decoded 0 frames, rejected {len(STATELESS_INVALID) + 1} (")


def test_replay_vectors_are_shown_not_rejected(keys: Path) -> None:
    replays = [v for v in INVALID if v["error"] == "Replay"]
    assert replays
    stream = b"".join(bytes.fromhex(v["wire"]) for v in replays) * 2  # duplicates too
    r = hydrolink("decode", "--keys", keys, stdin=stream)
    assert r.returncode == 0
    assert len(json_lines(r)) == 2 * len(replays)


def test_garbage_between_frames_is_skipped(keys: Path) -> None:
    noise = [b"\x01\x02\x03", b"\xff" * 40, bytes(range(1, 256)) * 5, b"\x07"]
    stream = bytearray(b"line noise at power-up\x00")
    for i, v in enumerate(VALID):
        stream += bytes.fromhex(v["wire"]) + noise[i % len(noise)] + b"\x00"
    stream += b"\x05\x41"  # the capture ends inside a frame
    r = hydrolink("decode", "--keys", keys, stdin=bytes(stream))
    clean = hydrolink("decode", "--keys", keys, stdin=ALL_WIRE)
    assert r.stdout == clean.stdout  # every frame decoded, in order, the same
    lines = err_lines(r)
    rejected = [line for line in lines if line.startswith("rejected: ")]
    assert len(rejected) == len(VALID) + 2
    assert rejected[-1].startswith("rejected: Truncated: input ended inside a frame: 2 bytes")
    assert lines[-1].startswith(f"decoded {len(VALID)} frames, rejected {len(VALID) + 2} (")
    assert r.returncode == 1


def test_no_auth_decodes_unknown_stations(keys: Path) -> None:
    unknown = next(v for v in INVALID if v["name"] == "tag_unknown_station")
    wire = bytes.fromhex(unknown["wire"])
    with_keys = hydrolink("decode", "--keys", keys, stdin=wire)
    assert with_keys.returncode == 1
    assert err_lines(with_keys)[0].startswith("rejected: BadTag: unknown station 9999")
    no_auth = hydrolink("decode", "--no-auth", stdin=wire)
    assert no_auth.returncode == 0, no_auth.stderr
    [frame] = json_lines(no_auth)
    assert (frame["station"], frame["auth"]) == (9999, False)
    # the CRC is still checked without keys
    bad_crc = bytes.fromhex(next(v for v in INVALID if v["error"] == "BadCrc")["wire"])
    r = hydrolink("decode", "--no-auth", stdin=bad_crc)
    assert r.returncode == 1
    assert err_lines(r)[0].startswith("rejected: BadCrc: ")


def test_decode_needs_keys_or_no_auth() -> None:
    r = hydrolink("decode", stdin=ALL_WIRE)
    assert r.returncode == 2
    assert "--keys" in r.stderr.decode() and "--no-auth" in r.stderr.decode()


def test_decode_missing_capture_file(keys: Path, tmp_path: Path) -> None:
    r = hydrolink("decode", "--keys", keys, tmp_path / "nope.bin")
    assert r.returncode == 2  # a bad file
    assert err_lines(r) == [f"hydrolink: cannot read {tmp_path / 'nope.bin'}: "
                            "No such file or directory"]


# ---------------------------------------------------------------- encode


def test_encode_reports_bad_lines_and_goes_on(keys: Path, tmp_path: Path) -> None:
    good = hydrolink("decode", "--keys", keys, stdin=bytes.fromhex(VALID[0]["wire"])).stdout
    good_line = good.decode().strip()
    other = json.loads(good_line) | {"station": 9999}
    wrong_unit = json.loads(good_line)
    wrong_unit["series"][1]["unit"] = "mm"
    text = "\n".join([
        good_line,
        '{"station": 1001, "seq": 1,',  # line 2: cut off
        "# a comment, then a blank line",
        "",
        json.dumps(other),  # line 5: no key
        json.dumps(wrong_unit),  # line 6
        json.dumps(VALID[0]["message"]),  # line 7: message JSON without --raw
        good_line,
    ]) + "\n"
    src = tmp_path / "frames.jsonl"
    src.write_text(text)
    r = hydrolink("encode", "--keys", keys, src)
    assert r.returncode == 1
    assert err_lines(r) == [
        f"{src}:2: not JSON: Expecting property name enclosed in double quotes (column 28)",
        f"{src}:5: station 9999 has no key in {keys}; add a [[station]] table for it",
        f"{src}:6: series[1].unit: 'mm', but water_level is in m",
        f"{src}:7: this is message JSON (it has 'body'); use --raw to encode it",
        "encoded 2 frames, skipped 4 lines",
    ]
    assert r.stdout == bytes.fromhex(VALID[0]["wire"]) * 2


def test_encode_from_hand_written_si(keys: Path) -> None:
    line = {
        "station": 1001, "seq": 7, "type": "data", "time": "2026-06-15T18:00:03+08:00",
        "series": [{"element": "water_level", "interval_s": 300, "values": [
            {"time": "2026-06-15T09:55:00Z", "value": 70.1},
            {"value": None, "quality": "fault"},
        ]}],
    }
    enc = hydrolink("encode", "--keys", keys, stdin=json.dumps(line).encode())
    assert enc.returncode == 0, enc.stderr
    dec = hydrolink("decode", "--keys", keys, stdin=enc.stdout)
    [frame] = json_lines(dec)
    assert frame["time"] == "2026-06-15T10:00:03Z"
    assert frame["series"][0]["values"] == [
        {"time": "2026-06-15T09:55:00Z", "value": 70.1, "quality": "good"},
        {"time": "2026-06-15T10:00:00Z", "value": None, "quality": "fault"},
    ]


def test_encode_rejects_what_a_receiver_would_reject(keys: Path) -> None:
    msg = json.loads(json.dumps(BY_NAME["alarm_rain_raised"]["message"]))
    msg["body"]["alarms"][0]["window"] = "half an hour"
    r = hydrolink("encode", "--keys", keys, "--raw", stdin=json.dumps(msg).encode())
    assert r.returncode == 1
    assert err_lines(r)[0].startswith("<stdin>:1: ")
    assert "alarm window must be an integer, not 'half an hour'" in err_lines(r)[0]
    assert r.stdout == b""


def test_encode_needs_keys() -> None:
    r = hydrolink("encode", stdin=b"{}")
    assert r.returncode == 2
    assert "--keys" in r.stderr.decode()


# ---------------------------------------------------------------- registry


def test_registry_full_station(keys: Path) -> None:
    reg = load_registry(keys)
    assert set(reg.keys) == {int(k) for k in KEYS}
    assert reg.keys[1001] == bytes.fromhex(KEYS["1001"])
    s = reg.stations[1001]
    assert s.sensors == ("rain", "water_level", "battery_voltage")
    assert s.location is not None and (s.location.lat, s.location.elevation_m) == (29.871, 72.5)
    assert s.timezone == "Asia/Shanghai"
    assert KEYS["1001"] not in repr(s)  # keys stay out of logs
    assert reg.stations[1002].location is None and reg.stations[1002].sensors == ()


KEY = "00" * 32
REGISTRY_ERRORS = [
    ("bad_hex", f'[[station]]\nid = 5\nname = "a"\nkey = "{"zz" * 32}"\n',
     "station 5: key is not hex (character 'z'); it must be 64 hex digits (32 bytes)"),
    ("short_key", f'[[station]]\nid = 5\nname = "a"\nkey = "{KEY[:-2]}"\n',
     "station 5: key has 62 hex digits, 64 needed (32 bytes)"),
    ("odd_key", f'[[station]]\nid = 5\nname = "a"\nkey = "{KEY[:-1]}"\n',
     "station 5: key has 63 hex digits, 64 needed (32 bytes)"),
    ("name_number", f'[[station]]\nid = 5\nname = 5\nkey = "{KEY}"\n',
     "station 5: name = 5 must be text in quotes"),
    ("id_too_big", f'[[station]]\nid = 1073741824\nname = "a"\nkey = "{KEY}"\n',
     "station table #1: id 1073741824 must be an integer 1 .. 1073741823"),
    ("duplicate", f'[[station]]\nid = 5\nname = "a"\nkey = "{KEY}"\n'
                  f'[[station]]\nid = 5\nname = "b"\nkey = "{KEY}"\n',
     "station 5: duplicate id (station tables #1 and #2); each id must appear once"),
    ("sensor", f'[[station]]\nid = 5\nname = "a"\nkey = "{KEY}"\nsensors = ["stage"]\n',
     "station 5: unknown sensor 'stage'; element names are rain, water_level"),
    ("syntax", f'[[station]]\nid = 5\nname = "a\nkey = "{KEY}"\n',
     "TOML syntax: "),
    ("id_zero", f'[[station]]\nid = 0\nname = "a"\nkey = "{KEY}"\n',
     "station table #1: id 0 must be an integer 1 .. 1073741823"),
    ("typo", f'[[station]]\nid = 5\nname = "a"\nkey = "{KEY}"\nsensor = ["rain"]\n',
     "station 5: unknown field 'sensor'; known: id, name, key,"),
    ("no_key", '[[station]]\nid = 5\nname = "a"\n', 'station 5: no key; add key = "<64 hex'),
    ("latitude", f'[[station]]\nid = 5\nname = "a"\nkey = "{KEY}"\n'
                 "location = { lat = 129.0, lon = 10.0 }\n",
     "station 5: location.lat = 129.0 is outside -90 .. 90"),
    ("timezone", f'[[station]]\nid = 5\nname = "a"\nkey = "{KEY}"\ntimezone = "Mars/Base"\n',
     "station 5: unknown timezone 'Mars/Base'"),
    ("empty", "# nothing yet\n", "no stations; add a [[station]] table"),
]


@pytest.mark.parametrize(("text", "message"), [(t, m) for _, t, m in REGISTRY_ERRORS],
                         ids=[name for name, _, _ in REGISTRY_ERRORS])
def test_registry_errors(text: str, message: str) -> None:
    with pytest.raises(RegistryError) as e:
        parse_registry(text, "st.toml")
    assert str(e.value).startswith(f"st.toml: {message}")
    assert "\n" not in str(e.value)


def test_registry_syntax_error_names_the_line() -> None:
    with pytest.raises(RegistryError, match=r"^st.toml: TOML syntax: .*line 3"):
        parse_registry(f'[[station]]\nid = 5\nname = "a\nkey = "{KEY}"\n', "st.toml")


@pytest.mark.parametrize("case", ["bad_hex", "duplicate", "short_key", "missing"])
def test_registry_errors_through_the_cli(case: str, tmp_path: Path) -> None:
    path = tmp_path / "stations.toml"
    if case != "missing":
        path.write_text(next(t for name, t, _ in REGISTRY_ERRORS if name == case))
    for command in ("decode", "encode"):
        r = hydrolink(command, "--keys", path, stdin=ALL_WIRE if command == "decode" else b"")
        assert r.returncode == 2  # a bad file
        [line] = err_lines(r)
        assert line.startswith(f"hydrolink: {path}: ")
        if case == "missing":
            assert line.endswith("no such file; give the station registry (TOML)")
        else:
            assert "station 5" in line
        assert r.stdout == b""


# ---------------------------------------------------------------- the command table


def test_usage() -> None:
    r = hydrolink("frobnicate")
    assert r.returncode == 2
    [line] = err_lines(r)
    assert line.startswith("hydrolink: unknown command 'frobnicate'; commands: decode, encode")
    r = hydrolink()
    assert r.returncode == 2 and "usage: hydrolink COMMAND" in r.stderr.decode()
    r = hydrolink("--help")
    assert r.returncode == 0 and "decode" in r.stdout.decode()


def test_a_registry_others_can_read_gives_a_warning(keys: Path) -> None:
    keys.chmod(0o644)
    r = hydrolink("decode", "--keys", keys, stdin=ALL_WIRE)
    assert (f"hydrolink: warning: {keys} is readable by other users (mode 0644) and holds the"
            f" station keys; chmod 600 {keys}") in err_lines(r)
    keys.chmod(0o600)
    r = hydrolink("decode", "--keys", keys, stdin=ALL_WIRE)
    assert not any("warning" in line for line in err_lines(r))
