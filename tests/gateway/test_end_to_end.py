"""The real gateway process between real stations' byte streams and a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from pathlib import Path

from .helpers import (
    GatewayProc,
    Mosquitto,
    MosquittoSub,
    PtyPort,
    SimStation,
    SocketSerialServer,
    Subscriber,
    check_delivery,
    hydrolink,
    obs_by_key,
    run,
    tcp_conn,
    write_registry,
)


def test_tcp_socket_and_pty_stations_at_once(tmp_path: Path, broker: Mosquitto, registry: Path,
                                            gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="a").start()
    msub = MosquittoSub(broker.port)
    ptys = [PtyPort(), PtyPort()]

    async def scenario() -> list[SimStation]:
        sock = await SocketSerialServer().start()
        gw = GatewayProc(tmp_path, registry, broker.url,
                         serial=[p.path for p in ptys] + [sock.url + "?baudrate=115200"])
        gateways.append(gw)
        await asyncio.to_thread(gw.start)
        stations = [SimStation(1001 + i) for i in range(13)]
        conns = []
        writers = []
        for st in stations[:10]:
            conn, w = await tcp_conn(st, gw.port)
            conns.append(conn)
            writers.append(w)
        conns.append(await ptys[0].conn(stations[10]))
        conns.append(await ptys[1].conn(stations[11]))
        sconn, sw = await sock.conn(stations[12])
        conns.append(sconn)

        async def station_run(conn: object, n: int) -> None:
            for i in range(n):
                assert hasattr(conn, "send")
                await conn.send(conn.station.report(alarm=(i == 3)))

        await asyncio.gather(*(station_run(cn, 20) for cn in conns))
        for cn in conns:
            await cn.close()
        for w in writers:
            w.close()
        sw.close()
        await sock.close()
        for p in ptys:
            p.close_transports()
        return stations

    stations = run(scenario())
    total = sum(len(st.acked) for st in stations)
    assert total == 13 * 20
    sub.wait(lambda m: len(obs_by_key(m)) >= total, 30, "every frame via aiomqtt")
    msub.wait(lambda m: len(obs_by_key(m)) >= total, 30, "every frame via mosquitto_sub")
    readings = check_delivery(stations, sub.messages)
    assert readings == total * 24
    assert check_delivery(stations, msub.messages) == readings
    topics = {t.rsplit("/", 1)[-1] for t, _, _ in sub.messages}
    assert {"obs", "alarm"} <= topics
    # links: every input kind appears in the payloads
    links = {p["link"].split(":", 1)[0] for _, p, _ in sub.messages if "link" in p}
    assert links == {"tcp", "serial"}
    gw = gateways[0]
    assert gw.terminate() == 0
    gw.wait_log("gateway stopped")
    sub.stop()
    msub.stop()
    for p in ptys:
        p.close()


def test_status_and_metrics(tmp_path: Path, broker: Mosquitto, registry: Path,
                            gateways: list[GatewayProc]) -> None:
    from .helpers import free_port

    mport = free_port()
    sub = Subscriber(broker.port, name="state").start()
    gw = GatewayProc(tmp_path, registry, broker.url,
                     extra=["--metrics", f"127.0.0.1:{mport}", "--log-format", "json"])
    gateways.append(gw)
    gw.start()

    async def scenario() -> None:
        st = SimStation(1001)
        conn, w = await tcp_conn(st, gw.port)
        for _ in range(3):
            await conn.send(st.report())
        w.write(b"\x01\x02garbage\x00")
        await conn.send(st.report())
        await conn.close()
        w.close()

    run(scenario())
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
    assert 'hydrolink_frames_accepted_total{type="data"} 4.0' in text
    assert 'hydrolink_station_frames_total{station="1001"} 4.0' in text
    assert "hydrolink_ack_latency_seconds_bucket" in text
    assert 'hydrolink_frames_rejected_total{reason="truncated"} 1.0' in text \
        or 'hydrolink_frames_rejected_total{reason="malformed"} 1.0' in text
    # the retained per-station state (published every few seconds while the station sends)
    sub.wait(lambda m: any(t.endswith("/1001/state") for t, _, _ in m), 20, "the state")
    state = [p for t, p, _ in sub.messages if t.endswith("/1001/state")][-1]
    assert state["frames"] == 4 and state["last_seq"] == 4 and state["name"] == "station 1001"
    assert state["bad_crc"] == 0 and isinstance(state["clock_offset_s"], float)
    assert gw.terminate() == 0
    out = hydrolink("gateway", "--status", "--spool", str(gw.spool))
    assert out.returncode == 0, out.stderr
    assert "1001" in out.stdout and "4 accepted" in out.stdout
    # --log-format json: one JSON object per line, with the event's fields
    events = [json.loads(line) for line in gw.log if line.startswith("{")]
    assert len(events) == len(gw.log)
    rejected = [e for e in events if e["event"] == "frame rejected"]
    assert rejected and rejected[0]["link"].startswith("tcp:") and "reason" in rejected[0]
    sub.stop()


def test_sighup_reloads_registry(tmp_path: Path, broker: Mosquitto,
                                 gateways: list[GatewayProc]) -> None:
    reg = write_registry(tmp_path / "stations.toml", [1001])
    sub = Subscriber(broker.port, name="hup").start()
    gw = GatewayProc(tmp_path, reg, broker.url)
    gateways.append(gw)
    gw.start()
    newcomer = SimStation(2001)

    async def send_once(timeout: float) -> bool:
        conn, w = await tcp_conn(newcomer, gw.port)
        try:
            await conn.send(newcomer.sent_raw if hasattr(newcomer, "sent_raw") else raw,
                            retry=timeout, deadline=0)
            return True
        except AssertionError:
            return False
        finally:
            await conn.close()
            w.close()

    raw = newcomer.report()
    assert not run(send_once(0.5))  # unknown: never ACKed
    gw.wait_log("unknown_station")
    write_registry(reg, [1001, 2001])
    n = len(gw.log)
    gw.signal(signal.SIGHUP)
    gw.wait_log("registry reloaded", after=n)
    assert run(send_once(5))
    sub.wait(lambda m: (2001, 1) in obs_by_key(m), 20, "the new station's frame")
    assert gw.terminate() == 0
    sub.stop()


def test_bad_flags_and_files_get_one_line(tmp_path: Path) -> None:
    cases = [
        (["gateway", "--listen", "nonsense", "--registry", "x"], "--listen"),
        (["gateway", "--registry", str(tmp_path / "none.toml"), "--listen", "127.0.0.1:0",
          "--no-mqtt", "--spool", str(tmp_path / "s.db")], "no such file"),
        (["gateway", "--bogus"], "unrecognized"),
        (["gateway", "--config", str(tmp_path / "missing.toml")], "no such config file"),
        (["gateway", "--listen", "127.0.0.1:0", "--registry", "x", "--mqtt", "http://x"],
         "mqtt://"),
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway]\nlisten = 5\n")
    cases.append((["gateway", "--config", str(bad)], "listen must be a string"))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[gateway]\nlisen = '1:2'\n")
    cases.append((["gateway", "--config", str(unknown)], "unknown key 'lisen'"))
    for argv, needle in cases:
        out = hydrolink(*argv)
        assert out.returncode in (1, 2), (argv, out)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hydrolink: "), (argv, out.stderr)
        assert needle in lines[0], (argv, lines[0])


def test_toml_config_file(tmp_path: Path, broker: Mosquitto, registry: Path,
                          gateways: list[GatewayProc]) -> None:
    conf = tmp_path / "gateway.toml"
    conf.write_text(
        "[gateway]\n"
        f'registry = "{registry.name}"\n'
        'spool = "from-toml.db"\n'
        f'mqtt = "{broker.url}"\n'
        'listen = "127.0.0.1:0"\n'
        'topic_prefix = "hydrolink/v1"\n'
        "raw_hex = true\n"
    )
    sub = Subscriber(broker.port, name="toml").start()
    gw = GatewayProc(tmp_path, registry, None, listen=False, spool=tmp_path / "from-toml.db")
    gw.args = ["--config", str(conf), "--mqtt-client-id", "gw-toml"]
    gateways.append(gw)
    gw.start()

    async def scenario() -> SimStation:
        st = SimStation(1002)
        conn, w = await tcp_conn(st, gw.port)
        await conn.send(st.report())
        await conn.close()
        w.close()
        return st

    st = run(scenario())
    sub.wait(lambda m: (1002, 1) in obs_by_key(m), 20, "the frame")
    payload = obs_by_key(sub.messages)[(1002, 1)]
    assert bytes.fromhex(payload["frame"]) == st.sent[1].raw
    assert (tmp_path / "from-toml.db").exists()
    assert gw.terminate() == 0
    sub.stop()


def test_serial_ports_that_vanish_are_reopened(tmp_path: Path, broker: Mosquitto,
                                               registry: Path,
                                               gateways: list[GatewayProc]) -> None:
    """A network serial server drops the line; a USB port appears only later."""
    sub = Subscriber(broker.port, name="reopen").start()
    late = tmp_path / "ttyUSB-late"  # not there when the gateway starts
    pty = PtyPort()

    async def scenario() -> list[SimStation]:
        sock = await SocketSerialServer().start()
        gw = GatewayProc(tmp_path, registry, broker.url, serial=[sock.url, str(late)])
        gateways.append(gw)
        await asyncio.to_thread(gw.start)
        await asyncio.to_thread(gw.wait_log, "serial port unavailable")
        a, b = SimStation(1001), SimStation(1002)
        conn, w = await sock.conn(a)
        for _ in range(5):
            await conn.send(a.report())
        await conn.close()
        w.close()  # the server drops the connection: the gateway must come back
        await asyncio.to_thread(gw.wait_log, "serial port lost")
        conn, w = await sock.conn(a)
        for _ in range(5):
            await conn.send(a.report())
        await conn.close()
        w.close()
        late.symlink_to(pty.path)  # plugged in
        pconn = await pty.conn(b)
        for _ in range(5):
            await pconn.send(b.report(), retry=0.5)
        await pconn.close()
        pty.close_transports()
        await sock.close()
        return [a, b]

    stations = run(scenario())
    sub.wait(lambda m: len(obs_by_key(m)) >= 15, 20, "every frame")
    assert check_delivery(stations, sub.messages) == 15 * 24
    assert gateways[0].terminate() == 0
    sub.stop()
    pty.close()


def test_idle_connections_are_closed(tmp_path: Path, registry: Path,
                                     gateways: list[GatewayProc]) -> None:
    gw = GatewayProc(tmp_path, registry, None, extra=["--idle-timeout", "0.5"])
    gateways.append(gw)
    gw.start()

    async def scenario() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        t0 = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the gateway
        writer.close()
        return asyncio.get_running_loop().time() - t0

    took = run(scenario())
    assert 0.4 < took < 5
    gw.wait_log("reason=idle")
    assert gw.terminate() == 0


def test_two_thousand_concurrent_tcp_stations(tmp_path: Path, broker: Mosquitto,
                                              gateways: list[GatewayProc]) -> None:
    """Cellular stations: thousands of connections open at once, each a byte stream."""
    ids = list(range(20_001, 22_001))
    reg = write_registry(tmp_path / "many.toml", ids)
    sub = Subscriber(broker.port, name="many").start()
    gw = GatewayProc(tmp_path, reg, broker.url)
    gateways.append(gw)
    gw.start()
    stations = [SimStation(sid) for sid in ids]

    async def scenario() -> None:
        opened = [await tcp_conn(st, gw.port) for st in stations]  # all open before any sends

        async def one(conn: object) -> None:
            assert hasattr(conn, "send")
            for _ in range(2):
                await conn.send(conn.station.report(), retry=5.0)

        await asyncio.gather(*(one(conn) for conn, _ in opened))
        for conn, w in opened:
            await conn.close()
            w.close()

    run(scenario(), timeout=150)
    sub.wait(lambda m: len(obs_by_key(m)) >= 4000, 60, "every frame")
    assert check_delivery(stations, sub.messages) == 4000 * 24
    assert gw.terminate() == 0
    sub.stop()


def test_rfc2217_network_serial_server(tmp_path: Path, broker: Mosquitto, registry: Path,
                                       gateways: list[GatewayProc]) -> None:
    from .helpers import Rfc2217Server

    pty = PtyPort()
    server = Rfc2217Server(pty.path)
    sub = Subscriber(broker.port, name="rfc2217").start()
    gw = GatewayProc(tmp_path, registry, broker.url, serial=[server.url + "?baudrate=19200"])
    gateways.append(gw)
    gw.start()
    gw.wait_log("serial port open")
    st = SimStation(1007)

    async def scenario() -> None:
        conn = await pty.conn(st)
        for _ in range(5):
            await conn.send(st.report(), retry=1.0)
        await conn.close()
        pty.close_transports()

    run(scenario())
    sub.wait(lambda m: len(obs_by_key(m)) >= 5, 20, "the frames through RFC 2217")
    assert check_delivery([st], sub.messages) == 5 * 24
    assert 19200 in server.baudrates  # the port settings went over the wire
    assert gw.terminate() == 0
    sub.stop()
    server.close()
    pty.close()


def test_a_peer_sending_only_garbage_is_disconnected(tmp_path: Path, registry: Path,
                                                     gateways: list[GatewayProc]) -> None:
    gw = GatewayProc(tmp_path, registry, None)
    gateways.append(gw)
    gw.start()
    rng = random.Random(7)

    async def scenario() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        honest = SimStation(1001)
        conn, w = await tcp_conn(honest, gw.port)
        for _ in range(250):  # 250 "frames" of noise, each ending in a delimiter
            writer.write(bytes(rng.randrange(1, 256) for _ in range(40)) + b"\x00")
        try:  # closed by the gateway: EOF, or a reset (or broken pipe) if our noise was still unread
            rest = await asyncio.wait_for(reader.read(), 10)
        except (ConnectionResetError, BrokenPipeError):
            rest = b""
        await conn.send(honest.report())  # the other connection is fine
        await conn.close()
        w.close()
        writer.close()
        return rest

    assert run(scenario()) == b""
    gw.wait_log("bad frames in a row")
    assert gw.terminate() == 0
