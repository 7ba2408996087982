"""The gateway takes every wall time from its injected clock (the simulator's is virtual)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from host_tools.gateway.commands import REBOOT
from host_tools.gateway.config import Config
from host_tools.gateway.service import Gateway
from host_tools.gateway.spool import Spool
from host_tools.registry import load_registry
from protocol import codec as c

from .helpers import SimStation, tcp_conn, write_registry

FAKE = 2_000_000_000.0  # 2033-05-18: nowhere near the system clock


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_ack_time_and_received_follow_the_injected_clock(tmp_path: Path) -> None:
    reg = load_registry(write_registry(tmp_path / "stations.toml", [7]))
    cfg = Config(registry=str(reg.path), spool=str(tmp_path / "spool.db"), mqtt=None,
                 listen="127.0.0.1:0", spool_reserve_mb=0)
    clock = FakeClock(FAKE)
    station = SimStation(7)
    queued = Spool(cfg.spool)
    queued.queue_command(7, REBOOT, None, now=FAKE - 60)  # in the first ACK
    queued.close()

    async def run() -> list[int]:
        gw = Gateway(cfg, reg, clock=clock)
        await gw.start()
        assert gw.tcp is not None
        try:
            conn, writer = await tcp_conn(station, gw.tcp.port)
            times = []
            for step in (0.0, 3600.0, 86400.0):
                clock.t = FAKE + step
                ack = await conn.send(station.report(), deadline=20)
                times.append(ack.time)
            writer.close()
            await conn.close()
        finally:
            await gw.stop()
        return times

    times = asyncio.run(run())
    assert times == [int(FAKE + s) - c.EPOCH_UNIX for s in (0.0, 3600.0, 86400.0)]
    db = sqlite3.connect(tmp_path / "spool.db")
    received = [r for (r,) in db.execute("SELECT received FROM frames ORDER BY seq")]
    assert received == [FAKE, FAKE + 3600.0, FAKE + 86400.0]
    (stats,) = db.execute("SELECT value FROM meta WHERE key = 'stats'").fetchone()
    assert json.loads(stats)["saved"] == FAKE + 86400.0
    assert json.loads(stats)["started"] == FAKE
    (q, sent), = db.execute("SELECT queued, sent FROM commands WHERE station = 7").fetchall()
    assert q == FAKE - 60 and sent == FAKE + 86400.0  # sent in every ACK until answered
