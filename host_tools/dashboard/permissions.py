"""Who may do what: one question, ``allowed(user, action, resource)``, asked everywhere.

Every page and every action of the dashboard goes through :func:`check`, which
asks :func:`allowed` and logs each refusal (who, what, on what, why, from
where) on the ``hydrolink.dashboard`` logger, so that a refused request always
leaves a line behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("hydrolink.dashboard")

ROLES = ("viewer", "operator")
VIEW, ACK, COMMAND = "view", "ack", "command"
ACTIONS = (VIEW, ACK, COMMAND)
# What each role may do. A viewer reads; an operator also acknowledges alarms and queues
# commands for stations.
_GRANTS: dict[str, frozenset[str]] = {
    "viewer": frozenset({VIEW}),
    "operator": frozenset({VIEW, ACK, COMMAND}),
}


@dataclass(frozen=True)
class User:
    """A signed-in person (or the loopback ``--no-auth`` user)."""

    name: str
    role: str


@dataclass(frozen=True)
class Resource:
    """What an action is on: ``("fleet", None)``, ``("station", 1001)``, ``("alarm", 17)``."""

    kind: str
    id: int | None = None

    def __str__(self) -> str:
        return self.kind if self.id is None else f"{self.kind}:{self.id}"


FLEET = Resource("fleet")


class Refused(Exception):
    """An action was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def allowed(user: User | None, action: str, resource: Resource) -> bool:
    """May ``user`` do ``action`` on ``resource``? Nobody signed in may do nothing."""
    if user is None or action not in ACTIONS:
        return False
    return action in _GRANTS.get(user.role, frozenset())


def refusal(reason: str, *, user: User | None, action: str, resource: Resource | str,
            client: str, status: int) -> Refused:
    """Log one refusal line and return the exception to raise."""
    log.warning("refused", extra={"fields": {
        "user": user.name if user else "-", "role": user.role if user else "-",
        "action": action, "resource": str(resource), "reason": reason, "client": client,
        "status": status,
    }})
    return Refused(status, reason)


def check(user: User | None, action: str, resource: Resource, client: str) -> None:
    """Raise :class:`Refused` (logged) unless ``allowed(user, action, resource)``."""
    if allowed(user, action, resource):
        return
    if user is None:
        raise refusal("not signed in", user=None, action=action, resource=resource,
                      client=client, status=401)
    raise refusal(f"role {user.role} may not {action}", user=user, action=action,
                  resource=resource, client=client, status=403)
