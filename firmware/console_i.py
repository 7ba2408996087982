# hydrolink console: help, status, read, watch, clock, queue, send test,
# reboot, factory-reset.
# Imported for one command and dropped after
# (console.py; it says why the names here are few, and old ones).
import sys

from console import format, gmtime, holdoff, load, log, names, out, state


async def run(app, x, k, w):
    # console WORDS index k: 0 help, 1 status, 2 read, 3 watch, 6 clock, 7 queue, 8 dump,
    # 9 send test, 10 reboot, 11 factory-reset (console.py has checked the PIN for writes)
    b = app.board
    t = names[3].split()
    sub = w[1] if len(w) > 1 else ""
    if k == 0:
        for h in (
            "help                         this list",
            "status                       station, clock, battery, queue, alarms, faults",
            "read                         live sensor values",
            "watch                        live values every second, any key stops",
            "config show [KEY|PAGE]       configuration (pages 1..3, or one key)",
            "config set KEY VALUE         change one key (PIN)",
            "calibrate level METRES       level offset from a staff gauge reading (PIN)",
            "clock show                   the board clock, UTC",
            "clock set YYYY-MM-DD HH:MM:SS   set the clock, UTC (PIN)",
            "queue                        queued readings: depth, oldest unsent, dropped",
            "dump [--since TIME]          queued readings as CSV (TIME: UTC date [time])",
            "send test                    send a test report now (PIN)",
            "reboot                       restart the board (PIN)",
            "factory-reset                default configuration, queue erased (PIN)",
            "exit                         end the session (Ctrl-D too)",
        ):
            out(b, h)
    elif k == 1:
        status(app)
    elif k == 2:
        read(app, None)
    elif k == 3:
        out(b, "watch: every second, any key stops")
        while not b.console:
            read(app, b.time())
            await app.sched.console.sleep_ms(1000 - b.subsec_ms())
        b.read()
    elif k == 6 and sub == t[0]:
        time(app)
    elif k == 6 and sub == t[1]:
        clock(app, w)
    elif k == 7:
        depth(app)
    elif k == 9 and sub == t[2]:
        send(app)
        out(b, "test report queued: the current level, battery and temperature")
    elif k == 10:
        out(b, "rebooting now: the console comes back in a few seconds")
        app.store.save()
        b.reset(4)
    elif k == 11:
        out(b, "factory-reset: the configuration goes back to the defaults (station id,")
        out(b, "key and PIN are kept) and the %d readings on flash are ERASED." % (
            app.store.tail - app.store.first * 256))
        out(b, "Type YES to confirm, anything else cancels.")
        x[4] = True
    else:
        out(b, "error: usage: %s" % (
            "clock show, clock set YYYY-MM-DD HH:MM:SS" if k == 6 else "send test (help lists all)"))


def status(app):
    b = app.board
    st = app.store
    import service
    s = service.status(app)  # what the daily status report says
    app.peak()  # the live heap now, in the next status report's peak figure (bench)
    del sys.modules["service"]
    up = app.uplink
    c = st.cnt
    out(b, "station %d   firmware %s   up %d h %d min   reset cause %d" % (
        app.station, s[3], s[4] // 3600, s[4] // 60 % 60, s[5]))
    out(b, "clock   %s, %s" % (gmtime(b.time()), "synced by the center" if up.synced else "not synced yet"))
    out(b, "        last sync offset %+d s (station - center), %d syncs" % (s[10], c[8]))
    out(b, "battery %s V   logger %s degC   power %s" % (
        format(s[1], 3), format(s[2], 1), "normal shed critical".split()[app.pw.state]))
    o = s.get(7)
    out(b, "queue   %d readings unacknowledged, oldest %s, %d dropped" % (
        s[6], gmtime(o) if o is not None else "none", c[6]))
    a = up.ack
    out(b, "last ACK %s   frames sent %d, ACKs %d, retries %d" % (
        gmtime(a) if a else "none since boot", c[4], c[5], c[3]))
    k = "alarm: rain level_high level_rise level_low battery_low".split()
    al = [k[e[0]] for e in app.alarms.active()]
    out(b, "alarms   %s" % (" ".join(al) if al else "none active"))
    f = "rain gauge STUCK" if app.gauge.stuck else "none at the moment"  # (long literal: no qstr)
    out(b, "faults  %s; sensor %d, bad downlink %d, watchdog resets %d" % (f, c[2], c[11], c[10]))
    m = holdoff(app)
    p = state(app)
    out(b, "PIN     %d wrong in all, %d in a row; writes %s" % (
        p[2], p[0], "LOCKED for %d min" % m if m else "need the PIN"))
    out(b, "memory  %d B heap free, %d kB flash free" % (s[8], s[9] // 1024))


def read(app, t):
    # live values; t: a watch line at time t, None: the read answer
    b = app.board
    cfg = app.cfg
    lv = "no level sensor"
    ma = ""
    if app.level is not None:
        try:
            lv = format(app.level.read_mm(), 3) + " m above datum"
        except Exception as e:  # noqa: BLE001 - SensorError: say so, go on
            lv = "FAULT (sensor error %s)" % (e.args[0] if e.args else "of unknown kind")
        ua = getattr(app.level, "ua", None)
        if ua is not None:
            ma = "   loop %s mA" % format(ua, 3)
    g = app.gauge
    tips = (g.count - g._taken) & 0x3FFFFFFF
    rain = format(tips * cfg["tip_tenths"], 1)
    bat = format(b.battery_mv(), 3)
    tmp = format(b.temperature(), 1)
    if t is not None:
        out(b, "%s  level %s  rain %s mm  battery %s V  %s degC" % (gmtime(t)[11:19], lv, rain, bat, tmp))
        return
    out(b, "level    %s%s" % (lv, ma))
    out(b, "rain     %s mm since the last record (%d tips of %s mm)%s" % (
        rain, tips, format(cfg["tip_tenths"], 1), ", gauge STUCK" if g.stuck else ""))
    out(b, "battery  %s V" % bat)
    out(b, "logger   %s degC (inside the enclosure)" % tmp)


def time(app):
    b = app.board
    out(b, "clock   %s (%d s since 2024-01-01)" % (gmtime(b.time()), b.time()))
    out(b, "        %s; last sync offset %+d s (station - center)" % (
            "synced by the center" if app.uplink.synced else "not synced since boot", app.store.clk))


def depth(app):
    b = app.board
    st = app.store
    import service
    o = service.oldest_time(st)
    del sys.modules["service"]
    out(b, "queue   %d readings unacknowledged (%d in flight in %d frames)" % (
        st.depth(), sum([e[2] - e[1] for e in st.fl]), len(st.fl)))
    out(b, "oldest unsent %s" % (gmtime(o) if o is not None else "none"))
    out(b, "dropped %d readings in all (queue full), %d still to report" % (st.cnt[6], st.drop))
    out(b, "kept    %d readings on flash, limit %d kB" % (st.tail - st.first * 256, st.max_segs * 4))


def clock(app, w):
    # clock set DATE TIME (UTC)
    b = app.board
    t = load(" ".join(w[2:])) if len(w) > 2 else None
    if t is None:
        out(b, "error: clock set wants UTC as YYYY-MM-DD HH:MM:SS, e.g. clock set 2025-08-25 10:05:00")
        return
    old = b.time()
    b.set_time(t)
    if old != t:
        app.retime(old - t)
    out(b, "clock %s -> %s (the center's ACKs still correct it)" % (gmtime(old), gmtime(t)))
    log(app, "clock set %s -> %s" % (gmtime(old)[:19], gmtime(t)[:19]))


def send(app):
    # send test: a test report of the current values, as commands.report
    # (not imported for it: its names would cost one more qstr pool)
    import frame
    import report
    b = app.board
    t = app.uplink.now()
    series = []  # type: list
    if app.level is not None:
        try:
            series.append((2, 1, t, [app.level.read_mm()], None))
        except Exception:  # noqa: BLE001 - SensorError: fault
            series.append((2, 1, t, [None], [4]))
    series.append((3, 1, t, [b.battery_mv()], None))
    series.append((4, 1, t, [b.temperature()], None))
    flags = app.flags()

    def enc(buf, seq):
        return report.encode_report(buf, frame.TEST, app.station, seq, t, app.key, series, 0, None, flags)

    app.uplink.send_event(frame.TEST, enc)


def reset(app, data):
    # the answer to factory-reset's question
    b = app.board
    if data != names[3].split()[4]:
        out(b, "factory-reset cancelled: nothing changed")
        return False
    cfg = app.cfg
    keep = {}
    for k in "station key pin_hash pin_salt".split():
        if cfg.get(k):
            keep[k] = cfg[k]
    import os

    import config
    config.save("config.json", keep)
    root = app.store.root
    try:
        for f in os.listdir(root):
            os.remove(root + "/" + f)
        os.rmdir(root)
    except OSError:
        pass
    out(b, "factory-reset done: rebooting with the default configuration")
    b.reset(4)
    return True
