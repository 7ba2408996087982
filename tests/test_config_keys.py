"""protocol/config_keys.csv is the firmware's configuration table (firmware/config.py),
and the README's table of keys is generated from it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from protocol.config_keys import (
    CONFIG_KEYS,
    ConfigKeyError,
    check_setting,
    closest_key,
    markdown_table,
    parse_setting,
)

ROOT = Path(__file__).resolve().parents[1]


def firmware_config() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fw_config", ROOT / "firmware" / "config.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def probes(key: str) -> list[Any]:
    k = CONFIG_KEYS[key]
    out: list[Any] = [None, True, False, "", "x", "4-20", "radar", "none", 1.5, 0, 1, -1]
    if k.min is not None and k.max is not None and k.type != "hex":
        out += [k.min, k.max, k.min - 1, k.max + 1, (k.min + k.max) // 2]
    out += ["ab" * 32, "ab" * 16, "AB" * 31 + "A", "zz" * 32, "ab" * 33]
    return out


def test_the_table_is_the_firmwares() -> None:
    fw = firmware_config()
    assert list(CONFIG_KEYS) == list(fw.DEFAULTS), "same keys, in the same order"
    for name, k in CONFIG_KEYS.items():
        assert k.default == fw.DEFAULTS[name], name
        assert check_setting(name, k.default) is None, name
    for name in CONFIG_KEYS:
        for value in probes(name):
            _, errors = fw.validate({name: value})
            fw_refuses = any(e.startswith(name + ":") for e in errors)
            assert fw_refuses == (check_setting(name, value) is not None), (name, value, errors)


def test_an_unknown_key_suggests_the_closest() -> None:
    assert closest_key("reprot_interval") == "report_interval"
    assert closest_key("level_offset") == "cal_offset_mm"
    why = check_setting("level_offset", -12)
    assert why is not None and "'cal_offset_mm'" in why
    assert closest_key("zzzzqqq") is None


def test_a_value_out_of_range_says_the_range_and_unit() -> None:
    assert check_setting("report_interval", -5) == (
        "report_interval=-5: out of range; allowed an integer 300 .. 86400 s")
    with pytest.raises(ConfigKeyError, match=r"report_interval='': must be an integer 300 .. 86400 s"):
        parse_setting("report_interval", "")
    assert parse_setting("level_alarm_mm", "null") is None
    assert parse_setting("radar_distance", "false") is False
    assert parse_setting("level_sensor", "radar") == "radar"
    with pytest.raises(ConfigKeyError, match="62 hex digits, 64 needed"):
        parse_setting("key", "ab" * 31)
    assert check_setting("key", "ab" * 32, remote=True) == (
        "key is set by provisioning, not by a command over the air")


def test_the_readme_table_is_generated_from_the_csv() -> None:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- config-keys: begin.*?-->\n(.*?)<!-- config-keys: end -->", text, re.S)
    assert m, "README.md has no generated table of configuration keys"
    assert m.group(1) == markdown_table(), "regenerate: python -m protocol.config_keys"
