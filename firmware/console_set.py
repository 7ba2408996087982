# hydrolink console: config show, config set and calibrate level (the
# commands that need config.py; console.py has checked the PIN and applies
# the change: console.configure), and dump. Imported for one command and
# dropped after. A change is validated by config.py exactly as a remote set_config is, saved, taken
# by every part at once (as commands.configure), and reported to the center: a
# line in the status report (SPEC §8 key 13), sent at once.
#
# dump: the readings kept in the flash queue (store.py's records: unsent,
# in flight and acknowledged history) as CSV, oldest first, for hydrolink
# pull. Scaled integers as the board keeps them (the host converts to SI
# units): short lines (~20 bytes). Written in chunks, yielding between
# them: sampling and reporting go on during a long dump.
# Few names (console.py says why): function names the firmware already
# has, words from console.names.
import asyncio
import gc
import struct
import sys

from console import find, format, gmtime, load, log, names, out

# set by provisioning only (hydrolink provision, flash); the last three never shown
SECRET = "station key pin_hash pin_salt"


def kind(k):
    for p in "_tenths:x 0.1 mm\n_ms:ms\n_mm:mm\n_mv:mV\n_uv:uV\n_ohm:ohm\n_bytes:bytes\n_s:s\ninterval:s\ncal_gain:/10000\nmax_frame:bytes".split("\n"):
        u = p.split(":")
        if k.endswith(u[0]):
            return u[1]
    return ""


def value(v):
    # a configuration value as the technician types it
    if v is None:
        return "null (rule off)"
    if v is True or v is False:
        return names[3].split()[6 - v]  # true / false
    return str(v)


def get(app, w):
    b = app.board
    cfg = app.cfg
    hide = SECRET.split()[1:]
    ks = sorted([k for k in cfg if k not in hide])
    page = 1
    if len(w) > 2:
        if w[2] in cfg:
            k = w[2]
            out(b, "%-24s %s %s" % (k, "***" if k in hide else value(cfg[k]), kind(k)))
            return
        try:
            page = int(w[2])
        except ValueError:
            page = 0
        if not 1 <= page <= 3:
            out(b, "error: config show takes a key or a page 1..3; did you mean '%s'?" % find(w[2], ks))
            return
    n = (len(ks) + 2) // 3
    out(b, "configuration, page %d of 3 (config show 1..3, config show KEY):" % page)
    for k in ks[(page - 1) * n:page * n]:
        out(b, "  %-24s %s %s" % (k, value(cfg[k]), kind(k)))


def set(app, w):
    # config set KEY VALUE
    b = app.board
    cfg = app.cfg
    keep = SECRET.split()
    if len(w) != 4:
        out(b, "error: usage: config set KEY VALUE, e.g. config set report_interval 1800")
        return
    k = w[2]
    if k not in cfg:
        out(b, "error: unknown key '%s'; did you mean '%s'? (config show lists them)" % (
            k[:30], find(k, [x for x in cfg if x not in keep])))
        return
    if k in keep:
        out(b, "error: %s is set by provisioning (hydrolink provision, flash), not here" % k)
        return
    v = w[3]
    t = names[3].split()
    if v in t[5:]:
        v = None if v == t[7] else v == t[5]  # true false null
    else:
        try:
            v = int(v)
        except ValueError:
            pass  # text (level_sensor)
    return [{k: v}, 4, k, w[3], cfg[k], v]  # console.py applies it, done() answers


def level(app, w):
    # calibrate level METRES: the offset that makes the reading the staff gauge's
    b = app.board
    if len(w) != 3 or w[1] != names[3].split()[3]:
        out(b, "error: usage: calibrate level METRES (the staff gauge reading, e.g. 2.415)")
        return
    if app.level is None:
        out(b, "error: this station has no level sensor (level_sensor %s)" % app.cfg["level_sensor"])
        return
    try:
        g = int(round(float(w[2]) * 1000))
    except ValueError:
        out(b, "error: calibrate level wants metres as a number, e.g. 2.415; got '%s'" % w[2][:20])
        return
    if not -10000000 <= g <= 10000000:
        out(b, "error: the staff gauge reading must be -10000..10000 m")
        return
    try:
        before = app.level.read_mm()
    except Exception as e:  # noqa: BLE001 - SensorError
        out(b, "error: level sensor fault (%s): cannot calibrate now" % (e.args[0] if e.args else "of unknown kind"))
        return
    old = app.cfg["cal_offset_mm"]
    return [{"cal_offset_mm": old + g - before}, 5, g, before, old, old + g - before]


def done(app, r, data):
    # the answer to a change console.py applied: r from set() or level(),
    # data: None (taken) or the reason it was not
    b = app.board
    if r[1] == 4:
        k = r[2]
        if data is not None:
            u = kind(k)
            if data.startswith(k):
                data = data[len(k) + 2:]
            if u and data[-1].isdigit():
                data += " " + u  # a range: in the key's unit
            out(b, "error: %s %s: %s (now %s)" % (k, r[3][:20], data, value(r[4])))
            return
        out(b, "%s: %s -> %s %s (saved; the center is told)" % (k, value(r[4]), value(r[5]), kind(k)))
        log(app, "config %s %s -> %s" % (k, value(r[4]), value(r[5])))
        return
    g, before, old, new = r[2], r[3], r[4], r[5]
    if data is not None:
        out(b, "error: offset %d mm not taken: %s (cal_offset_mm, mm)" % (new, data))
        return
    try:
        after = format(app.level.read_mm(), 3)
    except Exception:  # noqa: BLE001
        after = "fault"
    out(b, "before: level %s m, cal_offset_mm %d mm" % (format(before, 3), old))
    out(b, "staff gauge:  %s m" % format(g, 3))
    out(b, "after:  level %s m, cal_offset_mm %d mm (saved; the center is told)" % (after, new))
    log(app, "calibrate level: staff %s m, read %s m, cal_offset_mm %d -> %d" % (
        format(g, 3), format(before, 3), old, new))


def run(app, x, k, w):
    # console WORDS index k: 4 config, 5 calibrate. -> a change for
    # console.py to apply (with this module out of the heap: config.py is
    # 13 KB), or None when answered here
    b = app.board
    t = names[3].split()
    sub = w[1] if len(w) > 1 else ""
    if k == 4 and sub == t[1]:
        return set(app, w)
    if k == 4 and sub == t[0]:
        get(app, w)
    elif k == 5:
        return level(app, w)
    else:
        out(b, "error: usage: config show [KEY|PAGE], config set KEY VALUE")
    return None


async def dump(app, w):
    # dump [--since TIME]
    b = app.board
    st = app.store
    since = 0  # type: int | None
    if len(w) > 1:
        arg = " ".join(w[2:]) if w[1] == "--since TIME".split()[0] else ""
        since = load(arg) if "-" in arg else None
        if since is None:
            try:
                since = int(arg)
            except ValueError:
                out(b, "error: dump --since wants a UTC time, YYYY-MM-DD [HH:MM:SS] (or hydrolink s)")
                return
    r = st.first * 256
    end = st.tail
    out(b, "# station %d: up to %d readings since %s" % (app.station, end - r, gmtime(since)))
    out(b, "# time: s since 2024-01-01 UTC; element: 1 rain 0.1 mm, 2 level mm,")
    out(b, "# 3 battery mV, 4 logger 0.1 degC; quality 0 good .. 4 fault (SPEC 5.3)")
    out(b, "time,element,value,quality")
    buf = bytearray(16 * 32)
    mv = memoryview(buf)
    n = 0
    while r < end:
        k = r // 256
        f = None
        try:
            f = open("%s/g%d" % (st.root, k), "rb")
            f.seek((r % 256) * 16)
        except OSError:
            f = None
        stop = (k + 1) * 256
        if stop > end:
            stop = end
        while r < stop:
            m = stop - r
            if m > 32:
                m = 32
            got = f.readinto(mv[:m * 16]) // 16 if f is not None else 0
            lines = []
            for i in range(got):
                rec = mv[i * 16:(i + 1) * 16]
                if not st._crc_ok(rec):
                    continue
                t, v, iv, el, q = struct.unpack_from("<IiIBB", rec)
                if t >= since:
                    lines.append("%d,%d,%s,%d\r\n" % (t, el, "" if q == 3 or q == 4 else v, q))
            n += len(lines)
            if lines:
                b.write("".join(lines))
            r += m
            if got < m:
                r = stop  # a short segment (a cut append): the rest is not there
            await asyncio.sleep_ms(0)
        if f is not None:
            f.close()
    out(b, "# end: %d readings" % n)
