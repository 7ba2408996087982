"""``hydrolink decode`` and ``hydrolink encode``: frames to JSON Lines and back.

Sans-IO codec underneath (:mod:`protocol.codec`, :mod:`host_tools.jsonview`); this module
reads files and pipes, reports each rejected frame or bad line, and returns the exit
status of :mod:`host_tools.cli` (0 ok, 1 data rejected; a bad file raises ``CliError``).
"""

from __future__ import annotations

import argparse
import binascii
import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import cbor2

from host_tools.clierror import CliError
from host_tools.jsonview import frame_to_si, si_to_frame
from host_tools.registry import Registry, RegistryError, load_registry
from protocol.codec import (
    CRC_SIZE,
    MIN_FRAME,
    Deframer,
    Frame,
    decode_frame,
    decode_unverified,
    encode_frame,
    frame_to_message,
    message_to_frame,
    wrap,
)
from protocol.errors import FrameError, Malformed, Truncated

CHUNK = 65536


# ---------------------------------------------------------------- helpers


def _open_input(path: str, stack: ExitStack) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return stack.enter_context(open(path, "rb"))  # noqa: SIM115 - closed by the stack
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}") from None


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    """Whatever is available, up to CHUNK bytes at a time (so a live pipe decodes as it comes)."""
    read = getattr(f, "read1", f.read)
    while True:
        try:
            data = read(CHUNK)
        except OSError as e:
            raise CliError(f"read failed: {e.strerror or e}") from None
        if not data:
            return
        yield data


def _lines(f: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    try:
        yield from enumerate(f, 1)
    except OSError as e:
        raise CliError(f"read failed: {e.strerror or e}") from None


def _registry(path: Path) -> Registry:
    try:
        return load_registry(path)
    except RegistryError as e:
        raise CliError(str(e)) from None


def _json_default(obj: Any) -> Any:
    # CBOR byte strings may appear in command args and results; JSON has none.
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"{type(obj).__name__} is not JSON")


def _is_raw_frame(data: bytes) -> bool:
    """True if ``data`` is a raw frame with a good CRC (rather than COBS wire bytes)."""
    return len(data) >= MIN_FRAME and binascii.crc32(data[:-CRC_SIZE]) == int.from_bytes(
        data[-CRC_SIZE:], "big"
    )


# ---------------------------------------------------------------- decode


class _Decoder:
    """Decodes raw frames, prints one JSON line per frame, counts rejections by reason."""

    def __init__(self, registry: Registry | None, out: IO[str], *, raw: bool,
                 with_frame: bool) -> None:
        self.keys = registry.keys if registry else None
        self.out = out
        self.raw = raw
        self.with_frame = with_frame
        self.decoded = 0
        self.rejected: Counter[str] = Counter()

    def item(self, item: bytes | FrameError, where: str) -> None:
        if isinstance(item, FrameError):
            self.reject(item, where)
            return
        try:
            frame = self._decode(item)
        except FrameError as e:
            self.reject(e, where)
            return
        auth = self.keys is not None
        obj = frame_to_message(frame) if self.raw else frame_to_si(frame, auth=auth)
        if self.with_frame:
            obj["frame"] = item.hex()
        self.out.write(json.dumps(obj, default=_json_default) + "\n")
        self.decoded += 1

    def _decode(self, raw: bytes) -> Frame:
        if self.keys is not None:
            return decode_frame(raw, self.keys)
        return decode_unverified(raw)  # --no-auth: every check of SPEC §9 but the tag

    def reject(self, e: FrameError, where: str) -> None:
        self.rejected[e.reason] += 1
        print(f"rejected: {type(e).__name__}: {e} ({where})", file=sys.stderr)

    def summary(self) -> str:
        total = sum(self.rejected.values())
        detail = ", ".join(f"{reason} {n}" for reason, n in sorted(self.rejected.items()))
        text = f"decoded {self.decoded} frames, rejected {total}"
        return f"{text} ({detail})" if detail else text


def _not_json(data: bytes, name: str) -> None:
    """decode reads frames: JSON (what decode prints, what encode reads) is refused whole."""
    if data.lstrip()[:1] in (b"{", b"["):
        raise CliError(f"{name} looks like JSON Lines; decode reads frames (a binary capture, "
                       "or --hex); to turn JSON into frames use 'hydrolink encode'")


def _decode_stream(f: IO[bytes], dec: _Decoder, name: str = "<stdin>") -> None:
    deframer = Deframer()
    pos = 0  # stream offset of the chunk's first byte
    for chunk in _chunks(f):
        if pos == 0:
            _not_json(chunk, name)
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\x00", start)
            stop = len(chunk) if end < 0 else end + 1
            where = f"at byte {pos + stop - 1}"
            for item in deframer.feed(chunk[start:stop]):
                dec.item(item, where)
            start = stop
        pos += len(chunk)
        dec.out.flush()
    if deframer.buffered:
        dec.reject(Truncated(f"input ended inside a frame: {deframer.buffered} bytes "
                             "without the 0x00 delimiter"), f"at byte {pos}")


def _decode_hex(f: IO[bytes], dec: _Decoder, name: str = "<stdin>") -> None:
    first = True
    for n, line in _lines(f):
        text = line.strip()
        if not text or text.startswith(b"#"):
            continue
        if first:
            _not_json(text, name)
            first = False
        where = f"line {n}"
        try:
            data = bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            dec.reject(Malformed("not hexadecimal: give one frame per line as hex digits"), where)
            continue
        if data.endswith(b"\x00") and not _is_raw_frame(data):
            deframer = Deframer()  # wire bytes: COBS, each frame ending in 0x00
            for item in deframer.feed(data):
                dec.item(item, where)
        else:
            dec.item(data, where)
        dec.out.flush()


def cmd_decode(argv: list[str]) -> int:
    """Decode frames from a capture or stdin to JSON Lines."""
    p = argparse.ArgumentParser(
        prog="hydrolink decode",
        description="Decode hydrolink frames to JSON Lines, one object per frame, in SI units. "
        "Rejected frames are reported on stderr; the exit status is 1 if any was rejected. "
        "Duplicates are shown, not dropped.",
    )
    p.add_argument("file", nargs="?", default="-", metavar="FILE",
                   help="raw byte stream (COBS frames ending in 0x00); - or absent: stdin")
    p.add_argument("--hex", action="store_true",
                   help="input is text, one frame per line in hex: a raw frame, or wire bytes "
                   "ending in 00")
    auth = p.add_mutually_exclusive_group(required=True)
    auth.add_argument("--keys", metavar="FILE", type=Path,
                      help="station registry (TOML) with each station's key: verifies tags")
    auth.add_argument("--no-auth", action="store_true",
                      help="decode without checking tags (output says \"auth\": false)")
    p.add_argument("--raw", action="store_true",
                   help="print the message JSON of SPEC §10.1 (scaled integers, hydrolink "
                   "seconds) instead of SI")
    p.add_argument("--with-frame", action="store_true", help="add the raw frame in hex")
    a = p.parse_args(argv)

    registry = _registry(a.keys) if a.keys else None
    dec = _Decoder(registry, sys.stdout, raw=a.raw, with_frame=a.with_frame)
    with ExitStack() as stack:
        f = _open_input(a.file, stack)
        (_decode_hex if a.hex else _decode_stream)(f, dec, "<stdin>" if a.file == "-" else a.file)
    sys.stdout.flush()
    print(dec.summary(), file=sys.stderr)
    return 1 if dec.rejected else 0


# ---------------------------------------------------------------- encode


def cmd_encode(argv: list[str]) -> int:
    """Encode JSON Lines (SI, or message JSON with --raw) to frames."""
    p = argparse.ArgumentParser(
        prog="hydrolink encode",
        description="Encode JSON Lines to signed hydrolink frames: the SI objects that "
        "'hydrolink decode' prints, or with --raw the message JSON of SPEC §10.1. "
        "A bad line is reported with its number and skipped; the exit status is then 1.",
    )
    p.add_argument("file", nargs="?", default="-", metavar="FILE",
                   help="JSON Lines; - or absent: stdin")
    p.add_argument("--keys", metavar="FILE", type=Path, required=True,
                   help="station registry (TOML) with each station's key, to sign the frames")
    p.add_argument("--raw", action="store_true", help="input is message JSON (SPEC §10.1)")
    p.add_argument("--hex", action="store_true",
                   help="write one raw frame per line in hex instead of wire bytes")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of stdout")
    a = p.parse_args(argv)

    registry = _registry(a.keys)
    name = "<stdin>" if a.file == "-" else a.file
    encoded = skipped = 0
    with ExitStack() as stack:
        f = _open_input(a.file, stack)
        out = _open_output(a.output, a.hex, stack)
        for n, line in _lines(f):
            try:
                raw = _encode_line(line, registry, a.raw)
            except ValueError as e:
                print(f"{name}:{n}: {e}", file=sys.stderr)
                skipped += 1
                continue
            if raw is None:
                continue
            out.write(raw.hex().encode() + b"\n" if a.hex else wrap(raw))
            out.flush()
            encoded += 1
    print(f"encoded {encoded} frames, skipped {skipped} lines", file=sys.stderr)
    return 1 if skipped else 0


def _open_output(path: str | None, text: bool, stack: ExitStack) -> IO[bytes]:
    if path is None or path == "-":
        if not text and sys.stdout.isatty():
            raise CliError("not writing binary frames to a terminal; use -o FILE, --hex or a pipe")
        return sys.stdout.buffer
    try:
        return stack.enter_context(open(path, "wb"))  # noqa: SIM115 - closed by the stack
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number in JSON")


def _encode_line(line: bytes, registry: Registry, raw: bool) -> bytes | None:
    """One input line to a raw frame; None for blank and comment lines. ``ValueError``."""
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text: encode reads JSON Lines "
                         "(binary frames are read by 'hydrolink decode')") from None
    if not text or text.startswith("#"):
        return None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError("must be a JSON object, one frame per line")
    if raw and "body" not in obj and "type" in obj:
        raise ValueError("this line is the SI form that 'hydrolink decode' prints (no \"body\");"
                         " encode it without --raw")
    try:
        frame = message_to_frame(obj) if raw else si_to_frame(obj)
    except (TypeError, AttributeError, OverflowError, KeyError) as e:  # odd shapes
        raise ValueError(f"bad message: {e!r}" if isinstance(e, KeyError) else
                         f"bad message: {e}") from None
    key = registry.keys.get(frame.station)
    if key is None:
        raise ValueError(f"station {frame.station} has no key in {registry.path}; "
                         "add a [[station]] table for it")
    try:
        raw_frame = encode_frame(frame.type, frame.station, frame.seq, frame.time, frame.body, key)
    except (TypeError, KeyError, AttributeError, OverflowError, cbor2.CBOREncodeError) as e:
        raise ValueError(f"cannot encode: {e}") from None
    # encode_frame does not check every field's type (a text alarm window would pass),
    # so decode what was built: nothing leaves here that a receiver would reject.
    try:
        decode_frame(raw_frame, {frame.station: key})
    except FrameError as e:
        raise ValueError(f"the frame would be rejected as {type(e).__name__}: {e}") from None
    return raw_frame
