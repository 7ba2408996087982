"""``hydrolink gateway`` and ``hydrolink command``: the entries in the CLI's table."""

from __future__ import annotations

import asyncio
import sys
import time

from .config import ConfigError, parse_gateway_args
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
