"""``hydrolink pull`` of a month of 5-minute rain and level data at 115200 baud.

A virtual station (real firmware, 128K heap) runs 30 days with its link down, so its flash
queue holds the month (rain and level every 5 minutes, battery and logger temperature
hourly); then ``host_tools.field.pull.pull`` pulls it over the board's console pty
(sim/console_pty.py), whose output is throttled to 115200 baud (11,520 bytes/s, 8N1) as the
USB-serial line would be. Prints the wall time of the pull against the baseline of the same
bytes at the line rate (the time a perfect transfer would take), and whether the month fits
in a minute. The board's virtual clock runs paced while the console is in use.

Run: ``python bench/console_pull.py`` (about 1.5 minutes; ``--days N`` for less data).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from host_tools.field.pull import pull  # noqa: E402
from sim.console_pty import ConsolePty  # noqa: E402
from sim.link import Phase  # noqa: E402
from tests.firmware.simrun import DAY, station  # noqa: E402

BAUD = 115200


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30, help="days of data on the board")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cfg = {"queue_max_bytes": 524288}  # a month of records (16 B each) fits
        b, _peer = station(Path(tmp) / "s", days=a.days, seed=3, config=cfg,
                           phases=[Phase(0, loss=1.0)])
        con = ConsolePty(ratio=20, hold_ms=60_000, baud=BAUD)
        b.console = con
        b.run(a.days * DAY + 60_000)
        sim_s = time.perf_counter() - t
        import threading

        con.attach(b.vms)
        th = threading.Thread(target=b.run, args=(a.days * DAY + 90 * 60_000,), daemon=True)
        th.start()
        n0 = len(con.output)
        t = time.perf_counter()
        rows = pull(con.path, progress=False)
        pull_s = time.perf_counter() - t
        nbytes = len(con.output) - n0
        th.join(600)
        con.close()
    line_s = nbytes * 10 / BAUD
    month = sum(1 for r in rows if r.element in ("rain", "water_level"))
    print(f"hydrolink pull over the virtual board's console pty at {BAUD} baud ({sim_s:.0f} s to simulate "
          f"{a.days} days with the link down)")
    print(f"  {len(rows)} readings ({month} rain and level, 5-min; the rest hourly), {nbytes:,} bytes")
    print(f"  baseline: the same bytes at the line rate {line_s:.1f} s")
    verdict = "TARGET MET" if pull_s < 60 or a.days < 30 else "TARGET MISSED"
    print(f"  pull: {pull_s:.1f} s = {pull_s / line_s:.2f} x the line time, {len(rows) / pull_s:,.0f} readings/s"
          f"; a month in under a minute: {verdict}")
    return 0 if verdict == "TARGET MET" else 1


if __name__ == "__main__":
    sys.exit(main())
