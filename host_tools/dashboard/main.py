"""``hydrolink dashboard`` (serve the web dashboard) and ``hydrolink users`` (its accounts)."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from host_tools.center.db import StoreError
from host_tools.center.schema import SchemaError
from host_tools.registry import RegistryError, load_registry

from . import users


class UsageError(Exception):
    """Bad command line; ``str()`` is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _fail(message: str, status: int) -> int:
    print(f"hydrolink: {message}", file=sys.stderr)
    return status


def parse_http(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) to (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise UsageError(f"--http {text!r}: give HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(db: str, *, no_auth: bool, host: str, registry: str | None,
              gateway_spool: str | None, session_hours: float) -> Any:
    """The dashboard app for the command line's options (checks ``--no-auth`` is loopback)."""
    if no_auth and not is_loopback(host):
        raise UsageError(f"--no-auth serves without a login, so only on a loopback address "
                         f"(127.0.0.1, ::1), not {host}")
    from host_tools.center.store import open_store

    from .app import create_app

    reg = load_registry(registry) if registry else None
    if reg is not None:
        store = open_store(db)
        try:
            store.sync_stations(reg.stations.values())
        finally:
            store.close()
    return create_app(db, no_auth=no_auth, gateway_spool=gateway_spool, registry=reg,
                      session_ttl_s=session_hours * 3600)


def _add_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gateway-spool", metavar="PATH",
                   help="the gateway's spool: station pages show and queue commands")
    p.add_argument("--no-auth", action="store_true",
                   help="no login (everyone is an operator); loopback addresses only")
    p.add_argument("--session-hours", type=float, default=8.0, metavar="H",
                   help="a login lasts this long (default 8)")


def cmd_dashboard(argv: list[str]) -> int:
    """Serve the web dashboard over the center database."""
    p = _Parser(prog="hydrolink dashboard",
                description="Serve the dispatch-room dashboard (overview, station pages, alarms) "
                "over the center database; users sign in (hydrolink users add).")
    p.add_argument("--db", required=True, metavar="URL", help="sqlite:///PATH or postgresql://...")
    p.add_argument("--http", default="127.0.0.1:8080", metavar="HOST:PORT",
                   help="listen address (default 127.0.0.1:8080)")
    p.add_argument("--registry", metavar="FILE", help="station registry to sync into the database")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="server processes (default 1); each computes its own overview")
    _add_server_args(p)
    try:
        a = p.parse_args(argv)
        host, port = parse_http(a.http)
        app = build_app(a.db, no_auth=a.no_auth, host=host, registry=a.registry,
                        gateway_spool=a.gateway_spool, session_hours=a.session_hours)
        if a.workers < 1:
            raise UsageError("--workers must be 1 or more")
    except UsageError as e:
        return _fail(str(e), 2)
    except (StoreError, SchemaError, RegistryError) as e:
        return _fail(str(e), 1)
    import uvicorn

    from host_tools.gateway.logs import setup_logging

    setup_logging(a.log_level, "text")
    print(f"hydrolink dashboard on http://{a.http}/" + (" (no login)" if a.no_auth else ""),
          file=sys.stderr)
    if a.workers > 1:  # each worker process builds the app from the same options
        os.environ[ENV] = json.dumps({"db": a.db, "no_auth": a.no_auth, "gateway_spool": a.gateway_spool,
                                      "session_hours": a.session_hours})
        uvicorn.run("host_tools.dashboard.main:app_from_env", factory=True, workers=a.workers,
                    host=host, port=port, log_level="warning", access_log=False)
    else:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


ENV = "HYDROLINK_DASHBOARD"


def app_from_env() -> Any:
    """The app of one ``--workers`` process, from the options its parent put in the environment."""
    from .app import create_app

    o = json.loads(os.environ[ENV])
    return create_app(o["db"], no_auth=o["no_auth"], gateway_spool=o["gateway_spool"],
                      session_ttl_s=o["session_hours"] * 3600)


def start_in_thread(app: Any, host: str, port: int) -> tuple[Any, threading.Thread]:
    """Serve ``app`` from a thread (``hydrolink center --http``); ``server.should_exit = True``
    stops it."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name="dashboard-http", daemon=True)
    thread.start()
    return server, thread


def start_dashboard(db: str, http: str, *, gateway_spool: str | None = None,
                    registry: str | None = None, no_auth: bool = False,
                    session_hours: float = 8.0) -> Callable[[], None]:
    """Serve the dashboard from a thread of the calling process (``hydrolink center --http``);
    returns the function that stops it. Raises :class:`UsageError` for a bad ``--http``."""
    host, port = parse_http(http)
    app = build_app(db, no_auth=no_auth, host=host, registry=registry, gateway_spool=gateway_spool,
                    session_hours=session_hours)
    server, thread = start_in_thread(app, host, port)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)

    return stop


def _password(a: argparse.Namespace) -> str:
    if a.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {a.name}: ")
    if getpass.getpass("again: ") != first:
        raise users.UserError("the two passwords differ")
    return first


def cmd_users(argv: list[str]) -> int:
    """Add, remove or list the dashboard's users (viewer / operator)."""
    p = _Parser(prog="hydrolink users",
                description="Dashboard accounts in the center database. A viewer reads; an "
                "operator also acknowledges alarms and queues commands.")
    sub = p.add_subparsers(dest="what", required=True, parser_class=_Parser)
    add = sub.add_parser("add", help="add a user (password from the terminal or stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["viewer", "operator"])
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--replace", action="store_true", help="give an existing user a new role "
                     "and password (ends their sessions)")
    rm = sub.add_parser("remove", help="remove a user (ends their sessions)")
    rm.add_argument("name")
    sub.add_parser("list", help="list users")
    for sp in (add, rm, sub.choices["list"]):
        sp.add_argument("--db", required=True, metavar="URL", help="the center database")
    try:
        a = p.parse_args(argv)
    except UsageError as e:
        return _fail(str(e), 2)
    from host_tools.center.store import open_store

    try:
        store = open_store(a.db)
    except (StoreError, SchemaError) as e:
        return _fail(str(e), 1)
    try:
        if a.what == "add":
            users.check_name(a.name)
            account = users.add_user(store.db, a.name, a.role, _password(a), replace=a.replace)
            print(f"user {account.name} ({account.role}) added")
        elif a.what == "remove":
            users.remove_user(store.db, a.name)
            print(f"user {a.name} removed")
        else:
            rows = users.list_users(store.db)
            for u in rows:
                from datetime import UTC, datetime

                when = datetime.fromtimestamp(u.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                print(f"{u.name:<24} {u.role:<9} added {when}")
            if not rows:
                print("no users; add one with: hydrolink users add NAME --role operator --db URL")
    except users.UserError as e:
        return _fail(str(e), 1)
    finally:
        store.close()
    return 0


logging.getLogger("hydrolink.dashboard").addHandler(logging.NullHandler())
