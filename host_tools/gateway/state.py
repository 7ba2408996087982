"""What the gateway tells people about its stations: the retained ``state`` message,
the counters restored after a restart, and the periodic summary log line."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..registry import Registry
from .commands import CommandBook
from .metrics import StationStats, Stats
from .names import iso

SILENT_AFTER = 2 * 3600.0  # s without a frame after which a station counts as silent


def state_message(stats: Stats, registry: Registry, commands: CommandBook,
                  station: int) -> dict[str, Any]:
    """The retained ``<prefix>/<station>/state`` message."""
    st = stats.stations.get(station) or StationStats()
    reg = registry.get(station)
    out: dict[str, Any] = {
        "v": 1, "station": station, "name": reg.name if reg else None,
        "last_seen": iso(st.last_seen) if st.last_seen else None, "last_seq": st.last_seq,
        "link": st.link, "frames": st.frames, "duplicates": st.duplicates,
        "bad_crc": st.bad_crc, "bad_crc_rate": round(st.bad_crc_rate(), 6),
        "rejected": st.rejected, "clock_offset_s": st.clock_offset,
        "commands_waiting": len(commands.waiting.get(station, ())),
    }
    if reg is not None and reg.location is not None:
        loc = reg.location
        out["location"] = {"lat": loc.lat, "lon": loc.lon, "elevation_m": loc.elevation_m}
    return out


def restore_stats(stats: Stats, saved: Any, stations: dict[int, Any]) -> None:
    """Counters continue across restarts (last seen, link quality, rejections)."""
    for sid, st in stations.items():
        fields = {k: v for k, v in st.items() if k in StationStats.__dataclass_fields__}
        stats.stations[sid] = StationStats(**fields)
    if not isinstance(saved, dict):
        return
    for reason, n in saved.get("rejected", {}).items():
        stats.rejected[reason] += int(n)
    for name, n in saved.get("accepted", {}).items():
        stats.accepted[name] += int(n)
    for key in ("duplicates", "acks", "refused", "forwarded"):
        setattr(stats, key, int(saved.get(key, 0)))


class Summary:
    """The ``summary`` log line every few minutes: what happened since the last one."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.accepted = sum(stats.accepted.values())
        self.rejected = Counter(stats.rejected)
        self.duplicates = stats.duplicates

    def fields(self, registry: Registry, now: float) -> dict[str, Any]:
        s = self.stats
        accepted = sum(s.accepted.values())
        rejected = {k: v - self.rejected.get(k, 0) for k, v in s.rejected.items()
                    if v - self.rejected.get(k, 0)}
        silent = sorted(sid for sid in registry.stations
                        if now - (s.stations[sid].last_seen if sid in s.stations else 0.0)
                        > SILENT_AFTER)
        out: dict[str, Any] = {
            "accepted": accepted - self.accepted,
            "rejected": sum(rejected.values()),
            **{f"rejected_{k}": v for k, v in sorted(rejected.items())},
            "duplicates": s.duplicates - self.duplicates,
            "stations": len(registry.stations), "silent": len(silent),
        }
        if silent:
            out["silent_ids"] = ",".join(map(str, silent[:10])) + (",..." if len(silent) > 10
                                                                   else "")
        self.accepted, self.rejected, self.duplicates = accepted, Counter(s.rejected), s.duplicates
        return out
