"""Dashboard accounts in the center database: name, role, argon2 password hash.

The ``users`` and ``dashboard_settings`` tables come with the store's schema migrations
(host_tools/center/schema.py, version 2). Passwords are hashed with argon2id
(argon2-cffi's defaults, RFC 9106's second recommended profile); a hash made with older
parameters is re-hashed at the next successful login. The dashboard's signing secret
lives in ``dashboard_settings`` so that every dashboard process on one database, and a
restart, accept the same cookies.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .permissions import ROLES

NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_PASSWORD = 8
_HASHER = PasswordHasher()
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _HASHER.hash("not a password of anyone")


class Db(Protocol):
    """What this module needs of the store's connection (host_tools.center.db.Database)."""

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]: ...
    def execute(self, sql: str, params: Any = ()) -> int: ...
    def transaction(self) -> Any: ...


class UserError(ValueError):
    """A user cannot be added or removed as asked; ``str()`` is one line."""


@dataclass(frozen=True)
class Account:
    """A user row (without the hash)."""

    id: int
    name: str
    role: str
    created: float


def check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise UserError(f"user name {name!r}: use 1-64 letters, digits or . _ @ -")


def add_user(db: Db, name: str, role: str, password: str, *, replace: bool = False) -> Account:
    """Create a user (or with ``replace`` give an existing one a new role and password)."""
    check_name(name)
    if role not in ROLES:
        raise UserError(f"role {role!r}: use {' or '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short: at least {MIN_PASSWORD} characters")
    digest = _HASHER.hash(password)
    with db.transaction():
        if db.query("SELECT 1 FROM users WHERE name = ?", (name,)):
            if not replace:
                raise UserError(f"user {name} exists; remove it first or use --replace")
            db.execute("DELETE FROM users WHERE name = ?", (name,))  # a new id ends old sessions
        db.execute("INSERT INTO users (name, role, hash, created) VALUES (?, ?, ?, ?)",
                   (name, role, digest, time.time()))
    account = get_user(db, name)
    assert account is not None
    return account


def remove_user(db: Db, name: str) -> None:
    with db.transaction():
        if db.execute("DELETE FROM users WHERE name = ?", (name,)) != 1:
            raise UserError(f"no user {name}")


def list_users(db: Db) -> list[Account]:
    return [Account(int(i), n, r, float(c))
            for i, n, r, c in db.query("SELECT id, name, role, created FROM users ORDER BY name")]


def get_user(db: Db, name: str) -> Account | None:
    rows = db.query("SELECT id, name, role, created FROM users WHERE name = ?", (name,))
    return Account(int(rows[0][0]), rows[0][1], rows[0][2], float(rows[0][3])) if rows else None


def get_user_by_id(db: Db, uid: int) -> Account | None:
    rows = db.query("SELECT id, name, role, created FROM users WHERE id = ?", (uid,))
    return Account(int(rows[0][0]), rows[0][1], rows[0][2], float(rows[0][3])) if rows else None


def verify(db: Db, name: str, password: str) -> Account | None:
    """The account if ``password`` is right for ``name``, else None (same cost either way)."""
    rows = db.query("SELECT id, name, role, created, hash FROM users WHERE name = ?", (name,))
    if not rows:
        with contextlib.suppress(VerificationError):
            _HASHER.verify(_DUMMY, password)
        return None
    uid, uname, role, created, digest = rows[0]
    try:
        _HASHER.verify(digest, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if _HASHER.check_needs_rehash(digest):
        with db.transaction():
            db.execute("UPDATE users SET hash = ? WHERE id = ?", (_HASHER.hash(password), uid))
    return Account(int(uid), uname, role, float(created))


def secret(db: Db) -> bytes:
    """The dashboard's signing secret, made on first use and shared through the database."""
    with db.transaction():
        db.execute("INSERT INTO dashboard_settings (key, value) VALUES ('secret', ?)"
                   " ON CONFLICT (key) DO NOTHING", (secrets.token_hex(32),))
    return bytes.fromhex(db.query("SELECT value FROM dashboard_settings WHERE key = 'secret'")[0][0])
