"""Sessions in signed cookies, with an expiry, and the login rate limit.

The cookie holds ``{"sid", "user", "uid", "lang", "exp"}`` signed with the server's secret
(itsdangerous): nothing about a session is stored on the server, and a cookie changed by
hand fails its signature. ``exp`` is fixed at login, so re-signing the cookie (a language
switch) never extends a session. ``uid`` is the user row's id: removing a user (or adding
the name again) ends their sessions at the next request.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "hydrolink_session"
LANGS = ("zh", "en")


@dataclass(frozen=True)
class Session:
    """What the cookie says. ``user`` is None before login."""

    sid: str
    user: str | None = None
    uid: int | None = None
    lang: str = "zh"
    exp: float = 0.0

    def signed_in(self, user: str, uid: int, exp: float) -> Session:
        """The session after a login: a new sid, so a token issued before login is void."""
        return replace(self, sid=secrets.token_urlsafe(16), user=user, uid=uid, exp=exp)

    def signed_out(self) -> Session:
        return Session(sid=secrets.token_urlsafe(16), lang=self.lang)


class Sessions:
    """Signs and reads session cookies."""

    def __init__(self, secret: bytes, ttl_s: float = 8 * 3600,
                 clock: Callable[[], float] = time.time) -> None:
        self._signer = URLSafeSerializer(secret, salt="hydrolink-session")
        self.ttl_s = ttl_s
        self.clock = clock

    def new(self, lang: str = "zh") -> Session:
        return Session(sid=secrets.token_urlsafe(16), lang=lang)

    def dump(self, s: Session) -> str:
        return self._signer.dumps({"sid": s.sid, "user": s.user, "uid": s.uid, "lang": s.lang,
                                   "exp": s.exp})

    def load(self, cookie: str | None) -> tuple[Session | None, str | None]:
        """(session, problem): the session (None if absent or bad) and why it was not usable.

        An expired session comes back signed out, with problem "session expired"."""
        if not cookie:
            return None, None
        try:
            d: Any = self._signer.loads(cookie)
            s = Session(sid=str(d["sid"]), user=d["user"], uid=d["uid"],
                        lang=d["lang"] if d["lang"] in LANGS else "zh", exp=float(d["exp"]))
        except (BadSignature, KeyError, TypeError, ValueError):
            return None, "session cookie is forged or damaged"
        if s.user is not None and self.clock() >= s.exp:
            return s.signed_out(), "session expired"
        return s, None

    def expiry(self) -> float:
        return self.clock() + self.ttl_s


class LoginLimiter:
    """At most ``limit`` failed logins per ``window_s`` for one user name and for one client.

    While a key is over the limit every attempt is refused, the right password too, until
    its oldest failure leaves the window. The failures are rows of
    ``dashboard_login_failures``, so guesses spread over ``--workers`` processes count
    together. An attempt is written down as a failure *before* its password is checked
    (:meth:`begin`) and taken back if it was right (:meth:`succeeded`): guesses sent in
    parallel cannot all pass the check while none has failed yet. Each method takes the
    calling thread's :class:`host_tools.center.db.Database`."""

    def __init__(self, limit: int = 5, window_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._next_prune = 0.0

    def begin(self, db: Any, keys: Sequence[str]) -> tuple[float, list[int]]:
        """(seconds to wait, 0 if the attempt may go on; the attempt's rows, to take back if
        the password was right). A refused attempt leaves nothing behind."""
        now = self.clock()
        with db.transaction():
            if getattr(db, "dialect", "") == "postgresql":  # SQLite's BEGIN IMMEDIATE serialises
                db.execute("LOCK TABLE dashboard_login_failures IN SHARE ROW EXCLUSIVE MODE")
            if now >= self._next_prune:
                self._next_prune = now + 60.0
                db.execute("DELETE FROM dashboard_login_failures WHERE at <= ?", (now - self.window_s,))
            wait = 0.0
            for key in keys:  # the limit-th newest failure in the window keeps the key shut
                rows = db.query("SELECT at FROM dashboard_login_failures WHERE key = ? AND at > ?"
                                " ORDER BY at DESC LIMIT 1 OFFSET ?",
                                (key, now - self.window_s, self.limit - 1))
                if rows:
                    wait = max(wait, float(rows[0][0]) + self.window_s - now)
            if wait > 0:
                return wait, []
            ids = [int(db.query("INSERT INTO dashboard_login_failures (key, at) VALUES (?, ?)"
                                " RETURNING id", (key, now))[0][0]) for key in keys]
        return 0.0, ids

    def succeeded(self, db: Any, attempt: Sequence[int], *clear: str) -> None:
        """Take back the attempt's rows, and forget every failure of the ``clear`` keys."""
        with db.transaction():
            for i in attempt:
                db.execute("DELETE FROM dashboard_login_failures WHERE id = ?", (i,))
            for key in clear:
                db.execute("DELETE FROM dashboard_login_failures WHERE key = ?", (key,))
