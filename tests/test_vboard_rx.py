"""sim/vboard.py: link bytes reach the board in the order the peer sent them.

A lockstep reply carries at most ``MAX_RX`` link bytes; the rest of a chunk waits
for the next reply. It used to be pushed back under (now, 0), which sorts after
chunks that arrived earlier than now and were still pending: bytes reordered.
"""

from __future__ import annotations

import heapq
import struct

from sim.vboard import MAX_RX, T_FMT, VBoard


class _Still:
    """Weather with no rain and a constant level: only the link bytes matter here."""

    edges: list[int] = []

    def pin_closed(self, ms: int) -> bool:
        return False

    def level_uv(self, ms: int, *args: int) -> int:
        return 1_000_000

    def battery(self, ms: int) -> int:
        return 12_600

    def temperature(self, ms: int) -> int:
        return 200


def _board() -> VBoard:
    vb = object.__new__(VBoard)  # no firmware build, no image: only _reply is used
    vb.weather = _Still()  # type: ignore[assignment]
    vb.config = {}
    vb.vms = 0
    vb._rx = []
    vb._rx_n = 0
    vb._hangs = []
    return vb


def _push(vb: VBoard, ms: int, data: bytes) -> None:
    vb._rx_n += 1
    heapq.heappush(vb._rx, (ms, vb._rx_n, data))


def _rx_of(reply: bytes) -> bytes:
    nrx = T_FMT.unpack_from(reply)[-1]
    return reply[T_FMT.size:T_FMT.size + nrx]


def test_split_delivery_keeps_byte_order() -> None:
    vb = _board()
    a = bytes(range(200))  # two chunks that together pass MAX_RX ...
    b = bytes(100 + i % 50 for i in range(200))
    c = b"\xaa" * 30  # ... and a third, arrived before the reply that splits b
    _push(vb, 10, a)
    _push(vb, 20, b)
    _push(vb, 30, c)
    got = b""
    ms = 40
    while vb._rx:
        got += _rx_of(vb._reply(ms))
        ms += 1
    assert got == a + b + c


def test_split_chunk_goes_before_a_later_arrival() -> None:
    vb = _board()
    big = bytes(i & 0xFF for i in range(MAX_RX + 77))
    _push(vb, 5, big)
    first = _rx_of(vb._reply(5))
    assert first == big[:MAX_RX]
    _push(vb, 6, b"later")
    assert _rx_of(vb._reply(6)) == big[MAX_RX:] + b"later"
    assert struct.calcsize("<QiHhBBH") == T_FMT.size
