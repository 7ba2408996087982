"""The per-station uplink replay window of SPEC §6."""

from __future__ import annotations

from protocol.errors import Replay
from protocol.model import REPLAY_WINDOW


class ReplayWindow:
    """Per-station uplink replay rule of SPEC §6: duplicate, replay or new.

    Per station: the highest accepted seq H and a bitmap of the accepted seqs in
    H-size+1 .. H (bit i is seq H-i): about 0.6 KB a station at the default size.
    """

    def __init__(self, size: int = REPLAY_WINDOW) -> None:
        self.size = size
        self._full = (1 << size) - 1
        self.stations: dict[int, tuple[int, int]] = {}  # station -> (highest, bitmap)

    def check(self, station: int, seq: int) -> bool:
        """True if new, False if a duplicate; raises ``Replay`` if older than the window."""
        if station not in self.stations:
            return True
        h, bits = self.stations[station]
        if seq > h:
            return True
        if seq <= h - self.size:
            raise Replay(f"station {station} seq {seq} is older than the window (highest {h})")
        return not bits >> (h - seq) & 1

    def accept(self, station: int, seq: int) -> None:
        """Record a seq as accepted (after it was durably stored)."""
        h, bits = self.stations.get(station, (seq, 0))
        if seq > h:
            bits, h = (bits << (seq - h)) & self._full, seq
        if seq > h - self.size:
            bits |= 1 << (h - seq)
        self.stations[station] = (h, bits)

    def merge(self, station: int, highest: int, bits: int) -> None:
        """Record as accepted the seqs of a bitmap (bit i: seq ``highest`` - i), as a
        restarted receiver does with the history it saved."""
        h, mine = self.stations.get(station, (highest, 0))
        if highest > h:
            mine, h = (mine << (highest - h)) & self._full, highest
        if h - highest < self.size:
            mine |= (bits << (h - highest)) & self._full
        self.stations[station] = (h, mine)

    def highest(self, station: int) -> int | None:
        """The highest accepted seq of a station, if any."""
        return self.stations[station][0] if station in self.stations else None

