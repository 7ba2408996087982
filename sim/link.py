"""A scripted lossy link and the peer at its far end.

The peer decodes frames with the host codec, deduplicates by (station, seq), ACKs
with its UTC time (and any pending commands), and records every reading it
receives. The script decides per frame and direction: dropped, corrupted, or passed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from protocol import codec
from protocol.errors import FrameError


@dataclass(frozen=True)
class Phase:
    """From ``start_ms`` on (until the next phase): per frame and direction, the chance that
    it is lost (``loss``), that one bit of it flips (``corrupt``), and that line noise
    (1-40 random bytes, zeros included) comes before it (``garbage``)."""

    start_ms: int
    loss: float = 0.0
    corrupt: float = 0.0
    garbage: float = 0.0


@dataclass(frozen=True)
class Reading:
    station: int
    seq: int
    element: int
    time: int
    value: int | None
    quality: int


@dataclass
class Peer:
    """The far end: a minimal gateway.

    Args:
        keys: station id -> HMAC key.
        t0: hydrolink time at virtual ms 0.
        phases: the link script; empty = a perfect link.
        seed: seeds loss and corruption.
        latency_ms: one-way delay.
    """

    keys: dict[int, bytes]
    t0: int
    phases: list[Phase] = field(default_factory=list)
    seed: int = 1
    latency_ms: int = 200
    host_offset_s: int = 0
    readings: list[Reading] = field(default_factory=list)
    frames: list[codec.Frame] = field(default_factory=list)
    seen: set[tuple[int, int]] = field(default_factory=set)
    dup_frames: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    commands: list[codec.Command] = field(default_factory=list)
    results: dict[int, codec.Result] = field(default_factory=dict)
    sent_bytes: int = 0
    _deframer: codec.Deframer = field(default_factory=codec.Deframer)
    _later: list[tuple[int, codec.Command]] = field(default_factory=list)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def _phase(self, ms: int) -> Phase:
        cur = Phase(0)
        for p in self.phases:
            if ms >= p.start_ms:
                cur = p
        return cur

    def _fate(self, ms: int, data: bytes) -> bytes | None:
        p = self._phase(ms)
        if p.loss and self._rng.random() < p.loss:
            return None
        if p.corrupt and self._rng.random() < p.corrupt and len(data) > 2:
            b = bytearray(data)
            i = self._rng.randrange(len(b) - 1)
            b[i] = (b[i] ^ (1 << self._rng.randrange(8))) or 1
            data = bytes(b)
        if p.garbage and self._rng.random() < p.garbage:
            noise = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 41)))
            data = noise + data
        return data

    def host_time(self, ms: int) -> int:
        """The peer's UTC clock, hydrolink seconds."""
        return self.t0 + ms // 1000 + self.host_offset_s

    def uplink(self, ms: int, data: bytes) -> list[tuple[int, bytes]]:
        """Bytes the station wrote at ``ms``; returns downlink (deliver_ms, bytes)."""
        got = self._fate(ms, data)
        if got is None:
            return []
        out: list[tuple[int, bytes]] = []
        for item in self._deframer.feed(got):
            if isinstance(item, FrameError):
                self._count(type(item).__name__)
                continue
            try:
                f = codec.decode_frame(item, self.keys)
            except FrameError as e:
                self._count(type(e).__name__)
                continue
            self._take(f)
            ack = self._ack(ms, f)
            down = self._fate(ms, ack)
            if down is not None:
                out.append((ms + 2 * self.latency_ms, down))
        return out

    def _count(self, why: str) -> None:
        self.errors[why] = self.errors.get(why, 0) + 1

    def _take(self, f: codec.Frame) -> None:
        key = (f.station, f.seq)
        if key in self.seen:
            self.dup_frames += 1
            return
        self.seen.add(key)
        self.frames.append(f)
        body = f.body
        if isinstance(body, codec.Report) and f.type in (codec.DATA, codec.ALARM):
            for s in body.series:
                for t, v, q in zip(s.times(), s.values, s.quality, strict=True):
                    self.readings.append(Reading(f.station, f.seq, s.element, t, v, q))
        elif isinstance(body, codec.Results):
            for r in body.results:
                self.results[r.id] = r
                self.commands = [c for c in self.commands if c.id != r.id]

    def _ack(self, ms: int, f: codec.Frame) -> bytes:
        for at, c in [x for x in self._later if x[0] <= ms]:
            self._later.remove((at, c))
            self.commands.append(c)
        body = codec.Ack((f.seq,), tuple(self.commands))
        raw = codec.encode_frame(codec.ACK, f.station, f.seq, self.host_time(ms), body,
                                 self.keys[f.station])
        wire = codec.wrap(raw)
        self.sent_bytes += len(wire)
        return wire

    def command(self, cid: int, op: int, args: Any = None, at_ms: int = 0) -> None:
        """Queue a command: from virtual ``at_ms`` on, it rides on every ACK until its
        result arrives."""
        self._later.append((at_ms, codec.Command(cid, op, args)))

    def of_type(self, frame_type: int) -> list[codec.Frame]:
        """Distinct frames received of one type."""
        return [f for f in self.frames if f.type == frame_type]
