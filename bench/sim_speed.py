"""Simulator speed: simulated station-days per wall-clock second, everything real in the loop.

Two fleet runs (``sim.fleet``: the firmware ``.mpy`` on the MicroPython VM in lockstep, the
production gateway in-process with its spool and forwarder process, the broker, the center
receiver and store on SQLite), perfect link, no sensor faults:

* **one board, 30 days** (target: <= 20 s; aim 10 s);
* **a fleet of 50 boards, 7 days** (target: <= 5 minutes on a 2-core machine).

The **floor**, measured in the same run: a bare MicroPython loop on the same VM that
"samples" every simulated minute and commits every 5-minute reading (16 bytes, flushed) to a
file on a littlefs2 image mounted as the sim board mounts its flash: what a board costs with
no firmware logic, no lockstep and no host. Where the time goes is printed from the run's own
counters: the wall time of start, boards and drain, lockstep messages per station-day, the VM
processes' CPU seconds and this process's (board threads, gateway, center), and the wall time
boards spent waiting on the gateway's ACK path.

Run: ``python bench/sim_speed.py`` (about 5 minutes; ``--quick`` for 1 board x 3 days and
5 boards x 1 day).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.fleet import Fleet, Options, ram_dir  # noqa: E402
from sim.mpy import tool  # noqa: E402
from sim.vboard import BLOCK  # noqa: E402

FLOOR_SRC = r"""
import os, time, vfs
class Dev:
    def __init__(s, p, bs):
        s.f = open(p, "r+b"); s.bs = bs; s.f.seek(0, 2); s.n = s.f.tell() // bs
    def readblocks(s, b, buf, off=0):
        s.f.seek(b * s.bs + off); s.f.readinto(buf)
    def writeblocks(s, b, buf, off=None):
        s.f.seek(b * s.bs + (off or 0)); s.f.write(buf)
    def ioctl(s, op, arg):
        return s.n if op == 4 else (s.bs if op == 5 else 0)
dev = Dev(IMG, BS)
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev, readsize=64, progsize=64, lookahead=32), "/flash")
rec = bytearray(16)
win = [0] * 5
t0 = time.ticks_ms()
f = open("/flash/q", "ab")
for m in range(DAYS * 1440):
    win[m % 5] = (m * 7919) % 1000  # a sample
    if m % 5 == 4:
        v = sorted(win)[2]
        rec[0] = v & 255
        rec[1] = v >> 8
        f.write(rec)
        f.flush()
    if m % 7200 == 7199:  # a new segment every 5 days, as the queue rolls
        f.close()
        os.remove("/flash/q")
        f = open("/flash/q", "ab")
f.close()
print(time.ticks_diff(time.ticks_ms(), t0))
"""


def floor(days: int) -> float:
    """Wall seconds of the bare loop for ``days`` simulated days (VM start included)."""
    with tempfile.TemporaryDirectory(dir=ram_dir(1)) as d:
        img = Path(d) / "flash.img"
        img.write_bytes(b"\xff" * BLOCK * 256)
        src = FLOOR_SRC.replace("IMG", repr(str(img))).replace("BS", str(BLOCK)).replace("DAYS", str(days))
        t = time.perf_counter()
        subprocess.run([tool("micropython"), "-X", "heapsize=128K", "-c", src], check=True,
                       capture_output=True, timeout=600)
        return time.perf_counter() - t


def fleet(stations: int, days: float) -> dict[str, float]:
    """One run in the work dir ``hydrolink sim`` uses (RAM when there is room, ``sim.fleet.ram_dir``)."""
    with tempfile.TemporaryDirectory(prefix="hydrolink-bench-", dir=ram_dir(stations)) as d:
        f = Fleet(Options(stations=stations, days=days, seed=1, faults=False, workdir=Path(d),
                          progress=False, drain_h=1.0))
        t = time.perf_counter()
        cpu = time.process_time()
        f.run()
        wall = time.perf_counter() - t
        host = f.host
        assert host is not None and f.center is not None
        return {"wall": wall, "sd": stations * days, "messages": sum(b.messages for b in f.boards),
                "vm_cpu": sum(b.vm_cpu_s for b in f.boards), "host_cpu": time.process_time() - cpu,
                "gateway_s": host.deliver_s, "delivers": host.delivers, "readings": len(f.center.obs),
                "start": f.phases["start"], "boards": f.phases["boards"],
                "end": wall - f.phases["start"] - f.phases["boards"], "ram": float(d.startswith("/dev/shm"))}


def report(name: str, r: dict[str, float], floor_rate: float, target_s: float) -> bool:
    rate = r["sd"] / r["wall"]
    ok = r["wall"] <= target_s
    cores = os.cpu_count() or 1
    print(f"{name}: {r['sd']:g} station-days in {r['wall']:.1f} s = {rate:.2f} station-days/s "
          f"= 1/{floor_rate / rate:.0f} of the floor; target <= {target_s:.0f} s: "
          f"{'TARGET MET' if ok else 'TARGET MISSED'}")
    print(f"  where the time goes: start (broker, center, gateway) {r['start']:.1f} s, boards "
          f"{r['boards']:.1f} s, drain and stop {r['end']:.1f} s; {r['messages'] / r['sd']:.0f} lockstep "
          f"messages per station-day; the VMs' CPU {r['vm_cpu']:.1f} s ({100 * r['vm_cpu'] / r['wall'] / cores:.0f}% "
          f"of {cores} cores), this process's (board threads, gateway, center) {r['host_cpu']:.1f} s; boards waited "
          f"{r['gateway_s']:.1f} s in total on {r['delivers']:.0f} gateway round trips "
          f"({1000 * r['gateway_s'] / max(1, r['delivers']):.1f} ms each: decode, spool commit, ACK; "
          f"work dir {'in RAM' if r['ram'] else 'on disk'}); {r['readings']:.0f} readings reached the center")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    one_days, big_n, big_days = (3, 5, 1.0) if a.quick else (30, 50, 7.0)
    fl_days = 30
    fl = floor(fl_days)
    floor_rate = fl_days / fl
    print(f"floor: bare MicroPython loop, a sample a minute, 5-min readings to littlefs: {fl_days} days "
          f"in {fl:.2f} s = {floor_rate:.0f} station-days/s (one core)")
    ok = report(f"1 board x {one_days} days", fleet(1, one_days), floor_rate, 20.0 * one_days / 30)
    ok &= report(f"{big_n} boards x {big_days:g} days", fleet(big_n, big_days), floor_rate,
                 300.0 * big_n * big_days / 350)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
