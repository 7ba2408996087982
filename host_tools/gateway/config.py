"""Gateway configuration: flags, an optional TOML file, and their checks.

Flags override the file. Every problem is a :class:`ConfigError` whose message is
one line naming the flag or file key and what is wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import ssl
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

DEFAULT_SPOOL = "hydrolink-spool.db"


class ConfigError(Exception):
    """A bad flag, file or value. ``str()`` is one line."""


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SerialSpec:
    """A ``--serial`` URL split into what ``serial_for_url`` gets and the port settings."""

    url: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    rtscts: bool = False
    xonxoff: bool = False

    @property
    def name(self) -> str:
        return self.url


@dataclass
class Config:
    serial: list[str] = field(default_factory=list)
    listen: str | None = None
    mqtt: str | None = "mqtt://localhost:1883"
    mqtt_ca: str | None = None
    mqtt_cert: str | None = None
    mqtt_key: str | None = None
    mqtt_client_id: str | None = None
    topic_prefix: str = "hydrolink/v1"
    raw_hex: bool = False
    registry: str | None = None
    spool: str = DEFAULT_SPOOL
    spool_max_mb: float | None = None
    spool_reserve_mb: float = 8.0
    retain_days: float = 7.0
    metrics: str | None = None
    idle_timeout: float = 300.0
    max_connections: int = 10000
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    rtscts: bool = False
    xonxoff: bool = False
    log_level: str = "info"
    log_format: str = "text"
    summary_interval: float = 300.0
    # settings that came from the TOML file (name -> file), so an error names file and key
    origin: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def where(self, name: str) -> str:
        """``FILE: key`` for a setting from the file, ``--flag`` for one from the command line."""
        return f"{self.origin[name]}: {name}" if name in self.origin else (
            "--" + name.replace("_", "-"))

    # ------------------------------------------------------------ derived

    def listen_address(self) -> tuple[str, int] | None:
        return None if self.listen is None else host_port(self.listen, self.where("listen"))

    def metrics_address(self) -> tuple[str, int] | None:
        return None if self.metrics is None else host_port(self.metrics, self.where("metrics"))

    def mqtt_target(self) -> MqttTarget | None:
        return None if self.mqtt is None else parse_mqtt_url(self.mqtt, self.where("mqtt"))

    def serial_specs(self) -> list[SerialSpec]:
        return [parse_serial(u, self) for u in self.serial]

    def check(self) -> None:
        """Raise :class:`ConfigError` for the first bad value."""
        if not self.registry:
            raise ConfigError("no station registry: give --registry FILE (or registry = in the"
                              " config file)")
        if not self.serial and not self.listen:
            raise ConfigError("no inputs: give --serial URL and/or --listen HOST:PORT")
        self.listen_address()
        self.metrics_address()
        target = self.mqtt_target()
        if target and not target.tls and (self.mqtt_ca or self.mqtt_cert):
            raise ConfigError("--mqtt-ca/--mqtt-cert need an mqtts:// URL")
        for f in (self.mqtt_ca, self.mqtt_cert, self.mqtt_key):
            if f and not Path(f).is_file():
                raise ConfigError(f"{f}: no such file (TLS certificate or key)")
        if target and target.tls:
            tls_context(self.mqtt_ca, self.mqtt_cert, self.mqtt_key)
        for spec in self.serial_specs():
            check_serial(spec, self.where("serial"))
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"{self.where('log_level')} = {self.log_level!r}: use debug, info,"
                              " warning or error")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"{self.where('log_format')} = {self.log_format!r}: use text or"
                              " json")
        for name in ("idle_timeout", "max_connections", "retain_days", "summary_interval",
                     "baudrate"):
            value = getattr(self, name)
            if value <= 0:
                raise ConfigError(f"{self.where(name)} = {value}: must be positive")
        if self.spool_max_mb is not None and self.spool_max_mb <= 0:
            raise ConfigError(f"{self.where('spool_max_mb')} = {self.spool_max_mb}: must be"
                              " positive")
        if self.spool_reserve_mb < 0:
            raise ConfigError(f"{self.where('spool_reserve_mb')} = {self.spool_reserve_mb}: must"
                              " be 0 (none) or more")


def tls_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """The TLS context for mqtts://; ``ConfigError`` if a file is not what it should be."""
    try:
        ctx = ssl.create_default_context(cafile=ca)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"--mqtt-ca {ca}: not a PEM CA certificate ({e.args[-1]})") from None
    if cert:
        try:
            ctx.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(f"--mqtt-cert {cert} / --mqtt-key {key}: {e.args[-1]}") from None
    return ctx


def host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} {text!r}: use HOST:PORT, e.g. 0.0.0.0:7600")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def parse_mqtt_url(url: str, what: str = "--mqtt") -> MqttTarget:
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"{what} {url!r}: use mqtt://[user:pass@]host[:port] or mqtts://...")
    if not u.hostname:
        raise ConfigError(f"{what} {url!r}: no host")
    try:
        port = u.port or (8883 if u.scheme == "mqtts" else 1883)
    except ValueError:
        raise ConfigError(f"{what} {url!r}: bad port") from None
    return MqttTarget(
        u.hostname, port, u.scheme == "mqtts",
        unquote(u.username) if u.username else None,
        unquote(u.password) if u.password is not None else None,
    )


_SERIAL_OPTIONS = {"baudrate", "baud", "bytesize", "parity", "stopbits", "rtscts", "xonxoff"}


def parse_serial(url: str, cfg: Config) -> SerialSpec:
    """Take the port settings off a ``--serial`` URL's query; the rest goes to pyserial."""
    u = urlsplit(url)
    query = parse_qsl(u.query, keep_blank_values=True)
    mine = {k: v for k, v in query if k in _SERIAL_OPTIONS}
    rest = [(k, v) for k, v in query if k not in _SERIAL_OPTIONS]
    clean = urlunsplit((u.scheme, u.netloc, u.path, urlencode(rest), u.fragment)) if mine else url
    try:
        baud = int(mine.get("baudrate", mine.get("baud", cfg.baudrate)))
        bytesize = int(mine.get("bytesize", cfg.bytesize))
        parity = mine.get("parity", cfg.parity).upper()[:1]
        stopbits = float(mine.get("stopbits", cfg.stopbits))
    except ValueError:
        bad = next(f"{k}={v!r}" for k, v in mine.items() if k in ("baudrate", "baud",
                   "bytesize", "stopbits") and not _is_number(v)) if mine else ""
        raise ConfigError(f"{cfg.where('serial')} {url!r}: {bad or 'a setting'} is not a"
                          " number") from None
    if parity not in "NEOMS" or bytesize not in (5, 6, 7, 8) or stopbits not in (1, 1.5, 2):
        raise ConfigError(f"{cfg.where('serial')} {url!r}: parity N/E/O/M/S, bytesize 5..8, stopbits 1/1.5/2")
    if baud <= 0:
        raise ConfigError(f"--serial {url!r}: baud rate must be positive")
    return SerialSpec(
        clean, baud, bytesize, parity, stopbits,
        _flag(mine.get("rtscts"), cfg.rtscts), _flag(mine.get("xonxoff"), cfg.xonxoff),
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_serial(spec: SerialSpec, what: str = "--serial") -> None:
    """What pyserial can tell without opening the port: the URL's scheme and options
    (a device that is missing is not an error here; the gateway retries it)."""
    import serial

    try:
        port = serial.serial_for_url(
            spec.url, do_not_open=True, baudrate=spec.baudrate, bytesize=spec.bytesize,
            parity=spec.parity, stopbits=spec.stopbits, rtscts=spec.rtscts, xonxoff=spec.xonxoff)
        if "://" in spec.url and hasattr(port, "from_url"):
            port.from_url(spec.url)  # host, port and options of socket://, rfc2217://, ...
    except (ValueError, TypeError, serial.SerialException) as e:
        why = (str(e).splitlines() or [""])[0]
        if isinstance(e, TypeError) or not why:  # pyserial's parsers fail this way on no port
            why = "not a usable URL (socket://HOST:PORT, rfc2217://HOST:PORT, a device path)"
        raise ConfigError(f"{what} {spec.url!r}: {why}") from None


def _flag(v: str | None, default: bool) -> bool:
    return default if v is None else v.lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------- flags and file


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def gateway_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="hydrolink gateway",
        description="Receive frames from stations (serial ports, TCP), store them in a "
        "durable spool, ACK them, and publish them to MQTT. See README, section Gateway.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", metavar="FILE", help="TOML file with a [gateway] table")
    p.add_argument("--status", action="store_true",
                   help="print the running gateway's status (from its spool) and exit")
    p.add_argument("--json", action="store_true", help="--status as one JSON object")
    p.add_argument("--serial", action="append", metavar="URL",
                   help="serial port: /dev/ttyUSB0, socket://h:p, rfc2217://h:p, loop://; "
                   "?baudrate=9600&parity=N&bytesize=8&stopbits=1 (repeatable)")
    p.add_argument("--listen", metavar="HOST:PORT", help="TCP listener for cellular stations")
    p.add_argument("--mqtt", metavar="URL", help="broker: mqtt://user:pass@host:port or mqtts://")
    p.add_argument("--no-mqtt", dest="mqtt", action="store_const", const=None,
                   help="spool only, publish nothing")
    p.add_argument("--mqtt-ca", metavar="FILE", help="CA certificate for mqtts://")
    p.add_argument("--mqtt-cert", metavar="FILE", help="client certificate for mqtts://")
    p.add_argument("--mqtt-key", metavar="FILE", help="client key for mqtts://")
    p.add_argument("--mqtt-client-id", metavar="ID", help="MQTT client id")
    p.add_argument("--topic-prefix", metavar="PREFIX", help="default hydrolink/v1")
    p.add_argument("--raw-hex", action="store_true", help="add the raw frame in hex to payloads")
    p.add_argument("--registry", "--keys", dest="registry", metavar="FILE",
                   help="station registry (TOML); --keys as in decode/encode")
    p.add_argument("--spool", metavar="PATH", help=f"spool database (default {DEFAULT_SPOOL})")
    p.add_argument("--spool-max-mb", type=float, metavar="MB",
                   help="cap the spool's size; when full the gateway stops ACKing")
    p.add_argument("--spool-reserve-mb", type=float, metavar="MB",
                   help="disk held back beside the spool and given back when the disk fills,"
                        " so the gateway can make room by itself (default 8, 0: none)")
    p.add_argument("--retain-days", type=float, metavar="DAYS",
                   help="keep forwarded frames this long (default 7)")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus /metrics here")
    p.add_argument("--idle-timeout", type=float, metavar="S",
                   help="close TCP connections silent this long (default 300)")
    p.add_argument("--max-connections", type=int, metavar="N", help="default 10000")
    p.add_argument("--baudrate", type=int, metavar="BAUD", help="serial default 9600")
    p.add_argument("--bytesize", type=int, choices=(5, 6, 7, 8))
    p.add_argument("--parity", choices=("N", "E", "O", "M", "S"))
    p.add_argument("--stopbits", type=float, choices=(1, 1.5, 2))
    p.add_argument("--rtscts", action="store_true")
    p.add_argument("--xonxoff", action="store_true")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", choices=("text", "json"))
    p.add_argument("--summary-interval", type=float, metavar="S",
                   help="seconds between summary log lines (default 300)")
    return p


_FIELDS = {f.name: f for f in fields(Config)}


def load_toml(path: str) -> dict[str, Any]:
    """The ``[gateway]`` table of a TOML file, keys checked against :class:`Config`."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax: {e}") from None
    extra = set(doc) - {"gateway"}
    if extra:
        raise ConfigError(f"{path}: unknown table or key {sorted(extra)[0]!r}; put settings in"
                          " a [gateway] table")
    table = doc.get("gateway", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: gateway must be a table")
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise ConfigError(f"{path}: unknown key {key!r} in [gateway]; known: "
                              + ", ".join(_FIELDS))
        default = getattr(Config(), name)
        if name == "serial":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{path}: serial must be a list of URLs")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: {key} must be true or false")
        elif isinstance(default, int | float) and not isinstance(default, bool) or name in (
            "spool_max_mb",
        ):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{path}: {key} must be a number")
            if isinstance(default, int) and not isinstance(value, int):
                raise ConfigError(f"{path}: {key} must be an integer")
        elif not isinstance(value, str):
            raise ConfigError(f"{path}: {key} must be a string")
        out[name] = value
    base = Path(path).parent
    for name in ("registry", "spool", "mqtt_ca", "mqtt_cert", "mqtt_key"):
        if name in out and not Path(out[name]).is_absolute():
            out[name] = str(base / out[name])  # relative to the config file
    return out


def parse_gateway_args(argv: list[str]) -> tuple[Config, bool]:
    """Flags (and the file they name) to a checked :class:`Config`, and ``--status``."""
    if "--no-mqtt" in argv and any(a == "--mqtt" or a.startswith("--mqtt=") for a in argv):
        raise ConfigError("--no-mqtt and --mqtt URL contradict each other; give one of them")
    ns = vars(gateway_parser().parse_args(argv))
    status = bool(ns.pop("status", False))
    if ns.pop("json", False) and not status:
        raise ConfigError("--json goes with --status")
    values: dict[str, Any] = {}
    path = ns.pop("config", None)
    if path:
        values.update(load_toml(path))
    origin = {k: str(path) for k in values if k not in ns}
    values.update(ns)
    cfg = Config(**values, origin=origin)
    if not status:
        cfg.check()
    return cfg, status


def default_client_id(spool: str) -> str:
    """``hydrolink-gateway-<host>-<8 hex of the spool's path>``: two gateways on one host
    (each has its own spool) never take each other's MQTT session."""
    digest = hashlib.sha256(str(Path(spool).resolve()).encode()).hexdigest()[:8]
    return f"hydrolink-gateway-{socket.gethostname()}-{digest}"
