"""``hydrolink gateway`` and ``hydrolink command``: the entries in the CLI's table."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from ..registry import RegistryError, load_registry
from .commands import OP_WORDS, CommandError, build_command, op_name
from .config import DEFAULT_SPOOL, ConfigError, load_toml, parse_gateway_args
from .logs import setup_logging
from .payload import iso
from .service import GatewayError, serve
from .spool import Spool, SpoolError


def _fail(message: str, status: int = 1) -> int:
    print(f"hydrolink: {message}", file=sys.stderr)
    return status


def cmd_gateway(argv: list[str]) -> int:
    """Receive station frames (serial, TCP), spool, ACK, publish to MQTT."""
    try:
        cfg, status = parse_gateway_args(argv)
    except ConfigError as e:
        return _fail(str(e), 2)
    if status:
        return _print_status(cfg.spool)
    setup_logging(cfg.log_level, cfg.log_format)
    try:
        return asyncio.run(serve(cfg))
    except (GatewayError, SpoolError, ConfigError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return 130


def _print_status(path: str) -> int:
    try:
        spool = Spool(path, readonly=True)
        snap = spool.meta("stats")
        pending = spool.pending_count()
        total = spool.count()
        waiting = spool.commands(waiting_only=True)
        stations = spool.station_stats()
        spool.close()
    except SpoolError as e:
        return _fail(str(e))
    if not isinstance(snap, dict):
        return _fail(f"spool {path}: no status saved yet (has the gateway run?)")
    age = time.time() - float(snap.get("saved", 0))
    print(f"status saved {iso(float(snap['saved']))} ({age:.0f} s ago), gateway started "
          f"{iso(float(snap['started']))}")
    print(f"spool {path}: {total} frames, {pending} waiting for the broker"
          + (f"; NOT STORING: {snap['spool_error']}" if snap.get("spool_error") else ""))
    print(f"mqtt: {'connected' if snap.get('mqtt_connected') else 'DISCONNECTED'}"
          + (f" ({snap['mqtt_error']})" if snap.get("mqtt_error") else "")
          + f", {snap.get('forwarded', 0)} published")
    accepted = snap.get("accepted", {})
    print(f"frames: {sum(accepted.values())} accepted "
          f"({', '.join(f'{k} {v}' for k, v in sorted(accepted.items())) or 'none'}), "
          f"{snap.get('duplicates', 0)} duplicates, {snap.get('acks', 0)} ACKs, "
          f"{snap.get('refused', 0)} refused (spool)")
    rejected = {k: v for k, v in snap.get("rejected", {}).items() if v}
    print("rejected: " + (", ".join(f"{k} {v}" for k, v in rejected.items()) or "none"))
    print(f"commands waiting: {len(waiting)}; TCP connections: {snap.get('connections', 0)}")
    if stations:
        print(f"\n{'station':>10}  {'last seen':<24} {'frames':>8} {'dup':>6} {'bad crc':>8} "
              f"{'rejected':>8} {'clock off s':>11}  link")
        for sid, st in stations.items():
            seen = iso(st["last_seen"]) if st.get("last_seen") else "-"
            off = st.get("clock_offset")
            print(f"{sid:>10}  {seen:<24} {st['frames']:>8} {st['duplicates']:>6} "
                  f"{100 * st['bad_crc_rate']:>7.2f}% {st['rejected']:>8} "
                  f"{'-' if off is None else f'{off:+.0f}':>11}  {st.get('link', '')}")
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(message)


def cmd_command(argv: list[str]) -> int:
    """Queue a command for a station (delivered in its next ACK), or show commands."""
    p = _Parser(
        prog="hydrolink command",
        description="Queue a command for a station; the gateway delivers it in the station's "
        "next ACK and records the result. Forms: STATION key=value ... (set_config), "
        "STATION resend --from T --to T, STATION test-report | reboot | status-report | "
        "get-config [KEY ...]; --status [STATION] shows queued commands and results.",
    )
    p.add_argument("station", nargs="?", type=int, help="station id")
    p.add_argument("words", nargs="*", help="key=value ... or " + " | ".join(OP_WORDS))
    p.add_argument("--from", dest="start", metavar="TIME", help="resend: ISO 8601 UTC")
    p.add_argument("--to", dest="end", metavar="TIME", help="resend: ISO 8601 UTC")
    p.add_argument("--spool", metavar="PATH", help=f"the gateway's spool (default {DEFAULT_SPOOL})")
    p.add_argument("--config", metavar="FILE", help="the gateway's TOML file (for its spool)")
    p.add_argument("--registry", metavar="FILE", help="check the station is in this registry")
    p.add_argument("--status", action="store_true", help="show commands and their results")
    p.add_argument("--json", action="store_true", help="--status as JSON Lines")
    try:
        a = p.parse_intermixed_args(argv)
        spool_path = a.spool
        registry = a.registry
        if a.config:
            file_cfg = load_toml(a.config)
            spool_path = spool_path or file_cfg.get("spool")
            registry = registry or file_cfg.get("registry")
        spool_path = spool_path or DEFAULT_SPOOL
        if a.status:
            if a.words:
                raise CommandError("--status takes at most a station id")
            return _command_status(spool_path, a.station, a.json)
        if a.station is None:
            raise CommandError("give a station id and a command, e.g. 1001 report_interval=300")
        op, args = build_command(a.words, a.start, a.end)
        if registry:
            reg = load_registry(registry)
            if reg.get(a.station) is None:
                raise CommandError(f"station {a.station} is not in {registry}")
        if not Path(spool_path).exists():
            raise SpoolError(f"spool {spool_path}: no such file; give the gateway's --spool"
                             " (or --config)")
        spool = Spool(spool_path)
        try:
            cid = spool.queue_command(a.station, op, args)
        finally:
            spool.close()
    except (CommandError, ConfigError, RegistryError, SpoolError) as e:
        return _fail(str(e), 2 if isinstance(e, CommandError) else 1)
    print(f"queued command {cid} for station {a.station}: {op_name(op)}"
          + ("" if args is None else f" {json.dumps(args)}")
          + " (delivered in the station's next ACK)")
    return 0


def _command_status(path: str, station: int | None, as_json: bool) -> int:
    spool = Spool(path, readonly=True)
    try:
        rows = spool.commands(station)
    finally:
        spool.close()
    from protocol.elements import RESULT_CODES

    for r in rows:
        state = ("waiting" if r.sends == 0 else f"sent x{r.sends}") if r.result is None else (
            RESULT_CODES[r.result] if 0 <= r.result < len(RESULT_CODES) else str(r.result))
        if as_json:
            obj: dict[str, Any] = {
                "station": r.station, "id": r.id, "op": op_name(r.op), "args": r.args,
                "queued": iso(r.queued), "sent": iso(r.sent) if r.sent else None,
                "sends": r.sends, "state": state, "detail": r.detail,
                "done": iso(r.done) if r.done else None,
            }
            print(json.dumps(obj))
        else:
            args = "" if r.args is None else json.dumps(r.args)
            detail = "" if r.detail is None else f" {json.dumps(r.detail)}"
            print(f"{r.station:>10} #{r.id:<4} {op_name(r.op):<13} {args:<30} {state}{detail}")
    if not rows and not as_json:
        print("no commands" + ("" if station is None else f" for station {station}"))
    return 0
