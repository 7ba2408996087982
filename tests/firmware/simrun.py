"""Shared set-up for the station simulations: a station, its weather and its peer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sim.link import Peer, Phase
from sim.sensors import Weather
from sim.vboard import VBoard

KEY = bytes(range(1, 33))
STATION = 4242
T0 = 52_000_000  # 2025-08-25, hydrolink s, a multiple of 86400 minus nothing in particular
DAY = 86_400_000
HOUR = 3_600_000


def station(workdir: Path, *, days: float = 3, seed: int = 7, phases: list[Phase] | None = None,
            rtc_offset_s: int = 0, config: dict[str, Any] | None = None,
            weather: Weather | None = None, heapsize: str = "128K") -> tuple[VBoard, Peer]:
    """A virtual station with seeded weather and a scripted peer."""
    cfg: dict[str, Any] = {"station": STATION, "key": KEY.hex(), "holdoff_s": 30}
    cfg.update(config or {})
    w = weather or Weather(seed=seed, days=days + 1)
    peer = Peer({STATION: KEY}, t0=T0, phases=phases or [], seed=seed)
    b = VBoard(workdir, cfg, w, peer, t0=T0 - T0 % 86400, rtc_offset_s=rtc_offset_s,
               heapsize=heapsize, seed=seed)
    peer.t0 = b.t0
    return b, peer


QSTR = re.compile(r"qstr pool: n_pool=(\d+), n_qstr=(\d+)")
HEAP = re.compile(r"heap: alloc=(\d+) peak=(\d+) free=(\d+) day=(\d+)")
BOOT = re.compile(r"heap boot: alloc=(\d+) free=(\d+)")


def heap_days(b: VBoard) -> list[tuple[int, int, int]]:
    """(day, alloc after gc.collect, peak) from the firmware's daily heap lines."""
    out = []
    for ln in b.log:
        m = HEAP.match(ln)
        if m:
            out.append((int(m[4]), int(m[1]), int(m[2])))
    return out


def boot_heap(b: VBoard) -> int:
    for ln in b.log:
        m = BOOT.match(ln)
        if m:
            return int(m[1])
    raise AssertionError("no boot heap line")


def qstr_pools(b: VBoard) -> list[tuple[int, int]]:
    """(pools, interned names) from each of the firmware's qstr_info lines, in order.

    The pools double in size: one more pool is 7 KB of heap at once on the 64-bit VM,
    so the count of pools must not move after boot (commands and status included).
    """
    return [(int(m[1]), int(m[2])) for ln in b.log if (m := QSTR.search(ln))]
