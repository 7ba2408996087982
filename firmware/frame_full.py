# hydrolink board codec, the other half (protocol/SPEC.md v1): what a
# station never does, kept out of frame.py so that its code does not sit in
# the station's heap (8 KB on the 64-bit VM): ACK and command encoders, the
# decoders of reports, status and results, the generic encoder of any
# decoded frame, and the gateway's replay window (§6). The vector harness
# (tests/vm_vectors.py) and the board-codec tests import this module in
# place of frame: every public name of frame and report is here too.
from micropython import const
from cbor import FrameError, Malformed, Oversize  # noqa: F401
from frame import (  # noqa: F401
    ACK, ALARM, COMMAND, DATA, HEADER, MAX_FRAME, MAX_WIRE, MIN_FRAME, RESULT, STATUS, TAG_LEN, TEST,
    VERSION, BadCrc, BadTag, Key, Truncated, UnknownVersion, _body, _dcmd, _list, _uint, body_map,
    decode_down, encode_result, encode_status, Deframer, cobs_decode, cobs_encode, wrap,
)
from frame import decode as _decode
from report import FAULT, MISSING, encode_report, put_quality, put_values, quality_runs  # noqa: F401

_MAX_INTERVAL = const(2678400)  # 31 days
_MAX_VALUES = const(4096)  # per series and per report on decode: run tokens can claim 2^34
_WINDOW = const(4096)
_I32_MIN = const(-0x80000000)
_I32_MAX = const(0x7FFFFFFF)
_U32_MAX = const(0xFFFFFFFF)


class Replay(FrameError):
    pass


# ---- encoders ------------------------------------------------------------------


def _cmds(cmds):
    for c in cmds:
        if (len(c) != 2 and len(c) != 3) or (len(c) == 3 and c[2] is None) or c[0] < 1:
            raise ValueError("command")
    return cmds


def encode_ack(buf, station, seq, time, key, acks, commands=None):
    if seq not in acks:
        raise ValueError("ack must list its seq")
    if commands:
        return _body(buf, ACK, station, seq, time, key, {1: acks, 2: _cmds(commands)})
    return _body(buf, ACK, station, seq, time, key, {1: acks})


def encode_command(buf, station, seq, time, key, commands):
    if not commands:
        raise ValueError("no commands")
    return _body(buf, COMMAND, station, seq, time, key, {2: _cmds(commands)})


def encode(buf, ft, station, seq, time, key, body):
    # any frame from the body model that decode() returns
    if ft == DATA or ft == ALARM or ft == TEST:
        return encode_report(buf, ft, station, seq, time, key, *body)
    if ft == STATUS:
        return encode_status(buf, station, seq, time, key, body)
    if ft == RESULT:
        return encode_result(buf, station, seq, time, key, body)
    if ft == ACK:
        return encode_ack(buf, station, seq, time, key, body[0], body[1])
    if ft == COMMAND:
        return encode_command(buf, station, seq, time, key, body)
    raise ValueError("frame type")


# ---- decoders ------------------------------------------------------------------


def decode_values(b):
    # bstr -> list of ints. Like the host codec, non-canonical tokens (zero
    # delta as an even token, split runs, padded varints) are accepted.
    # Two passes: count, then fill one list allocated at its final size (no
    # growing list to fragment a small heap)
    n = len(b)
    out = None
    cnt = 0
    while True:
        i = 0
        v = 0
        k = 0
        while i < n:
            t = 0
            sh = 0
            while True:
                if i >= n:
                    raise Malformed("values end in varint")
                c = b[i]
                i += 1
                t |= (c & 0x7F) << sh
                sh += 7
                if not c & 0x80:
                    break
                if sh >= 35:
                    raise Malformed("varint > 5 bytes")
            if k == 0:
                v = (t >> 1) if not t & 1 else -((t + 1) >> 1)
                r = 1
            elif t & 1:
                r = (t >> 1) + 1
            else:
                t >>= 1
                v += (t >> 1) if not t & 1 else -((t + 1) >> 1)
                r = 1
            if out is None:
                k += r
                if k > _MAX_VALUES:
                    raise Malformed("too many values")
                continue
            if v < _I32_MIN or v > _I32_MAX:
                raise Malformed("value outside int32")
            for j in range(k, k + r):
                out[j] = v
            k += r
        if out is not None:
            return out
        cnt = k
        out = [0] * cnt


def _expand_quality(r, n):
    # flat runs -> one code per value, checking §5.3
    if type(r) is not list or not r or len(r) % 3:
        raise Malformed("quality runs")
    q = bytearray(n)
    pos = 0
    pend = -1
    pcode = -1
    for k in range(0, len(r), 3):
        s = r[k]
        cnt = r[k + 1]
        c = r[k + 2]
        if type(s) is not int or type(cnt) is not int or type(c) is not int:
            raise Malformed("quality run")
        if c < 1 or c > 6:
            raise Malformed("quality code")
        if s < pos or cnt < 1 or s + cnt > n:
            raise Malformed("quality run order")
        if s == pend and c == pcode:
            raise Malformed("quality runs not merged")
        for i in range(s, s + cnt):
            q[i] = c
        pos = pend = s + cnt
        pcode = c
    return q


def _int(v):
    if type(v) is not int:
        raise Malformed("not an int")
    return v


def _dseries(it, time):
    if type(it) is not list or (len(it) != 4 and len(it) != 5):
        raise Malformed("series")
    el = _uint(it[0])
    if el > _U32_MAX:
        raise Malformed("element")
    iv = _uint(it[1])
    if iv < 1 or iv > _MAX_INTERVAL:
        raise Malformed("interval")
    k = _int(it[2])
    if k > _U32_MAX or k < -_U32_MAX:
        raise Malformed("offset")
    if type(it[3]) is not bytes:
        raise Malformed("values not bstr")
    vals = decode_values(it[3])
    n = len(vals)
    q = None
    if len(it) == 5:
        q = _expand_quality(it[4], n)
        for i in range(n):
            if q[i] == MISSING or q[i] == FAULT:
                vals[i] = None
    return (el, iv, time - time % iv - k * iv, vals, q)


def _dalarm(a):
    if type(a) is not list or (len(a) != 4 and len(a) != 5):
        raise Malformed("alarm")
    for i in range(len(a)):
        if i == 2 or i == 3:
            _int(a[i])
        else:
            _uint(a[i])
    if a[0] < 1 or a[0] > 5 or a[1] > 2:
        raise Malformed("alarm kind/state")
    if (len(a) == 5) != (a[0] == 1 or a[0] == 3):
        raise Malformed("alarm window")  # rain and level_rise only
    return a


# status key -> 0 int, 1 uint, 2 text, 3 counters, 4 console entries
_ST = b"\x00\x00\x00\x02\x01\x01\x01\x01\x01\x01\x00\x03\x01\x04"
_CONSOLE = const(8)  # key 13: at most 8 [time, text] entries, texts of at most 70 bytes
_CONSOLE_TEXT = const(70)


def _dconsole(v):
    if type(v) is not list or not 1 <= len(v) <= _CONSOLE:
        raise Malformed("console entries")
    for e in v:
        if type(e) is not list or len(e) != 2 or _uint(e[0]) > _U32_MAX:
            raise Malformed("console entry")
        if type(e[1]) is not str or len(e[1].encode()) > _CONSOLE_TEXT:
            raise Malformed("console text")


def _dstatus(b):
    st = {}
    for k in b:
        if k < 1 or k > 13:
            continue  # unknown keys are ignored (§4)
        v = b[k]
        t = _ST[k]
        if t == 0:
            _int(v)
        elif t == 1:
            if (_uint(v) > 5 and k == 5) or (k == 7 and v > _U32_MAX):
                raise Malformed("reset cause / time")
        elif t == 2:
            if type(v) is not str:
                raise Malformed("status text")
        elif t == 4:
            _dconsole(v)
        else:
            if type(v) is not dict:
                raise Malformed("status counters")
            for c in v:
                _uint(c)
                _uint(v[c])
        st[k] = v
    return st


def decode_body(ft, data, time, seq):
    if ft == ACK or ft == COMMAND:
        return decode_down(ft, data, time, seq)
    b = body_map(data)
    if ft == DATA or ft == ALARM or ft == TEST:
        if 1 not in b:
            raise Malformed("no series")
        series = []
        n = 0
        for s in _list(b[1], False):
            s = _dseries(s, time)
            n += len(s[3])
            if n > _MAX_VALUES:
                raise Malformed("values in a report")  # §5.2: all series together
            series.append(s)
        alarms = []
        if 3 in b:
            alarms = [_dalarm(a) for a in _list(b[3], True)]
        elif ft == ALARM:
            raise Malformed("alarm frame without alarms")
        # defaults are left out, so that a report has one encoding
        if b.get(2, 1) == 0 or b.get(4, 1) == 0:
            raise Malformed("default written")
        return (series, _uint(b.get(2, 0)), alarms, _uint(b.get(4, 0)))
    if ft == STATUS:
        return _dstatus(b)
    return [_dcmd(r, 4) for r in _list(b.get(1), True)]


def decode(raw, keys):
    # any frame (see frame.decode)
    return _decode(raw, keys, decode_body)


# ---- replay window (§6, uplink) ------------------------------------------------


class ReplayWindow:
    # one per station: highest accepted seq H and a bitmap of H-4095 .. H
    def __init__(self):
        self.high = 0  # seqs start at 1: 0 means nothing accepted yet
        self._bits = bytearray(_WINDOW // 8)

    def check(self, seq):
        # True: duplicate (ACK again, do not pass on); False: new
        if seq > self.high:
            return False
        if seq <= self.high - _WINDOW:
            raise Replay("seq older than window")
        return bool(self._bits[(seq & (_WINDOW - 1)) >> 3] & (1 << (seq & 7)))

    def accept(self, seq):
        # after the frame is durably stored
        bits = self._bits
        h = self.high
        if seq > h:
            if seq - h >= _WINDOW:
                for i in range(len(bits)):
                    bits[i] = 0
            else:
                for s in range(h + 1, seq + 1):
                    bits[(s & (_WINDOW - 1)) >> 3] &= ~(1 << (s & 7))
            self.high = seq
        elif seq <= h - _WINDOW:
            raise Replay("seq older than window")
        bits[(seq & (_WINDOW - 1)) >> 3] |= 1 << (seq & 7)
