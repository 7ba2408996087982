# hydrolink report encoder (protocol/SPEC.md §5): delta-coded values
# (§5.2), quality runs (§5.3), series and the report body, written into
# the caller's preallocated buffer; frame.py gives the header, tag and CRC.
# The board's hot path: a report allocates only one memoryview slice (in
# frame._finish; and, on a 32-bit board, the CRC when it is >= 2**30).
# Series: (element, interval, start, values, quality); values: ints, None
# where quality is missing/fault; quality: None (all good) or one code per
# value. Alarms: [kind, state, value, threshold(, window)].
from micropython import const
from cbor import Oversize, head, put_int
from frame import _finish, _header

MISSING = const(3)
FAULT = const(4)

_HEADER = const(13)  # frame.HEADER
_DATA = const(1)  # frame.DATA, ALARM, TEST
_ALARM = const(2)
_TEST = const(4)
_MAX_INTERVAL = const(2678400)  # 31 days
_I32_MIN = const(-0x80000000)
_I32_MAX = const(0x7FFFFFFF)
_U32_MAX = const(0xFFFFFFFF)


def _varint(buf, p, t):
    while t > 0x7F:
        buf[p] = (t & 0x7F) | 0x80
        t >>= 7
        p += 1
    buf[p] = t
    return p + 1


def put_values(buf, p, vals, q, n):
    # values of one series as a CBOR bstr at p. The bstr head is guessed to
    # be one byte (n < 24 bytes, an hourly series) and moved up if not
    s = p + 1
    d = s
    if n:
        prev = 0  # leading no-value slots carry the first real value
        for i in range(n):
            if q is None or (q[i] != MISSING and q[i] != FAULT):
                prev = vals[i]
                break
        run = 0
        for i in range(n):
            if q is None:
                v = vals[i]
            else:
                c = q[i]
                if c == MISSING or c == FAULT:
                    v = prev
                elif 0 <= c <= 6:
                    v = vals[i]
                else:
                    raise ValueError("quality code")
            if type(v) is not int or v < _I32_MIN or v > _I32_MAX:
                raise ValueError("value")
            if i == 0:
                d = _varint(buf, d, (v << 1) if v >= 0 else ((-v << 1) - 1))
            else:
                dv = v - prev
                if dv == 0:
                    run += 1
                else:
                    if run:
                        d = _varint(buf, d, (run << 1) - 1)  # one odd token per zero run
                        run = 0
                    d = _varint(buf, d, (dv << 2) if dv > 0 else ((-dv << 2) - 2))
            prev = v
        if run:
            d = _varint(buf, d, (run << 1) - 1)
    ln = d - s
    if ln < 24:
        buf[p] = 0x40 | ln
        return d
    sh = 1 if ln < 0x100 else 2
    if d + sh > len(buf):
        raise Oversize("buffer")
    for i in range(d - 1, s - 1, -1):
        buf[i + sh] = buf[i]
    head(buf, p, 0x40, ln)
    return d + sh


def quality_runs(q, n):
    # number of [start, count, code] runs for the non-good codes
    runs = 0
    prev = 0
    for i in range(n):
        c = q[i]
        if c and c != prev:
            runs += 1
        prev = c
    return runs


def put_quality(buf, p, q, n, runs):
    p = head(buf, p, 0x80, 3 * runs)
    i = 0
    while i < n:
        c = q[i]
        j = i + 1
        while j < n and q[j] == c:
            j += 1
        if c:
            p = head(buf, p, 0, i)
            p = head(buf, p, 0, j - i)
            p = head(buf, p, 0, c)
        i = j
    return p


def _series(buf, p, time, s):
    el, iv, start, vals, q = s
    if type(el) is not int or el < 0 or el > _U32_MAX:
        raise ValueError("element")
    if type(iv) is not int or iv < 1 or iv > _MAX_INTERVAL:
        raise ValueError("interval")
    k = time - time % iv - start
    if k % iv:
        raise ValueError("start off interval")
    if k // iv > _U32_MAX or k // iv < -_U32_MAX:
        raise ValueError("start too far")
    n = len(vals)
    runs = 0
    if q is not None:
        if len(q) != n:
            raise ValueError("quality length")
        runs = quality_runs(q, n)
    p = head(buf, p, 0x80, 5 if runs else 4)
    p = put_int(buf, p, el)
    p = put_int(buf, p, iv)
    p = put_int(buf, p, k // iv)
    p = put_values(buf, p, vals, q, n)
    if runs:
        p = put_quality(buf, p, q, n, runs)
    return p


def encode_report(buf, ft, station, seq, time, key, series, dropped=0, alarms=None, flags=0):
    # raw frame into buf (a memoryview over a bytearray); returns its length
    if ft != _DATA and ft != _ALARM and ft != _TEST:
        raise ValueError("report type")
    na = len(alarms) if alarms else 0
    if ft == _ALARM and not na:
        raise ValueError("alarm frame without alarms")
    _header(buf, ft, station, seq, time)
    nk = 1
    if dropped:
        nk += 1
    if na:
        nk += 1
    if flags:
        nk += 1
    try:
        p = head(buf, _HEADER, 0xA0, nk)
        buf[p] = 1
        p = head(buf, p + 1, 0x80, len(series))
        for s in series:
            p = _series(buf, p, time, s)
        if dropped:
            buf[p] = 2
            p = head(buf, p + 1, 0, dropped)
        if na:
            buf[p] = 3
            p = head(buf, p + 1, 0x80, na)
            for a in alarms:
                la = len(a)
                if (la != 4 and la != 5) or not 1 <= a[0] <= 5 or not 0 <= a[1] <= 2:
                    raise ValueError("alarm")
                if (la == 5) != (a[0] == 1 or a[0] == 3) or (la == 5 and a[4] < 0):
                    raise ValueError("alarm window")
                p = head(buf, p, 0x80, la)
                for x in a:
                    p = put_int(buf, p, x)
        if flags:
            buf[p] = 4
            p = head(buf, p + 1, 0, flags)
    except IndexError:
        raise Oversize("frame")
    return _finish(buf, p, key)
