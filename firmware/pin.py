# hydrolink technician PIN: the console's write commands need it. Stored in
# config.json, never the PIN itself:
#   "pin_salt": 32 hex digits (16 random bytes)
#   "pin_hash": 64 hex digits = PBKDF2-HMAC-SHA256(PIN as ASCII digits,
#               salt, 1000 iterations, 32 bytes) (RFC 8018)
# The host (hydrolink provision) writes them with CPython's
#   hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), 1000).hex()
# The iteration count is part of the format: changing it invalidates every
# provisioned PIN. 7 ms per check on the x64 VM. A 4-8 digit PIN is no
# secret against someone holding the flash (10^8 guesses); the lockout
# (console.py: five wrong, fifteen minutes) protects it at the port.
# Loaded by the console for one check, dropped after. Few names (qstrs).
import binascii

try:
    from micropython import const
except ImportError:  # CPython (host tests)
    def const(x):  # type: ignore[misc]
        return x

_ITER = const(1000)

try:
    from sha256 import OK as _FAST
    from sha256 import Hmac as _Hmac
except (ImportError, SyntaxError, ValueError, NotImplementedError):
    _FAST = False


def digest(p, s, n=_ITER):
    # PBKDF2-HMAC-SHA256 of PIN bytes p, salt s: one 32-byte block,
    # T = U1 ^ U2 ^ ... ^ Un, Ui = HMAC(p, U(i-1)), U1 = HMAC(p, s || 1)
    if _FAST:
        f = _Hmac(p).tag_into
    else:
        import hashlib
        ip = bytearray(64)
        op = bytearray(64)
        for i in range(64):
            k = p[i] if i < len(p) else 0  # PINs are short: no key hashing
            ip[i] = k ^ 0x36
            op[i] = k ^ 0x5C

        def f(msg, out):  # type: ignore[misc]
            h = hashlib.sha256(ip)
            h.update(msg)
            h2 = hashlib.sha256(op)
            h2.update(h.digest())
            out[:] = h2.digest()
    u = bytearray(32)
    f(bytes(s) + b"\x00\x00\x00\x01", u)
    t = bytearray(u)
    v = bytearray(32)
    for _ in range(n - 1):
        f(u, v)
        u, v = v, u
        for i in range(32):
            t[i] ^= u[i]
    return bytes(t)


def check(cfg, p):
    # -> True if PIN text p matches the stored hash; False otherwise, or
    # when no PIN is provisioned
    if not cfg.get("pin_hash") or not cfg.get("pin_salt") or not p or len(p) > 16:
        return False
    try:
        s = binascii.unhexlify(cfg["pin_salt"])
        want = binascii.unhexlify(cfg["pin_hash"])
    except ValueError:
        return False
    got = digest(p.encode(), s)
    d = len(want) ^ 32
    for i in range(32):
        d |= got[i] ^ want[i]  # every byte compared: no early exit
    return d == 0
