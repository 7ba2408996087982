"""build -> provision -> flash a virtual board (its REPL pty, or an image) -> a real gateway takes its reports.

The board is the real firmware on the MicroPython VM (sim/repl.py); flashing goes through
the real mpremote over the board's pty; the gateway is the real ``hydrolink gateway``
holding the registry that ``hydrolink provision`` wrote.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gateway.helpers import GatewayProc, Mosquitto, Subscriber

from protocol import codec
from sim.vboard import read_image

from .flashkit import blank_image, board, hydrolink, key_of, ok, wait_for

STATIONS = (91001, 91002, 91003, 91004, 91005)  # ids no other test publishes on the shared broker


@dataclass
class Workspace:
    dir: Path
    gateway: GatewayProc
    broker: Mosquitto | None  # None: no Mosquitto on this machine (the gateway runs --no-mqtt)

    def flash(self, *args: str) -> subprocess.CompletedProcess[str]:
        return hydrolink(self.dir, "flash", "--board", "sim", "--build", str(self.dir / "build" / "sim"),
                         "--boot-timeout", "120", *args)  # generous: a loaded machine


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    d = tmp_path_factory.mktemp("field")
    ok(hydrolink(d, "build", "--board", "sim", "--out", str(d / "build")))
    for sid in STATIONS:
        ok(hydrolink(d, "provision", str(sid), "--name", f"test {sid}", "--set", "holdoff_s=5"))
    try:
        broker: Mosquitto | None = request.getfixturevalue("mosquitto")  # the real broker
    except pytest.skip.Exception:
        broker = None  # the flashing still runs against the real gateway
    gw = GatewayProc(d, d / "registry.toml", broker.url if broker else None).start()
    try:
        yield Workspace(d, gw, broker)
    finally:
        gw.close()


def _acked(link: object, sid: int, key: bytes) -> codec.Frame:
    received = link.received
    wait_for(lambda: bool(received), 120, f"the gateway's ACK to station {sid}")
    ack = codec.decode_frame(received[0], {sid: key})  # signed with the provisioned key
    assert ack.type == codec.ACK and ack.station == sid
    first = codec.decode_frame(link.sent[0], {sid: key})
    assert first.seq in ack.body.acks  # type: ignore[union-attr]
    return ack


def test_flash_port_then_the_gateway_accepts_the_first_report(ws: Workspace, tmp_path: Path) -> None:
    sid = 91001
    sub = Subscriber(ws.broker.port, f"hydrolink/v1/{sid}/#", name="field-flash").start() if ws.broker else None
    img = blank_image(tmp_path / "flash.img")
    fs = read_image(img, 256)  # a board that ran an older firmware: a module this build lacks, a data file
    with fs.open("readings.csv", "wb") as f:
        f.write(b"time,level\n" * 64)
    with fs.open("old_driver.mpy", "wb") as f:
        f.write(b"M\x06old")
    img.write_bytes(bytes(fs.context.buffer))
    b, link = board(tmp_path / "board", img, ws.gateway.port)
    b.start(boot="repl")  # nothing to run (no main.py): its REPL
    try:
        r = ok(ws.flash("--port", b.port, "--station", str(sid), "--dry-run"))
        lines = r.stdout.splitlines()
        assert "remove  main.py" in lines[1] and lines[-2].startswith("write   main.py")
        assert "config.json" in r.stdout and "boards/sim.mpy" in r.stdout
        assert sorted(b.flash().listdir("/")) == ["old_driver.mpy", "readings.csv"]  # a dry run writes nothing

        r = ok(ws.flash("--port", b.port, "--station", str(sid)))
        assert "files match the build (sha256); board reports firmware" in r.stdout
        assert f"booted the firmware as station {sid}" in r.stdout
        assert r.stderr.splitlines()[-1].strip().startswith("wrote main.py")  # written last
        assert b.boots[:2] == ["repl", "firmware"]
        assert "removed old_driver.mpy (not in this build)" in r.stderr
        fs = b.flash()
        assert "old_driver.mpy" not in fs.listdir("/")
        with fs.open("readings.csv", "rb") as f:
            assert f.read() == b"time,level\n" * 64  # data stays: only code files go
        _acked(link, sid, key_of(ws.dir, sid))
        ws.gateway.wait_log(f"station heard station={sid}", 90)
        if sub is not None:  # and the center's side of the broker has it
            sub.wait(lambda ms: any(t.rsplit("/", 1)[-1] in ("obs", "status", "alarm") for t, _, _ in ms), 60,
                     f"station {sid}'s first report on MQTT")
        fs = b.flash()
        with fs.open("config.json", "r") as f:
            assert json.loads(f.read())["station"] == sid
        # the technician console is on the same port, as on an ESP32's USB REPL
        r = ok(hydrolink(ws.dir, "console", b.port, "-c", "status", "--timeout", "60"))
        assert f"station {sid}" in r.stdout
        # a board running its firmware: Ctrl-C gives the REPL, the check passes, a reset boots it again
        r = ok(ws.flash("--port", b.port, "--station", str(sid), "--verify-only"))
        assert "files match the build" in r.stdout and f"as station {sid}" in r.stdout
        assert b.boots[:4] == ["repl", "firmware", "repl", "firmware"]
    finally:
        if sub is not None:
            sub.stop()
        b.stop()
        link.close()


def test_flash_image_then_the_board_boots_from_it(ws: Workspace, tmp_path: Path) -> None:
    sid = 91002
    img = tmp_path / "station.img"
    r = ok(ws.flash("--image", str(img), "--station", str(sid), "--block-count", "256"))
    assert "checked by mounting it again" in r.stdout
    assert img.stat().st_size == 256 * 4096 and img.stat().st_mode & 0o077 == 0
    b, link = board(tmp_path / "board", img, ws.gateway.port)
    b.start()  # power on: main.py from the image
    try:
        _acked(link, sid, key_of(ws.dir, sid))
        ws.gateway.wait_log(f"station heard station={sid}", 90)
        wait_for(lambda: f"boot: station {sid} cause".encode() in b.output, 90, "the boot line on the port")
    finally:
        b.stop()
        link.close()
    # too small a partition is refused in one line
    r = ws.flash("--image", str(tmp_path / "small.img"), "--station", str(sid), "--block-count", "8")
    assert r.returncode == 2 and r.stderr.startswith("hydrolink: --block-count 8")  # bad usage


def test_a_board_with_another_stations_key_is_rejected(ws: Workspace, tmp_path: Path) -> None:
    sid, other = 91003, 91004
    cfg = json.loads((ws.dir / "stations" / str(sid) / "config.json").read_text())
    cfg["key"] = key_of(ws.dir, other).hex()  # e.g. a config.json copied from the wrong folder
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps(cfg))
    img = tmp_path / "station.img"
    ok(ws.flash("--image", str(img), "--station", str(sid), "--config", str(bad), "--block-count", "256"))
    b, link = board(tmp_path / "board", img, ws.gateway.port)
    link.wait_s = 1.0  # no ACK is coming
    b.start()
    try:
        wait_for(lambda: len(link.sent) >= 1, 120, "the board's first frame")
        line = ws.gateway.wait_log("frame rejected", 120)
        assert f"station={sid}" in line and "bad_tag" in line, line
        assert not link.received
    finally:
        b.stop()
        link.close()


def test_an_interrupted_flash_is_detected_and_a_second_flash_repairs_it(ws: Workspace, tmp_path: Path) -> None:
    sid = 91005
    img = blank_image(tmp_path / "flash.img")
    b, link = board(tmp_path / "board", img, ws.gateway.port, kill_after=60_000)
    b.start(boot="repl")
    try:
        r = ws.flash("--port", b.port, "--station", str(sid))
        assert r.returncode == 1, (r.stdout, b.boots, b.error)
        assert "lost the board" in r.stderr and "flash again" in r.stderr
        wait_for(lambda: b.boots.count("repl") >= 2, 120, "the board back at its REPL after the cut")
        assert "main.py" not in b.flash().listdir("/")  # removed first: it cannot boot a mix

        r = ws.flash("--port", b.port, "--station", str(sid), "--verify-only", "--no-reset")
        assert r.returncode == 1
        problems = r.stderr.splitlines()[1:]
        assert any(p.strip() == "main.py: missing on the board" for p in problems), r.stderr
        assert len(problems) >= 2

        r = ok(ws.flash("--port", b.port, "--station", str(sid)))
        assert f"booted the firmware as station {sid}" in r.stdout
        _acked(link, sid, key_of(ws.dir, sid))
        ok(ws.flash("--port", b.port, "--station", str(sid), "--dry-run"))  # still usable
    finally:
        b.stop()
        link.close()
