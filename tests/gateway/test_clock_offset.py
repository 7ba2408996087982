"""The clock offset operators see counts only clock error, not retransmission delay: a
station with an exact clock shows 0 +- a few s through an outage, its resends (byte for
byte, with their original header times) and its backfill."""

from __future__ import annotations

import asyncio
from pathlib import Path

from host_tools.gateway.config import Config
from host_tools.gateway.service import Gateway
from host_tools.registry import load_registry
from protocol import codec as c

from .helpers import SimStation, station_key, tcp_conn, write_registry

T = 1_784_000_000  # 2026-07-14, a whole hour
SID = 21


class Clock:
    def __init__(self) -> None:
        self.t = float(T)

    def __call__(self) -> float:
        return self.t


def report(seq: int, built: int, backfill: bool = False) -> bytes:
    """A data frame built at true time ``built`` by a station whose clock is exact."""
    mark = built - built % 300
    series = (c.Series(2, 300, mark - 11 * 300 - c.EPOCH_UNIX, tuple(range(12)), (0,) * 12),)
    body = c.Report(series, 0, (), 8 if backfill else 0)
    return c.encode_frame(c.DATA, SID, seq, built - c.EPOCH_UNIX, body, station_key(SID))


def test_exact_clock_through_an_outage_resends_and_backfill(tmp_path: Path) -> None:
    reg = load_registry(write_registry(tmp_path / "stations.toml", [SID]))
    cfg = Config(registry=str(reg.path), spool=str(tmp_path / "spool.db"), mqtt=None,
                 listen="127.0.0.1:0", spool_reserve_mb=0)
    clock = Clock()
    seen: list[tuple[str, float | None]] = []

    async def run() -> None:
        gw = Gateway(cfg, reg, clock=clock)
        await gw.start()
        assert gw.tcp is not None
        conn, writer = await tcp_conn(SimStation(SID), gw.tcp.port)

        async def deliver(what: str, raw: bytes, at: float) -> None:
            clock.t = at
            await conn.send(raw, deadline=20)
            seen.append((what, gw.stats.stations[SID].clock_offset))

        try:
            seq = 0
            for h in range(6):  # hourly, each on its first try (0.4 s on the air)
                seq += 1
                await deliver("first try", report(seq, T + h * 3600), T + h * 3600 + 0.4)
            # 24 h outage: 24 reports built, none gets through; the station keeps them
            built = [(seq + 1 + i, T + (6 + i) * 3600) for i in range(24)]
            seq += 24
            back = T + 30 * 3600 + 1800  # link back: the newest first (a resend)
            await deliver("resend", report(*built[-1]), back + 0.3)
            for i, (s, b) in enumerate(built[:-1]):  # the older in-flight frames, again
                await deliver("resend", report(s, b), back + 5 + i)
            for i in range(3):  # readings given up earlier, sent again as backfill
                seq += 1
                await deliver("backfill", report(seq, int(back) + 60 + i, backfill=True),
                              back + 61 + i)
            for h in range(31, 34):  # and the link is fine again
                seq += 1
                await deliver("first try", report(seq, T + h * 3600), T + h * 3600 + 0.5)
            state = gw.state_of(SID)
            assert state["clock_offset_s"] is not None and abs(state["clock_offset_s"]) <= 3
        finally:
            writer.close()
            await conn.close()
            await gw.stop()

    asyncio.run(run())
    assert len(seen) == 6 + 24 + 3 + 3
    for what, off in seen:
        assert off is not None and abs(off) <= 3, (what, off, seen)
