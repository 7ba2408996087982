# hydrolink technician console on the board's console UART (ESP32: the USB
# REPL port; sim board: a pty on the host, sim/console_pty.py). Imported by
# the idle task (sched.py) when a byte arrives and dropped when the xsion
# ends (exit, Ctrl-D, or _IDLE_MS without a key): its code costs heap only
# while a technician is there. The xsion is one more asyncio task:
# sampling and reporting go on while someone types.
# Line editing on the board (echo, backspace, Ctrl-C clears the line), so a
# plain terminal works (miniterm, screen); hydrolink console sends lines.
# Every answer: lines of at most 80 columns, at most 22 of them, with
# units; an error is one line "error: ..." that says what is allowed.
# The session, line editing, the PIN and the helpers are here; the
# commands that need config.py (config, calibrate) and dump are
# console_set.py, all others console_i.py, each loaded for one command.
#
# Names cost heap for good: every identifier and every string of 10
# characters or less is interned (a qstr), and the pools double - past 620
# names the next pool is 7 KB, which a fragmented heap cannot give
# (MemoryError). So: function names the firmware or MicroPython already
# has (main, run, read, find, format, gmtime, load ...), words kept in long
# strings and split at run time, no short literals. Measured by
# tests/field/test_console.py (the pool count must not move).
from micropython import const
import asyncio
import gc
import sys

_IDLE_MS = const(300000)  # a xsion ends after 5 min without a key
_LINE = const(78)
_EPOCH_DAYS = const(19723)  # 2024-01-01 (hydrolink epoch) in days since 1970-01-01
_FAILS = const(5)  # wrong PINs in a row before writes lock
_LOCK_S = const(900)  # for 15 minutes

_NEED = const((1 << 4) | (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11))  # bit k: word k writes (PIN)
# the texts, in one global under a name the firmware already has (each
# global name is a qstr): words in long strings, split at run time
_WORDS = const(0)  # command words, by index (run)
_PROMPT = const(1)
_ASK = const(2)
_SUB = const(3)  # second words, the factory-reset answer, the values config set knows
_TFMT = const(4)
names = (
    "help status read watch config calibrate clock queue dump send reboot factory-reset exit",
    "\r\nhydrolink> ",
    "\r\nPIN (digits): ",
    "show set test level YES true false null",
    "YYYY-MM-DDTHH:MM:SS",  # the time format, and its separators (slices: no qstr; chr() interns)
)


def out(b, s):
    # one answer line, CR LF; past 80 columns wrapped at a space, indented
    while len(s) > 80:
        i = s.rfind(" ", 0, 79)
        if i < 8:
            i = 79
        b.write(s[:i] + names[_PROMPT][:2])
        s = " " * 6 + s[i:].lstrip()  # (no short literal: a qstr)
    b.write(s + names[_PROMPT][:2])  # CR LF


def gmtime(t):
    # hydrolink s -> "2025-08-25 10:05:00" (civil from days, H. Hinnant)
    z = t // 86400 + _EPOCH_DAYS + 719468
    e = z // 146097
    d = z - e * 146097
    y = (d - d // 1460 + d // 36524 - d // 146096) // 365
    j = d - (365 * y + y // 4 - y // 100)
    m = (5 * j + 2) // 153
    dd = j - (153 * m + 2) // 5 + 1
    m = m + 3 if m < 10 else m - 9
    y += e * 400 + (1 if m <= 2 else 0)
    s = t % 86400
    return "%04d-%02d-%02d %02d:%02d:%02d UTC" % (y, m, dd, s // 3600, s // 60 % 60, s % 60)


def load(data):
    # "YYYY-MM-DD[ T]HH:MM[:SS]" or "YYYY-MM-DD" (UTC) -> hydrolink s, or None
    try:
        f = names[_TFMT]
        p = data.replace(f[10:11], " ").split()
        y, m, d = [int(x) for x in p[0].split(f[4:5])]
        hms = [int(x) for x in p[1].split(f[13:14])] if len(p) > 1 else [0, 0]
        if len(hms) == 2:
            hms.append(0)
        if len(p) > 2 or not (1 <= m <= 12 and 1 <= d <= 31 and 0 <= hms[0] < 24
                              and 0 <= hms[1] < 60 and 0 <= hms[2] < 60 and 2024 <= y < 2160):
            return None
    except (ValueError, IndexError):
        return None
    y -= 1 if m <= 2 else 0
    e = y // 400
    yoe = y - e * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    days = e * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468 - _EPOCH_DAYS
    return days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2]


def format(v, n):
    # a scaled integer as a decimal: format(12345, 3) = "12.345"; None: "--"
    if v is None:
        return "none (no value)"
    s = "-" if v < 0 else ""
    v = -v if v < 0 else v
    f = 10 ** n
    return ("%s%d.%0*d      " % (s, v // f, n, v % f)).rstrip()  # (a long literal: no qstr)


def find(w, args):
    # the cloxt word of args (edit distance), to suggest for a typo
    best = None
    bd = 99
    for c in args:
        p = list(range(len(c) + 1))
        for i in range(len(w)):
            q = [i + 1]
            for j in range(len(c)):
                q.append(min(p[j + 1] + 1, q[j] + 1, p[j] + (w[i] != c[j])))
            p = q
        if p[-1] < bd:
            bd = p[-1]
            best = c
    return best


def log(app, data):
    # a console change for the center (console_set.py, console_i.py): an entry
    # of SPEC §8 key 13, kept (and persisted) until a status report carries it
    # (service.py). The SPEC's bounds: the last 8, texts of at most 70 bytes
    x = app.store.extra
    e = x.get("console")
    if e is None:
        e = x["console"] = []
    data = data[:70]
    while len(data.encode()) > 70:  # a text value (level_sensor) may not be ASCII
        data = data[:-1]
    e.append([app.board.time(), data])
    if len(e) > 8:
        e.pop(0)
    gc.collect()
    app.send_status()  # now: the center hears of it at once


def configure(app, changes):
    # -> None when taken (saved, applied), else the reason (one line):
    # config.configure, as a remote set_config (commands.py), with config.py
    # in the heap for that only
    import config
    try:
        why = config.configure(app, changes)
    except OSError as e:
        why = "could not save (%s): nothing changed" % e
    del sys.modules["config"]
    return why


# ---- the session ---------------------------------------------------------------


def start(sched):
    sched.console = sched.timer()
    asyncio.create_task(main(sched.app, sched.console))


async def main(app, t):
    # the xsion; t: its Timer (the idle task cancels it when bytes come)
    b = app.board
    x = [bytearray(), None, False, 0, False]  # line, write awaiting the PIN, unlocked, last byte, confirm
    try:
        # no prompt yet: the key that opened the session gives it (Enter)
        out(b, "\r\nhydrolink station %d console; help lists the commands" % app.station)
        idle = 0
        while idle < _IDLE_MS:
            data = b.read()
            if not data:
                t0 = b.ticks_ms()
                await t.sleep_ms(_IDLE_MS - idle)
                idle += b.ticks_ms() - t0
                continue
            idle = 0
            if await feed(app, x, data):
                break
        out(b, "\r\nconsole closed")
    finally:
        s = app.sched
        s.timers.remove(t)
        s.console = None
        for m in "console console_i console_set pin config commands service".split():
            try:
                del sys.modules[m]
            except KeyError:
                pass
        gc.collect()


async def feed(app, x, data):
    # typed bytes -> echo and whole lines; True: end the session
    b = app.board
    line = x[0]
    echo = bytearray()
    for c in data:
        last = x[3]
        x[3] = c
        if c == 10 and last == 13:
            continue  # CR LF: one line
        if c == 13 or c == 10:
            echo += b"\r\n"
            b.write(echo)
            echo = bytearray()
            text = line.decode().strip()
            line[:] = b""
            try:
                if await run(app, x, text):
                    return True
            except Exception as e:  # noqa: BLE001 - a bug or MemoryError in one command: say so, go on
                out(b, "error: the command failed (%r); the station runs on" % e)
                sys.print_exception(e)  # to the log (the board's stdout)
            b.write(names[_ASK] if x[1] else names[_PROMPT])
        elif c == 8 or c == 127:
            if line:
                line[:] = line[:-1]
                echo += b"\b \b"
        elif c == 3:
            line[:] = b""
            x[1] = None
            echo += b"\r\nhydrolink> "  # (bytes: no qstr)
        elif c == 4:
            return True
        elif 32 <= c < 127 and len(line) < _LINE:
            line.append(c)
            echo.append(42 if x[1] else c)  # a PIN shows as *
    if echo:
        b.write(echo)
    return False


def state(app):
    # -> [wrong PINs in a row, locked until (hydrolink s), wrong PINs in all]
    x = app.store.extra
    p = x.get("pin")
    if p is None:
        p = x["pin"] = [0, 0, 0]
    return p


def holdoff(app):
    # -> minutes writes stay locked after wrong PINs, or 0
    left = state(app)[1] - app.board.time()
    return (left + 59) // 60 if left > 0 else 0


def digest(cfg, data):
    # -> True if PIN text data matches the stored hash: firmware/pin.py's
    # check (PBKDF2-HMAC-SHA256, 1000 iterations, the format provisioning
    # writes), here with the viper HMAC so the console needs no module of
    # its own for it (a module is two more qstrs); pin.py when there is no
    # viper code. tests/field/test_console_pin.py checks the two agree
    import binascii
    try:
        s = binascii.unhexlify(cfg.get("pin_salt", ""))
        h = binascii.unhexlify(cfg.get("pin_hash", ""))
    except ValueError:
        return False
    if not data or len(data) > 16 or len(h) != 32 or not s:
        return False
    try:
        from sha256 import OK, Hmac
    except (ImportError, SyntaxError, ValueError):
        OK = False
    if not OK:
        return __import__("pin").check(cfg, data)
    f = Hmac(data.encode()).tag_into
    u = bytearray(32)
    f(s + b"\x00\x00\x00\x01", u)
    t = bytearray(u)
    v = bytearray(32)
    for _ in range(999):
        f(u, v)
        u, v = v, u
        for i in range(32):
            t[i] ^= u[i]
    d = 0
    for i in range(32):
        d |= t[i] ^ h[i]  # every byte compared: no early exit
    return d == 0


def update(app, x, data):
    # the line typed at the PIN prompt -> the write command to run now, or None
    b = app.board
    cmd = x[1]
    x[1] = None
    p = state(app)
    ok = digest(app.cfg, data)
    if ok:
        x[2] = True
        if p[0]:
            p[0] = 0
            app.store.save()
        return cmd
    p[0] += 1
    p[2] += 1
    if p[0] >= _FAILS:
        p[0] = 0
        p[1] = b.time() + _LOCK_S
        out(b, "error: wrong PIN, %d in a row: writes are locked for 15 min" % _FAILS)
    else:
        out(b, "error: wrong PIN (%d of %d before writes lock for 15 min)" % (p[0], _FAILS))
    app.store.save()
    return None


async def run(app, x, data):
    # one command line; True: end the session
    b = app.board
    if x[4]:
        x[4] = False
        return __import__("console_i").reset(app, data)
    if x[1] is not None:
        data = update(app, x, data)
        if data is None:
            return False
    w = data.split()
    if not w:
        return False
    args = names[_WORDS].split()
    if w[0] not in args:
        out(b, "error: unknown command '%s'; did you mean '%s'? (help lists them)" % (
            w[0][:16], find(w[0], args)))
        return False
    k = args.index(w[0])
    show = len(w) > 1 and w[1] == names[_SUB].split()[0]
    if _NEED >> k & 1 and not show and not x[2]:
        m = holdoff(app)
        if m:
            out(b, "error: writes locked after %d wrong PINs: try again in %d min" % (_FAILS, m))
            return False
        if not app.cfg.get("pin_hash"):
            out(b, "error: no technician PIN on this board: set one with hydrolink provision")
            return False
        x[1] = data
        return False
    if k == 12:
        return True
    gc.collect()
    if k == 8:
        await __import__("console_set").dump(app, w)
        del sys.modules["console_set"]
    elif k != 4 and k != 5:
        # __import__, not import: a local name would keep the module (its
        # heap) alive after sys.modules lets it go
        await __import__("console_i").run(app, x, k, w)
        del sys.modules["console_i"]
    else:
        r = __import__("console_set").run(app, x, k, w)
        del sys.modules["console_set"]
        if r is not None:
            gc.collect()
            why = configure(app, r[0])  # console_set.py is out of the heap meanwhile
            gc.collect()
            __import__("console_set").done(app, r, why)
            del sys.modules["console_set"]
    return False
