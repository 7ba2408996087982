"""``hydrolink sim`` (a fleet run) and ``hydrolink demo`` (the fleet run on embedded defaults)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from sim.vlink import Outage

DEMO_STATIONS = 6
DEMO_DAYS = 3.0


class UsageError(ValueError):
    pass


def parse_outage(text: str) -> Outage:
    """``12h@day2`` (link down 12 h from the start of day 2), ``broker:6h@day1.5``, ``gateway:2h@day1``."""
    m = re.fullmatch(r"(?:(link|gateway|broker):)?(\d+(?:\.\d+)?)([hmd])@day(\d+(?:\.\d+)?)", text.strip())
    if not m:
        raise UsageError(f"--outage {text!r}: expected [link|gateway|broker:]DURATION@dayN, e.g. 12h@day2")
    kind = m[1] or "link"
    dur_ms = float(m[2]) * {"m": 60_000, "h": 3_600_000, "d": 86_400_000}[m[3]]
    start = float(m[4]) * 86_400_000
    return Outage(kind, int(start), int(start + dur_ms))


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (its default prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"hydrolink: {self.prog}: {message} (see {self.prog} --help)\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Run virtual stations (the real firmware on the "
                "MicroPython VM) through the real gateway, an MQTT broker and the center.")
    p.add_argument("--stations", type=int, default=DEMO_STATIONS, help="virtual stations (default 6)")
    p.add_argument("--days", type=float, default=DEMO_DAYS, help="simulated days (default 3)")
    p.add_argument("--seed", type=int, default=1, help="seeds weather, faults and link (default 1)")
    p.add_argument("--loss", type=float, default=0.0, help="chance a write is lost on the link, each way")
    p.add_argument("--ber", type=float, default=0.0, help="bit error rate of the link")
    p.add_argument("--latency-ms", type=int, default=150, help="one-way link latency (default 150)")
    p.add_argument("--outage", action="append", default=[], metavar="SPEC",
                   help="[link|gateway|broker:]12h@day2 (repeatable)")
    p.add_argument("--power-cuts", type=int, default=0, help="power cuts (kill -9 of a board's VM)")
    p.add_argument("--gateway-restarts", type=int, default=0, help="gateway kill -9 and restart")
    p.add_argument("--rain-csv", type=Path, help="replay this rain series (time,mm) at every station")
    p.add_argument("--no-faults", action="store_true", help="no sensor faults")
    p.add_argument("--mqtt", help="use this broker (mqtt://host:port) instead of starting one")
    p.add_argument("--db", help="the center store: sqlite:///PATH or postgresql://... (default: SQLite "
                   "in the work dir; the demo's: demo-out/center.db)")
    p.add_argument("--json", type=Path, help="write the report as JSON")
    p.add_argument("--plots", type=Path, help="write a hydrograph per station and a fleet overview here")
    p.add_argument("--workdir", type=Path, help="keep images, spool and logs here (default: a temp dir)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


MAX_STATIONS = 500
MAX_DAYS = 366


def _check(args: argparse.Namespace) -> list[Outage]:
    """The flags' values, checked before anything starts (UsageError: one line)."""
    if not 1 <= args.stations <= MAX_STATIONS:
        raise UsageError(f"--stations {args.stations}: expected 1 to {MAX_STATIONS}")
    if not (math.isfinite(args.days) and 0 < args.days <= MAX_DAYS):
        raise UsageError(f"--days {args.days:g}: expected more than 0, at most {MAX_DAYS}")
    if not 0 <= args.loss < 1:
        raise UsageError(f"--loss {args.loss:g}: expected a chance in [0, 1), e.g. 0.2")
    if not 0 <= args.ber < 0.01:
        raise UsageError(f"--ber {args.ber:g}: expected a bit error rate in [0, 0.01), e.g. 1e-4")
    if not 0 <= args.latency_ms <= 60_000:
        raise UsageError(f"--latency-ms {args.latency_ms}: expected 0 to 60000")
    for flag in ("power_cuts", "gateway_restarts"):
        n = getattr(args, flag)
        if not 0 <= n <= 1000:
            raise UsageError(f"--{flag.replace('_', '-')} {n}: expected 0 to 1000")
    outages = [parse_outage(o) for o in args.outage]
    for text, o in zip(args.outage, outages, strict=True):
        if o.start_ms >= args.days * 86_400_000 or o.end_ms <= o.start_ms:
            raise UsageError(f"--outage {text}: it must start inside the run's {args.days:g} days "
                             "and last more than 0")
    if args.db is not None and not args.db.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise UsageError(f"--db {args.db}: expected sqlite:///PATH or postgresql://...")
    for flag, path in (("--json", args.json), ("--plots", args.plots)):
        if path is not None:
            parent = Path(path).resolve().parent
            if not parent.is_dir() or not os.access(parent, os.W_OK):
                raise UsageError(f"--{flag.lstrip('-')} {path}: cannot write in {parent}")
    if args.rain_csv is not None and not Path(args.rain_csv).is_file():
        raise UsageError(f"--rain-csv {args.rain_csv}: no such file")
    return outages


def _start_clean(out: Path) -> None:
    """The demo's output folder without what an earlier run left (its store and plots)."""
    out.mkdir(exist_ok=True)
    for old in [*out.glob("center.db*"), *(out / "plots").glob("*.png")]:
        old.unlink()


def _write_plots(f: Any, plots: Path) -> int:
    """Every plot into a scratch folder first, then moved in whole: an interrupted run leaves
    no half-written file. Returns how many were written."""
    from sim.plots import write_plots

    plots = plots.resolve()
    plots.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{plots.name}-", dir=plots.parent))
    try:
        files = write_plots(f, tmp)
        try:
            logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # its font fallbacks
            from sim.center_views import center_plots

            files += center_plots(f, tmp)
        except Exception as e:  # noqa: BLE001 - the center's views are optional for the run's verdict
            print(f"hydrolink: (no center hydrographs: {e})", file=sys.stderr)
        plots.mkdir(exist_ok=True)
        for p in files:
            os.replace(p, plots / p.name)
        return len(files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_json(path: Path, text: str) -> None:
    part = path.with_name(f".{path.name}.part")
    part.write_text(text)
    os.replace(part, path)


def run(argv: list[str], prog: str = "hydrolink sim", demo: bool = False) -> int:
    args = _parser(prog).parse_args(argv)
    try:
        outages = _check(args)
    except UsageError as e:
        print(f"hydrolink: {e}", file=sys.stderr)
        return 2
    from protocol.codec import EPOCH_UNIX
    from sim import weather
    from sim.fleet import T0, Fleet, Options
    from sim.report import build, table

    rain = None
    if args.rain_csv is not None:
        try:
            rain = weather.replay_csv(args.rain_csv, EPOCH_UNIX + T0, args.days + 1)
        except weather.ReplayError as e:
            print(f"hydrolink: {e}", file=sys.stderr)
            return 2
    db, mine = args.db, []  # mine: files of this run that an interrupt must not leave half-written
    out = Path("demo-out").resolve()
    if demo:
        _start_clean(out)  # a second run starts clean
        if db is None:
            db = f"sqlite:///{out / 'center.db'}"
            mine = [out / "center.db"]
    storm = weather.Storm(int(1.4 * 86400), 5 * 3600, 95.0, "huff2") if demo else None
    opts = Options(stations=args.stations, days=args.days, seed=args.seed, loss=args.loss, ber=args.ber,
                   latency_ms=args.latency_ms, outages=outages, power_cuts=args.power_cuts,
                   gateway_restarts=args.gateway_restarts, mqtt=args.mqtt, workdir=args.workdir,
                   faults=not args.no_faults, rain=rain, storm=storm, progress=not args.quiet, db=db)
    f = None
    try:
        f = Fleet(opts)
        return _run(f, args, db, demo, out, build, table)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        if f is not None:
            f.close()
        for p in mine:
            for q in p.parent.glob(p.name + "*"):
                q.unlink(missing_ok=True)
        print("\nhydrolink: interrupted; everything the run started is stopped"
              + (f", and {out.name}/ holds nothing of it" if demo else ""), file=sys.stderr)
        return 130
    finally:
        if f is not None:
            f.cleanup()


def _run(f: Any, args: argparse.Namespace, db: str | None, demo: bool, out: Path, build: Any,
         table: Any) -> int:
    try:
        f.run()
    except Exception as e:  # noqa: BLE001 - one line, no traceback (a VM crash says where its log is)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"hydrolink: the simulation stopped: {first}", file=sys.stderr)
        return 2
    rep = build(f)
    print(table(rep))
    try:
        from sim.center_views import morning_report

        print("\nThe center's morning report:\n" + morning_report(f))
    except Exception as e:  # noqa: BLE001 - the center's views are optional for the run's verdict
        print(f"hydrolink: (no morning report: {e})", file=sys.stderr)
    if args.json is not None:
        _write_json(args.json, rep.to_json() + "\n")
    broker = f"{f.broker.kind} on {f.broker.url}, stopped" if f.broker is not None else args.mqtt
    print(f"MQTT broker: {broker}")
    if db is not None:
        print(f"center database: {db}")
    plots = args.plots or (out / "plots" if demo else None)
    if plots is not None:
        n = _write_plots(f, plots)
        print(f"plots: {plots.resolve()} ({n} files: a hydrograph per station, the center's own, "
              "and the fleet overview fleet.png)")
    print(f"simulated {args.stations * args.days:g} station-days in {f.wall:.0f} s wall")
    return 0 if rep.ok else 1


def cmd_sim(argv: list[str]) -> int:
    return run(argv)


def cmd_demo(argv: list[str]) -> int:
    return run(argv, prog="hydrolink demo", demo=True)
