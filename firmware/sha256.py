# SHA-256 and HMAC-SHA256 that allocate nothing per call (FIPS 180-4,
# RFC 2104). The compression runs as @micropython.viper code (machine-word
# arithmetic) over preallocated buffers; hashlib would allocate a hash
# object and a digest each time, and has no copy() to keep the HMAC pad
# states.
#
#   h = Hmac(key)           # key: any length (> 64 bytes: hashed first)
#   h.tag_into(msg, out)    # out[:k] = HMAC-SHA256(key, msg)[:k], k = min(len(out), 32)
#   h.tag_into(buf, out, n) # ... of buf[:n], no slice needed
#   digest_into(msg, out[, n]) and sha256(msg) -> bytes (allocates)
#
# Hmac absorbs the key's ipad and opad blocks once: a tag costs the message's
# blocks + 1 (its padding, when the message does not leave room for it) + 1
# (outer hash) compressions. Works with 32-bit words (ESP32, xtensawin) and
# 64-bit words (unix x64 VM): sums and left shifts are masked to 32 bits
# before any right shift, and ptr32 stores keep the low 32 bits. Needs the
# native emitter: compile with mpy-cross -march=<the board's arch>. Import
# it under try (ImportError, SyntaxError, ValueError) and check OK (the
# self-test run at import) before trusting it (frame.py does, and falls
# back on hashlib).
#
# mypy (the board stubs) types a viper function's ptr8/ptr32 parameters as
# pointers, not the buffers a Python caller passes: calls carry
# `type: ignore[arg-type]`.
#
# RAM: 736 B for the module's buffers (constants, scratch), 64 B per Hmac
# (its two pad states). The scratch (message schedule, working state,
# padded tail, inner digest) is shared: not reentrant, so no hashing from
# a hard interrupt handler or a second thread while another one runs.
import micropython
from micropython import const

# scratch bytearray layout (byte offsets)
_W = const(0)  # message schedule, 64 native words
_H = const(256)  # working state, 8 native words
_T = const(288)  # padded tail: the last partial block, 0x80, zeros, bit length
_D = const(416)  # inner digest (HMAC), 32 bytes
_XLEN = const(448)


@micropython.viper
def _words(src: ptr8, dst: ptr32, n: int):
    # n big-endian words of src -> native words in dst
    i = 0
    while i < n:
        q = i << 2
        dst[i] = (src[q] << 24) | (src[q + 1] << 16) | (src[q + 2] << 8) | src[q + 3]
        i += 1


# FIPS 180-4 round constants (§4.2.2) and initial hash value (§5.3.3) as
# native words; the big-endian literals are not kept
_K = bytearray(256)
_IV = bytearray(32)
_KBE = (
    b"\x42\x8a\x2f\x98\x71\x37\x44\x91\xb5\xc0\xfb\xcf\xe9\xb5\xdb\xa5"
    b"\x39\x56\xc2\x5b\x59\xf1\x11\xf1\x92\x3f\x82\xa4\xab\x1c\x5e\xd5"
    b"\xd8\x07\xaa\x98\x12\x83\x5b\x01\x24\x31\x85\xbe\x55\x0c\x7d\xc3"
    b"\x72\xbe\x5d\x74\x80\xde\xb1\xfe\x9b\xdc\x06\xa7\xc1\x9b\xf1\x74"
    b"\xe4\x9b\x69\xc1\xef\xbe\x47\x86\x0f\xc1\x9d\xc6\x24\x0c\xa1\xcc"
    b"\x2d\xe9\x2c\x6f\x4a\x74\x84\xaa\x5c\xb0\xa9\xdc\x76\xf9\x88\xda"
    b"\x98\x3e\x51\x52\xa8\x31\xc6\x6d\xb0\x03\x27\xc8\xbf\x59\x7f\xc7"
    b"\xc6\xe0\x0b\xf3\xd5\xa7\x91\x47\x06\xca\x63\x51\x14\x29\x29\x67"
    b"\x27\xb7\x0a\x85\x2e\x1b\x21\x38\x4d\x2c\x6d\xfc\x53\x38\x0d\x13"
    b"\x65\x0a\x73\x54\x76\x6a\x0a\xbb\x81\xc2\xc9\x2e\x92\x72\x2c\x85"
    b"\xa2\xbf\xe8\xa1\xa8\x1a\x66\x4b\xc2\x4b\x8b\x70\xc7\x6c\x51\xa3"
    b"\xd1\x92\xe8\x19\xd6\x99\x06\x24\xf4\x0e\x35\x85\x10\x6a\xa0\x70"
    b"\x19\xa4\xc1\x16\x1e\x37\x6c\x08\x27\x48\x77\x4c\x34\xb0\xbc\xb5"
    b"\x39\x1c\x0c\xb3\x4e\xd8\xaa\x4a\x5b\x9c\xca\x4f\x68\x2e\x6f\xf3"
    b"\x74\x8f\x82\xee\x78\xa5\x63\x6f\x84\xc8\x78\x14\x8c\xc7\x02\x08"
    b"\x90\xbe\xff\xfa\xa4\x50\x6c\xeb\xbe\xf9\xa3\xf7\xc6\x71\x78\xf2"
)
_IVBE = (
    b"\x6a\x09\xe6\x67\xbb\x67\xae\x85\x3c\x6e\xf3\x72\xa5\x4f\xf5\x3a"
    b"\x51\x0e\x52\x7f\x9b\x05\x68\x8c\x1f\x83\xd9\xab\x5b\xe0\xcd\x19"
)
_words(_KBE, _K, 64)  # type: ignore[arg-type]
_words(_IVBE, _IV, 8)  # type: ignore[arg-type]
del _KBE, _IVBE

_X = bytearray(_XLEN)
_DV = memoryview(_X)[_D : _D + 32]


@micropython.viper
def _run(s: ptr32, src: ptr8, n: int, pre: int, dst: ptr8, nout: int):
    # Hash src[0:n] from the state s (8 native words, after `pre` bytes
    # absorbed). nout >= 0: pad, finish, and write the first nout (<= 32)
    # digest bytes to dst. nout < 0: n is a multiple of 64, the state is
    # left unfinished and written to dst as 8 native words (a pad state)
    M = (uint(0xFFFF) << 16) | uint(0xFFFF)  # 0xFFFFFFFF: as a literal it is an object
    k = ptr32(_K)
    x = uint(ptr8(_X))
    w = ptr32(x + _W)
    h = ptr32(x + _H)
    i = 0
    while i < 8:
        h[i] = s[i]
        i += 1
    nfull = n >> 6
    nblk = nfull
    if nout >= 0:
        t = ptr8(x + _T)
        rem = n & 63
        b0 = nfull << 6
        i = 0
        while i < rem:
            t[i] = src[b0 + i]
            i += 1
        t[rem] = 0x80
        tl = 64 if rem < 56 else 128
        i = rem + 1
        while i < tl - 4:
            t[i] = 0  # the bit length's top 32 bits too: messages < 512 MB
            i += 1
        bits = uint(pre + n) << 3
        t[tl - 4] = bits >> 24
        t[tl - 3] = bits >> 16
        t[tl - 2] = bits >> 8
        t[tl - 1] = bits
        nblk += tl >> 6
    blk = 0
    while blk < nblk:
        if blk < nfull:
            p = ptr8(uint(src) + (blk << 6))
        else:
            p = ptr8(x + _T + ((blk - nfull) << 6))
        j = 0
        while j < 16:
            q = j << 2
            w[j] = (p[q] << 24) | (p[q + 1] << 16) | (p[q + 2] << 8) | p[q + 3]
            j += 1
        while j < 64:
            u = uint(w[j - 15])
            v = uint(w[j - 2])
            w[j] = (uint(w[j - 16]) + uint(w[j - 7])
                    + (((u >> 7) | (u << 25)) ^ ((u >> 18) | (u << 14)) ^ (u >> 3))
                    + (((v >> 17) | (v << 15)) ^ ((v >> 19) | (v << 13)) ^ (v >> 10)))
            j += 1
        a = uint(h[0])
        b = uint(h[1])
        c = uint(h[2])
        d = uint(h[3])
        e = uint(h[4])
        f = uint(h[5])
        g = uint(h[6])
        hh = uint(h[7])
        j = 0
        while j < 64:
            t1 = (hh + uint(k[j]) + uint(w[j]) + (g ^ (e & (f ^ g)))
                  + (((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21)) ^ ((e >> 25) | (e << 7))))
            t2 = ((((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19)) ^ ((a >> 22) | (a << 10)))
                  + ((a & b) | (c & (a | b))))
            hh = g
            g = f
            f = e
            e = (d + t1) & M
            d = c
            c = b
            b = a
            a = (t1 + t2) & M
            j += 1
        h[0] = uint(h[0]) + a
        h[1] = uint(h[1]) + b
        h[2] = uint(h[2]) + c
        h[3] = uint(h[3]) + d
        h[4] = uint(h[4]) + e
        h[5] = uint(h[5]) + f
        h[6] = uint(h[6]) + g
        h[7] = uint(h[7]) + hh
        blk += 1
    if nout < 0:
        o = ptr32(dst)
        i = 0
        while i < 8:
            o[i] = h[i]
            i += 1
    i = 0
    while i < nout:
        dst[i] = uint(h[i >> 2]) >> (24 - ((i & 3) << 3))
        i += 1


def digest_into(msg, out, n=-1):
    # out[:k] = SHA-256(msg[:n])[:k], k = min(len(out), 32); n < 0: all of msg
    if n < 0:
        n = len(msg)
    elif n > len(msg):
        raise ValueError("n")  # viper reads are not bounds-checked
    _run(_IV, msg, n, 0, out, min(len(out), 32))  # type: ignore[arg-type]


def sha256(msg):
    d = bytearray(32)
    digest_into(msg, d)
    return bytes(d)


class Hmac:
    def __init__(self, key):
        if len(key) > 64:
            key = sha256(key)
        kb = bytearray(64)
        kb[: len(key)] = key
        for i in range(64):
            kb[i] ^= 0x36
        self._i = bytearray(32)  # state after the ipad block
        _run(_IV, kb, 64, 0, self._i, -1)  # type: ignore[arg-type]
        for i in range(64):
            kb[i] ^= 0x36 ^ 0x5C
        self._o = bytearray(32)  # after the opad block
        _run(_IV, kb, 64, 0, self._o, -1)  # type: ignore[arg-type]

    def tag_into(self, msg, out, n=-1):
        # out[:k] = HMAC-SHA256(key, msg[:n])[:k], k = min(len(out), 32);
        # n < 0: all of msg
        if n < 0:
            n = len(msg)
        elif n > len(msg):
            raise ValueError("n")  # viper reads are not bounds-checked
        _run(self._i, msg, n, 64, _DV, 32)  # type: ignore[arg-type]
        _run(self._o, _DV, 32, 64, out, min(len(out), 32))  # type: ignore[arg-type]


def _selftest():
    # this build hashes as hashlib does (multi-block, padding, high bits,
    # HMAC with a long key)? Run once at import, then dropped (its code is
    # 400 B of heap)
    import hashlib

    m = bytes((i * 167 + 13) & 0xFF for i in range(131))
    for n in (0, 55, 56, 64, 131):
        if sha256(m[:n]) != hashlib.sha256(m[:n]).digest():
            return False
    k = m[:100]
    kh = hashlib.sha256(k).digest()
    ip = bytes(b ^ 0x36 for b in kh) + b"\x36" * 32
    op = bytes(b ^ 0x5C for b in kh) + b"\x5c" * 32
    want = hashlib.sha256(op + hashlib.sha256(ip + m).digest()).digest()
    got = bytearray(32)
    Hmac(k).tag_into(m, got)
    return bytes(got) == want


# False: this native build is wrong (a compiler or port bug); do not sign
# with it (frame.py falls back on hashlib)
OK = _selftest()
del _selftest
