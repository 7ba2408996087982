# hydrolink station services that run rarely: the status report, the test
# report and the commands of SPEC §7. Imported on demand and dropped after
# (station.lazy/unload): their code would otherwise sit in the heap all day.
import gc

import frame
import power
import sampler
import sensors

VERSION = "0.3.0"
CONFIG = "config.json"


def status(app):
    b = app.board
    st = app.store
    gc.collect()
    free = gc.mem_free()
    c = {}
    for i in range(1, 12):
        if st.cnt[i]:
            c[i] = st.cnt[i]
    s = {1: b.battery_mv(), 2: b.temperature(), 3: VERSION,
         4: b.time() - app.uptime0, 5: app.cause, 6: st.depth(), 8: free,
         9: b.free_flash(), 10: st.clk, 11: c, 12: app.flags()}
    o = st.oldest_time()
    if o is not None:
        s[7] = o
    return s


def send_status(app):
    s = status(app)
    app.peak()
    app.log("heap: alloc=%d peak=%d free=%d day=%d" % (
        gc.mem_alloc(), app.heap_peak, s[8], app.board.time() // 86400))
    if not app.pw.may_send():
        return

    def enc(buf, seq):
        return frame.encode_status(buf, app.station, seq, app.board.time(), app.key, s)

    app.uplink.send_event(frame.STATUS, enc)


def send_test(app):
    # test report: the current values, each a single value at the header time
    b = app.board
    t = b.time()
    series = []  # type: list
    if app.level is not None:
        try:
            series.append((sampler.LEVEL, 1, t, [app.level.read_mm()], None))
        except sensors.SensorError:
            series.append((sampler.LEVEL, 1, t, [None], [4]))
    series.append((sampler.BATTERY, 1, t, [b.battery_mv()], None))
    series.append((sampler.LOGGER_TEMP, 1, t, [b.temperature()], None))
    flags = app.flags()

    def enc(buf, seq):
        return frame.encode_report(buf, frame.TEST, app.station, seq, t, app.key,
                                   series, 0, None, flags)

    app.uplink.send_event(frame.TEST, enc)


def command(app, cid, op, args):
    # -> result [id, code(, detail)]; the uplink keeps ids and results
    if app.pw.state == power.CRITICAL and op != 2 and op != 6:
        return [cid, 4, "low power"]
    if op == 1:
        gc.collect()
        import config
        new, why = config.apply_changes(app.cfg, args)
        if new is None:
            return [cid, 2, why]
        try:
            config.save(CONFIG, new)
        except OSError as e:
            return [cid, 3, "save: %s" % e]
        app.apply(new)
        return [cid, 0]
    if op == 2:
        import config
        names = args if args is not None else []
        if type(names) is not list:
            return [cid, 2, "args: must be a list of keys"]
        d, why = config.get(app.cfg, names)
        if d is None:
            return [cid, 2, why]
        return [cid, 0, d]
    if op == 3:
        if type(args) is not list or len(args) != 2 or type(args[0]) is not int \
                or type(args[1]) is not int or args[0] > args[1]:
            return [cid, 2, "args: [from, to] hydrolink times"]
        return [cid, 0, app.store.resend(args[0], args[1])]
    if op == 4:
        send_test(app)
        return [cid, 0]
    if op == 5:
        app.reboot_pending = True
        return [cid, 0]
    if op == 6:
        send_status(app)
        return [cid, 0]
    return [cid, 1]
