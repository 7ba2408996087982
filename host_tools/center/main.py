"""``hydrolink center``: run a receiver worker, or show the store's counters (``--status``)."""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..gateway.config import ConfigError, host_port
from ..gateway.logs import setup_logging
from ..registry import RegistryError, load_registry
from .db import StoreError
from .schema import SchemaError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hydrolink center",
        description="Receive the gateway's MQTT messages and store every reading once "
                    "(acknowledged to the broker only after the database committed it).")
    p.add_argument("--mqtt", metavar="URL", help="broker: mqtt://[user:pass@]host[:port] or mqtts://")
    p.add_argument("--db", metavar="URL", required=True, help="sqlite:///PATH or postgresql://user@host/db")
    p.add_argument("--registry", metavar="FILE", help="station registry TOML (metadata; SIGHUP reloads it)")
    p.add_argument("--share", metavar="GROUP", help="MQTT 5 shared subscription $share/GROUP/... (several workers)")
    p.add_argument("--client-id", metavar="ID", help="MQTT client id of this worker's persistent session")
    p.add_argument("--topic-prefix", metavar="PREFIX", default="hydrolink/v1",
                   help="the gateway's --topic-prefix (default hydrolink/v1)")
    p.add_argument("--mqtt-version", choices=("5", "3.1.1"), default="5", help="MQTT protocol (default 5)")
    p.add_argument("--batch", type=int, default=500, metavar="N", help="messages per transaction at most (500)")
    p.add_argument("--batch-ms", type=float, default=50.0, metavar="MS",
                   help="longest wait to fill a batch after its first message (50)")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics here")
    p.add_argument("--status", action="store_true", help="print the store's counters and exit")
    p.add_argument("--gaps", action="store_true",
                   help="list the gaps the watch tracks (detected/requested/recovered/lost) and exit")
    p.add_argument("--gateway-spool", metavar="PATH", action="append",
                   help="the gateway's spool file: missing readings are requested there (resend); "
                        "repeat for several gateways (on this host or shared storage)")
    p.add_argument("--watch", action=argparse.BooleanOptionalAction, default=None,
                   help="run gaps, center alarms and QC in this worker (default: on, off with --share: "
                        "run it in exactly one worker)")
    p.add_argument("--watch-every", type=float, default=10.0, metavar="S", help="watch period in seconds (10)")
    p.add_argument("--gap-delay", type=float, default=600.0, metavar="S",
                   help="request a gap once it is this old (600)")
    p.add_argument("--gap-retry", type=float, default=1800.0, metavar="S",
                   help="send a request again after S seconds without its data (1800; at least two report periods)")
    p.add_argument("--gap-attempts", type=int, default=3, metavar="N", help="requests before a gap is lost (3)")
    p.add_argument("--http", metavar="HOST:PORT",
                   help="also serve the web dashboard here, in this process (see hydrolink dashboard)")
    p.add_argument("--json", action="store_true", help="with --status: JSON")
    p.add_argument("--exact", action="store_true",
                   help="with --status: COUNT(*) each table (a full scan) instead of the cheap counts")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    return p


def status(db_url: str, exact: bool = False) -> dict[str, Any]:
    """What ``--status`` prints: table counts, rejects by reason, each worker's counters."""
    from .store import open_store

    with open_store(db_url) as store:
        last = [{"received": r, "topic": t, "reason": why, "detail": d} for r, t, why, d, _ in store.rejects(5)]
        return {"schema_version": store.schema_version(), "counts": store.counts(exact),
                "counts_are": store.counts_meaning(exact),
                "rejects": store.reject_counts(), "last_rejects": last,
                "workers": [{"worker": w, "started": s, "updated": u, **st} for w, s, u, st in store.workers()]}


def _print_status(st: dict[str, Any]) -> None:
    print(f"schema version {st['schema_version']}; {st['counts_are']}:")
    for name, n in st["counts"].items():
        print(f"  {name:<16} {n:>12,}")
    if st["rejects"]:
        print("rejected messages by reason:")
        for reason, n in st["rejects"].items():
            print(f"  {reason:<16} {n:>12,}")
        print("last rejected (the message is kept in the rejects table):")
        for r in st["last_rejects"]:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["received"]))
            print(f"  {when} {r['topic']} {r['reason']}: {r['detail']}")
    for w in st["workers"]:
        ago = time.time() - w["updated"]
        print(f"worker {w['worker']}: {w.get('messages', 0):,} messages, "
              f"{w.get('readings_inserted', 0):,} readings stored, {w.get('readings_duplicate', 0):,} "
              f"duplicates, {w.get('readings_revised', 0):,} revised, {w.get('rejected', 0):,} rejected, "
              f"{w.get('db_errors', 0):,} database errors; updated {ago:.0f} s ago")


def cmd_center(argv: list[str]) -> int:
    """Entry point of ``hydrolink center``."""
    args = _parser().parse_args(argv)
    try:
        if args.status:
            st = status(args.db, args.exact)
            print(json.dumps(st, indent=1)) if args.json else _print_status(st)
            return 0
        if args.gaps:
            from .watchtask import print_gaps

            return print_gaps(args.db, as_json=args.json)
        if not args.mqtt:
            print("hydrolink: center needs --mqtt URL (or --status)", file=sys.stderr)
            return 2
        if args.share and args.mqtt_version != "5":
            print("hydrolink: --share needs --mqtt-version 5 (shared subscriptions are MQTT 5)", file=sys.stderr)
            return 2
        if args.batch < 1 or args.batch_ms < 0:
            print("hydrolink: --batch must be 1 or more and --batch-ms 0 or more", file=sys.stderr)
            return 2
        if args.gap_delay < 0 or args.gap_retry <= 0 or args.gap_attempts < 1 or args.watch_every < 0:
            print("hydrolink: --gap-delay must be 0 or more, --gap-retry above 0, --gap-attempts 1 or more "
                  "and --watch-every 0 or more", file=sys.stderr)
            return 2
        for spool in args.gateway_spool or ():
            if not Path(spool).is_file():
                print(f"hydrolink: --gateway-spool {spool}: no such file; give the gateway's "
                      "spool (its --spool)", file=sys.stderr)
                return 2
        metrics = host_port(args.metrics, "--metrics") if args.metrics else None
        if args.registry:
            load_registry(args.registry)  # a bad registry is a usage error at start (later: logged, kept)
        return _run(args, metrics)
    except (StoreError, SchemaError, RegistryError, ConfigError) as e:
        print(f"hydrolink: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, metrics: tuple[str, int] | None) -> int:
    from .gaps import GapPolicy
    from .receiver import Center

    setup_logging(args.log_level, args.log_format)
    center = Center(args.db, args.mqtt, registry=args.registry, share=args.share, client_id=args.client_id,
                    protocol=args.mqtt_version, batch_max=args.batch, batch_wait=args.batch_ms / 1000,
                    topic_prefix=args.topic_prefix, gateway_spool=args.gateway_spool,
                    watch=not args.share if args.watch is None else args.watch, watch_every=args.watch_every,
                    gap_policy=GapPolicy(args.gap_delay, args.gap_retry, args.gap_attempts))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGHUP, lambda *_: center.reload_registry())
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 prints every thread's stack on stderr
    stop_http = None
    if args.http:  # the dashboard (owner: dashboard), on the same database, in this process
        from host_tools.dashboard.main import UsageError, start_dashboard

        try:
            stop_http = start_dashboard(args.db, args.http, gateway_spool=(args.gateway_spool or [None])[0])
        except UsageError as e:
            print(f"hydrolink: {e}", file=sys.stderr)
            return 2
    center.start()
    server = None
    if metrics is not None:
        from .metrics import serve_metrics

        try:
            server = serve_metrics(metrics[0], metrics[1], center.snapshot)
        except OSError as e:
            center.stop()
            print(f"hydrolink: --metrics {args.metrics}: cannot listen: {e.strerror or e}", file=sys.stderr)
            return 2
    try:
        while not done.wait(1.0):
            pass
    finally:
        center.stop()
        if server is not None:
            server.shutdown()
            server.server_close()
        if stop_http is not None:
            stop_http()
    return 0
