"""The readings still unacknowledged in a station's flash queue (``firmware/store.py``), read on the host.

Records >= ``top`` were never put in a frame; below it, the ``un`` ranges are unsent and
each in-flight frame ``[seq, a, b, ...]`` holds records a..b-1. Everything else below
``top`` has been acknowledged. A record is 16 bytes ``<t u32, value i32, interval u32,
element u8, quality u8, crc16>`` in segment file ``q/g<k>`` (256 records each).
"""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

PER = 256
REC = 16


def _records(fs: Any, k: int) -> bytes:
    try:
        with fs.open(f"q/g{k}", "rb") as f:
            return bytes(f.read())
    except Exception:  # noqa: BLE001 - littlefs raises its own errors for a missing file
        return b""


def unacked(fs: Any) -> set[tuple[int, int]]:
    """(element, hydrolink time) of every unacknowledged reading in the queue."""
    try:
        with fs.open("q/state", "r") as f:
            st = json.loads(f.read())
    except Exception:  # noqa: BLE001
        return set()
    top = int(st.get("top", 0))
    ranges = [(int(a), int(b)) for a, b in st.get("un", [])]
    ranges += [(int(e[1]), int(e[2])) for e in st.get("fl", [])]
    segs = sorted(int(n[1:]) for n in fs.listdir("q") if n.startswith("g") and n[1:].isdigit())
    out: set[tuple[int, int]] = set()
    for k in segs:
        data = _records(fs, k)
        for i in range(len(data) // REC):
            r = k * PER + i
            if r < top and not any(a <= r < b for a, b in ranges):
                continue
            b = data[i * REC:(i + 1) * REC]
            c = binascii.crc32(b[:14]) & 0xFFFF
            if b[14] != c & 0xFF or b[15] != c >> 8:
                continue
            t, _, _, el, _ = struct.unpack_from("<IiIBB", b)
            out.add((el, t))
    return out
