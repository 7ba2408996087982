# Sim board "ROM" REPL: what a board's USB REPL is, for the unix port.
# The unix port's own REPL speaks the raw REPL and raw-paste too, but a soft
# reset (Ctrl-D in the raw REPL, which mpremote sends before its first
# command) ends that process where a board restarts its interpreter, and a
# board's machine.reset() boots the firmware. So this loop speaks the board
# protocol on stdin/stdout (sim/repl.py relays them to a pty):
#   friendly REPL  ">>> ", one line at a time; Ctrl-A: raw REPL
#   raw REPL       code up to Ctrl-D, "OK", output, \x04, error, \x04, ">";
#                  Ctrl-D alone: soft reset; Ctrl-B: friendly REPL
#   raw paste      \x05 A \x01: "R\x01" + window, \x01 per window consumed
# machine.reset() ends the VM with status 100: the host boots the firmware
# from the flash image, as a hard reset does. Imported by boards/simboot.py
# with HL_REPL set, which calls repl() once the image is mounted at /flash.
# Not flashed.
import sys

_IN = sys.stdin.buffer
_OUT = sys.stdout.buffer
_WINDOW = 2048  # raw-paste flow-control window, bytes
_HARD = 100  # exit status: hard reset


class _Machine:
    @staticmethod
    def reset():
        _OUT.write(b"\r\n")
        sys.exit(_HARD)

    @staticmethod
    def soft_reset():
        raise _SoftReset()

    @staticmethod
    def unique_id():
        return b"simboard"


class _SoftReset(Exception):
    pass


sys.modules["machine"] = _Machine  # type: ignore[assignment]


def _getc():
    b = _IN.read(1)
    if not b:
        sys.exit(0)  # the host closed the port: power off
    return b[0]


def _run(code, g):
    # -> normal output, then \x04, the error, \x04 (EXEC_FLAG_PRINT_EOF)
    try:
        exec(code, g)
        _OUT.write(b"\x04")
    except _SoftReset:
        _OUT.write(b"\x04\x04")
        raise
    except SystemExit:
        raise
    except BaseException as e:  # noqa: B036 - a board's REPL reports everything
        _OUT.write(b"\x04")
        sys.print_exception(e)
    _OUT.write(b"\x04")


def _paste():
    _OUT.write(b"R\x01" + bytes((_WINDOW & 0xFF, _WINDOW >> 8)))
    buf = bytearray()
    left = _WINDOW
    while True:
        c = _getc()
        if c == 4:
            _OUT.write(b"\x04")
            return bytes(buf)
        buf.append(c)
        left -= 1
        if left == 0:
            _OUT.write(b"\x01")
            left = _WINDOW


def _raw(g):
    # -> "friendly" (Ctrl-B) or "soft_raw" (soft reset)
    _OUT.write(b"raw REPL; CTRL-B to exit\r\n")
    while True:
        _OUT.write(b">")
        line = bytearray()
        code = None
        while True:
            c = _getc()
            if c == 1:
                if len(line) == 2 and line[0] == 5 and line[1] == 65:
                    code = _paste()
                break  # else: Ctrl-A resets the raw REPL
            if c == 2:
                _OUT.write(b"\r\n")
                return "friendly"
            if c == 3:
                line = bytearray()
            elif c == 4:
                _OUT.write(b"OK")
                if not line:
                    _OUT.write(b"\r\n")
                    return "soft_raw"
                code = bytes(line)
                break
            else:
                line.append(c)
        if code is None:
            _OUT.write(b"raw REPL; CTRL-B to exit\r\n")
            continue
        try:
            _run(code.decode(), g)
        except _SoftReset:
            return "soft_raw"


def _friendly(g):
    # -> "raw" (Ctrl-A) or "soft_friendly" (Ctrl-D on an empty line)
    _OUT.write(b"MicroPython (hydrolink sim board) on unix\r\n>>> ")
    line = bytearray()
    while True:
        c = _getc()
        if c == 1:
            _OUT.write(b"\r\n")
            return "raw"
        if c == 3:
            line = bytearray()
            _OUT.write(b"\r\nKeyboardInterrupt\r\n>>> ")
        elif c == 4 and not line:
            _OUT.write(b"\r\n")
            return "soft_friendly"
        elif c in (13, 10):
            _OUT.write(b"\r\n")
            if line:
                try:
                    exec(compile(bytes(line).decode(), "<stdin>", "single"), g)
                except _SoftReset:
                    return "soft_friendly"
                except SystemExit:
                    raise
                except BaseException as e:  # noqa: B036
                    sys.print_exception(e)
            line = bytearray()
            _OUT.write(b">>> ")
        elif c in (8, 127):
            if line:
                line = line[:-1]  # no bytearray.pop on MicroPython
                _OUT.write(b"\x08 \x08")
        elif c >= 32:
            line.append(c)
            _OUT.write(bytes((c,)))


def repl():
    mode = "friendly"
    while True:
        g = {"__name__": "__main__"}
        while True:
            mode = _raw(g) if mode == "raw" else _friendly(g)
            if mode.startswith("soft"):
                break
        _OUT.write(b"MPY: soft reboot\r\n")
        mode = "raw" if mode == "soft_raw" else "friendly"
