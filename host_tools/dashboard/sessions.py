"""Sessions in signed cookies, with an expiry, and the login rate limit.

The cookie holds ``{"sid", "user", "uid", "lang", "exp"}`` signed with the server's secret
(itsdangerous): nothing about a session is stored on the server, and a cookie changed by
hand fails its signature. ``exp`` is fixed at login, so re-signing the cookie (a language
switch) never extends a session. ``uid`` is the user row's id: removing a user (or adding
the name again) ends their sessions at the next request.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
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
    its oldest failure leaves the window."""

    def __init__(self, limit: int = 5, window_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, *keys: str) -> float:
        """Seconds until these keys may try again; 0 if they may now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._trim(key, now)
                if len(q) >= self.limit:
                    wait = max(wait, q[0] + self.window_s - now)
            if len(self._fails) > 10_000:  # forget idle keys so memory stays bounded
                for k in [k for k, q in self._fails.items() if not q]:
                    del self._fails[k]
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._trim(key, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._fails.pop(key, None)
