# hydrolink commands (SPEC §7), run by the uplink for each new command id
# (run: the ACK's commands -> a result frame):
# set/get configuration, resend a time range, test report, reboot, status.
# Imported on demand and dropped after (station.command), with config.py.
from micropython import const
import gc
import struct

import frame
import power
import sampler
import sensors
from report import encode_report

_REC = const(16)  # store.py's record size and records per segment (its layout)
_PER = const(256)
_GET = const(5)  # a kept get_config result (never sent): [id, _GET, keys]


def run(app, cmds):
    # each id at most once (SPEC §6): ids at or below the highest run get
    # their stored result again
    up = app.uplink
    st = app.store
    out = []
    for c in cmds:
        cid = c[0]
        if cid <= st.cmd:
            r = None
            for x in st.res:
                if x[0] == cid:
                    r = x
                    break
            if r is None:
                # its result is gone (or a power cut came between running
                # it and keeping the result): it may or may not have run
                r = [cid, 3, "result lost"]
            elif r[1] == _GET:
                r = result(app, cid, 2, r[2])  # read again: no side effect
            out.append(r)
            continue
        st.cmd = cid  # persisted before it runs: at most once, power cuts too
        st.cnt[9] += 1
        st.save()
        op = c[1]
        a = c[2] if len(c) > 2 else None
        r = result(app, cid, op, a)
        # a get_config is kept as its keys, not its map: the whole map in
        # the state file made every save (json.dumps) a ~1 KB string, which
        # failed on a 128K heap
        st.res.append([cid, _GET, a or []] if op == 2 and r[1] == 0 else r)
        if len(st.res) > 8:
            st.res.pop(0)
        out.append(r)
    if not out:
        return
    results = out
    mf = app.cfg["max_frame"]

    def enc(buf, seq):
        # a detail that does not fit max_frame (get_config on a small-frame
        # link) becomes a failed result (kept so, and answered so again)
        try:
            n = frame.encode_result(buf, app.station, seq, up.now(), app.key, results)
            if n <= mf:
                return n
        except frame.Oversize:
            pass
        for r in results:
            if len(r) > 2 and r[1] == 0:
                del r[2:]
                r[1] = 3
                r.append("max_frame")
                for x in st.res:
                    if x[0] == r[0]:
                        x[:] = r  # kept failed, answered so again
        return frame.encode_result(buf, app.station, seq, up.now(), app.key, results)

    seq = st.make_frame(frame.RESULT, enc, up.buf)  # the result with the frame
    if app.reboot_pending:
        up.reboot_seq = seq
    up.kick(True)


def result(app, n, kind, args):
    # command n, op kind -> result [id, code(, detail)]; the uplink keeps
    # ids and results. (Names here are ones the firmware has already: each
    # new one is a qstr, and the pool is full - see console.py)
    cid = n
    op = kind
    if app.pw.state == power.CRITICAL and op != 2 and op != 6:
        return [cid, 4, "low power: radio off"]
    if op == 1:
        gc.collect()
        import config
        try:
            why = config.configure(app, args)
        except OSError as e:
            return [cid, 3, "could not save: %s" % e]
        if why is not None:
            return [cid, 2, why]
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
        return [cid, 0, _add_un(app.store, args[0], args[1])]
    if op == 4:
        report(app)
        return [cid, 0]
    if op == 5:
        app.reboot_pending = True
        return [cid, 0]
    if op == 6:
        app.send_status()
        return [cid, 0]
    return [cid, 1]


def report(app):
    # test report: the current values, each a single value at the header time
    b = app.board
    t = app.uplink.now()
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
        return encode_report(buf, frame.TEST, app.station, seq, t, app.key,
                                   series, 0, None, flags)

    app.uplink.send_event(frame.TEST, enc)


def _rec_ok(st, f):
    # next record of an open segment into st._tmp: complete, CRC good
    b = st._tmp
    return f.readinto(b) == _REC and st._crc_ok(b)


def _add_un(st, t0, b):
    # resend (op 3): queue again (add to the unsent) the kept readings with
    # times in t0..b (named as store._add_un: a name that exists, see result());
    # -> how many. Readings in flight or unsent are already on their way.
    # One open per segment, records read in order
    n = 0
    a = -1
    r = st.first * _PER
    while r < st.top:
        f = None
        try:
            f = open("%s/g%d" % (st.root, r // _PER), "rb")
        except OSError:
            pass
        e = (r // _PER + 1) * _PER
        if e > st.top:
            e = st.top
        while r < e:
            inside = False
            if f is not None and _rec_ok(st, f):
                t = struct.unpack_from("<I", st._tmp)[0]
                inside = t0 <= t <= b
                for x in st.un:  # unsent or in flight: already on their way
                    if x[0] <= r < x[1]:
                        inside = False
                for x in st.fl:
                    if x[1] <= r < x[2]:
                        inside = False
            else:
                f = None  # a bad record: the rest of the segment is not trusted
            if inside and a < 0:
                a = r
            elif not inside and a >= 0:
                st._add_un(a, r)
                n += r - a
                a = -1
            r += 1
        if f is not None:
            f.close()
    if a >= 0:
        st._add_un(a, r)
        n += r - a
    if n:
        st.save()
    return n
