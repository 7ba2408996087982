"""Station firmware cost on the MicroPython VM (unix port, ``.mpy``, heap 128K).

Four figures, each next to a baseline measured in the same run:

* **sample cycle** (µs): what the sampler task does every ``sample_interval`` - read the
  4-20 mA level (four ADC reads, scaling) and put the sample in the median window; and the
  **record cycle** at a 5-minute mark: the rain gauge's take, the median, quality control,
  both readings appended to the flash queue (littlefs2 on a file block device, as the sim
  board mounts it) and the alarm rules. Best of 5 runs.
* **hourly report** (µs): ``Store.make_records_frame`` for the hour's 26 readings (12 rain,
  12 level, battery, temperature): read back from flash, grouped into series, encoded
  (CBOR, delta coding, HMAC, CRC) and committed (frame file + state file). Best of 5.
  Baselines for the three: ``binascii.crc32`` of the report's frame, and one empty loop pass.
* **code heap**: ``gc.mem_alloc()`` taken by importing the station runtime (``station`` and
  everything it imports, compiled ``.mpy``), against the 128K heap.
* **console session**: a technician console session on the simulated station (status with the
  console open, a configuration change with the PIN): its peak heap, within the 128K heap, and
  the qstr pool count (a new pool is 7.7 KB at once).
* **peak heap in a 30-day run**: the simulated station (``sim/vboard.py``, storms, a perfect
  link) on ``-X heapsize=128K``; the firmware logs its live heap after ``gc.collect()`` at its
  busiest moments (a frame built, the status report). Aim: peak < 96 KiB. Prints TARGET MET or
  TARGET MISSED and exits 1 when missed.

Run: ``python bench/firmware_cycle.py`` (about 30 s; ``--days N`` for a shorter run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import mpvm  # noqa: E402

from tests.firmware.simrun import DAY, boot_heap, heap_days, qstr_pools, station  # noqa: E402

LIMIT = 128 * 1024  # -X heapsize=128K
TARGET = 96 * 1024  # the aim for the peak

VM_CODE = r"""
import binascii, gc, os, sys, time, vfs
gc.collect()
a0 = gc.mem_alloc()
import station  # the runtime: station and everything it imports
gc.collect()
print("code", gc.mem_alloc() - a0)
import config, frame, sampler, sensors, alarms
from report import encode_report
from store import Store

class Dev:  # littlefs2 over an image file, as boards/simboot.py
    def __init__(self, path):
        self.f = open(path, "r+b")
    def readblocks(self, b, buf, off=0):
        self.f.seek(b * 4096 + off)
        self.f.readinto(buf)
    def writeblocks(self, b, buf, off=None):
        self.f.seek(b * 4096 + (off or 0))
        self.f.write(buf)
    def ioctl(self, op, arg):
        return {4: 64, 5: 4096}.get(op, 0)

dev = Dev(IMAGE)
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev, readsize=64, progsize=64, lookahead=32), "/flash")
os.chdir("/flash")

class Adc:
    def read_uv(self):
        return 1320000  # 8.8 mA on 150 ohm: 3 m

cfg = dict(config.DEFAULTS)
cfg["station"] = 7
level = sensors.make_level(cfg, Adc())
gauge = sensors.RainGauge(cfg["debounce_ms"], cfg["stuck_ms"])
T0 = 52000000 - 52000000 % 3600
smp = sampler.Sampler(cfg, T0 - 3600)
al = alarms.Alarms(cfg)
st = Store(cfg["queue_max_bytes"])
key = frame.Key(bytes(32))
buf = memoryview(bytearray(frame.MAX_WIRE + 1))

def usec(run, n):
    # best of 5 runs of n passes, us per pass
    best = None
    for _ in range(5):
        gc.collect()
        t = time.ticks_us()
        run(n)
        d = time.ticks_diff(time.ticks_us(), t) / n
        best = d if best is None or d < best else best
    return best

clock = [T0]

def sample(n):
    t = clock[0]
    for _ in range(n):
        t += 60
        smp.add_level_sample(t, level.read_mm())
    clock[0] = t

def record_cycle(t):
    for k in range(4):
        smp.add_level_sample(t - 60 * k, level.read_mm())
    gauge.on_edge(t)
    tips, fault = gauge.take()
    rs = smp.record(t, tips, fault, 12600 if t % 3600 == 0 else None, 250 if t % 3600 == 0 else None)
    for r in rs:
        st.append(r[0], r[1], r[2], r[3], 3600 if r[0] > 2 else 300)
    for r in rs:
        al.update(r[1], r[0], r[2], r[3])
    return len(rs)

rec_t = [0]

def record(n):
    for _ in range(n):
        rec_t[0] += 300
        record_cycle(rec_t[0])

def enc(b, seq, series, dropped):
    return encode_report(b, frame.DATA, 7, seq, rec_t[0] + 5, key, series, dropped, None, 0)

built = []

def hour():
    for _ in range(12):
        rec_t[0] += 300
        record_cycle(rec_t[0])

def report(n):
    for _ in range(n):
        seq = st.make_records_frame(frame.DATA, True, enc, buf, 1024)
        built.append(seq)

def empty(n):
    for _ in range(n):
        pass

smp.t_start = None
rec_t[0] = T0 + 86400
print("sample", usec(sample, 200))
print("record", usec(record, 12))
# the hourly report: 12 record cycles fill the hour (not timed), then one build
best = None
for _ in range(5):
    hour()
    gc.collect()
    t = time.ticks_us()
    report(1)
    d = time.ticks_diff(time.ticks_us(), t)
    best = d if best is None or d < best else best
    st.ack(built)
    del built[:]
print("report", best)
n = st.make_records_frame(frame.DATA, True, enc, buf, 1024)
hour()
seq = st.make_records_frame(frame.DATA, True, enc, buf, 1024)
ln = st.frame(seq, buf)
raw = bytes(buf[:ln])
print("frame_len", ln)

def crc(n):
    for _ in range(n):
        binascii.crc32(raw)

print("crc", usec(crc, 1000))
print("empty", usec(empty, 1000))
"""


def vm_figures() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        mpy = Path(tmp) / "mpy"
        mpvm.build_mpy(mpy)
        image = Path(tmp) / "flash.img"
        image.write_bytes(bytes(64 * 4096))
        res = mpvm.run(code=f"IMAGE = {str(image)!r}\n" + VM_CODE, heapsize="128K", mpy_dir=mpy,
                       cwd=Path(tmp))
    if res.returncode != 0:
        raise RuntimeError(res.stdout + res.stderr)
    out = {}
    for line in res.stdout.splitlines():
        name, value = line.split()
        out[name] = float(value)
    return out


def sim_figures(days: int) -> tuple[int, int, int, int, int, float]:
    """(boot, day 2, last day, peak, distinct qstr pool counts, wall s) of a ``days``-long run."""
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        b, _peer = station(Path(tmp) / "s", days=days, seed=11)
        b.run(days * DAY + 10 * 60_000)
        wall = time.perf_counter() - t
    if any("MemoryError" in ln or "Traceback" in ln for ln in b.log):
        raise RuntimeError("\n".join(b.log[-20:]))
    d = heap_days(b)
    pools = {p for p, _ in qstr_pools(b)}
    return boot_heap(b), d[min(1, len(d) - 1)][1], d[-1][1], max(p for _, _, p in d), len(pools), wall


def console_figures() -> tuple[int, int, float]:
    """(peak heap, distinct qstr pool counts, wall s) of a technician console session.

    A virtual station with its console on a pty (sim/console_pty.py); the real host side
    (host_tools/field/console.py) runs status, read, queue, config show and a config set
    (PIN) while the board samples and reports; the firmware's peak heap figure covers the
    status command with the console open (console_i.py calls app.peak()) and the status
    report the change sends.
    """
    import hashlib
    import threading

    from host_tools.field.console import Session
    from sim.console_pty import ConsolePty

    salt = bytes(16)
    cfg = {"pin_salt": salt.hex(), "pin_hash": hashlib.pbkdf2_hmac("sha256", b"1234", salt, 1000).hex()}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        b, _peer = station(Path(tmp) / "s", days=1, seed=11, config=cfg)
        con = ConsolePty(ratio=60, hold_ms=60_000)
        b.console = con
        b.run(2 * 3_600_000)
        con.attach(b.vms)
        err: list[BaseException] = []

        def go() -> None:
            try:
                b.run(2 * 3_600_000 + 20 * 60_000)
            except BaseException as e:  # noqa: BLE001 - reported below
                err.append(e)

        th = threading.Thread(target=go, daemon=True)
        th.start()
        s = Session(con.path)
        try:
            s.open()
            for c in ("status", "read", "queue", "config show 2", "status"):
                s.command(c)
            s.command("config set report_interval 1800", "1234")
        finally:
            s.close()
            th.join(300)
            con.close()
        wall = time.perf_counter() - t
    if err or any("MemoryError" in ln or "Traceback" in ln for ln in b.log):
        raise RuntimeError("\n".join([*map(str, err), *b.log[-20:]]))
    pools = {p for p, _ in qstr_pools(b)}
    return max(p for _, _, p in heap_days(b)), len(pools), wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30, help="simulated days for the peak heap")
    args = ap.parse_args()
    try:
        f = vm_figures()
        boot, d2, dn, peak, pool_counts, wall = sim_figures(args.days)
        c_peak, c_pools, c_wall = console_figures()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    crc, empty = f["crc"], f["empty"]
    print(f"station firmware on the MicroPython VM (unix port, .mpy, heap {LIMIT // 1024}K)")
    print(f"  baselines: binascii.crc32 of the {f['frame_len']:.0f}-byte hourly frame "
          f"{crc:.1f} us; empty loop pass {empty:.2f} us")
    for name, label in (("sample", "sample cycle  (ADC read + median window)      "),
                        ("record", "record cycle  (5-min mark, 2 appends to flash)"),
                        ("report", "hourly report (26 readings: flash -> frame)   ")):
        us = f[name]
        print(f"  {label}: {us:8.1f} us = {us / crc:6.1f} x crc32 = {us / empty:8.0f} x empty loop")
    code = f["code"]
    print(f"  code heap     (station + imports, .mpy)       : {code / 1024:6.1f} KiB = "
          f"{code / LIMIT:.0%} of the heap")
    verdict = "TARGET MET" if peak < TARGET else "TARGET MISSED"
    print(f"  {args.days}-day run ({wall:.0f} s): heap after gc.collect() at boot {boot / 1024:.1f} KiB, "
          f"day 2 {d2 / 1024:.1f} KiB, day {args.days} {dn / 1024:.1f} KiB; qstr pools "
          f"{'constant' if pool_counts == 1 else 'GREW'}")
    print(f"  peak heap {peak / 1024:.1f} KiB of {LIMIT // 1024} KiB = {peak / LIMIT:.0%}; "
          f"aim < {TARGET // 1024} KiB ({peak / TARGET:.1%} of it): {verdict}")
    print(f"  console session ({c_wall:.0f} s: status, read, queue, config show/set with the PIN): peak heap "
          f"{c_peak / 1024:.1f} KiB of {LIMIT // 1024} KiB = {c_peak / LIMIT:.0%}; qstr pools "
          f"{'constant' if c_pools == 1 else 'GREW'}")
    return 0 if peak < TARGET and pool_counts == 1 and c_pools == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
