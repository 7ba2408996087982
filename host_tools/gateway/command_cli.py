"""``hydrolink command``: queue, cancel and list the commands of stations.

Nothing an operator types here can hurt a station: the station must be in the
registry (the gateway's, found through ``--registry``, ``--config`` or the spool),
every ``key=value`` is checked against ``protocol/config_keys.csv`` before it is
queued, and every command expires (a week by default) unless answered first.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from protocol.codec import MAX_STATION
from protocol.elements import RESULT_CODES

from ..registry import RegistryError, load_registry
from .commands import OP_WORDS, CommandError, build_command
from .config import DEFAULT_SPOOL, ConfigError, load_toml
from .names import iso, op_name
from .spool import Spool, SpoolError
from .spool_commands import CommandRow

DEFAULT_EXPIRES = "7d"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(message)


def parse_expires(text: str, now: float) -> float | None:
    """``--expires``: a duration (``90m``, ``12h``, ``7d``), an ISO 8601 time, or ``never``."""
    if text == "never":
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if m:
        return now + float(m.group(1)) * _UNITS[m.group(2)]
    from datetime import UTC, datetime

    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--expires {text!r}: use a duration (90m, 12h, 7d), an ISO 8601 "
                           "time, or never") from None
    t = (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()
    if t <= now:
        raise CommandError(f"--expires {text!r} is in the past")
    return t


def _fail(message: str, status: int) -> int:
    print(f"hydrolink: {message}", file=sys.stderr)
    return status


def _parser() -> _Parser:
    p = _Parser(
        prog="hydrolink command",
        description="Queue a command for a station; the gateway delivers it in the station's "
        "next ACK and records the result. Forms: STATION key=value ... (set_config), "
        "STATION resend --from T --to T, STATION test-report | reboot | status-report | "
        "get-config [KEY ...]; STATION --cancel ID; --status [STATION] shows the commands.",
    )
    p.add_argument("station", nargs="?", type=int, help="station id")
    p.add_argument("words", nargs="*", help="key=value ... or " + " | ".join(OP_WORDS))
    p.add_argument("--from", dest="start", metavar="TIME", help="resend: ISO 8601 UTC")
    p.add_argument("--to", dest="end", metavar="TIME", help="resend: ISO 8601 UTC")
    p.add_argument("--expires", metavar="WHEN", default=DEFAULT_EXPIRES,
                   help="not sent after this: 90m, 12h, 7d (default), an ISO time, or never")
    p.add_argument("--cancel", type=int, metavar="ID", help="cancel the station's command ID")
    p.add_argument("--spool", metavar="PATH", help=f"the gateway's spool (default {DEFAULT_SPOOL})")
    p.add_argument("--config", metavar="FILE", help="the gateway's TOML file (spool, registry)")
    p.add_argument("--registry", metavar="FILE",
                   help="station registry (default: the gateway's, as saved in its spool)")
    p.add_argument("--status", action="store_true", help="show commands and their results")
    p.add_argument("--json", action="store_true", help="--status as JSON Lines")
    return p


def cmd_command(argv: list[str]) -> int:
    """Queue a command for a station (delivered in its next ACK), cancel one, or list them."""
    try:
        a = _parser().parse_intermixed_args(argv)
        spool_path, registry = a.spool, a.registry
        if a.config:
            file_cfg = load_toml(a.config)
            spool_path = spool_path or file_cfg.get("spool")
            registry = registry or file_cfg.get("registry")
        spool_path = spool_path or DEFAULT_SPOOL
        if not Path(spool_path).is_file():
            raise SpoolError(f"spool {spool_path}: no such file; give the gateway's --spool"
                             " (or --config)")
        if a.status:
            if a.words or a.cancel is not None:
                raise CommandError("--status takes at most a station id")
            return _status(spool_path, a.station, a.json)
        if a.station is None and a.cancel is not None:
            raise CommandError(f"give the station too: hydrolink command STATION --cancel "
                               f"{a.cancel}")
        if a.station is None:
            raise CommandError("give a station id and a command, e.g. 1001 report_interval=300")
        if not 1 <= a.station <= MAX_STATION:
            raise CommandError(f"station {a.station}: station ids are 1 .. {MAX_STATION}")
        if a.cancel is not None:
            if a.words:
                raise CommandError("--cancel ID takes no command words")
            return _cancel(spool_path, a.station, a.cancel)
        op, args = build_command(a.words, a.start, a.end)
        now = time.time()
        expires = parse_expires(a.expires, now)
        _check_station(spool_path, registry, a.station)
        spool = Spool(spool_path)
        try:
            cid = spool.queue_command(a.station, op, args, now=now, expires=expires)
        finally:
            spool.close()
    except (CommandError, ConfigError, RegistryError, SpoolError) as e:
        return _fail(str(e), 2)
    print(f"queued command {cid} for station {a.station}: {op_name(op)}"
          + ("" if args is None else f" {json.dumps(args)}")
          + " (delivered in the station's next ACK; expires "
          + ("never" if expires is None else iso(expires)) + ")")
    return 0


def _check_station(spool_path: str, registry: str | None, station: int) -> None:
    """The station must be in the registry: the one given, or the gateway's."""
    if not registry:
        spool = Spool(spool_path, readonly=True)
        try:
            registry = spool.meta("registry")
        finally:
            spool.close()
        if not registry:
            raise CommandError("no station registry: give --registry FILE or --config FILE "
                               "(or start the gateway once on this spool)")
    reg = load_registry(registry)
    if reg.get(station) is None:
        raise CommandError(f"station {station} is not in {registry}; check the id "
                           f"({len(reg.stations)} stations there)")


def _cancel(spool_path: str, station: int, cid: int) -> int:
    spool = Spool(spool_path)
    try:
        row = spool.cancel_command(station, cid)
    finally:
        spool.close()
    if row is None:
        return _fail(f"station {station} has no command {cid} (hydrolink command --status"
                     f" {station})", 2)
    if not row.live:
        return _fail(f"command {cid} of station {station} is already {state_of(row)}; "
                     "nothing to cancel", 1)
    print(f"cancelled command {cid} for station {station}: {op_name(row.op)}"
          + (f"; it went out in {row.sends} ACK(s) already, so the station may have run it"
             " (its result is still recorded)" if row.sends else "; it was never sent"))
    return 0


def state_of(r: CommandRow) -> str:
    """``waiting``, ``sent xN``, ``expired``, ``cancelled`` or the result code's name."""
    if r.result is not None:
        return RESULT_CODES[r.result] if 0 <= r.result < len(RESULT_CODES) else str(r.result)
    if r.ended is not None:
        return r.ended
    return "waiting" if r.sends == 0 else f"sent x{r.sends}"


def _t(t: float | None) -> str:
    return "-" if t is None else iso(t)[:19] + "Z"


def _status(path: str, station: int | None, as_json: bool) -> int:
    spool = Spool(path, readonly=True)
    try:
        rows = spool.commands(station)
    finally:
        spool.close()
    if as_json:
        for r in rows:
            obj: dict[str, Any] = {
                "station": r.station, "id": r.id, "op": op_name(r.op), "args": r.args,
                "queued": iso(r.queued), "sent": iso(r.sent) if r.sent else None,
                "sends": r.sends, "state": state_of(r), "detail": r.detail,
                "done": iso(r.done) if r.done else None,
                "expires": iso(r.expires) if r.expires else None,
            }
            print(json.dumps(obj))
        return 0
    if not rows:
        print("no commands" + ("" if station is None else f" for station {station}"))
        return 0
    print(f"{'station':>10} {'id':>4}  {'op':<13} {'state':<10} {'queued':<20} {'sent':<20} "
          f"{'expires':<20} args / detail")
    for r in rows:
        args = "" if r.args is None else json.dumps(r.args)
        detail = "" if r.detail is None else f" -> {json.dumps(r.detail)}"
        print(f"{r.station:>10} {r.id:>4}  {op_name(r.op):<13} {state_of(r):<10} "
              f"{_t(r.queued):<20} {_t(r.sent):<20} {_t(r.expires):<20} {args}{detail}")
    return 0
