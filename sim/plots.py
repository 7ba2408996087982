"""Hydrographs of a fleet run from what reached the center, with the truth drawn under them.

One PNG per station (hourly rain bars; the water level at the center and the true level)
and ``fleet.png`` (every station's level as departure from its start, and the rain).
``hydrolink plot`` (center views) draws from the center's store; this module draws the
simulator's own comparison with the truth.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from protocol.codec import EPOCH_UNIX
from sim.fleet import T0, Fleet


def _series(f: Fleet, sid: int, element: str) -> tuple[list[float], list[float]]:
    assert f.center is not None
    pts = sorted((t, a.value) for (s, e, t), a in f.center.obs.items()
                 if s == sid and e == element and a.value is not None and t <= EPOCH_UNIX + T0 + f.end_ms / 1000)
    return [p[0] for p in pts], [float(p[1]) for p in pts if p[1] is not None]


def _dt(ts: list[float]) -> Any:
    return [datetime.fromtimestamp(t, UTC) for t in ts]  # matplotlib takes datetimes as x


def _hourly(ts: list[float], vs: list[float]) -> tuple[list[float], list[float]]:
    acc: dict[int, float] = {}
    for t, v in zip(ts, vs, strict=True):
        h = int((t - 1) // 3600) * 3600
        acc[h] = acc.get(h, 0.0) + v
    ks = sorted(acc)
    return [k + 1800 for k in ks], [acc[k] for k in ks]


def write_plots(f: Fleet, out: Path) -> list[Path]:
    """Write the PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for spec in f.specs:
        fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
        rt, rv = _hourly(*_series(f, spec.sid, "rain"))
        ax2: Any = ax.twinx() if spec.kind != "rain" else None
        ax.bar(_dt(rt), rv, width=1 / 24, color="#4a90d9", label="rain, mm/h (center)")
        ax.set_ylabel("rain, mm per hour")
        ax.invert_yaxis() if ax2 is not None else None
        if ax2 is not None:
            lt, lv = _series(f, spec.sid, "water_level")
            mins = range(0, f.end_ms // 60_000, 10)
            ax2.plot(_dt([EPOCH_UNIX + T0 + m * 60 for m in mins]),
                     [spec.weather.level_mm(m * 60_000) / 1000 for m in mins], color="#999999", lw=3,
                     alpha=0.5, label="true level")
            ax2.plot(_dt(lt), lv, color="#c0392b", lw=1, label="level at the center")
            if spec.level_alarm_mm is not None:
                ax2.axhline(spec.level_alarm_mm / 1000, color="#e67e22", ls="--", lw=1, label="alarm stage")
            ax2.set_ylabel("water level, m")
            ax2.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{spec.sid} {spec.name} ({spec.kind})")
        ax.legend(loc="lower left", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        p = out / f"station-{spec.sid}.png"
        fig.savefig(p)
        plt.close(fig)
        files.append(p)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 6), dpi=100, sharex=True)
    for spec in f.specs:
        rt, rv = _hourly(*_series(f, spec.sid, "rain"))
        a1.plot(_dt(rt), rv, lw=1, label=str(spec.sid))
        if spec.kind != "rain":
            lt, lv = _series(f, spec.sid, "water_level")
            if lv:
                a2.plot(_dt(lt), [v - lv[0] for v in lv], lw=1, label=f"{spec.sid} {spec.kind}")
    a1.set_ylabel("rain, mm/h")
    a1.legend(fontsize=7, ncol=4)
    a2.set_ylabel("level change, m")
    a2.legend(fontsize=7, ncol=2)
    a1.set_title("hydrolink fleet: what reached the center")
    fig.autofmt_xdate()
    fig.tight_layout()
    p = out / "fleet.png"
    fig.savefig(p)
    plt.close(fig)
    files.append(p)
    return files
