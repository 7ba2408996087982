# hydrolink daily status report (SPEC §8). Imported on demand and dropped
# after (station.lazy/unload): its code would otherwise sit in the heap all
# day. The commands are commands.py, for the same reason: the status report
# is the busiest moment of an ordinary day (the peak heap figure), and the
# command code (2 KB) has no business being loaded then.
from micropython import const
import gc
import micropython
import struct

import frame

VERSION = "0.3.0"
_REC = const(16)  # store.py's record size and records per segment (its layout)
_PER = const(256)


def status(app):
    b = app.board
    st = app.store
    gc.collect()
    free = gc.mem_free()
    c = {}
    for i in range(1, len(st.cnt)):
        if st.cnt[i]:
            c[i] = st.cnt[i]
    up = b.time() - app.uptime0  # uptime0 moves with each clock step (station.retime)
    s = {1: b.battery_mv(), 2: b.temperature(), 3: VERSION,
         4: up if up > 0 else 0, 5: app.cause, 6: st.depth(), 8: free,
         9: b.free_flash(), 10: st.clk, 11: c, 12: app.flags()}
    o = oldest_time(st)
    if o is not None:
        s[7] = o
    e = st.extra.get("console")
    if e:
        s[13] = e  # the technician's changes at the console (console_set.py)
    return s


def send_status(app):
    s = status(app)
    app.peak()
    app.log("heap: alloc=%d peak=%d free=%d day=%d" % (
        gc.mem_alloc(), app.heap_peak, s[8], app.board.time() // 86400))
    micropython.qstr_info()  # pool growth would show here (station.main)
    if not app.pw.may_send():
        return

    def enc(buf, seq):
        return frame.encode_status(buf, app.station, seq, app.uplink.now(), app.key, s)

    app.uplink.send_event(frame.STATUS, enc)
    if s.get(13):
        del app.store.extra["console"]  # on their way (the frame is kept until its ACK)


# ---- queue queries (store.py's records) --------------------------------------


def _rec_ok(st, f):
    # next record of an open segment into st._tmp: complete, CRC good
    b = st._tmp
    return f.readinto(b) == _REC and st._crc_ok(b)


def oldest_time(st):
    # time of the oldest unacknowledged reading, or None
    h = st.top if st.top < st.tail else None
    for x in st.un:
        if h is None or x[0] < h:
            h = x[0]
    for e in st.fl:
        if e[2] > e[1] and (h is None or e[1] < h):
            h = e[1]
    if h is None or h < st.first * _PER:
        return None
    try:
        with open("%s/g%d" % (st.root, h // _PER), "rb") as f:
            f.seek((h % _PER) * _REC)
            if not _rec_ok(st, f):
                return None
    except OSError:
        return None
    return struct.unpack_from("<I", st._tmp)[0]
