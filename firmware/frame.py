# hydrolink board frame layer (protocol/SPEC.md v1): 13-byte header, CBOR
# body, HMAC-SHA256 tag (8 bytes), CRC-32; COBS byte stuffing and a
# deframer; delta-coded values (§5.2) and quality runs (§5.3); the encoders
# of the frames a station sends (report, status, result) and the decoder,
# in the order of §9, of the frames it receives (ACK, command).
#
# What a station never does - encode ACK/command frames, decode reports,
# status and results, keep a replay window - is in frame_full.py, which
# only the vector harness and the tests import: on the 64-bit VM this
# module took 17.4 KB of heap with it, 12.6 KB without (gc.mem_alloc()
# around the import of the .mpy), and the station's whole heap is 128 KB.
# Split no further: the report encoder as a module of its own (report.py)
# raised the live heap at boot by 1.3 KB on the sim board (91,392 -> 92,672
# B), with COBS and the deframer as a third 1.5 KB, and the 30-day peak past
# its aim (98,624 B > 96 KiB): measured, not guessed; each module is also
# two more qstrs (its name and file) in a pool with 4 names to spare.
#
# Board body model (what the encoders take and decode() returns):
#   report  (series, dropped, alarms, flags)
#           series: (element, interval, start, values, quality)
#             values: ints, None where quality is missing/fault
#             quality: None (all good) or one code per value
#           alarms: [kind, state, value, threshold(, window)]
#   status  {key: value} with the integer keys of §8; counters {id: n}
#   result  [[id, code(, detail)], ...]
#   ack     (acks, commands); commands: [[id, op(, args)], ...]
#   command commands
# A frame is (type, station, seq, time, body).
#
# The report encoder is the board's hot path: it writes into the caller's
# preallocated buffer (pass a memoryview over a bytearray) and allocates
# only one memoryview slice (and, on a 32-bit board, the CRC when it is
# >= 2**30: binascii.crc32 returns a big int then). The HMAC is sha256.py's
# viper code, which allocates nothing per tag; where that module cannot run
# (no native emitter, .mpy for another arch, self-test fails) the tag falls
# back on hashlib: 2 hash objects + 2 digests, 448 B on the unix VM.
from micropython import const
import binascii
import hashlib
import struct
from cbor import FrameError, Malformed, Oversize, head, put, put_int
from cbor import decode as cbor_decode

try:
    # OK: sha256.py's viper HMAC runs here (its self-test passed). Its own
    # names, not aliases: each global name is a qstr (two fewer in the pool)
    from sha256 import OK, Hmac
except (ImportError, SyntaxError, ValueError, NotImplementedError):
    # no native emitter (SyntaxError from source), .mpy for another arch
    # (ValueError)
    OK = False

VERSION = const(1)
DATA = const(1)
ALARM = const(2)
STATUS = const(3)
TEST = const(4)
RESULT = const(5)
ACK = const(8)
COMMAND = const(9)

HEADER = const(13)
TAG_LEN = const(8)
MIN_FRAME = const(26)
MAX_FRAME = const(1024)
MAX_WIRE = const(1029)  # COBS of MAX_FRAME; a wire buffer needs one more for the 0x00

MISSING = const(3)
FAULT = const(4)

_MAX_INTERVAL = const(2678400)  # 31 days
_I32_MIN = const(-0x80000000)
_I32_MAX = const(0x7FFFFFFF)
_U32_MAX = const(0xFFFFFFFF)
_MAX_STATION = const(0x3FFFFFFF)  # station ids 1 .. 2^30-1 (SPEC §2)


class Truncated(FrameError):
    pass


class BadCrc(FrameError):
    pass


class UnknownVersion(FrameError):
    pass


class BadTag(FrameError):
    pass


# ---- HMAC-SHA256/64 ---------------------------------------------------------


class Key:
    # sha256.Hmac keeps the ipad/opad hash states; the hashlib fallback (no
    # copy()) can only keep the pad blocks. The tag lands in one reused
    # 8-byte buffer
    def __init__(self, key):
        self.tag = bytearray(TAG_LEN)
        self._h = None
        if OK:
            self._h = Hmac(key)
            return
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        ip = bytearray(64)
        op = bytearray(64)
        for i in range(64):
            k = key[i] if i < len(key) else 0
            ip[i] = k ^ 0x36
            op[i] = k ^ 0x5C
        self._ip = ip
        self._op = op

    def sign(self, data):
        t = self.tag
        if self._h is not None:
            self._h.tag_into(data, t)
            return t
        h = hashlib.sha256(self._ip)
        h.update(data)
        d = h.digest()
        h = hashlib.sha256(self._op)
        h.update(d)
        d = h.digest()
        for i in range(TAG_LEN):
            t[i] = d[i]
        return t


# ---- COBS --------------------------------------------------------------------


def cobs_encode(src, n, dst, d=0):
    # COBS of src[0:n] into dst at d; returns the end. A final 254-byte piece
    # gets no empty piece after it (as PyPI cobs)
    cp = d
    d += 1
    code = 1
    for i in range(n):
        c = src[i]
        if c:
            dst[d] = c
            d += 1
            code += 1
            if code == 0xFF and i + 1 < n:
                dst[cp] = code
                cp = d
                d += 1
                code = 1
        else:
            dst[cp] = code
            cp = d
            d += 1
            code = 1
    dst[cp] = code
    return d


def cobs_decode(src, n, dst):
    # inverse of cobs_encode over src[0:n] into dst; returns the length
    i = 0
    d = 0
    while i < n:
        code = src[i]
        if code == 0:
            raise Malformed("cobs zero")
        i += 1
        e = i + code - 1
        if e > n:
            raise Malformed("cobs code past end")
        while i < e:
            c = src[i]
            if c == 0:
                raise Malformed("cobs zero")
            dst[d] = c
            d += 1
            i += 1
        if code != 0xFF and i < n:
            dst[d] = 0
            d += 1
    return d


def wrap(raw, n, wire):
    # wire bytes of a raw frame: COBS + the 0x00 delimiter; returns the length
    d = cobs_encode(raw, n, wire)
    wire[d] = 0
    return d + 1


class Deframer:
    # Fed bytes in any chunking (SPEC §2). feed() is a generator of raw frames
    # (bytes) and, in their place, FrameError instances; consume it fully,
    # bytes after an abandoned yield are lost. The buffer stays <= MAX_WIRE;
    # COBS is undone in place (the output never overtakes the input), which
    # saved a second 1 KB buffer
    def __init__(self):
        self._buf = bytearray(MAX_WIRE)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._skip = False

    def feed(self, data):
        # segments between delimiters are copied whole (find + slice, in C)
        if type(data) is memoryview:
            data = bytes(data)  # no find() on a memoryview
        src = memoryview(data)
        buf = self._buf
        n = len(data)
        i = 0
        while i < n:
            j = data.find(b"\x00", i)
            e = n if j < 0 else j
            if not self._skip and e > i:
                k = self._n
                if k + e - i > MAX_WIRE:
                    self._n = 0
                    self._skip = True
                    yield Oversize("no delimiter")
                else:
                    buf[k : k + e - i] = src[i:e]
                    self._n = k + e - i
            if j < 0:
                return
            i = j + 1
            if self._skip:
                self._skip = False
                continue
            k = self._n
            if k == 0:
                continue  # extra delimiters flush line noise
            self._n = 0
            try:
                m = cobs_decode(buf, k, buf)
            except Malformed as e:
                yield e
                continue
            yield bytes(self._mv[:m])

    def buffered(self):
        return self._n


# ---- values (§5.2) and quality (§5.3) ---------------------------------------


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


# ---- encoders ----------------------------------------------------------------


def _header(buf, ft, station, seq, time):
    if station < 1 or station > _MAX_STATION:
        raise ValueError("station")
    if seq < 0 or seq > _U32_MAX or time < 0 or time > _U32_MAX:
        raise ValueError("seq/time")
    if len(buf) < MIN_FRAME:
        raise Oversize("buffer")
    buf[0] = (VERSION << 4) | ft
    struct.pack_into(">III", buf, 1, station, seq, time)


def _finish(buf, p, key):
    # append tag and CRC to the body ending at p; returns the frame length
    n = p + 12
    if n > MAX_FRAME or n > len(buf):
        raise Oversize("frame")
    m = buf[:p] if type(buf) is memoryview else memoryview(buf)[:p]
    t = key.sign(m)
    for i in range(TAG_LEN):
        buf[p + i] = t[i]
    # CRC over header+body, then continued over the tag: one slice, not two
    struct.pack_into(">I", buf, p + TAG_LEN, binascii.crc32(t, binascii.crc32(m)))
    return n


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
    if ft != DATA and ft != ALARM and ft != TEST:
        raise ValueError("report type")
    na = len(alarms) if alarms else 0
    if ft == ALARM and not na:
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
        p = head(buf, HEADER, 0xA0, nk)
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


def _body(buf, ft, station, seq, time, key, obj):
    # the non-report bodies are small and rare: the generic encoder will do
    _header(buf, ft, station, seq, time)
    return _finish(buf, put(buf, HEADER, obj), key)


def encode_status(buf, station, seq, time, key, st):
    if st.get(5, 0) > 5:
        raise ValueError("reset cause")
    return _body(buf, STATUS, station, seq, time, key, st)


def encode_result(buf, station, seq, time, key, results):
    if not results:
        raise ValueError("no results")
    for r in results:
        if (len(r) != 2 and len(r) != 3) or (len(r) == 3 and r[2] is None) or not 0 <= r[1] <= 4:
            raise ValueError("result")
    return _body(buf, RESULT, station, seq, time, key, {1: results})


# ---- decoder -----------------------------------------------------------------


def _uint(v):
    if type(v) is not int or v < 0:
        raise Malformed("not a uint")
    return v


def _list(v, nonempty):
    if type(v) is not list or (nonempty and not v):
        raise Malformed("not an array")
    return v


def _dcmd(c, top):
    # command [id, op, ?args] or result [id, code, ?detail]: a third item
    # is never null (absent instead); top: highest result code, -1 for a
    # command (any op, id from 1)
    if type(c) is not list or (len(c) != 2 and len(c) != 3):
        raise Malformed("command/result")
    if _uint(c[0]) == 0 and top < 0:
        raise Malformed("command id 0")
    if _uint(c[1]) > top >= 0:
        raise Malformed("result code")
    if len(c) == 3 and c[2] is None:
        raise Malformed("null args/detail")
    return c


def _u32(b, p):
    return (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]


def body_map(data):
    # a body: a CBOR map with integer keys (the key order is cbor's check)
    b = cbor_decode(data)
    if type(b) is not dict:
        raise Malformed("body not a map")
    for k in b:
        if type(k) is not int:
            raise Malformed("text keys")
        break
    return b


def decode_down(ft, data, time, seq):
    # the body of a frame a station receives: ACK -> (acks, commands),
    # command -> commands; any other type is not for a station
    if ft != ACK and ft != COMMAND:
        raise Malformed("not a downlink frame")
    b = body_map(data)
    if ft == COMMAND:
        return [_dcmd(c, -1) for c in _list(b.get(2), True)]
    if 1 not in b:
        raise Malformed("no acks")
    acks = [_uint(s) for s in _list(b[1], True)]
    if seq not in acks:
        raise Malformed("ack lacks its seq")
    cmds = []
    if 2 in b:
        cmds = [_dcmd(c, -1) for c in _list(b[2], True)]
    return (acks, cmds)


def decode(raw, keys, body=decode_down):
    # a raw frame (COBS removed) -> (type, station, seq, time, body); keys is
    # a callable station -> Key or None; body(ft, data, time, seq) decodes
    # the body (frame_full.decode_body: every type). Raises a FrameError, in
    # §9's order
    n = len(raw)
    if n < MIN_FRAME:
        raise Truncated("frame < 26")
    if n > MAX_FRAME:
        raise Oversize("frame > 1024")
    mv = raw if type(raw) is memoryview else memoryview(raw)
    if binascii.crc32(mv[: n - 4]) != _u32(raw, n - 4):
        raise BadCrc("crc")
    vt = raw[0]
    if vt >> 4 != VERSION:
        raise UnknownVersion("version")
    ft = vt & 0x0F
    if ft < 1 or (ft > 5 and ft != ACK and ft != COMMAND):
        raise Malformed("frame type")
    station = _u32(raw, 1)
    if station == 0 or station > _MAX_STATION:
        raise Malformed("station id")
    key = keys(station)
    if key is None:
        raise BadTag("unknown station")
    e = n - 12
    t = key.sign(mv[:e])
    r = 0
    for i in range(TAG_LEN):  # constant time
        r |= t[i] ^ raw[e + i]
    if r:
        raise BadTag("tag")
    seq = _u32(raw, 5)
    time = _u32(raw, 9)
    return (ft, station, seq, time, body(ft, mv[HEADER:e], time, seq))
