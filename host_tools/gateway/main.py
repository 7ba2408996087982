"""``hydrolink gateway``: run it (until SIGTERM), or print a gateway's ``--status``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from .config import Config, ConfigError, parse_gateway_args
from .lock import holder
from .logs import setup_logging
from .names import iso
from .service import Gateway, GatewayError
from .spool import Spool, SpoolError

log = logging.getLogger("hydrolink.gateway")


def _fail(message: str, status: int = 2) -> int:
    print(f"hydrolink: {message}", file=sys.stderr)
    return status


def cmd_gateway(argv: list[str]) -> int:
    """Receive station frames (serial, TCP), spool, ACK, publish to MQTT."""
    try:
        cfg, status = parse_gateway_args(argv)
    except ConfigError as e:
        return _fail(str(e))
    if status:
        return print_status(cfg.spool, as_json="--json" in argv)
    setup_logging(cfg.log_level, cfg.log_format)
    try:
        return asyncio.run(serve(cfg))
    except (GatewayError, SpoolError, ConfigError) as e:  # it cannot start: exit 2
        return _fail(str(e))
    except KeyboardInterrupt:
        return 130


def _enough_files(wanted: int) -> None:
    """One descriptor per station connection: raise the soft limit (often 1024) if needed."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted or soft == resource.RLIM_INFINITY:
        return
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < wanted:
        log.warning("open file limit below --max-connections", extra={"fields": {
            "limit": new, "wanted": wanted, "hint": "raise LimitNOFILE / ulimit -n"}})


async def serve(cfg: Config, on_ready: Callable[[Gateway], None] | None = None) -> int:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the registry."""
    _enough_files(cfg.max_connections + 64 + 4 * len(cfg.serial))
    gw = Gateway(cfg)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, gw.reload_registry)
    try:
        await gw.start()
        if on_ready is not None:
            on_ready(gw)
        await stop.wait()
        log.info("stopping", extra={"fields": {"pending_commits": len(gw.pending)}})
    finally:
        await gw.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0


def status_of(path: str) -> dict[str, Any]:
    """Everything ``--status`` shows, read from the spool (and its lock)."""
    spool = Spool(path, readonly=True)
    try:
        snap = spool.meta("stats")
        out: dict[str, Any] = {
            "spool": path, "pid": holder(path), "frames": spool.count(),
            "pending": spool.pending_count(),
            "commands_waiting": len(spool.commands(waiting_only=True)),
            "stations": {str(k): v for k, v in spool.station_stats().items()},
        }
    finally:
        spool.close()
    out["running"] = out["pid"] is not None
    out["saved"] = snap if isinstance(snap, dict) else None
    return out


def print_status(path: str, as_json: bool = False) -> int:
    """``hydrolink gateway --status [--json]``; says so when no gateway runs on the spool."""
    try:
        st = status_of(path)
    except SpoolError as e:
        return _fail(str(e))
    if as_json:
        print(json.dumps(st))
        return 0
    snap = st["saved"]
    print(f"gateway: running (pid {st['pid']})" if st["running"] else
          f"gateway: NOT RUNNING (no gateway holds {path}); what follows is from its last run")
    if snap is None:
        print(f"spool {path}: no status saved yet (has the gateway run?)")
        return 0
    age = time.time() - float(snap.get("saved", 0))
    print(f"status saved {iso(float(snap['saved']))} ({age:.0f} s ago), gateway started "
          f"{iso(float(snap['started']))}")
    print(f"spool {path}: {st['frames']} frames, {st['pending']} waiting for the broker"
          + (f"; NOT STORING: {snap['spool_error']}" if snap.get("spool_error") else ""))
    print(f"mqtt: {'connected' if snap.get('mqtt_connected') else 'DISCONNECTED'}"
          + (f" ({snap['mqtt_error']})" if snap.get("mqtt_error") else "")
          + f", {snap.get('forwarded', 0)} published")
    inputs = snap.get("inputs") or {}
    print("inputs: " + ("; ".join(f"{k} {v}" for k, v in inputs.items()) or "none"))
    accepted = snap.get("accepted", {})
    print(f"frames: {sum(accepted.values())} accepted "
          f"({', '.join(f'{k} {v}' for k, v in sorted(accepted.items())) or 'none'}), "
          f"{snap.get('duplicates', 0)} duplicates, {snap.get('acks', 0)} ACKs, "
          f"{snap.get('refused', 0)} refused (spool)")
    rejected = {k: v for k, v in snap.get("rejected", {}).items() if v}
    print("rejected: " + (", ".join(f"{k} {v}" for k, v in rejected.items()) or "none"))
    print(f"commands waiting: {st['commands_waiting']}; TCP connections: "
          f"{snap.get('connections', 0)}")
    if st["stations"]:
        print(f"\n{'station':>10}  {'last seen':<24} {'frames':>8} {'dup':>6} {'bad crc':>8} "
              f"{'rejected':>8} {'clock off s':>11}  link")
        for sid, s in st["stations"].items():
            seen = iso(s["last_seen"]) if s.get("last_seen") else "-"
            off = s.get("clock_offset")
            print(f"{sid:>10}  {seen:<24} {s['frames']:>8} {s['duplicates']:>6} "
                  f"{100 * s['bad_crc_rate']:>7.2f}% {s['rejected']:>8} "
                  f"{'-' if off is None else f'{off:+.0f}':>11}  {s.get('link', '')}")
    return 0
