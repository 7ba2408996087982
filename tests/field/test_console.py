"""The technician console on a virtual board's pty, while the board samples and reports.

One virtual station (real firmware, MicroPython VM) with its console on a pty
(sim/console_pty.py): its link is down for the first three hours (the queue fills), then up.
A pexpect session runs every console command (bad values, a wrong PIN, five wrong PINs, an
unknown command) for more than ten virtual minutes; ``hydrolink pull`` then pulls the queue
over the same pty; ``python -m serial.tools.miniterm`` runs ``status`` on it; the pulled CSV
is what the center receives once the link is back, and ``hydrolink center import`` stores it
once.

Heap: the VM runs with ``-X heapsize=128K``, as a board. The board's interned names (qstrs)
sit at the edge of their fifth pool (620 names: 600 after boot, 620 with the status report,
the console's modules and the PIN code loaded); a sixth pool is 7.7 KB in one block, which the
fragmented heap cannot give, so the test checks that the pool count never moves.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pexpect.fdpexpect
import pytest

from host_tools.field import pull as pullmod
from protocol import codec
from protocol.codec import EPOCH_UNIX
from protocol.elements import ELEMENTS, QUALITY_NAMES
from sim.console_pty import ConsolePty
from sim.link import Phase
from sim.vboard import VBoard
from tests.firmware.simrun import HOUR, qstr_pools, station

PIN = "482916"
SALT = bytes(range(16))
HEAP = "128K"
PROMPT = "hydrolink> "
ASK = r"PIN \(digits\): "
OUTAGE_MS = 3 * HOUR
RATIO = 30.0  # virtual ms per wall ms while the console is in use
HOLD_MS = 60_000  # virtual ms after the last key that pacing lasts (2 s of wall time)


class Run:
    """The board running in a thread (paced by its console while one is in use)."""

    def __init__(self, board: VBoard, until_ms: int) -> None:
        self.board = board
        board.console.attach(board.vms)  # paced from now: the test types at once
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._go, args=(until_ms,), daemon=True)
        self.thread.start()

    def _go(self, until_ms: int) -> None:
        try:
            self.board.run(until_ms)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e

    def join(self, timeout: float = 300) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the board run did not finish"
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VBoard, object, ConsolePty]]:
    cfg = {"pin_salt": SALT.hex(),
           "pin_hash": hashlib.pbkdf2_hmac("sha256", PIN.encode(), SALT, 1000).hex()}
    b, peer = station(tmp_path_factory.mktemp("console") / "s", days=1, config=cfg, heapsize=HEAP,
                      phases=[Phase(0, loss=1.0), Phase(OUTAGE_MS, loss=0.0)])
    con = ConsolePty(ratio=RATIO, hold_ms=HOLD_MS, baud=115200)
    b.console = con
    b.run(OUTAGE_MS - 40 * 60_000)  # 2 h 20 min, unpaced: nothing typed yet
    yield b, peer, con
    con.close()


def _session(path: str) -> pexpect.fdpexpect.fdspawn:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    p = pexpect.fdpexpect.fdspawn(fd, timeout=30, encoding="ascii")
    p.send("\r")
    p.expect(PROMPT)
    return p


def _cmd(p: pexpect.fdpexpect.fdspawn, line: str, then: str = PROMPT, screen: bool = True) -> str:
    p.send(line + "\r")
    p.expect(then)
    out = str(p.before)
    assert max(len(x) for x in out.split("\r\n")) <= 80, out  # fits the screen's width
    assert out.count("\r\n") <= 24 or not screen, out  # and its height (not dump: data to capture)
    return out


def test_console_session_while_the_board_samples_and_reports(rig: tuple[VBoard, object, ConsolePty],
                                                             tmp_path: Path) -> None:
    b, peer, con = rig
    start = b.vms
    # a remote command after the session, in the same boot: the console's names must leave
    # room for commands.py's in the qstr pool (this failed with MemoryError once)
    peer.command(77, 1, {"rain_alarm_tenths": 150}, at_ms=OUTAGE_MS)  # type: ignore[attr-defined]
    run = Run(b, OUTAGE_MS + 90 * 60_000)
    p = _session(con.path)
    t_open = b.vms
    try:
        assert "station 4242" in _cmd(p, "status")
        out = _cmd(p, "help")
        for w in ("status", "read", "watch", "config set", "calibrate level", "clock set", "queue",
                  "dump", "send test", "reboot", "factory-reset"):
            assert w in out
        assert re.search(r"level +\d+\.\d{3} m above datum .*loop \d+\.\d{3} mA", _cmd(p, "read"))
        assert "UTC" in _cmd(p, "clock show")
        q = _cmd(p, "queue")
        assert re.search(r"queue +\d+ readings unacknowledged", q) and "dropped 0 readings" in q
        assert "did you mean 'status'?" in _cmd(p, "stauts")  # unknown command: the closest one
        assert "report_interval" in _cmd(p, "config show 3") or "report_interval" in _cmd(p, "config show 2")
        assert re.search(r"report_interval +3600 s", _cmd(p, "config show report_interval"))
        assert "did you mean" in _cmd(p, "config show 9")
        # a write asks for the PIN; a wrong one is counted, the command not run
        _cmd(p, "config set report_interval 1800", ASK)
        assert "error: wrong PIN (1 of 5" in _cmd(p, "111111")
        _cmd(p, "config set report_interval 7", ASK)
        out = _cmd(p, PIN)
        assert "error: report_interval 7: must be 300..86400 s (now 3600)" in out  # range and unit
        # unlocked for the rest of the session
        assert "3600 -> 1800 s (saved" in _cmd(p, "config set report_interval 1800")
        assert "did you mean 'report_interval'?" in _cmd(p, "config set report_intervall 900")
        assert "set by provisioning" in _cmd(p, "config set key 00")
        out = _cmd(p, "calibrate level 2.415")
        assert "staff gauge:  2.415 m" in out and "after:  level 2.415 m" in out
        assert "error: calibrate level wants metres" in _cmd(p, "calibrate level two")
        assert "error: clock set wants UTC" in _cmd(p, "clock set 25/08/2025")
        assert "test report queued" in _cmd(p, "send test")
        assert "error: dump --since wants a UTC time" in _cmd(p, "dump --since yesterday")
        out = _cmd(p, "dump --since 2025-08-24 01:00", screen=False)
        assert "time,element,value,quality" in out and re.search(r"# end: \d+ readings", out)
        assert "Type YES to confirm" in _cmd(p, "factory-reset")
        assert "cancelled" in _cmd(p, "no")
        p.send("watch\r")
        p.expect("any key stops")
        for _ in range(3):
            p.expect(r"\d\d:\d\d:\d\d  level \d+\.\d{3} m above datum  rain \d+\.\d mm  battery")
        p.send("x")
        p.expect(PROMPT)
        # ten virtual minutes in the session, at least (pacing: wall time x RATIO); while only
        # status is typed, at 4 x RATIO with 4 x the hold: the same 2 s of wall time without a key
        # before pacing ends (the session's idle timeout is 5 virtual min: 2.5 s of wall time here)
        con.ratio, con.hold_ms = 4 * RATIO, 4 * HOLD_MS
        while b.vms < t_open + 10 * 60_000:
            assert "station 4242" in _cmd(p, "status")
            time.sleep(0.5)
        con.ratio, con.hold_ms = RATIO, HOLD_MS
        # five wrong PINs lock writes for 15 min (a new session: unlocked no more)
        p.send("exit\r")
        p.expect("console closed")
        p = _session(con.path)
        for _ in range(5):
            _cmd(p, "config set report_interval 900", ASK)
            out = _cmd(p, "000000")
        assert "writes are locked for 15 min" in out
        assert "error: writes locked after 5 wrong PINs: try again in 15 min" in _cmd(p, "send test")
        assert re.search(r"PIN +6 wrong in all, 0 in a row; writes LOCKED for 15 min", _cmd(p, "status"))
        t_close = b.vms
        p.send("exit\r")
        p.expect("console closed")
    finally:
        p.close()
    # the pull over the same pty, then miniterm (the terminal technicians have)
    csv_path = tmp_path / "pulled.csv"
    t = time.monotonic()
    rows = pullmod.pull(con.path, progress=False)
    pull_s = time.monotonic() - t
    pullmod.write_csv(csv_path, rows)
    mt = pexpect.spawn(sys.executable, ["-m", "serial.tools.miniterm", con.path, "115200"],
                       timeout=30, encoding="ascii")
    mt.expect("Quit: Ctrl")
    mt.send("\r")
    mt.expect(PROMPT)
    mt.send("status\r")
    mt.expect(r"station 4242 +firmware \S+")
    mt.expect(PROMPT)
    mt.send("exit\r")
    mt.expect("console closed")
    mt.sendcontrol("]")
    mt.expect(pexpect.EOF)
    run.join()
    assert not any("Traceback" in ln or "MemoryError" in ln for ln in b.log), b.log[-30:]
    assert len({p for p, _ in qstr_pools(b)}) == 1, qstr_pools(b)  # no new qstr pool (7.7 KB)

    # sampling went on: every 5-minute mark of the session has its rain and level reading
    t0 = b.t0
    marks = range((t0 + start // 1000) // 300 * 300 + 300, t0 + t_close // 1000, 300)
    got = {(tr.element, tr.time) for tr in b.traces}
    assert len(marks) >= 10 // 5, (start, t_open, t_close, b.vms)  # ten minutes: two marks at least
    missing = [m for m in marks if (1, m) not in got or (2, m) not in got]
    assert not missing, missing
    # reporting went on: after the outage every reading reached the center, the test report too
    recv = {(r.element, r.time): (r.value, r.quality) for r in peer.readings}  # type: ignore[attr-defined]
    for m in marks:
        if m - t0 >= OUTAGE_MS // 1000:
            assert (1, m) in recv and (2, m) in recv, m
    assert peer.of_type(codec.TEST)  # type: ignore[attr-defined]
    r77 = peer.results.get(77)  # type: ignore[attr-defined]
    assert r77 is not None and r77.code == 0, r77

    # the pulled CSV is what the center received for the same readings
    assert rows and all(r.station == 4242 for r in rows)
    pulled = {(r.element, r.time): (r.value, r.quality) for r in rows}
    center = {}
    for (el, ht), (v, q) in recv.items():
        e = ELEMENTS[el]
        center[(e.name, ht + EPOCH_UNIX)] = (None if v is None else e.to_si(v), QUALITY_NAMES[q])
    common = pulled.keys() & center.keys()
    assert len(common) >= 0.9 * len(pulled), (len(common), len(pulled))
    assert {k: pulled[k] for k in common} == {k: center[k] for k in common}
    # a spreadsheet reads it: a header, one reading per row, times as text
    head = csv_path.read_text().splitlines()[:2]
    assert head[0] == ",".join(pullmod.COLUMNS)
    assert re.match(r"4242,(rain|water_level|battery_voltage|logger_temperature),\S*,20\d\d-\d\d-\d\d \d\d:\d\d:\d\d,",
                    head[1])
    print(f"pull: {len(rows)} readings in {pull_s:.1f} s over the pty at 115200 baud")

    # center import: stored once, also next to the readings the link delivered
    db = f"sqlite:///{tmp_path / 'center.db'}"
    from host_tools.center.model import ObsRow
    from host_tools.center.store import open_store

    store = open_store(db)
    try:
        link_rows = [ObsRow(4242, k[0], k[1], v[0], v[1], 0.0) for k, v in center.items()]
        store.upsert_observations(link_rows)
    finally:
        store.close()
    cli = [sys.executable, "-m", "host_tools.cli", "center", "import", str(csv_path), "--db", db]
    r1 = subprocess.run(cli, capture_output=True, text=True, check=False)
    r2 = subprocess.run(cli, capture_output=True, text=True, check=False)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    n_new = len(pulled.keys() - center.keys())
    assert f"{n_new} readings stored, {len(pulled) - n_new} already at the center" in r1.stdout
    assert f"0 readings stored, {len(pulled)} already at the center" in r2.stdout
    store = open_store(db)
    try:
        lv = store.observations(4242, "water_level", 0, 2**31)
        assert len(lv) == len({k for k in pulled.keys() | center.keys() if k[0] == "water_level"})
    finally:
        store.close()


def test_scripted_console_exits_non_zero_on_an_error(rig: tuple[VBoard, object, ConsolePty]) -> None:
    b, _peer, con = rig
    run = Run(b, b.vms + 20 * 60_000)
    cli = [sys.executable, "-m", "host_tools.cli", "console", con.path]
    ok = subprocess.run([*cli, "-c", "status", "-c", "read"], capture_output=True, text=True, check=False,
                        timeout=120)
    bad = subprocess.run([*cli, "-c", "read", "-c", "config set report_interval 7", "--pin", PIN],
                         capture_output=True, text=True, check=False, timeout=120)
    # interactive: readline prompt, the board's answer, exit
    it = pexpect.spawn(sys.executable, ["-m", "host_tools.cli", "console", con.path], timeout=60,
                       encoding="ascii")
    it.expect("help lists the commands")
    it.expect(PROMPT)
    it.sendline("stauts")
    it.expect("did you mean 'status'")
    it.expect(PROMPT)
    it.sendline("status")
    it.expect(r"station 4242 +firmware")
    it.expect(PROMPT)
    it.sendline("exit")
    it.expect(pexpect.EOF)
    run.join()
    assert ok.returncode == 0, ok.stderr
    assert "station 4242" in ok.stdout and "level" in ok.stdout
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "error: report_interval 7: must be 300..86400 s" in bad.stdout
    gone = subprocess.run([*cli[:-1], "/nonexistent/tty", "-c", "status"], capture_output=True,
                          text=True, check=False, timeout=60)
    assert gone.returncode == 2 and gone.stderr.startswith("hydrolink: cannot open /nonexistent/tty")
