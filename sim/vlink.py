"""The virtual link between one board and the real gateway.

It takes the place of ``sim.link.Peer`` on a :class:`~sim.vboard.VBoard`: the bytes the
board writes reach :class:`~sim.gwhost.GatewayHost` (the production gateway) after the
link's latency, unless the link loses the write, and with bits flipped at the link's bit
error rate; the gateway's reply comes back the same way. Scheduled outages cut the link
(``link``) or make the gateway unreachable (``gateway``) for a board-time interval; the
broker outages and gateway restarts are fleet-wide and run at barriers (``sim.fleet``).
Every random choice comes from the link's own seeded generator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from protocol.codec import EPOCH_UNIX
from sim.gwhost import GatewayHost, SimLink


@dataclass(frozen=True)
class Outage:
    """``kind`` (link | gateway | broker) from ``start_ms`` to ``end_ms`` of virtual time."""

    kind: str
    start_ms: int
    end_ms: int


@dataclass
class VLink:
    """One board's link. ``loss``: chance that a write (either way) is lost; ``ber``: bit
    error rate; ``latency_ms``: one way."""

    host: GatewayHost
    station: int
    t0: int  # hydrolink s at virtual ms 0
    seed: int
    loss: float = 0.0
    ber: float = 0.0
    latency_ms: int = 150
    outages: list[Outage] = field(default_factory=list)
    clean_from_ms: int = 2**62  # from here on no loss and no bit errors (the drain)
    sent: int = 0
    lost: int = 0
    corrupted: int = 0
    blocked: int = 0  # writes into an outage
    acks: int = 0
    _rng: random.Random = field(init=False)
    _link: SimLink = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"link:{self.seed}:{self.station}")
        self._link = SimLink(f"sim:{self.station}")

    def _out(self, ms: int) -> bool:
        return any(o.kind in ("link", "gateway") and o.start_ms <= ms < o.end_ms for o in self.outages)

    def _fate(self, data: bytes, ms: int) -> bytes | None:
        if ms >= self.clean_from_ms:
            return data
        if self.loss and self._rng.random() < self.loss:
            self.lost += 1
            return None
        if self.ber:
            bits = 8 * len(data)
            b: bytearray | None = None
            pos = -1
            lg = math.log1p(-self.ber)
            while True:
                pos += 1 + int(math.log(1.0 - self._rng.random()) / lg)
                if pos >= bits:
                    break
                if b is None:
                    b = bytearray(data)
                b[pos >> 3] ^= 1 << (pos & 7)
            if b is not None:
                self.corrupted += 1
                return bytes(b)
        return data

    def uplink(self, ms: int, data: bytes) -> list[tuple[int, bytes]]:
        """Bytes the board wrote at ``ms``: returns (virtual ms, bytes) for the board."""
        self.sent += 1
        at = ms + self.latency_ms
        if self._out(ms) or self._out(at):
            self.blocked += 1
            return []
        got = self._fate(data, ms)
        if got is None:
            return []
        replies = self.host.deliver(self._link, EPOCH_UNIX + self.t0 + at / 1000, got)
        out: list[tuple[int, bytes]] = []
        back = at + self.latency_ms
        for r in replies:
            if self._out(back):
                self.blocked += 1
                continue
            down = self._fate(r, back)
            if down is not None:
                self.acks += 1
                out.append((back, down))
        return out
