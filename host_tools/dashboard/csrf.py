"""Cross-site request forgery protection for every form: an origin check and a one-use token.

Two independent checks, both required on every POST:

- the browser's own word on where the request comes from: ``Sec-Fetch-Site`` must be
  ``same-origin`` or ``none``; without it, an ``Origin`` header must name this host (as Go
  1.25's ``CrossOriginProtection`` and Datasette do). A request with neither (not a browser)
  passes this check and still needs the token;
- a token in the form, signed with the server's secret, bound to the session it was issued
  to, at most ``max_age`` seconds old, and accepted once: a replayed form is refused.

Nothing of this lives in one process: the secret is in the database, and a spent token's
nonce goes into ``dashboard_spent_forms``, whose primary key refuses it a second time. So
with ``--workers N`` a form rendered by one worker is accepted by another, once.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

FIELD = "csrf_token"
PRUNE_EVERY_S = 600.0


class CsrfError(Exception):
    """A form failed a CSRF check; ``str()`` says which."""


def origin_problem(headers: Mapping[str, str], scheme: str, host: str) -> str | None:
    """Why the request's origin headers are not this site, or None if they are."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return None if site in ("same-origin", "none") else f"Sec-Fetch-Site is {site}"
    origin = headers.get("origin")
    if origin is None:
        return None
    if origin != f"{scheme}://{host}":
        return f"Origin {origin} is not {scheme}://{host}"
    return None


class Tokens:
    """Issues and checks one-use form tokens. Thread-safe: :meth:`check` is pure and
    :meth:`spend` works on the calling thread's connection."""

    def __init__(self, secret: bytes, max_age: int = 3600, clock: Callable[[], float] = time.time) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="hydrolink-csrf")
        self.max_age = max_age
        self._clock = clock
        self._next_prune = 0.0

    def issue(self, session_id: str) -> str:
        """A fresh token for one form of this session."""
        return self._signer.dumps([session_id, secrets.token_urlsafe(12)])

    def check(self, token: str | None, session_id: str) -> str:
        """The nonce of ``token`` if it is this server's, unexpired and ``session_id``'s;
        raise :class:`CsrfError` otherwise. Whether it was spent is :meth:`spend`'s."""
        if not token:
            raise CsrfError("form has no CSRF token")
        try:
            sid, nonce = self._signer.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise CsrfError("form token expired; reload the page") from None
        except (BadSignature, ValueError, TypeError):
            raise CsrfError("form token is forged or damaged") from None
        if not secrets.compare_digest(str(sid), session_id):
            raise CsrfError("form token belongs to another session")
        return str(nonce)

    def spend(self, db: Any, nonce: str) -> bool:
        """Mark ``nonce`` spent in the database; False if it already was (a replay).
        ``db``: the thread's :class:`host_tools.center.db.Database`."""
        now = self._clock()
        with db.transaction():
            if now >= self._next_prune:  # older than any token still valid
                self._next_prune = now + PRUNE_EVERY_S
                db.execute("DELETE FROM dashboard_spent_forms WHERE spent < ?", (now - self.max_age,))
            return bool(db.execute("INSERT INTO dashboard_spent_forms (nonce, spent) VALUES (?, ?)"
                                   " ON CONFLICT (nonce) DO NOTHING", (nonce, now)))
