"""Bytes on the wire per reading: one station day of 5-minute rain and level, hourly reports.

One day = 288 rain + 288 level readings, sent as 24 hourly reports of 12 + 12 values, each
report built 2-9 s after its hour. The day comes from ``common.simulate_day`` (a seeded storm
day; a dry day is printed too). Target: hydrolink ≤ 2.8 bytes/reading on the storm day (aim
2.5); the script exits 1 if it is missed.

Encodings compared, all of the same 24 reports:

* **hydrolink**: the real frames of ``protocol.codec.encode_frame`` (``data``, element 1 rain in
  0.1 mm, element 2 level in mm, interval 300), counted as sent: 13-byte header, CBOR body,
  8-byte tag, CRC-32, COBS and the 0x00 delimiter.
* **SenML-CBOR** (RFC 8428 §6): one pack per report, integer labels (bn −2, bt −3, n 0, u 1,
  v 2, t 6). The first record carries the base name ``urn:dev:hydrolink:<station>:`` and the
  base time (Unix seconds of the first value, HH−1:05); every record has its name (``rain``,
  ``water_level``), its unit and the value in the element's SI unit from ``elements.csv`` (rain
  mm, level m); ``t`` is the time relative to ``bt`` and is left out where it is 0 (the RFC's
  default). Integral values are CBOR integers, others the shortest float that keeps the value
  (``cbor2`` canonical). Bare payload: no framing, no integrity check, no authentication, so
  the comparison flatters SenML.
* **SenML-JSON** (RFC 8428 §5): the same packs, text labels, ``json.dumps`` with compact
  separators. Bare payload as well.
* **SL 651-2014** hourly report (小时报, function code 34H), HEX/BCD mode, built byte for byte
  with a CRC-16/Modbus (crcmod ``modbus``, sent high byte first, as the standard's examples
  show). Fields:

  ======================================== ====== ==========================================
  field                                    bytes  content here
  ======================================== ====== ==========================================
  start of frame 7E7EH                     2      ``7E 7E``
  center station address                   1      ``01``
  remote station address                   5      BCD, ``00 00 04 10 01`` for station 41001
  password                                 2      ``12 34``
  function code                            1      ``34`` (hourly report)
  up/down flag (4 bits) + body length (12) 2      ``0`` up, length of the body below
  start of body STX                        1      ``02``
  *body:* serial number                    2      1 .. 24, big-endian
  *body:* send time                        6      BCD YYMMDDhhmmss (Beijing time, UTC+8)
  *body:* station address identifier F1F1H 2+5    ``F1 F1`` + the address again
  *body:* station type                     1      ``4B`` ('K', reservoir)
  *body:* observation time identifier F0F0H 2+5   ``F0 F0`` + BCD YYMMDDhhmm (the hour)
  *body:* DRP identifier F460H             2+12   5-minute rain, 1 byte HEX each, 0.1 mm
  *body:* DRZ1 identifier F5C0H            2+24   5-minute relative level, 2 bytes HEX each,
                                                  0.01 m above the base level 65.00 m
  end of body ETX                          1      ``03``
  CRC-16/Modbus                            2      over ``7E7E`` .. ``ETX``
  ======================================== ====== ==========================================

  = 14 + 63 + 3 = 80 bytes per report, whatever the values. Two things favour SL 651 here:
  DRZ1 carries the level in centimetres (hydrolink: millimetres), and a real hourly report
  usually adds the current level, the rain total and the battery voltage, which are left out.
  No authentication either (the password field is a constant).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import crcmod.predefined

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.common import (  # noqa: E402
    INTERVAL,
    LEVEL,
    PER_DAY,
    RAIN,
    Day,
    HourlyReport,
    dry_day,
    hourly_reports,
    hydrolink_frames,
    hydrolink_wire,
    station_key,
    storm_day,
)
from protocol.codec import EPOCH_UNIX, to_datetime  # noqa: E402
from protocol.elements import ELEMENTS  # noqa: E402

TARGET = 2.8  # bytes per reading, hydrolink, storm day
AIM = 2.5
STATION = 41001
READINGS = 2 * PER_DAY  # 576

# SenML-CBOR labels (RFC 8428 Table 4)
BN, BT, N, U, V, T = -2, -3, 0, 1, 2, 6
SENML_JSON_LABELS = {BN: "bn", BT: "bt", N: "n", U: "u", V: "v", T: "t"}

crc16_modbus = crcmod.predefined.mkCrcFun("modbus")


# ---------------------------------------------------------------- SenML


def senml_pack(r: HourlyReport, station: int) -> list[dict[int, Any]]:
    """One SenML pack (list of records, integer labels) for one hourly report."""
    bt = EPOCH_UNIX + r.first
    records: list[dict[int, Any]] = []
    for element, values in ((RAIN, r.rain), (LEVEL, r.level)):
        e = ELEMENTS[element]
        for i, raw in enumerate(values):
            si = e.to_si(raw)
            rec: dict[int, Any] = {}
            if not records:
                rec[BN] = f"urn:dev:hydrolink:{station}:"
                rec[BT] = bt
            rec[N] = e.name
            rec[U] = e.unit
            if i:
                rec[T] = i * INTERVAL
            rec[V] = int(si) if float(si).is_integer() else si
            records.append(rec)
    return records


def senml_cbor(pack: list[dict[int, Any]]) -> bytes:
    return cbor2.dumps(pack, canonical=True)


def senml_json(pack: list[dict[int, Any]]) -> bytes:
    text = [{SENML_JSON_LABELS[k]: v for k, v in rec.items()} for rec in pack]
    return json.dumps(text, separators=(",", ":")).encode()


def senml_resolve(pack: list[dict[Any, Any]]) -> list[tuple[str, int, float]]:
    """Resolved records (full name, Unix time, value) of a decoded pack, integer or text labels."""
    def get(rec: dict[Any, Any], label: int, default: Any = None) -> Any:
        return rec.get(label, rec.get(SENML_JSON_LABELS[label], default))

    bn, bt, out = "", 0, []
    for rec in pack:
        bn = get(rec, BN, bn)
        bt = get(rec, BT, bt)
        out.append((bn + get(rec, N), bt + get(rec, T, 0), get(rec, V)))
    return out


# ---------------------------------------------------------------- SL 651-2014

SL651_CENTER = 0x01
SL651_PASSWORD = b"\x12\x34"
SL651_HOURLY = 0x34
SL651_RESERVOIR = b"K"  # station type 4BH
SL651_BASE_MM = 65_000  # DRZ1 is relative to this base level, in 0.01 m
BEIJING = timedelta(hours=8)


def bcd(digits: str) -> bytes:
    return bytes.fromhex(digits)


def sl651_address(station: int) -> bytes:
    return bcd(f"{station:010d}")


def sl651_hourly(r: HourlyReport, station: int, serial: int) -> bytes:
    """The SL 651-2014 HEX-mode hourly report of the module docstring's table."""
    addr = sl651_address(station)
    send = to_datetime(r.time) + BEIJING
    observed = to_datetime(r.hour_end) + BEIJING
    if max(r.rain) > 0xFE:
        raise ValueError("DRP holds at most 25.4 mm per 5 minutes")
    relative = [round((mm - SL651_BASE_MM) / 10) for mm in r.level]
    body = (
        serial.to_bytes(2, "big")
        + bcd(send.strftime("%y%m%d%H%M%S"))
        + b"\xf1\xf1" + addr
        + SL651_RESERVOIR
        + b"\xf0\xf0" + bcd(observed.strftime("%y%m%d%H%M"))
        + b"\xf4\x60" + bytes(r.rain)
        + b"\xf5\xc0" + b"".join(v.to_bytes(2, "big") for v in relative)
    )
    head = (
        b"\x7e\x7e" + bytes([SL651_CENTER]) + addr + SL651_PASSWORD + bytes([SL651_HOURLY])
        + (0x0000 | len(body)).to_bytes(2, "big")  # high nibble 0: uplink
        + b"\x02"
    )
    frame = head + body + b"\x03"
    return frame + crc16_modbus(frame).to_bytes(2, "big")


def sl651_parse(frame: bytes) -> dict[str, Any]:
    """Check an SL 651 hourly report (CRC, length, markers) and return its values."""
    if crc16_modbus(frame[:-2]) != int.from_bytes(frame[-2:], "big"):
        raise ValueError("SL 651 CRC-16 does not match")
    if frame[:2] != b"\x7e\x7e" or frame[13] != 0x02 or frame[-3] != 0x03:
        raise ValueError("SL 651 frame markers")
    length = int.from_bytes(frame[11:13], "big") & 0x0FFF
    body = frame[14:-3]
    if len(body) != length:
        raise ValueError(f"SL 651 length field {length} != body {len(body)}")
    i = body.index(b"\xf4\x60") + 2
    rain = list(body[i : i + 12])
    j = body.index(b"\xf5\xc0") + 2
    level_cm = [int.from_bytes(body[k : k + 2], "big") for k in range(j, j + 24, 2)]
    return {"function": frame[10], "serial": int.from_bytes(body[:2], "big"),
            "rain": rain, "level_cm": level_cm}


# ---------------------------------------------------------------- measure


@dataclass(frozen=True)
class Encoding:
    name: str
    messages: list[bytes]  # one per hourly report, as counted

    @property
    def total(self) -> int:
        return sum(len(m) for m in self.messages)

    @property
    def per_reading(self) -> float:
        return self.total / READINGS


@dataclass(frozen=True)
class DayResult:
    day: Day
    reports: list[HourlyReport]
    raw_frames: list[bytes]  # hydrolink, before COBS
    packs: list[list[dict[int, Any]]]  # SenML, integer labels
    encodings: dict[str, Encoding]

    @property
    def hydrolink(self) -> Encoding:
        return self.encodings["hydrolink"]


def measure(day: Day, station: int = STATION) -> DayResult:
    reports = hourly_reports(day, seed=day.start)
    raw = hydrolink_frames(reports, station, station_key(station))
    packs = [senml_pack(r, station) for r in reports]
    encodings = [
        Encoding("hydrolink", hydrolink_wire(raw)),
        Encoding("SenML-CBOR", [senml_cbor(p) for p in packs]),
        Encoding("SenML-JSON", [senml_json(p) for p in packs]),
        Encoding("SL 651-2014 HEX",
                 [sl651_hourly(r, station, serial) for serial, r in enumerate(reports, 1)]),
    ]
    return DayResult(day, reports, raw, packs, {e.name: e for e in encodings})


def run() -> dict[str, DayResult]:
    """Both days, measured. The module function the smoke test calls."""
    return {"storm": measure(storm_day()), "dry": measure(dry_day())}


def describe(label: str, res: DayResult) -> list[str]:
    d = res.day
    hourly = [sum(d.rain[i : i + 12]) for i in range(0, PER_DAY, 12)]
    lines = [
        f"{label} day {d.date:%Y-%m-%d}, station {STATION}: {READINGS} readings "
        f"({PER_DAY} rain + {PER_DAY} level) in {len(res.reports)} hourly data reports",
        f"  rain {sum(d.rain) / 10:.1f} mm, peak 5-min {max(d.rain) / 10:.1f} mm "
        f"({max(d.rain) * 12 / 10:.0f} mm/h), peak hour {max(hourly) / 10:.1f} mm; "
        f"level {d.level[0] / 1000:.3f} -> {d.level[-1] / 1000:.3f} m "
        f"(max {max(d.level) / 1000:.3f})",
    ]
    frames = res.raw_frames
    body = sum(len(f) - 25 for f in frames) / len(frames)
    wire = res.hydrolink.total / len(frames)
    lines.append(
        f"  hydrolink frame: {wire:.1f} B on the wire on average = header 13 + body {body:.1f} "
        f"+ tag 8 + CRC 4 + COBS/delimiter {wire - body - 25:.1f}"
    )
    lines.append(f"  {'encoding':<18}{'bytes':>8}{'B/reading':>11}{'x hydrolink':>13}")
    base = res.hydrolink.total
    for e in res.encodings.values():
        lines.append(
            f"  {e.name:<18}{e.total:>8}{e.per_reading:>11.2f}{e.total / base:>13.2f}"
        )
    return lines


def main() -> int:
    results = run()
    for label, res in results.items():
        print("\n".join(describe(label, res)))
        print()
    storm = results["storm"].hydrolink.per_reading
    dry = results["dry"].hydrolink.per_reading
    ok = storm <= TARGET
    verdict = "TARGET MET" if ok else "TARGET MISSED"
    print(
        f"hydrolink: storm day {storm:.2f} B/reading, dry day {dry:.2f} B/reading; "
        f"target <= {TARGET} (aim {AIM}) on the storm day: {verdict}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
