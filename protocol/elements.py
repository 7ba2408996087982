"""The element table (``elements.csv``): ids, names, SI units and scales."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLE = Path(__file__).with_name("elements.csv")


@dataclass(frozen=True)
class Element:
    """One measured quantity. The SI value is ``raw * scale``."""

    id: int
    name: str
    unit: str
    scale: float
    kind: str  # "total" over the interval, or "instant"
    description: str

    def to_si(self, raw: int) -> float:
        """Scaled integer to SI, rounded to the scale's decimals (no 0.30000000000000004)."""
        return round(raw * self.scale, _decimals(self.scale))

    def from_si(self, value: float) -> int:
        """SI value back to the scaled integer (nearest)."""
        return round(value / self.scale)


@cache
def _decimals(scale: float) -> int:
    text = f"{scale:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def _load() -> dict[int, Element]:
    with TABLE.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {
        int(r["id"]): Element(
            int(r["id"]), r["name"], r["unit"], float(r["scale"]), r["kind"], r["description"]
        )
        for r in rows
    }


ELEMENTS: dict[int, Element] = _load()
BY_NAME: dict[str, Element] = {e.name: e for e in ELEMENTS.values()}

QUALITY_NAMES = ("good", "suspect", "out_of_range", "missing", "fault", "manual", "maintenance")
NO_VALUE = frozenset((3, 4))  # missing, fault: the slot has no value
ALARM_KINDS = ("", "rain", "level_high", "level_rise", "level_low", "battery_low")
ALARM_STATES = ("cleared", "raised", "active")
RESET_CAUSES = ("power_on", "hard", "watchdog", "deepsleep", "soft", "brownout")
COUNTERS = {
    1: "tips", 2: "sensor_faults", 3: "retries", 4: "frames_sent", 5: "acks", 6: "dropped",
    7: "resets", 8: "clock_syncs", 9: "commands", 10: "watchdog_resets", 11: "bad_downlink",
    12: "frames_given_up",
}
COMMAND_OPS = ("", "set_config", "get_config", "resend", "test_report", "reboot", "status_report")
RESULT_CODES = ("ok", "unknown_op", "bad_args", "failed", "refused")
FLAG_NAMES = {1: "low_power", 2: "clock_unsynced", 4: "in_alarm", 8: "backfill"}
