"""The rain gauge after a dry spell longer than half the ticks range (2^29 ms = 6.2 days):
its first tips are tips, not bounce (the 14-day fleet run lost 28 tips to this)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

FW = Path(__file__).resolve().parents[2] / "firmware" / "sensors.py"


def _sensors() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fw_sensors_wrap", FW)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tips_after_a_week_long_dry_spell_count() -> None:
    s = _sensors()
    g = s.RainGauge(200, 10_000)
    mask = (1 << 30) - 1
    g.on_edge(1000)
    g.on_edge(1003)  # bounce
    assert g.take() == (1, False)
    week = 7 * 86_400_000  # > 2^29 ms later
    for k in range(5):
        g.on_edge((1000 + week + k * 2000) & mask)
    g.on_edge((1000 + week + 8000 + 5) & mask)  # bounce of the last tip
    assert g.take() == (5, False)
    assert g.bounces == 2
