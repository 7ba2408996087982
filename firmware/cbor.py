# hydrolink board CBOR (RFC 8949): exactly the deterministic subset of
# protocol/SPEC.md §4. The encoder writes into a caller's preallocated
# bytearray at a position and returns the new position; the decoder turns a
# buffer into plain objects (int, bytes, str, list, dict, float, bool, None)
# and rejects everything outside the subset with Malformed.
from micropython import const
import struct

_DEPTH = const(16)  # nesting limit: bounds recursion on a small C stack


class FrameError(Exception):
    pass


class Malformed(FrameError):
    pass


class Oversize(FrameError):
    pass


# ---- encoder ---------------------------------------------------------------


def head(buf, p, mt, n):
    # initial byte (major type mt << 5) + argument n in the shortest form.
    # A bytearray store masks, never fails: check the sign here
    if n < 24:
        if n < 0:
            raise ValueError("negative")
        if p >= len(buf):
            raise Oversize("buffer")
        buf[p] = mt | n
        return p + 1
    if n < 0x100:
        if p + 2 > len(buf):
            raise Oversize("buffer")
        buf[p] = mt | 24
        buf[p + 1] = n
        return p + 2
    if n < 0x10000:
        if p + 3 > len(buf):
            raise Oversize("buffer")
        buf[p] = mt | 25
        buf[p + 1] = n >> 8
        buf[p + 2] = n & 0xFF
        return p + 3
    if n < 0x100000000:
        if p + 5 > len(buf):
            raise Oversize("buffer")
        buf[p] = mt | 26
        struct.pack_into(">I", buf, p + 1, n)
        return p + 5
    if n < 0x10000000000000000:
        if p + 9 > len(buf):
            raise Oversize("buffer")
        buf[p] = mt | 27
        struct.pack_into(">Q", buf, p + 1, n)
        return p + 9
    raise ValueError("int range")


def put_int(buf, p, v):
    if v >= 0:
        return head(buf, p, 0x00, v)
    return head(buf, p, 0x20, -1 - v)


def put_bytes(buf, p, b, mt=0x40):
    n = len(b)
    p = head(buf, p, mt, n)
    if p + n > len(buf):
        raise Oversize("buffer")
    buf[p : p + n] = b
    return p + n


def put_str(buf, p, s):
    return put_bytes(buf, p, s.encode(), 0x60)


def put_float(buf, p, f):
    if p + 9 > len(buf):
        raise Oversize("buffer")
    buf[p] = 0xFB
    struct.pack_into(">d", buf, p + 1, f)
    return p + 9


def _tkey(k):
    # text keys sort by their encoding: length first, then bytes
    b = k.encode()
    return (len(b), b)


def put(buf, p, o):
    # generic encoder; the report hot path in frame.py uses head() directly
    if o is None:
        return head(buf, p, 0xE0, 22)
    if o is False:
        return head(buf, p, 0xE0, 20)
    if o is True:
        return head(buf, p, 0xE0, 21)
    t = type(o)
    if t is int:
        return put_int(buf, p, o)
    if t is str:
        return put_str(buf, p, o)
    if t is float:
        return put_float(buf, p, o)
    if t is bytes or t is bytearray or t is memoryview:
        return put_bytes(buf, p, o)
    if t is list or t is tuple:
        p = head(buf, p, 0x80, len(o))
        for x in o:
            p = put(buf, p, x)
        return p
    if t is dict:
        ks = list(o)
        if ks and type(ks[0]) is str:
            for k in ks:
                if type(k) is not str:
                    raise ValueError("mixed keys")
            ks.sort(key=_tkey)
        else:
            for k in ks:
                if type(k) is not int or k < 0:
                    raise ValueError("map key")
            ks.sort()
        p = head(buf, p, 0xA0, len(ks))
        for k in ks:
            p = put(buf, p, k)
            p = put(buf, p, o[k])
        return p
    if hasattr(o, "put"):
        return o.put(buf, p)  # an object that encodes itself (config.View)
    raise ValueError("cbor type")


# ---- decoder ---------------------------------------------------------------


def _utf8(b, s, e):
    # strict UTF-8 (no overlongs, surrogates or > U+10FFFF): the VM's own
    # check lets surrogates through, CPython's (the host) does not
    i = s
    while i < e:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            n, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            n = 2
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            n = 3
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return False
        if i + n >= e:
            return False
        if not lo <= b[i + 1] <= hi:
            return False
        for j in range(i + 2, i + n + 1):
            if not 0x80 <= b[j] <= 0xBF:
                return False
        i += n + 1
    return True


class _Dec:
    def __init__(self, b, p, e):
        self.b = b
        self.p = p
        self.e = e

    def arg(self, ai):
        # the argument of a head whose additional info is ai, shortest only
        if ai < 24:
            return ai
        b = self.b
        p = self.p
        if ai == 24:
            n = 1
        elif ai == 25:
            n = 2
        elif ai == 26:
            n = 4
        elif ai == 27:
            n = 8
        else:
            raise Malformed("indefinite" if ai == 31 else "reserved info")
        if p + n > self.e:
            raise Malformed("short item")
        v = 0
        for i in range(p, p + n):
            v = (v << 8) | b[i]
        self.p = p + n
        if v < (24 if n == 1 else 1 << (4 * n)):
            raise Malformed("non-shortest")
        return v

    def item(self, depth):
        b = self.b
        p = self.p
        if p >= self.e:
            raise Malformed("short item")
        ib = b[p]
        self.p = p + 1
        mt = ib >> 5
        ai = ib & 0x1F
        if mt == 7:
            if ai == 20:
                return False
            if ai == 21:
                return True
            if ai == 22:
                return None
            if ai == 27:
                if p + 9 > self.e:
                    raise Malformed("short item")
                self.p = p + 9
                return struct.unpack_from(">d", b, p + 1)[0]
            raise Malformed("simple/float")
        n = self.arg(ai)
        if mt == 0:
            return n
        if mt == 1:
            if n > 0x7FFFFFFFFFFFFFFF:
                raise Malformed("int range")  # SPEC §4: -2^63 .. 2^64-1
            return -1 - n
        if mt == 2 or mt == 3:
            p = self.p
            if n > self.e - p:
                raise Malformed("short item")
            self.p = p + n
            if mt == 2:
                return bytes(b[p : p + n])
            if not _utf8(b, p, p + n):
                raise Malformed("utf-8")
            return str(bytes(b[p : p + n]), "utf-8")
        if mt == 6:
            raise Malformed("tag")
        if depth >= _DEPTH:
            raise Malformed("too deep")
        # every item is at least one byte: refuse counts the rest cannot hold
        if n > self.e - self.p:
            raise Malformed("short item")
        if mt == 4:
            a = []
            for _ in range(n):
                a.append(self.item(depth + 1))
            return a
        d = {}
        pk = None
        ktype = None
        for _ in range(n):
            ks = self.p
            k = self.item(depth + 1)
            kb = bytes(b[ks : self.p])
            t = type(k)
            if t is int:
                if k < 0:
                    raise Malformed("map key")
            elif t is not str:
                raise Malformed("map key")
            if ktype is None:
                ktype = t
            elif t is not ktype:
                raise Malformed("mixed keys")
            # bytewise order of the encodings, no duplicates
            if pk is not None and kb <= pk:
                raise Malformed("key order")
            pk = kb
            d[k] = self.item(depth + 1)
        return d


def decode(b, p=0, e=None):
    # one item filling b[p:e] exactly
    if e is None:
        e = len(b)
    d = _Dec(b, p, e)
    o = d.item(0)
    if d.p != e:
        raise Malformed("trailing bytes")
    return o
