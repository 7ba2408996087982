"""The center's own views of a fleet run: the morning report (``hydrolink report``'s module)
and the hydrographs of ``hydrolink plot``, drawn from the center store the run filled."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from protocol.codec import EPOCH_UNIX
from sim.fleet import T0, Fleet


def morning_report(f: Fleet) -> str:
    """The morning report of the last complete rain day of the run, as the center prints it."""
    from host_tools.center.rain import rain_day_of
    from host_tools.center.report import station_day, text
    from host_tools.center.store import open_store

    store = open_store(f.store_url)
    try:
        metas = store.stations()
        if not metas:
            return ""
        made = EPOCH_UNIX + T0 + f.end_ms // 1000
        m0 = metas[0]
        day = rain_day_of(made, m0.timezone or "UTC", m0.rain_day_start_hour) - dt.timedelta(days=1)
        rows = [station_day(store, m, day) for m in metas]
    finally:
        store.close()
    return text(rows, day, made)


def center_plots(f: Fleet, out: Path) -> list[Path]:
    """``hydrolink plot``'s figure for each station and one for the whole fleet."""
    import matplotlib

    from host_tools.center.plot import figure, load_panel, save
    from host_tools.center.store import open_store
    from host_tools.center.views import zone

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    start, end = EPOCH_UNIX + T0, EPOCH_UNIX + T0 + f.end_ms // 1000
    store = open_store(f.store_url)
    files = []
    try:
        panels = [load_panel(store, s.sid, start, end) for s in f.specs]
        tz = zone(store.stations()[0].timezone)
    finally:
        store.close()
    for p in panels:
        fig, _ = figure([p], start, end, tz)
        path = out / f"center-{p.station}.png"
        save(fig, str(path))
        plt.close(fig)
        files.append(path)
    fig, _ = figure(panels, start, end, tz)
    path = out / "center-fleet.png"
    save(fig, str(path))
    plt.close(fig)
    files.append(path)
    return files
