"""The sans-IO pipeline, the spool and the configuration, without processes or sockets."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from host_tools.gateway.commands import CommandBook
from host_tools.gateway.config import (
    Config,
    ConfigError,
    load_toml,
    parse_gateway_args,
    parse_mqtt_url,
    parse_serial,
)
from host_tools.gateway.metrics import Stats, StatsCollector
from host_tools.gateway.pipeline import Duplicate, New, Pipeline, Rejected
from host_tools.gateway.spool import CommandRow, Record, Spool, SpoolFull
from host_tools.gateway.writer import SpoolWriter
from host_tools.registry import load_registry
from protocol import codec as c

from .helpers import SimStation, station_key, write_registry

NOW = 1_790_000_000.0


def make_pipeline(tmp_path: Path) -> tuple[Pipeline, Stats, CommandBook]:
    reg = load_registry(write_registry(tmp_path / "r.toml", [1001, 1002]))
    stats, book = Stats(), CommandBook()
    return Pipeline(reg, stats, book, clock=lambda: NOW), stats, book


def test_pipeline_verdicts(tmp_path: Path) -> None:
    p, stats, _ = make_pipeline(tmp_path)
    st = SimStation(1001)
    raw = st.report()
    v = p.check(raw, "tcp:x")
    assert isinstance(v, New) and v.record.seq == 1 and v.record.raw == raw
    assert v.record.received == NOW
    # not yet committed: a second copy is still "new" (the service holds it as in flight)
    assert isinstance(p.check(raw, "tcp:x"), New)
    p.committed(v.frame, "tcp:x", NOW)
    assert isinstance(p.check(raw, "tcp:x"), Duplicate)
    assert stats.station(1001).frames == 1
    # line error, unknown station, forged tag, downlink type, garbage
    flipped = bytearray(raw)
    flipped[20] ^= 4
    assert p.check(bytes(flipped), "tcp:x") == Rejected("bad_crc", p.check(bytes(flipped),
                                                        "tcp:x").message, 1001)
    stranger = SimStation(5)
    assert isinstance(p.check(stranger.report(), "tcp:x"), Rejected)
    forger = SimStation(1002, key=station_key(3))
    assert p.check(forger.report(), "tcp:x").reason == "bad_tag"  # type: ignore[union-attr]
    ack = c.encode_frame(c.ACK, 1001, 1, 0, c.Ack((1,)), station_key(1001))
    assert p.check(ack, "tcp:x").reason == "downlink_type"  # type: ignore[union-attr]
    assert p.check(b"\x01" * 10, "tcp:x").reason == "truncated"  # type: ignore[union-attr]
    assert stats.rejected == {"bad_crc": 2, "unknown_station": 1, "bad_tag": 1,
                              "downlink_type": 1, "truncated": 1}
    assert stats.station(1001).bad_crc == 2
    # replay: far ahead, then an old one
    st.seq = 5000
    far = p.check(st.report(), "tcp:x")
    assert isinstance(far, New)
    p.committed(far.frame, "tcp:x", NOW)
    assert p.check(raw, "tcp:x").reason == "replay"  # type: ignore[union-attr]


def test_ack_carries_time_seq_and_commands(tmp_path: Path) -> None:
    p, stats, book = make_pipeline(tmp_path)
    book.load([CommandRow(1001, 7, 4, None, NOW, None, 0, None, None, None),
               CommandRow(1001, 6, 1, {"a": 1}, NOW, None, 0, 0, None, NOW),
               CommandRow(1002, 1, 5, None, NOW, None, 0, None, None, None)])
    wire, ids = p.ack(1001, 42)
    (raw,) = list(c.Deframer().feed(wire))
    assert isinstance(raw, bytes)
    f = c.decode_frame(raw, {1001: station_key(1001)})
    assert f.type == c.ACK and f.seq == 42 and f.time == int(NOW) - c.EPOCH_UNIX
    assert f.body == c.Ack((42,), (c.Command(7, 4),))
    assert ids == (7,)
    book.answered(1001, [7])
    assert p.ack(1001, 43)[1] == ()
    # many big commands: the ACK stays within MAX_FRAME, the rest wait for the next one
    book.load([CommandRow(1001, i, 1, {"k": "x" * 200}, NOW, None, 0, None, None, None)
               for i in range(1, 9)])
    wire, ids = p.ack(1001, 44)
    assert 0 < len(ids) < 8 and len(wire) <= c.MAX_WIRE + 1
    assert stats.acks == 3


def record(seq: int, station: int = 1001) -> Record:
    return Record(station, seq, c.DATA, 0, NOW, "tcp:x", bytes(60))


def test_spool_group_commit_window_and_marks(tmp_path: Path) -> None:
    async def go() -> None:
        spool = Spool(tmp_path / "s.db")
        w = SpoolWriter(spool)
        runner = asyncio.create_task(w.run())
        futs = [w.submit(record(i)) for i in range(1, 501)]
        await asyncio.gather(*futs)
        assert w.commits < 20  # grouped, not one fsync per frame
        rows = await w.call(spool.pending, 0, 1000)
        assert [r.id for r in rows] == sorted(r.id for r in rows) and len(rows) == 500
        await w.call(spool.mark_forwarded, [r.id for r in rows[:100]])
        assert await w.call(spool.pending_count) == 400
        highest, seen = await w.call(spool.window)
        assert highest == {1001: 500} and len(seen) == 500
        await w.close()
        runner.cancel()

    asyncio.run(go())
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # a reopened spool keeps ids increasing even after the rows are pruned
    spool = Spool(tmp_path / "s.db")
    spool.mark_forwarded([r.id for r in spool.pending(0, 1000)])
    assert spool.prune(None) == 500
    spool.commit([record(501)])
    assert spool.pending(0, 10)[0].id == 501
    spool.close()


def test_pruned_frames_stay_in_the_replay_window_across_a_restart(tmp_path: Path) -> None:
    # Frames older than --retain-days (or deleted for room on a full disk) are gone from the
    # spool, but a recording of them must not become new after a restart (SPEC §6).
    st = SimStation(1001)
    frames = [st.report() for _ in range(30)]
    sent_later = frames.pop(4)  # seq 5: not received yet (a gap the station will fill)
    spool = Spool(tmp_path / "s.db")
    p, _, _ = make_pipeline(tmp_path)
    for raw in frames:
        v = p.check(raw, "tcp:x")
        assert isinstance(v, New)
        spool.commit([v.record])
    spool.mark_forwarded([r.id for r in spool.pending(0, 100)[:20]])
    assert spool.prune(None) == 20  # seqs 1-4 and 6-21 gone from disk
    spool.delete([r.id for r in spool.pending(0, 100)[:3]])  # 22-24, as on a full disk
    spool.close()

    restarted, _, _ = make_pipeline(tmp_path)
    spool = Spool(tmp_path / "s.db")
    highest, seen = spool.window()
    for sid, h in highest.items():
        restarted.window.accept(sid, h)
    for sid, seq in seen:
        restarted.window.accept(sid, seq)
    for sid, (h, bits) in spool.pruned_window().items():
        restarted.window.merge(sid, h, bits)
    assert all(isinstance(restarted.check(raw, "tcp:x"), Duplicate) for raw in frames)
    assert isinstance(restarted.check(sent_later, "tcp:x"), New)  # the gap is still open
    # pruning again merges into what is remembered; far newer frames move the window on
    spool.mark_forwarded([r.id for r in spool.pending(0, 100)])
    spool.prune(None)
    assert spool.window()[1] == []
    h, bits = spool.pruned_window()[1001]
    assert h == 30 and [q for q in range(1, 31) if bits >> (30 - q) & 1] == \
        [q for q in range(1, 31) if q != 5]
    spool.close()
    # the merge: an old bitmap against a window that moved on
    w = c.ReplayWindow()
    w.accept(1001, 20 + c.REPLAY_WINDOW)  # the window is now 21 .. 4116
    w.merge(1001, h, bits)
    assert [w.check(1001, q) for q in (21, 30, 31)] == [False, False, True]
    with pytest.raises(c.Replay):
        w.check(1001, 20)


def test_spool_full_is_reported_and_makes_room(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_bytes=72 * 1024)  # 18 pages, 12 of them the schema
    n = 0
    with pytest.raises(SpoolFull):
        while True:
            n += 1
            spool.commit([Record(1001, n, c.DATA, 0, NOW, "tcp:x", bytes(500))])
    assert n > 10
    ids = [r.id for r in spool.pending(0, 10_000)]
    spool.mark_forwarded(ids)  # fits, or deletes the rows when even that does not
    spool.prune(None)
    spool.commit([Record(1001, n, c.DATA, 0, NOW, "tcp:x", bytes(500))])
    spool.close()


def test_commands_queue_ids_per_station(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    assert [spool.queue_command(1001, 4, None) for _ in range(3)] == [1, 2, 3]
    assert spool.queue_command(1002, 1, {"a": 1}) == 1
    rows = spool.commands(1002)
    assert rows[0].args == {"a": 1} and rows[0].result is None
    spool.close()


def test_config_parsing(tmp_path: Path) -> None:
    t = parse_mqtt_url("mqtts://user:p%40ss@broker.example:8884")
    assert (t.host, t.port, t.tls, t.username, t.password) == (
        "broker.example", 8884, True, "user", "p@ss")
    assert parse_mqtt_url("mqtt://h").port == 1883
    s = parse_serial("/dev/ttyUSB0?baudrate=115200&parity=E", Config())
    assert (s.url, s.baudrate, s.parity) == ("/dev/ttyUSB0", 115200, "E")
    s = parse_serial("socket://10.0.0.5:4001?logging=debug&baud=4800", Config(baudrate=9600))
    assert s.url == "socket://10.0.0.5:4001?logging=debug" and s.baudrate == 4800
    with pytest.raises(ConfigError, match="parity"):
        parse_serial("/dev/x?parity=Q", Config())
    reg = write_registry(tmp_path / "r.toml", [1])
    f = tmp_path / "g.toml"
    f.write_text(f'[gateway]\nregistry = "{reg.name}"\nserial = "loop://"\nidle_timeout = 30\n')
    cfg, status = parse_gateway_args(["--config", str(f), "--idle-timeout", "60"])
    assert cfg.registry == str(reg) and cfg.serial == ["loop://"] and cfg.idle_timeout == 60
    assert not status
    f.write_text("[gateway]\nidle_timeout = 'soon'\n")
    with pytest.raises(ConfigError, match="idle_timeout must be a number"):
        load_toml(str(f))
    with pytest.raises(ConfigError, match="no inputs"):
        parse_gateway_args(["--registry", str(reg)])


def test_metrics_collector_names_every_rejection() -> None:
    stats = Stats()
    stats.rejected["bad_crc"] += 2
    stats.station(1001).frames = 5
    stats.observe_latency(0.003)
    names = {m.name: m for m in StatsCollector(stats).collect()}
    rejected = {s.labels["reason"]: s.value for s in names["hydrolink_frames_rejected"].samples
                if s.name.endswith("_total")}
    assert rejected["bad_crc"] == 2 and rejected["replay"] == 0 and len(rejected) == 9
    assert "hydrolink_ack_latency_seconds" in names
