# hydrolink station app: the asyncio shell around the pure modules.
# Tasks: sampler (clock-aligned samples and records, alarm rules, power
# policy), rain (stuck-switch watch after each tip IRQ), sender (alarms at
# once; report marks, every interval while in alarm), status (daily status
# report and the watchdog), uplink send and receive, and the idle task that
# sleeps the board when nothing is due (sched.py). Time: hydrolink seconds from the
# board's RTC, ms ticks for durations.
from micropython import const
import asyncio
import gc
import micropython
import sys

import alarms
import frame
import power
import sampler
import sensors
from sched import Sched
from store import Store
from uplink import FLOOR, Uplink

_WDT_MS = const(600000)  # watchdog: 10 min without a healthy sample cycle
_STUCK_POLL_MS = const(60000)
_ELEM_IV_BATT = (sampler.BATTERY, sampler.LOGGER_TEMP)


class Station:
    # cfg: the validated configuration, key: its HMAC key bytes or None
    # (main.py loads both before this module is imported)
    def __init__(self, board, cfg, key):
        self.board = board
        self.uptime0 = board.time()
        self.cfg = cfg
        self.station = cfg["station"]
        self.key = frame.Key(key if key else bytes(32))
        self.cause = board.reset_cause()
        self.store = Store(cfg["queue_max_bytes"], getattr(board, "trace", None))
        self.store.peak = self.peak
        st = self.store
        st.cnt[7] += 1
        if self.cause == power.WATCHDOG:
            st.cnt[10] += 1
        brown = st.extra.get("brown", 0)
        brown = brown + 1 if self.cause == power.BROWNOUT else 0
        st.extra["brown"] = brown
        st.save()
        self.sched = Sched(board)
        self.sched.app = self
        self.gauge = sensors.RainGauge(cfg["debounce_ms"], cfg["stuck_ms"])
        self.level = sensors.make_level(cfg, board.adc, getattr(board, "rs485", None))
        self.sampler = sampler.Sampler(cfg, board.time())
        self.alarms = alarms.Alarms(cfg)
        self.pw = power.Power(cfg, power.boot_state(self.cause))
        if self.cause != power.BROWNOUT:
            # the state from a reading now, not from the next hourly one: a
            # reset with a flat battery must not start with an hour of backfill.
            # (After a brownout: SHED until the hourly reading shows recovery)
            self.pw.update(board.battery_mv())
        self.uplink = Uplink(board, self.sched, st, self, self.key, self.station)
        self.rain_flag = board.flag()  # ThreadSafeFlag on a real board
        self.alarm_ev = []  # pending alarm events, bounded (5 kinds)
        self.reboot_pending = False
        self.heap_peak = 0
        self.alive = board.ticks_ms()
        self.report_due = False  # a report mark passed (sender_task)
        self._st_at = None  # time of the next status report
        self._gen = 0  # retime() count
        # Six tasks, four timers. Each task costs ~500 B of heap while it
        # waits (task, coroutine and awaited generators: 64-bit VM), so the
        # rare, event-driven ones share: sender_task sends alarms and reports,
        # status_task feeds the watchdog and sends the daily status
        self._t_sample = self.sched.timer()
        self._t_rain = self.sched.timer()
        self._t_send = self.sched.timer()
        self._t_status = self.sched.timer()
        board.rain_pin.irq(handler=self._irq, trigger=2)  # Pin.IRQ_FALLING
        self.holdoff = power.holdoff(self.cause, self.station ^ st.cnt[7] ^ board.rand(0x3FFFFFFF),
                                     cfg["holdoff_s"], brown)

    # ---- small helpers ---------------------------------------------------
    def log(self, msg):
        print(msg)

    def _irq(self, pin):
        # interrupt: count (with debounce) and wake the rain task; no allocation
        self.gauge.on_edge(self.board.ticks_ms())
        self.rain_flag.set()

    def flags(self):
        f = self.pw.flags()
        if not self.uplink.synced:
            f |= 2
        if self.alarms.in_alarm:
            f |= 4
        return f

    def retime(self, step=0):
        # the clock moved (step: by how much back, from an ACK; 0: the config
        # changed): sleeping tasks recompute their marks. After a step the
        # marks start afresh (a mark at or before the last one would never be
        # recorded again: 48 h back = 48 h of nothing), the first interval is
        # suspect, the alarm windows restart their times, uptime stays whole
        if step:
            s = self.sampler
            s.last_mark = None
            s.t_start = self.board.time()
            self.alarms.retime()
            self.uptime0 -= step
        self._st_at = None
        self._gen += 1
        for t in (self._t_sample, self._t_status):
            if t.armed:
                t.cancel()

    async def _sleep_until(self, timer, t):
        # -> False if retime() came first: t is then stale (the caller recomputes)
        b = self.board
        g = self._gen
        while True:
            d = (t - b.time()) * 1000 - b.subsec_ms()
            if d <= 0:
                return True
            await timer.sleep_ms(d)
            if g != self._gen:
                return False

    def peak(self):
        # live heap at a busy moment (frame built, status): the peak figure
        gc.collect()
        a = gc.mem_alloc()
        if a > self.heap_peak:
            self.heap_peak = a

    # ---- tasks -------------------------------------------------------------
    async def sampler_task(self):
        b = self.board
        s = self.sampler
        st = self.store
        while True:
            t = s.next_due(b.time())
            if not await self._sleep_until(self._t_sample, t):
                continue
            if self.level is not None:
                try:
                    s.add_level_sample(t, self.level.read_mm())
                except sensors.SensorError:
                    s.add_level_sample(t, None, True)
                    st.cnt[2] += 1
            if s.is_mark(t) and (t >= FLOOR or self.uplink.synced):
                self._record(t)  # not with a clock before the build: times would be nonsense
            self.alive = b.ticks_ms()

    def _record(self, t):
        b = self.board
        st = self.store
        cfg = self.cfg
        tips, fault = self.gauge.take()
        st.cnt[1] += tips
        batt = temp = None
        if t % cfg["batt_interval"] == 0:
            batt = b.battery_mv()
            temp = b.temperature()
        readings = self.sampler.record(t, tips, fault, batt, temp)
        ri = cfg["record_interval"]
        bi = cfg["batt_interval"]
        # the queue first: nothing else happens to a reading before it is on flash
        for r in readings:
            st.append(r[0], r[1], r[2], r[3], bi if r[0] in _ELEM_IV_BATT else ri)
        raised = False
        for r in readings:
            if r[3] == 4:
                st.cnt[2] += 1
            for ev in self.alarms.update(r[1], r[0], r[2], r[3]):
                if ev[1] != alarms.ACTIVE:
                    raised = True
                    self._alarm_event(ev)
        if batt is not None:
            old = self.pw.state
            if self.pw.update(batt) != old:
                self.log("power: state %d" % self.pw.state)
        if not raised and (self.alarms.flooding or t % self.pw.report_interval() == 0):
            self.report_due = True  # in a rain/level alarm: every interval
        if raised or self.report_due:
            self._t_send.cancel()

    def _alarm_event(self, ev):
        k = ev[0]
        for i in range(len(self.alarm_ev)):
            if self.alarm_ev[i][0] == k:
                self.alarm_ev[i] = ev  # newest state of a kind wins
                return
        self.alarm_ev.append(ev)

    async def rain_task(self):
        # after a tip, watch for a switch stuck closed (RainGauge.poll): every
        # second while it might be a tip, every minute once it is stuck (a
        # bucket jammed for days must not keep the board awake)
        b = self.board
        g = self.gauge
        while True:
            await self.rain_flag.wait()
            while True:
                closed = b.rain_pin.value() == 0
                g.poll(b.ticks_ms(), closed)
                if not closed:
                    break
                await self._t_rain.sleep_ms(_STUCK_POLL_MS if g.stuck else 1000)

    async def sender_task(self):
        # woken by the sampler: alarm events go first; then a report mark
        # (in alarm: an alarm frame with the active rules, unless one just
        # went with the newest readings)
        while True:
            await self._t_send.sleep_ms(86400000)
            sent = False
            if self.alarm_ev:
                evs = self.alarm_ev
                self.alarm_ev = []
                for a in self.alarms.active():  # other rules still in alarm ride along
                    found = False
                    for e in evs:
                        if e[0] == a[0]:
                            found = True
                    if not found:
                        evs.append(a)
                self.log("alarm: %d events" % len(evs))
                self._send_alarm(evs)
                sent = True
            if self.report_due:
                self.report_due = False
                if not self.alarms.flooding:
                    self.uplink.report()
                elif not sent:
                    self._send_alarm(self.alarms.active())

    def _send_alarm(self, evs):
        al = []
        for e in evs:
            a = [e[0], e[1], e[2], e[3]]
            if e[4] is not None:
                a.append(e[4])
            al.append(a)
        if not al:
            return
        if not self.pw.may_send():
            return
        up = self.uplink
        flags = self.flags()
        # here, not a global: one more name in this module's dict put 1.3 KB
        # on the live heap at boot (measured: 91,040 -> 92,320 B on the sim board)
        import report

        def enc(buf, seq, series, dropped):
            return report.encode_report(buf, frame.ALARM, self.station, seq, self.uplink.now(),
                                       self.key, series, dropped, al, flags)

        up.send_records(frame.ALARM, enc)

    async def status_task(self):
        # the status report after each status_interval mark, and the
        # watchdog, checked every sample_interval (5 min at most): fed only
        # while the sampler is alive - it finished a cycle in the last 5
        # minutes, or it sleeps in its timer and is not late. A sampler that hangs (a driver that
        # never returns blocks every task) or died resets the board. ("Cycled
        # in the last 5 minutes" alone would not do: with hourly records the
        # sampler sleeps ~56 min between its median windows.)
        b = self.board
        b.wdt_start(_WDT_MS)
        ts = self._t_sample
        diff = sensors.ticks_diff
        while True:
            now = b.time()
            if self._st_at is None:
                iv = self.cfg["status_interval"]
                self._st_at = (now // iv + 1) * iv + 30  # just after the mark's records
            elif now >= self._st_at:
                self._st_at = None
                self.send_status()
                continue
            si = self.cfg["sample_interval"]
            t = (now // si + 1) * si
            if t > self._st_at:
                t = self._st_at
            if t > now + _WDT_MS // 2000:
                t = now + _WDT_MS // 2000  # twice per timeout (sample_interval: up to 1 h)
            # one sleep, no loop: after retime() everything is recomputed
            await self._t_status.sleep_ms((t - now) * 1000 - b.subsec_ms())
            k = b.ticks_ms()
            if diff(k, self.alive) < _WDT_MS // 2 or (ts.armed and diff(k, ts.due) < _WDT_MS // 2):
                b.wdt_feed()

    def send_status(self):
        lazy("service").send_status(self)
        unload("service")

    # ---- commands (SPEC §7), called by the uplink with an ACK's commands ---------
    def commands(self, cmds):
        lazy("commands").run(self, cmds)
        unload("commands")
        unload("config")

    # ---- run -----------------------------------------------------------------
    async def main(self):
        gc.collect()
        self.log("heap boot: alloc=%d free=%d" % (gc.mem_alloc(), gc.mem_free()))
        # Interned names (qstrs) live in pools that double: the 64-bit VM's
        # next pool would take 7 KB at once when the count passes 630 (with
        # the lazy modules loaded, ~610 today). Logged so tests can watch it
        micropython.qstr_info()
        self.log("boot: station %d cause %d seq %d queue %d holdoff %d s" % (
            self.station, self.cause, self.store.seq, self.store.depth(), self.holdoff))
        if self.board.time() < FLOOR:
            self.send_status()  # its ACK sets the clock (nothing is recorded before)
        asyncio.create_task(self.sampler_task())
        asyncio.create_task(self.rain_task())
        asyncio.create_task(self.sender_task())
        asyncio.create_task(self.status_task())
        asyncio.create_task(self.uplink.rx())
        asyncio.create_task(self.uplink.run(self.holdoff * 1000))
        await self.sched.idle()


def lazy(name):
    # import a module that is needed rarely (code costs heap on the board)
    gc.collect()
    return __import__(name)


def unload(name):
    # drop a lazily imported module so gc can take its code back
    try:
        del sys.modules[name]
    except KeyError:
        pass
