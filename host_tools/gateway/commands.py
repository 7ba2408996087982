"""Downlink commands (SPEC §7): queued in the spool, delivered in ACKs until answered.

``hydrolink command`` writes rows into the spool's ``commands`` table from any
process; the gateway notices (SQLite ``data_version``), and puts every waiting
command of a station into each ACK it sends that station until the station's
``result`` frame for that id arrives.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from protocol.codec import Command, from_datetime
from protocol.config_keys import (
    CONFIG_KEYS,
    PROVISIONING_ONLY,
    ConfigKeyError,
    check_setting,
    parse_setting,
)

from .names import op_name
from .spool_commands import CommandRow

SET_CONFIG, GET_CONFIG, RESEND, TEST_REPORT, REBOOT, STATUS_REPORT = 1, 2, 3, 4, 5, 6
MAX_PER_ACK = 8
# Sub-command words of ``hydrolink command STATION WORD ...``
OP_WORDS = {
    "set": SET_CONFIG, "get-config": GET_CONFIG, "resend": RESEND, "test-report": TEST_REPORT,
    "reboot": REBOOT, "status-report": STATUS_REPORT,
}


class CommandError(ValueError):
    """A command line that cannot become a command. ``str()`` is one line."""


class CommandBook:
    """The waiting commands of every station, in memory, mirrored from the spool."""

    def __init__(self) -> None:
        self.waiting: dict[int, list[CommandRow]] = {}
        self.known: dict[int, dict[int, tuple[int, Any]]] = {}  # station -> id -> (op, args)
        self.announced: set[tuple[int, int]] = set()  # (station, id) whose first send is out

    def load(self, rows: Sequence[CommandRow]) -> None:
        waiting: dict[int, list[CommandRow]] = {}
        known: dict[int, dict[int, tuple[int, Any]]] = {}
        for r in rows:
            known.setdefault(r.station, {})[r.id] = (r.op, r.args)
            if r.live:
                waiting.setdefault(r.station, []).append(r)
        self.waiting, self.known = waiting, known

    def first_sends(self, station: int, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Of the commands just sent in an ACK, those going out for the first time (since
        this gateway started), as event entries ``{"id", "op", ?"args"}``."""
        out = []
        for i in ids:
            if (station, i) not in self.announced:
                self.announced.add((station, i))
                op, args = self.known.get(station, {}).get(i, (0, None))
                out.append({"id": i, "op": op_name(op)} | ({} if args is None else {"args": args}))
        return out

    def for_ack(self, station: int, now: float | None = None) -> tuple[Command, ...]:
        """The commands to put in the station's next ACK (none that expired by ``now``)."""
        rows = self.waiting.get(station)
        if not rows:
            return ()
        if now is not None:
            rows = [r for r in rows if r.expires is None or r.expires > now]
        return tuple(Command(r.id, r.op, r.args) for r in rows[:MAX_PER_ACK])

    def next_expiry(self) -> float | None:
        """The earliest expiry of a waiting command (the gateway ends it then)."""
        times = [r.expires for rows in self.waiting.values() for r in rows
                 if r.expires is not None]
        return min(times) if times else None

    def answered(self, station: int, ids: Sequence[int]) -> None:
        rows = self.waiting.get(station)
        if rows:
            left = [r for r in rows if r.id not in ids]
            if left:
                self.waiting[station] = left
            else:
                del self.waiting[station]


# ---------------------------------------------------------------- command line to command


def parse_value(text: str) -> Any:
    """``key=value`` right-hand side: int, float, true/false, null, or text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        f = float(text)
    except ValueError:
        return text
    if not math.isfinite(f):
        return text
    return f


def parse_time(text: str) -> int:
    """ISO 8601 (UTC if no zone) or hydrolink seconds, to hydrolink seconds."""
    if re.fullmatch(r"\d+", text):
        return int(text)
    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"bad time {text!r}; use ISO 8601 such as 2026-05-01T08:00Z") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    t = from_datetime(d)
    if t < 0:
        raise CommandError(f"time {text!r} is before 2024-01-01, the hydrolink epoch")
    return t


def build_command(words: Sequence[str], start: str | None = None, end: str | None = None,
                  ) -> tuple[int, Any]:
    """The op and args of a command line after the station id."""
    if not words:
        raise CommandError("no command; give key=value ..., resend, test-report, reboot, "
                           "get-config or status-report")
    head = words[0]
    if head in OP_WORDS:
        op, rest = OP_WORDS[head], list(words[1:])
    elif "=" in head:
        op, rest = SET_CONFIG, list(words)
    else:
        raise CommandError(f"unknown command {head!r}; use key=value, " + ", ".join(OP_WORDS))
    if op == SET_CONFIG:
        if not rest:
            raise CommandError("set needs at least one key=value")
        args: dict[str, Any] = {}
        for w in rest:
            key, sep, value = w.partition("=")
            if not sep or not key:
                raise CommandError(f"{w!r} is not key=value")
            if key in PROVISIONING_ONLY:
                raise CommandError(check_setting(key, None, remote=True) or key)
            try:
                args[key] = parse_setting(key, value)  # as the station would check it
            except ConfigKeyError as e:
                raise CommandError(str(e)) from None
        return op, args
    if op == GET_CONFIG:
        for key in rest:
            if key not in CONFIG_KEYS:
                raise CommandError(check_setting(key, None) or key)
        return op, list(rest)
    if rest:
        raise CommandError(f"{head} takes no words, got {' '.join(rest)!r}")
    if op == RESEND:
        if start is None or end is None:
            raise CommandError("resend needs --from TIME and --to TIME")
        a, b = parse_time(start), parse_time(end)
        if b < a:
            raise CommandError("resend: --to is before --from")
        return op, [a, b]
    return op, None

