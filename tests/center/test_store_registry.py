"""Registry metadata for the center (kind, interval, rain day, stages, alarms, qc), and its sync."""

from __future__ import annotations

import pytest

from host_tools.center import Store
from host_tools.registry import RegistryError, parse_registry

KEY = "00" * 32
BASE = f'[[station]]\nid = 1001\nname = "Gaoqiao"\nkey = "{KEY}"\n'


def one(extra: str) -> object:
    return parse_registry(BASE + extra, "st.toml").stations[1001]


def test_defaults_and_kind_inference() -> None:
    s = parse_registry(BASE, "st.toml").stations[1001]
    assert (s.kind, s.record_interval_s, s.rain_day_start_hour, dict(s.stages), dict(s.qc)) == (
        None, 300, 8, {}, {})
    assert one('sensors = ["rain"]\n').kind == "rain"  # type: ignore[attr-defined]
    assert one('sensors = ["rain", "water_level"]\n').kind == "river"  # type: ignore[attr-defined]
    assert one("stages = { flood_limit = 70.0 }\n").kind == "reservoir"  # type: ignore[attr-defined]


def test_full_metadata() -> None:
    s = one(
        'kind = "reservoir"\nrecord_interval_s = 600\nrain_day_start_hour = 9\n'
        "stages = { action = 66.5, warning = 68.0, guarantee = 71.5, flood_limit = 70.0 }\n"
        "alarms = { rain_1h_mm = 30.0, rain_3h_mm = 50, battery_low_v = 11.8, silent_intervals = 3 }\n"
        "qc = { water_level = { min = 60.0, max = 80.0, step = 0.5, flat_hours = 6.0 }, rain = { max = 50.0 } }\n"
    )
    assert s.kind == "reservoir" and s.record_interval_s == 600 and s.rain_day_start_hour == 9  # type: ignore[attr-defined]
    assert s.stages == {"action": 66.5, "warning": 68.0, "guarantee": 71.5, "flood_limit": 70.0}  # type: ignore[attr-defined]
    assert s.alarms["rain_3h_mm"] == 50.0 and isinstance(s.alarms["rain_3h_mm"], float)  # type: ignore[attr-defined]
    assert s.qc["water_level"]["step"] == 0.5 and s.qc["rain"] == {"max": 50.0}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("extra", "words"), [
    ('kind = "lake"\n', "kind 'lake' must be one of river, reservoir, rain"),
    ("record_interval_s = 0\n", "record_interval_s = 0 must be an integer 1 .. 86400"),
    ("record_interval_s = 300.0\n", "record_interval_s = 300.0 must be an integer"),
    ("rain_day_start_hour = 24\n", "rain_day_start_hour = 24 must be an integer 0 .. 23"),
    ("stages = { alert = 1.0 }\n", "unknown stages field 'alert'; known: action, warning"),
    ('stages = { warning = "high" }\n', "stages.warning must be a number"),
    ("stages = 68.0\n", "stages must be a table"),
    ("alarms = { battery_low_v = -1 }\n", "alarms.battery_low_v = -1 is outside"),
    ("qc = { level = { min = 1.0 } }\n", "qc element 'level' unknown"),
    ("qc = { water_level = { min = 80.0, max = 60.0 } }\n", "qc.water_level.min (80.0) must be below max"),
    ("qc = { rain = { step = 0 } }\n", "qc.rain.step must be above 0"),
    ("qc = { rain = { top = 1 } }\n", "unknown qc.rain field 'top'"),
])
def test_bad_metadata_is_one_line_naming_file_station_key(extra: str, words: str) -> None:
    with pytest.raises(RegistryError) as e:
        one(extra)
    msg = str(e.value)
    assert msg.startswith("st.toml: station 1001: ") and words in msg and "\n" not in msg


def test_sync_into_store(store: Store) -> None:
    reg = parse_registry(
        BASE + 'sensors = ["rain", "water_level"]\ntimezone = "Asia/Shanghai"\n'
        "location = { lat = 29.871, lon = 119.642, elevation_m = 72.5 }\n"
        "stages = { warning = 68.0, flood_limit = 70.0 }\nqc = { rain = { max = 50.0 } }\n"
        f'[[station]]\nid = 1002\nname = "Rain gauge"\nkey = "{KEY}"\nsensors = ["rain"]\n'
    )
    assert store.sync_stations(reg.stations.values()) == 2
    got = store.stations()
    assert [s.station for s in got] == [1001, 1002]
    a = got[0]
    assert (a.name, a.kind, a.lat, a.elevation_m, a.timezone) == ("Gaoqiao", "reservoir", 29.871, 72.5,
                                                                  "Asia/Shanghai")
    assert a.sensors == ("rain", "water_level") and a.stages == {"warning": 68.0, "flood_limit": 70.0}
    assert a.qc == {"rain": {"max": 50.0}} and got[1].kind == "rain"
    # a reload with a changed name updates the row
    store.sync_stations([reg.stations[1002].__class__(**{**reg.stations[1002].__dict__, "name": "RG"})])
    assert store.station(1002).name == "RG"  # type: ignore[union-attr]


def test_the_readme_metadata_example_parses() -> None:
    """The README's center metadata block ("Station metadata") is valid registry TOML."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("**Station metadata**", 1)[1]
    block = section.split("```toml\n", 1)[1].split("\n```", 1)[0]
    s = one(block + "\n")
    assert s.kind == "reservoir" and s.stages["flood_limit"] == 70.0  # type: ignore[attr-defined]
    assert s.qc["rain"] == {"max": 50.0} and s.alarms["silent_intervals"] == 3.0  # type: ignore[attr-defined]
