"""Byte streams to raw frames and back: COBS and the 0x00 delimiter (SPEC §2)."""

from __future__ import annotations

from cobs import cobs

from protocol.errors import FrameError, Malformed, Oversize
from protocol.model import MAX_WIRE


def wrap(raw: bytes) -> bytes:
    """COBS-encode a raw frame and append the 0x00 delimiter: the bytes on the wire."""
    return bytes(cobs.encode(raw)) + b"\x00"


class Deframer:
    """Splits a byte stream at 0x00 delimiters into raw frames (SPEC §2).

    ``feed`` returns the raw frames (bytes) completed by its data and, in their place,
    ``FrameError`` instances for COBS errors and over-long garbage. The bytes after the
    last delimiter wait for the next feed; the buffer never exceeds ``MAX_WIRE``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False  # dropping an over-long chunk up to the next delimiter

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        *chunks, tail = data.split(b"\x00")
        if chunks:  # the first delimiter ends what was buffered
            if self._skipping:
                chunks[0] = b""
            elif self._buf:
                chunks[0] = bytes(self._buf) + chunks[0]
            self._buf.clear()
            self._skipping = False
        out: list[bytes | FrameError] = []
        for chunk in chunks:
            if not chunk:
                continue  # delimiters back to back: nothing between them
            if len(chunk) > MAX_WIRE:
                out.append(Oversize(f"no delimiter within {MAX_WIRE} bytes"))
                continue
            try:
                out.append(cobs.decode(chunk))
            except cobs.DecodeError as e:
                out.append(Malformed(f"COBS: {e}"))
        if not self._skipping:
            if len(self._buf) + len(tail) > MAX_WIRE:
                self._buf.clear()
                self._skipping = True
                out.append(Oversize(f"no delimiter within {MAX_WIRE} bytes"))
            else:
                self._buf += tail
        return out

    @property
    def buffered(self) -> int:
        """Bytes waiting for a delimiter."""
        return len(self._buf)

