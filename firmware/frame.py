# hydrolink board frame layer (protocol/SPEC.md v1): the raw frame - the
# 13-byte header, the HMAC-SHA256 tag (8 bytes) and the CRC-32 - the small
# bodies a station sends (status, result: the generic CBOR encoder), and the
# decoder, in the order of §9, of the frames it receives (ACK, command).
# COBS byte stuffing and the deframer of a byte stream (§2). Report bodies
# (§5, the hot path) are report.py, which builds on this module (split off
# at 553 lines). One module split off, not two (COBS and the deframer on
# their own): each costs two qstrs (its name and file: see console.py), and
# on the sim board a third module and uplink's name for it put 0.3 KB more
# on the live heap at boot (91,200 -> 91,520 B; the one split: +160 B).
#
# What a station never does - encode ACK/command frames, decode reports,
# status and results, keep a replay window - is in frame_full.py, which
# only the vector harness and the tests import: on the 64-bit VM the codec
# took 17.4 KB of heap with it, 12.6 KB without (gc.mem_alloc() around the
# import of the .mpy), and the station's whole heap is 128 KB.
#
# Board body model (what the encoders take and decode() returns):
#   report  (series, dropped, alarms, flags): report.py
#   status  {key: value} with the integer keys of §8; counters {id: n};
#           13: the console's changes [[time, text], ...] (console.log)
#   result  [[id, code(, detail)], ...]
#   ack     (acks, commands); commands: [[id, op(, args)], ...]
#   command commands
# A frame is (type, station, seq, time, body).
#
# _finish allocates one memoryview slice (and, on a 32-bit board, the CRC
# when it is >= 2**30: binascii.crc32 returns a big int then). The HMAC is
# sha256.py's viper code, which allocates nothing per tag; where that
# module cannot run (no native emitter, .mpy for another arch, self-test
# fails) the tag falls back on hashlib: 2 hash objects + 2 digests, 448 B on
# the unix VM.
from micropython import const
import binascii
import hashlib
import struct
from cbor import FrameError, Malformed, Oversize, put
from cbor import decode as cbor_decode

try:
    # OK: sha256.py's viper HMAC runs here (its self-test passed). Its own
    # names, not aliases: each global name is a qstr, and these two pay
    # for report.py's module name and file name
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


# ---- COBS and the deframer (§2) ---------------------------------------------


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


# ---- header, tag and CRC; the small bodies -------------------------------------


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
