"""``hydrolink provision``: one station's configuration, key, PIN and registry entry, in one step.

Writes ``<out>/<id>/config.json`` (what ``firmware/config.py`` loads on the board, with
the station id, its new 32-byte HMAC key and the technician PIN's salted hash, as
``firmware/pin.py`` checks it), and appends the station to the registry TOML that the
gateway and the center read. The values are checked by the station's own rules: each
key by ``protocol/config_keys`` and the rules across keys by ``firmware/config.py``'s
``validate`` run here on CPython, so a configuration the board would refuse is never
written.

The registry is rewritten atomically (temp file, fsync, rename, fsync of the folder),
keeping every byte of the old text, comments included: a crash at any point leaves
the old file or the new one. A lock file keeps two provisions from racing. Secrets
(key, PIN) are printed only with ``--show-secrets``; a generated PIN goes to
``<out>/<id>/pin.txt`` (mode 600) for the technician.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from host_tools.field.build import fail
from host_tools.registry import RegistryError, parse_registry
from sim.mpy import FIRMWARE

MAX_ID = 2**30 - 1  # the firmware's station range (SPEC §1)
PIN_ITER = 1000  # firmware/pin.py ITER: part of the PIN format
PIN_SALT = 16  # bytes


class ProvisionError(Exception):
    """Bad values, a duplicate id, an unusable registry. ``str()`` is one line.

    ``status``: 1 a value or id refused (the default), 2 a bad file or usage.
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def firmware_config() -> ModuleType:
    """``firmware/config.py``, loaded as a CPython module (it is written to run on both)."""
    spec = importlib.util.spec_from_file_location("hydrolink_fw_config", FIRMWARE / "config.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check_key(key: str, value: Any) -> str | None:
    try:
        from protocol.config_keys import check_setting
    except ImportError:  # the table is not there: the firmware's own check below says why
        return None
    return check_setting(key, value)


def station_config(sid: int, settings: dict[str, Any], key: bytes, pin: str,
                   salt: bytes) -> dict[str, Any]:
    """The config.json object: the non-default settings, identity and PIN hash, validated."""
    if not 1 <= sid <= MAX_ID:
        raise ProvisionError(f"station id {sid} is outside 1 .. {MAX_ID} (the firmware's range)")
    if not (pin.isdigit() and 4 <= len(pin) <= 8):
        raise ProvisionError("the PIN must be 4 to 8 digits")
    for k, v in settings.items():
        why = _check_key(k, v)
        if why is not None:
            raise ProvisionError(why)
    d = dict(settings)
    d.update(station=sid, key=key.hex(), pin_salt=salt.hex(),
             pin_hash=hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, PIN_ITER).hex())
    fw = firmware_config()
    cfg, errors = fw.validate(d)
    if errors:
        raise ProvisionError("the station would refuse this configuration: " + "; ".join(errors))
    return {k: cfg[k] for k in sorted(cfg) if cfg[k] != fw.DEFAULTS.get(k)}


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")


def registry_entry(fields: dict[str, Any]) -> str:
    """A ``[[station]]`` table, fields in the given order (None values left out)."""
    lines = ["[[station]]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in fields.items() if v is not None]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: temp file in the same folder, fsync, rename, fsync folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def registered(path: Path, sid: int) -> bool:
    """True if the registry file lists ``sid`` (False when there is no file yet)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as e:
        raise ProvisionError(f"{path}: cannot read the registry: {e}", 2) from None
    try:
        return "[[station]]" in text and sid in parse_registry(text, path).stations
    except RegistryError as e:
        raise ProvisionError(str(e), 2) from None


def add_to_registry(path: Path, sid: int, entry: str) -> None:
    """Append one station table to the registry, atomically; refuses an id already listed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        try:
            old = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            old, mode = "", 0o600
        except (OSError, UnicodeDecodeError) as e:
            raise ProvisionError(f"{path}: cannot read the registry: {e}", 2) from None
        try:
            if "[[station]]" in old and sid in parse_registry(old, path).stations:
                raise ProvisionError(f"{path}: station {sid} is already registered; "
                                     "choose another id (or remove the old entry first)")
            sep = "" if not old or old.endswith("\n\n") else ("\n" if old.endswith("\n") else "\n\n")
            new = old + sep + entry
            parse_registry(new, path)  # what the gateway will read: it must take it
        except RegistryError as e:
            raise ProvisionError(str(e), 2) from None
        write_atomic(path, new.encode("utf-8"), mode)


def _settings(a: argparse.Namespace) -> dict[str, Any]:
    s: dict[str, Any] = {}

    def mm(m: float | None) -> int | None:
        return None if m is None else round(m * 1000)

    if a.sensors is not None and "water_level" not in a.sensors and a.level_sensor is None:
        s["level_sensor"] = "none"
    if a.level_sensor is not None:
        s["level_sensor"] = a.level_sensor
    for k, v in (("sample_interval", a.sample_interval), ("record_interval", a.record_interval),
                 ("report_interval", a.report_interval), ("level_4ma_mm", mm(a.level_4ma_m)),
                 ("level_20ma_mm", mm(a.level_20ma_m)), ("datum_mm", mm(a.datum_m)),
                 ("level_alarm_mm", mm(a.alarm_level_m)), ("level_low_mm", mm(a.low_level_m))):
        if v is not None:
            s[k] = v
    if a.tip_mm is not None:
        s["tip_tenths"] = round(a.tip_mm * 10)
    if a.rain_alarm_mm is not None:
        s["rain_alarm_tenths"] = round(a.rain_alarm_mm * 10)
    if a.rain_window_min is not None:
        s["rain_window_s"] = a.rain_window_min * 60
    for item in a.set or ():
        k, eq, text = item.partition("=")
        if not eq:
            raise ProvisionError(f"--set {item!r}: write KEY=VALUE, e.g. --set holdoff_s=30", 2)
        s[k.strip()] = _parse_value(k.strip(), text.strip())
    return s


def _parse_value(key: str, text: str) -> Any:
    try:
        from protocol.config_keys import ConfigKeyError, parse_setting
    except ImportError:
        try:
            return json.loads(text)
        except ValueError:
            return text
    try:
        return parse_setting(key, text)
    except ConfigKeyError as e:
        raise ProvisionError(str(e)) from None


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``hydrolink provision``."""
    ap = argparse.ArgumentParser(
        prog="hydrolink provision",
        description="Make a station's configuration, key and PIN, and add it to the registry.")
    ap.add_argument("station", type=int, help=f"station id, 1 .. {MAX_ID}")
    ap.add_argument("--name", required=True, help='station name, e.g. "Gaoqiao upstream"')
    ap.add_argument("--lat", type=float, help="latitude, degrees (WGS 84)")
    ap.add_argument("--lon", type=float, help="longitude, degrees (WGS 84)")
    ap.add_argument("--elevation", type=float, help="elevation, m")
    ap.add_argument("--timezone", help='IANA time zone for display, e.g. "Asia/Shanghai"')
    ap.add_argument("--notes", help="free text for the registry")
    ap.add_argument("--kind", choices=("river", "reservoir", "rain"), help="station kind for the center (SL 323)")
    ap.add_argument("--rain-day-start-hour", type=int, help="local hour the rain day starts (center; default 8)")
    ap.add_argument("--sensors", type=lambda t: [x.strip() for x in t.split(",") if x.strip()],
                    help="elements the station reports, comma-separated (default: rain,water_level,battery_voltage)")
    ap.add_argument("--level-sensor", choices=("4-20", "radar", "none"), help="water level sensor type")
    ap.add_argument("--level-4ma-m", type=float, help="level sensor reading at 4 mA, m")
    ap.add_argument("--level-20ma-m", type=float, help="level sensor reading at 20 mA, m")
    ap.add_argument("--datum-m", type=float, help="sensor zero above the station datum, m")
    ap.add_argument("--tip-mm", type=float, help="rain per bucket tip, mm (0.1, 0.2, 0.5)")
    ap.add_argument("--sample-interval", type=int, help="level sampling interval, s")
    ap.add_argument("--record-interval", type=int, help="record interval, s (divides 86400)")
    ap.add_argument("--report-interval", type=int, help="report interval, s")
    ap.add_argument("--alarm-level-m", type=float, help="station alarm stage, m (sends an alarm above it)")
    ap.add_argument("--low-level-m", type=float, help="low stage alarm, m")
    ap.add_argument("--rain-alarm-mm", type=float, help="rain alarm threshold, mm in the rain window")
    ap.add_argument("--rain-window-min", type=int, help="rain alarm window, minutes")
    for s in ("action", "warning", "guarantee"):
        ap.add_argument(f"--stage-{s}-m", type=float, help=f"{s} stage for the center, m")
    ap.add_argument("--flood-limit-m", type=float, help="flood-limit level for the center, m")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="any other station setting (protocol/config_keys.csv), repeatable")
    ap.add_argument("--pin", help="technician PIN, 4-8 digits (default: a random 6-digit PIN in pin.txt)")
    ap.add_argument("--registry", type=Path, default=Path("registry.toml"),
                    help="station registry TOML (default ./registry.toml)")
    ap.add_argument("--out", type=Path, default=Path("stations"),
                    help="where <id>/config.json goes (default ./stations)")
    ap.add_argument("--show-secrets", action="store_true", help="print the key and the PIN")
    return ap


def provision(a: argparse.Namespace, rng: secrets.SystemRandom | None = None) -> dict[str, Any]:
    """Do the provisioning of parsed arguments; returns the station's config.json object."""
    rng = rng or secrets.SystemRandom()
    key = bytes(rng.randrange(256) for _ in range(32))
    salt = bytes(rng.randrange(256) for _ in range(PIN_SALT))
    pin = a.pin if a.pin is not None else f"{rng.randrange(10**6):06d}"
    cfg = station_config(a.station, _settings(a), key, pin, salt)
    sensors = a.sensors if a.sensors is not None else ["rain", "water_level", "battery_voltage"]
    loc = None
    if a.lat is not None or a.lon is not None:
        if a.lat is None or a.lon is None:
            raise ProvisionError("give both --lat and --lon (or neither)", 2)
        loc = {"lat": a.lat, "lon": a.lon}
        if a.elevation is not None:
            loc["elevation_m"] = a.elevation
    fields: dict[str, Any] = {"id": a.station, "name": a.name, "key": key.hex(), "sensors": sensors,
                              "kind": a.kind, "timezone": a.timezone, "notes": a.notes, "location": loc,
                              "rain_day_start_hour": a.rain_day_start_hour}
    stages = {k: v for k, v in (("action", a.stage_action_m), ("warning", a.stage_warning_m),
                                ("guarantee", a.stage_guarantee_m), ("flood_limit", a.flood_limit_m))
              if v is not None}
    if stages:
        fields["stages"] = stages
    if "record_interval" in cfg:
        fields["record_interval_s"] = cfg["record_interval"]
    fields = _known_fields(fields)
    out = a.out / str(a.station)
    if registered(a.registry, a.station):
        raise ProvisionError(f"{a.registry}: station {a.station} is already registered; "
                             "choose another id (or remove the old entry first)")
    if (out / "config.json").exists():
        raise ProvisionError(f"{out / 'config.json'} exists: station {a.station} was provisioned "
                             "before; remove that folder to provision it again")
    add_to_registry(a.registry, a.station, registry_entry(fields))
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "config.json", (json.dumps(cfg, indent=1, sort_keys=True) + "\n").encode())
    if a.pin is None:
        write_atomic(out / "pin.txt", f"station {a.station} technician PIN: {pin}\n".encode())
    print(f"provisioned station {a.station} ({a.name}): {out / 'config.json'}, registry {a.registry}")
    if a.pin is None:
        print(f"the technician PIN is in {out / 'pin.txt'} (give it to the technician, then delete it)")
    if a.show_secrets:
        print(f"key {key.hex()}\nPIN {pin}")
    return cfg


def _known_fields(fields: dict[str, Any]) -> dict[str, Any]:
    # the optional registry fields arrive with the center (registry.py); until the
    # registry knows one, it would refuse the whole file, so leave it out
    from host_tools import registry
    known = set(getattr(registry, "_STATION_FIELDS", ()))
    return {k: v for k, v in fields.items() if k in known or not known}


def cmd_provision(argv: list[str]) -> int:
    """``hydrolink provision``: returns the exit status."""
    a = parser().parse_args(argv)
    try:
        provision(a)
    except ProvisionError as e:
        return fail(str(e), e.status)
    except OSError as e:
        return fail(f"cannot write: {e.strerror or e} ({e.filename})", 2)
    return 0
