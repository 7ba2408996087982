"""Sans-IO frame handling: verify a raw frame, classify it, build its ACK.

No sockets and no database here: :meth:`Pipeline.check` takes the bytes of one
raw frame and says what to do (store it, ACK it again, or reject it and why);
:meth:`Pipeline.committed` is called once the frame is on disk; :meth:`Pipeline.ack`
builds the ACK frame. The I/O shell in :mod:`host_tools.gateway.service` calls them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from protocol.codec import (
    ACK,
    EPOCH_UNIX,
    RESULT,
    UPLINK_TYPES,
    Ack,
    Frame,
    ReplayWindow,
    Report,
    Results,
    check_raw,
    decode_frame,
    encode_frame,
    wrap,
)
from protocol.errors import BadCrc, FrameError, Malformed

from ..registry import Registry
from .commands import CommandBook
from .metrics import Stats
from .spool import Record
from .state import SILENT_AFTER

log = logging.getLogger("hydrolink.gateway")
FLAG_BACKFILL = 8  # SPEC §5.4
# A clock before the firmware's floor (firmware/uplink.py FLOOR: 2025-01-01) is no real
# time; one more than CLOCK_VOTE_S off most stations that keep real time is this PC's fault.
CLOCK_FLOOR_UNIX = EPOCH_UNIX + 31622400
CLOCK_VOTE_S = 3600
OFFSET_FRAMES = 8  # frames the clock offset estimate looks back over


@dataclass(frozen=True)
class New:
    """A valid frame seen for the first time: store ``record``, then ACK."""

    frame: Frame
    record: Record


@dataclass(frozen=True)
class Duplicate:
    """Already accepted: ACK again, do not forward again."""

    frame: Frame


@dataclass(frozen=True)
class Rejected:
    reason: str
    message: str
    station: int | None = None


Verdict = New | Duplicate | Rejected


class Pipeline:
    """Verification, dedupe and ACKs for all inputs of one gateway."""

    def __init__(
        self,
        registry: Registry,
        stats: Stats,
        commands: CommandBook,
        *,
        window: ReplayWindow | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.keys: Mapping[int, bytes] = registry.keys
        self.stats = stats
        self.commands = commands
        self.window = window or ReplayWindow()
        self.clock = clock
        self._vote_at, self._suspect = -1e18, False  # the clock check of _ack_time, cached 10 s

    def set_registry(self, registry: Registry) -> None:
        self.registry = registry
        self.keys = registry.keys

    def check(self, raw: bytes, link: str, link_station: int | None = None) -> Verdict:
        """Classify one raw frame. ``link_station``: the station last seen on this link."""
        try:
            ftype, station, seq, _ = check_raw(raw)
        except FrameError as e:
            sid = link_station
            if isinstance(e, BadCrc) and sid is None and len(raw) >= 5:
                claimed = int.from_bytes(raw[1:5], "big")
                sid = claimed if claimed in self.keys else None
            return self._reject(e.reason, str(e), link, sid, bad_crc=isinstance(e, BadCrc))
        if station not in self.keys:
            return self._reject("unknown_station", f"station {station} is not in the registry",
                                link, None)
        if ftype not in UPLINK_TYPES:
            return self._reject("downlink_type", f"station {station} sent a downlink frame"
                                f" (type {ftype})", link, station)
        try:
            frame = decode_frame(raw, self.keys)
            fresh = self.window.check(station, seq)
        except FrameError as e:
            return self._reject(e.reason, str(e), link, station)
        if not fresh:
            return Duplicate(frame)
        # The MQTT payload is built by the forwarder process from the stored raw frame.
        record = Record(station, seq, ftype, frame.time, self.clock(), link, frame.raw)
        return New(frame, record)

    def _reject(self, reason: str, message: str, link: str, station: int | None,
                bad_crc: bool = False) -> Rejected:
        self.stats.rejected[reason] += 1
        if station is not None and station in self.keys:
            st = self.stats.station(station)
            if bad_crc:
                st.bad_crc += 1
            else:
                st.rejected += 1
        log.info("frame rejected", extra={"fields": {
            "reason": reason, "link": link, "station": station, "detail": message}})
        return Rejected(reason, message, station)

    def deframe_error(self, error: FrameError, link: str, link_station: int | None) -> Rejected:
        """Count a COBS or over-long-garbage error of the deframer."""
        return self._reject(error.reason, str(error), link, link_station)

    def committed(self, frame: Frame, link: str, received: float) -> None:
        """The frame is on disk: it is now accepted (window, counters, command results)."""
        self.window.accept(frame.station, frame.seq)
        st = self.stats.station(frame.station)
        if received - st.last_seen > SILENT_AFTER:
            log.info("station heard", extra={"fields": {
                "station": frame.station, "link": link, "seq": frame.seq,
                "silent_s": round(received - st.last_seen) if st.last_seen else "first frame"}})
        newest = frame.seq > st.last_seq
        st.frames += 1
        st.last_seen = received
        st.last_seq = max(st.last_seq, frame.seq)
        st.link = link
        if newest and not (isinstance(frame.body, Report) and frame.body.flags & FLAG_BACKFILL):
            # A frame's header time is the station's clock when it was built, and a resend
            # is byte for byte the same frame (SPEC §6): header - received = offset - delay,
            # delay >= 0 (about 0 on the first try, the outage on a resend). A station sends
            # its newest frame first, so a frame below the highest seq already here is a
            # resend, and backfill was built long ago: neither is used. The newest frame
            # after an outage may be a resend too; it only lowers the bound, so the largest
            # of the last OFFSET_FRAMES is the estimate (a clock ahead shows at once, one
            # behind within OFFSET_FRAMES frames).
            st.offsets = [*st.offsets[-(OFFSET_FRAMES - 1):],
                          round(frame.time + EPOCH_UNIX - received, 3)]
            st.clock_offset = max(st.offsets)
        self.stats.accepted[frame.type_name] += 1
        if frame.type == RESULT and isinstance(frame.body, Results):
            self.commands.answered(frame.station, [r.id for r in frame.body.results])

    def duplicate(self, frame: Frame, link: str, received: float) -> None:
        self.stats.duplicates += 1
        st = self.stats.station(frame.station)
        st.duplicates += 1
        st.last_seen = received
        st.link = link

    def _ack_time(self, station: int, now: float) -> int:
        """The ACK's time (the station sets its clock from it). While this gateway's clock is
        implausible (before the floor, or off most stations' real clocks, two at least, by more
        than an hour) the station's own time is served instead: a wrong PC clock steps no station."""
        if abs(now - self._vote_at) >= 10:
            good = [s.clock_offset for s in self.stats.stations.values()
                    if s.clock_offset is not None and s.last_seen + s.clock_offset >= CLOCK_FLOOR_UNIX]
            wrong = sum(1 for o in good if abs(o) > CLOCK_VOTE_S)
            self._vote_at, self._suspect = now, now < CLOCK_FLOOR_UNIX or (wrong >= 2 and 2 * wrong > len(good))
        st = self.stats.stations.get(station)
        off = None if st is None else st.clock_offset
        if self._suspect and st is not None and off is not None and st.last_seen + off >= CLOCK_FLOOR_UNIX:
            now += off  # the station's own clock, as its last frame showed it
        return int(now) - EPOCH_UNIX

    def ack(self, station: int, seq: int) -> tuple[bytes, tuple[int, ...]]:
        """The wire bytes of the ACK for ``seq`` (gateway UTC time, waiting commands),
        and the ids of the commands it carries."""
        key = self.keys.get(station)
        if key is None:  # removed from the registry between check and ACK
            raise Malformed(f"station {station} left the registry")
        wall = self.clock()
        now = self._ack_time(station, wall)
        commands = self.commands.for_ack(station, wall)
        while True:
            try:
                raw = encode_frame(ACK, station, seq, now, Ack((seq,), commands), key)
                break
            except ValueError:
                if not commands:
                    raise
                commands = commands[:-1]  # too big for one frame: the rest go next time
        self.stats.acks += 1
        return wrap(raw), tuple(c.id for c in commands)
