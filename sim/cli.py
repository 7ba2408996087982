"""``hydrolink sim`` (a fleet run) and ``hydrolink demo`` (the fleet run on embedded defaults)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

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


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run virtual stations (the real firmware on the "
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
    p.add_argument("--db", help="write what reached the center to this SQLite file (sqlite:///path)")
    p.add_argument("--json", type=Path, help="write the report as JSON")
    p.add_argument("--plots", type=Path, help="write a hydrograph per station and a fleet overview here")
    p.add_argument("--workdir", type=Path, help="keep images, spool and logs here (default: a temp dir)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(argv: list[str], prog: str = "hydrolink sim", demo: bool = False) -> int:
    args = _parser(prog).parse_args(argv)
    try:
        outages = [parse_outage(o) for o in args.outage]
        if args.stations < 1 or args.days <= 0:
            raise UsageError("--stations must be >= 1 and --days > 0")
        if not 0 <= args.loss < 1 or not 0 <= args.ber < 0.01:
            raise UsageError("--loss must be in [0, 1) and --ber in [0, 0.01)")
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
    db = args.db
    if db is None and demo:
        out = Path("demo-out").resolve()
        out.mkdir(exist_ok=True)
        for old in out.glob("center.db*"):
            old.unlink()  # a second run starts clean
        db = f"sqlite:///{out / 'center.db'}"
    storm = weather.Storm(int(1.4 * 86400), 5 * 3600, 95.0, "huff2") if demo else None
    opts = Options(stations=args.stations, days=args.days, seed=args.seed, loss=args.loss, ber=args.ber,
                   latency_ms=args.latency_ms, outages=outages, power_cuts=args.power_cuts,
                   gateway_restarts=args.gateway_restarts, mqtt=args.mqtt, workdir=args.workdir,
                   faults=not args.no_faults, rain=rain, storm=storm, progress=not args.quiet, db=db)
    f = Fleet(opts)
    try:
        try:
            f.run()
        except KeyboardInterrupt:
            print("\nhydrolink: interrupted; everything the run started is stopped", file=sys.stderr)
            return 130
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
            args.json.write_text(rep.to_json() + "\n")
        if db is not None:
            print(f"center database: {db}")
        plots = args.plots or (Path("demo-out") / "plots" if demo else None)
        if plots is not None:
            from sim.plots import write_plots

            files = write_plots(f, plots)
            try:
                from sim.center_views import center_plots

                files += center_plots(f, plots)
            except Exception as e:  # noqa: BLE001
                print(f"hydrolink: (no center hydrographs: {e})", file=sys.stderr)
            print(f"plots: {plots.resolve()} ({len(files)} files)")
        print(f"simulated {args.stations * args.days:g} station-days in {f.wall:.0f} s wall")
        return 0 if rep.ok else 1
    finally:
        f.cleanup()


def cmd_sim(argv: list[str]) -> int:
    return run(argv)


def cmd_demo(argv: list[str]) -> int:
    return run(argv, prog="hydrolink demo", demo=True)
