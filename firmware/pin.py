# hydrolink technician PIN: the console's write commands need it. Stored in
# config.json, never the PIN itself:
#   "pin_salt": 32 hex digits (16 random bytes)
#   "pin_hash": 64 hex digits = PBKDF2-HMAC-SHA256(PIN as ASCII digits,
#               salt, ITER iterations, 32 bytes) (RFC 8018)
# The host writes them (hydrolink provision) with CPython's
#   hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), ITER).hex()
# ITER is part of the format: changing it invalidates every provisioned PIN.
# A 4-8 digit PIN is no secret against someone holding the flash (10^8
# guesses); the lockout (console.py: five wrong, fifteen minutes) is what
# protects it at the port. Loaded by the console only.
import binascii

try:
    from micropython import const
except ImportError:  # CPython (host tests)
    def const(x):  # type: ignore[misc]
        return x

ITER = const(1000)
SALT_LEN = const(16)

try:
    from sha256 import OK as _FAST
    from sha256 import Hmac as _Hmac
except (ImportError, SyntaxError, ValueError, NotImplementedError):
    _FAST = False


def _prf(key):
    # -> f(msg, out): out[:32] = HMAC-SHA256(key, msg)
    if _FAST:
        h = _Hmac(key)
        return h.tag_into
    import hashlib
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    ip = bytearray(64)
    op = bytearray(64)
    for i in range(64):
        k = key[i] if i < len(key) else 0
        ip[i] = k ^ 0x36
        op[i] = k ^ 0x5C

    def f(msg, out):
        h = hashlib.sha256(ip)
        h.update(msg)
        h2 = hashlib.sha256(op)
        h2.update(h.digest())
        out[:] = h2.digest()
    return f


def derive(pin, salt, n=ITER):
    # PBKDF2-HMAC-SHA256, one 32-byte block: T = U1 ^ U2 ^ ... ^ Un
    f = _prf(pin)
    u = bytearray(32)
    f(bytes(salt) + b"\x00\x00\x00\x01", u)
    t = bytearray(u)
    v = bytearray(32)
    for _ in range(n - 1):
        f(u, v)
        u, v = v, u
        for i in range(32):
            t[i] ^= u[i]
    return bytes(t)


def provisioned(cfg):
    return bool(cfg.get("pin_hash")) and bool(cfg.get("pin_salt"))


def check(cfg, pin):
    # -> True if pin (str) matches the stored hash; False otherwise or when
    # no PIN is provisioned
    if not provisioned(cfg) or not pin or len(pin) > 16:
        return False
    try:
        salt = binascii.unhexlify(cfg["pin_salt"])
        want = binascii.unhexlify(cfg["pin_hash"])
    except ValueError:
        return False
    got = derive(pin.encode(), salt)
    d = 0
    for i in range(32):
        d |= got[i] ^ want[i]  # every byte compared: no early exit
    return d == 0 and len(want) == 32
