# hydrolink uplink: sends frames from the store over the board's link and
# takes ACKs (and commands) back. The link is an OSError-only transport
# (mqtt_as style): nothing above this module sees a transport exception.
#
# Order (SPEC §6, issue 3): frames already in flight go first, round-robin
# (the fewest tries since the last ACK first, newest among equals), byte for
# byte as stored; a frame sent store._MAX_TRIES times in a row without any ACK
# is given up (counted, its readings queued again); then, when a report is
# due, a frame of the newest readings; then backfill of older unsent readings,
# oldest first, each frame as big as max_frame allows. A due report also goes
# ahead of in-flight frames that have all failed at least once (one such report
# in flight at a time), so a frame the host rejects delays the newest readings
# by one backoff, not hours; when _STRIKES reports in a row get through past
# the same frame, the host is refusing it: it is given up then.
# Stop-and-wait: one frame, then its ACK or ack_timeout_s. A failure backs off
# base * 2^n (capped, upper half random, power.backoff); the level is
# persisted, so a reboot (brownout) does not start a fresh burst. An alarm cuts
# one backoff short.
from micropython import const
import asyncio
import frame
import power
import report

_NONE = const(0)
_REBOOT_TRIES = const(3)
_STRIKES = const(3)
_OFF = const(6)  # MAX_WIRE + 1 - MAX_FRAME: room for COBS overhead and the 0x00
# Header times never go below the firmware's build date (an ESP32 RTC restarts
# at 2000-01-01 after a power cut: negative hydrolink seconds); the station
# records no values before its clock reaches it or is synced. 2025-01-01: the
# simulations run in 2025-08. Raise it with each release.
FLOOR = const(31622400)
# Wrong clocks (a gateway PC that lost its RTC, NTP not yet synced): once the
# clock has been set since boot, a correction bigger than _HOLD_S (and, with
# a clock past FLOOR, one bigger than _FAR_S at any time) is held until
# _CONFIRM ACKs in a row, spanning _HOLD_SPAN_S, agree on it; a step
# back never re-records a mark already recorded (the sampler's last mark is
# kept: marks up to it are skipped, the tips carry over), so no (element,
# time) gets a second value and no alarm fires again. The gateway refuses to
# serve its own time while it is implausible (host_tools/gateway/pipeline.py).
_HOLD_S = const(900)
_CONFIRM = const(3)
_HOLD_SPAN_S = const(21600)
_FAR_S = const(2592000)  # 30 days: held even as the first correction since boot


class Uplink:
    def __init__(self, board, sched, store, app, key, station):
        self.board = board
        self.link = board.link
        self.store = store
        self.app = app  # station: cfg, pw, flags(), command(), log()
        self.key = key
        self.station = station
        self.timer = sched.timer()
        # One buffer for building a frame (at 0) and for sending one: the
        # stored frame is read in at _OFF and COBS-encoded in place to 0 (the
        # output never overtakes the input: it runs ahead by at most 1 + n/254
        # bytes). A second 1 KB wire buffer is saved.
        self.buf = memoryview(bytearray(frame.MAX_WIRE + 1))
        self._src = self.buf[_OFF:]
        self._rx = bytearray(256)
        self._rxmv = memoryview(self._rx)
        self.deframer = frame.Deframer()
        self._keys = self._key_of
        self._bf = 0
        self.waiting = 0  # seq awaiting its ACK
        self.report_due = False
        self.urgent = False
        self.sleeping = _NONE  # what the timer is doing: 1 idle, 2 holdoff/backoff, 3 ACK wait
        self.synced = False
        self.hold_off = 0  # a big correction waiting for confirmation (station - host),
        self.hold_n = 0  # the ACKs in a row that agreed on it,
        self.hold_t = 0  # and the station time of the first of them
        self.ack = 0  # time of the last ACK that acknowledged something (console status)
        self.reboot_seq = 0
        self.reboot_tries = 0
        self.ahead = -1  # seq of the report sent ahead of failed frames,
        self.passed = -1  # the frame it passed,
        self.strikes = 0  # and how many reports in a row got through past that one

    def _key_of(self, station):
        return self.key if station == self.station else None

    # ---- called by the station ---------------------------------------
    def report(self):
        self.report_due = True
        if self.sleeping == 1:
            self.timer.cancel()

    def kick(self, urgent=False):
        # something new is in flight (alarm, status, result): urgent ones
        # cut a backoff short, once
        if urgent:
            self.urgent = True
        if self.sleeping == 1 or (urgent and self.sleeping == 2):
            self.timer.cancel()

    # ---- the send loop ---------------------------------------------------
    async def run(self, holdoff_ms):
        if holdoff_ms > 0:
            self.sleeping = 2
            await self.timer.sleep_ms(holdoff_ms)
        while True:
            try:
                await self._step()
            except Exception as e:  # noqa: BLE001 - the uplink must outlive any bug
                # MemoryError included: log, let gc work, try again later
                self.app.log("uplink: %r" % e)
                self.sleeping = 2
                await self.timer.sleep_ms(60000)
                self.sleeping = _NONE

    async def _step(self):
        st = self.store
        pw = self.app.pw
        seq = None
        if pw.may_send():
            e = None
            ahead_waiting = False  # the report sent ahead is still in flight
            for x in st.fl:  # round-robin: the fewest tries, newest among equals
                if e is None or x[4] <= e[4]:
                    e = x
                if x[0] == self.ahead:
                    ahead_waiting = True
            if self.report_due and (e is None or (e[4] and not ahead_waiting)):
                self._bf = 0
                seq = st.make_records_frame(frame.DATA, True, self._enc, self.buf,
                                            self.app.cfg["max_frame"])
                if e is None or seq is not None:
                    self.report_due = False
                if e is not None and seq is not None:
                    self.ahead = seq
                    if e[0] != self.passed:
                        self.passed = e[0]
                        self.strikes = 0
            if seq is None and e is not None:
                seq = e[0]
            if seq is None and pw.may_backfill() and st.un:
                self._bf = 8
                seq = st.make_records_frame(frame.DATA, False, self._enc, self.buf,
                                            self.app.cfg["max_frame"])
        if seq is None:
            self.sleeping = 1
            await self.timer.sleep_ms(3600000)
            self.sleeping = _NONE
            return
        self.urgent = False
        if await self._send(seq):
            if st.boff:
                st.boff = 0
                st.save()
            if seq == self.reboot_seq:
                self.board.reset(power.SOFT)
            if seq == self.ahead:
                self._strike()
            return
        # failed: back off (persisted), unless an alarm comes
        st.cnt[3] += 1
        for e in st.fl:
            if e[0] == seq:
                st.tried(e)  # the last try gives it up
                break
        if self.reboot_seq and seq == self.reboot_seq:
            self.reboot_tries += 1
            if self.reboot_tries >= _REBOOT_TRIES:
                self.board.reset(power.SOFT)
        cfg = self.app.cfg
        d = power.backoff(st.boff, self.board.rand(0x3FFFFFFF), cfg["retry_base_s"],
                          cfg["retry_cap_s"])
        if st.boff < 20:
            st.boff += 1
        st.save()
        if not self.urgent:
            self.sleeping = 2
            await self.timer.sleep_ms(d * 1000)
            self.sleeping = _NONE

    def _strike(self):
        # a report sent ahead got its ACK while the frame it passed did not
        for e in self.store.fl:
            if e[0] == self.passed:
                self.strikes += 1
                if self.strikes >= _STRIKES:
                    self.strikes = 0
                    self.store.give_up(e)
                return

    async def _send(self, seq):
        # one transmission of in-flight frame seq and the wait for its ACK
        n = self.store.frame(seq, self._src)
        if not n:
            self.store.ack((seq,))  # its file is gone: nothing to send
            return True
        w = frame.wrap(self._src, n, self.buf)
        self.waiting = seq
        try:
            self.link.write(self.buf[:w])
        except OSError:
            self.waiting = 0
            return False
        self.store.cnt[4] += 1
        self.sleeping = 3
        await self.timer.sleep_ms(self.app.cfg["ack_timeout_s"] * 1000)
        self.sleeping = _NONE
        self.waiting = 0
        return not self._in_flight(seq)

    def _in_flight(self, seq):
        for e in self.store.fl:
            if e[0] == seq:
                return True
        return False

    # ---- encoders the store calls with the seq it assigns ------------------
    def now(self):
        # the header time: never before FLOOR
        t = self.board.time()
        return t if t > FLOOR else FLOOR

    def _enc(self, buf, seq, series, dropped):
        # a data frame; self._bf: the backfill flag (SPEC §5.4) of this one
        return report.encode_report(buf, frame.DATA, self.station, seq, self.now(),
                                   self.key, series, dropped, None, self.app.flags() | self._bf)

    # ---- receiving ---------------------------------------------------------
    async def rx(self):
        link = self.link
        while True:
            await link.flag.wait()
            while True:
                try:
                    n = link.readinto(self._rx)
                except OSError:
                    n = 0
                if not n:
                    break
                for item in self.deframer.feed(self._rxmv[:n]):
                    try:
                        self._downlink(item)
                    except Exception as e:  # noqa: BLE001 - one bad frame never stops rx
                        self.app.log("downlink: %r" % e)

    def _downlink(self, raw):
        st = self.store
        if not isinstance(raw, bytes):
            st.cnt[11] += 1  # a deframing error
            return
        try:
            ft, station, seq, t, body = frame.decode(raw, self._keys)
        except (frame.FrameError, ValueError, IndexError, TypeError, KeyError):
            st.cnt[11] += 1
            return
        if (ft != frame.ACK and ft != frame.COMMAND) or not st.is_ours(seq):
            st.cnt[11] += 1  # not ours, or an old ACK (replay rule, SPEC §6)
            return
        if ft == frame.ACK and seq == self.waiting and seq:
            # the clock only from the ACK of the frame just sent, inside its
            # ACK wait: a recorded ACK replayed later cannot set it back
            self._clock(t)
        cmds = body
        if ft == frame.ACK:
            acks, cmds = body
            if st.ack(acks):
                st.cnt[5] += 1
                self.ack = self.board.time()
            if self.waiting and not self._in_flight(self.waiting):
                self.timer.cancel()
        if cmds:
            self.app.commands(cmds)

    def _clock(self, host_t):
        # correct the clock from the ACK's UTC time when off by more than
        # the threshold; the offset (station minus host) is logged and reported
        t = self.board.time()
        off = t - host_t
        thr = self.app.cfg["clock_sync_threshold_s"]
        if -thr <= off <= thr:
            self.hold_n = 0
            self.synced = True
            return
        was = self.synced
        if t >= FLOOR and ((was and (off > _HOLD_S or -off > _HOLD_S)) or off > _FAR_S or -off > _FAR_S):
            if self.hold_n and -thr <= off - self.hold_off <= thr:
                self.hold_n += 1
            else:
                self.hold_off = off
                self.hold_n = 1
                self.hold_t = t
            if self.hold_n < _CONFIRM or t - self.hold_t < _HOLD_SPAN_S:
                self.app.log("clock: step of %d s held" % -off)
                return
        self.hold_n = 0
        self.synced = True
        self.board.set_time(host_t)
        st = self.store
        st.clk = off
        st.cnt[8] += 1
        st.save()
        self.app.log("clock: corrected by %d s" % -off)
        s = self.app.sampler
        last = s.last_mark
        self.app.retime(off)
        if was and off > 0:
            s.last_mark = last  # stepped back: the marks up to the last recorded are skipped

    def send_event(self, ft, enc):
        # alarm / status / test frame now
        seq = self.store.make_frame(ft, enc, self.buf)
        self.kick(True)
        return seq

    def send_records(self, ft, enc):
        # alarm frame with the newest readings (no new ones: an empty series list)
        seq = self.store.make_records_frame(ft, True, enc, self.buf, self.app.cfg["max_frame"])
        if seq is None:
            seq = self.store.make_frame(ft, lambda b, s: enc(b, s, [], 0), self.buf)
        self.kick(True)
        return seq
