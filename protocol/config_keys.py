"""The station configuration keys (``config_keys.csv``): unit, type, range, default.

One table for every tool that sets a station's configuration: ``hydrolink
command`` checks a ``set_config`` against it before queuing, the console and the
provisioning tools reuse :func:`check_setting`, the README's table of keys is
:func:`markdown_table`, and ``tests/protocol`` holds ``firmware/config.py``
(``DEFAULTS`` and ``validate()``) equal to it.

Single keys only: the rules across keys (``record_interval`` divides 86400, a
report interval is a multiple of it, ...) depend on the station's running
configuration, which the station checks when the command arrives.
"""

from __future__ import annotations

import csv
import difflib
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("config_keys.csv")

# Keys a command over the air may not set: identity and secrets travel only by
# provisioning (an ACK is signed, not encrypted).
PROVISIONING_ONLY = frozenset(("station", "key", "pin_hash", "pin_salt"))


class ConfigKeyError(ValueError):
    """A setting that the station would refuse. ``str()`` is one line."""


@dataclass(frozen=True)
class ConfigKey:
    """One row of the table. ``type``: ``int``, ``int or null``, ``bool``, ``hex``
    (``min`` = ``max`` = its length in digits; empty allowed), or choices ``a|b|c``."""

    name: str
    unit: str
    type: str
    min: int | None
    max: int | None
    default: Any
    description: str

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self.type.split("|")) if "|" in self.type else ()

    @property
    def nullable(self) -> bool:
        return self.type.endswith(" or null")

    def allowed(self) -> str:
        """What the key takes, in words: ``300 .. 86400 s``, ``true or false``, ..."""
        if self.type.startswith("int"):
            text = f"an integer {self.min} .. {self.max}" + (f" {self.unit}" if self.unit else "")
            return text + (", or null" if self.nullable else "")
        if self.type == "bool":
            return "true or false"
        if self.type == "hex":
            return f"{self.max} hex digits, or empty"
        return "one of " + ", ".join(self.choices)


def _number(text: str) -> int | None:
    return None if text == "" else int(text)


def _default(type_: str, text: str) -> Any:
    if text == "null":
        return None
    if type_.startswith("int"):
        return int(text)
    if type_ == "bool":
        return text == "true"
    return text


@cache
def _load() -> dict[str, ConfigKey]:
    with TABLE.open(newline="", encoding="utf-8") as f:
        return {
            r["name"]: ConfigKey(r["name"], r["unit"], r["type"], _number(r["min"]),
                                 _number(r["max"]), _default(r["type"], r["default"]),
                                 r["description"])
            for r in csv.DictReader(f)
        }


CONFIG_KEYS: dict[str, ConfigKey] = _load()


def closest_key(name: str) -> str | None:
    """The key a typo most likely meant: shared words (rare words count more), then
    spelling; None if nothing is close."""
    words = {k: set(k.split("_")) for k in CONFIG_KEYS}
    freq: dict[str, int] = {}
    for ws in words.values():
        for w in ws:
            freq[w] = freq.get(w, 0) + 1
    mine = set(name.lower().split("_"))

    def score(k: str) -> tuple[float, float]:
        shared = sum(1.0 / freq[w] for w in mine & words[k])
        return shared, difflib.SequenceMatcher(None, name.lower(), k).ratio()

    best = max(CONFIG_KEYS, key=score)
    shared, ratio = score(best)
    return best if shared > 0.2 or ratio >= 0.6 else None


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def check_setting(key: str, value: Any, *, remote: bool = False) -> str | None:
    """Why the station would refuse ``key = value`` (one line), or None if it takes it.

    ``value`` as JSON gives it (int, bool, str, None). ``remote``: the setting is to go
    out in a command, which may not set the identity keys (:data:`PROVISIONING_ONLY`).
    """
    k = CONFIG_KEYS.get(key)
    if k is None:
        hint = closest_key(key)
        return (f"unknown configuration key {key!r}" + (f"; did you mean {hint!r}?" if hint
                else "") + " (keys: protocol/config_keys.csv)")
    if remote and key in PROVISIONING_ONLY:
        return f"{key} is set by provisioning, not by a command over the air"
    bad = f"{key}={_shown(value)}: "
    if k.type.startswith("int"):
        if value is None and k.nullable:
            return None
        if type(value) is not int:
            return bad + f"must be {k.allowed()}"
        assert k.min is not None and k.max is not None
        if not k.min <= value <= k.max:
            return bad + f"out of range; allowed {k.allowed()}"
        return None
    if k.type == "bool":
        return None if type(value) is bool else bad + "must be true or false"
    if k.type == "hex":
        if type(value) is not str or not re.fullmatch(r"[0-9a-fA-F]*", value):
            return bad + f"must be {k.allowed()}"
        if value and len(value) != k.max:
            return bad + f"{len(value)} hex digits, {k.max} needed"
        return None
    return None if value in k.choices else bad + f"must be {k.allowed()}"


def parse_setting(key: str, text: str) -> Any:
    """The value of ``key=text`` typed for its key; :class:`ConfigKeyError` if the
    station would refuse it (see :func:`check_setting`)."""
    k = CONFIG_KEYS.get(key)
    value: Any = text
    if k is not None and text.lower() in ("null", "none") and k.nullable:
        value = None
    elif k is not None and k.type.startswith("int") and re.fullmatch(r"[+-]?\d+", text):
        value = int(text)
    elif k is not None and k.type.startswith("int"):
        try:
            f = float(text)
            value = f if math.isfinite(f) else text
        except ValueError:
            value = text
    elif k is not None and k.type == "bool" and text.lower() in ("true", "false"):
        value = text.lower() == "true"
    why = check_setting(key, value)
    if why is not None:
        raise ConfigKeyError(why)
    return value


def markdown_table() -> str:
    """The README's table of keys (generated: ``python -m protocol.config_keys``)."""
    lines = ["| key | unit | allowed | default | what it does |", "|---|---|---|---|---|"]
    for k in CONFIG_KEYS.values():
        if k.type.startswith("int"):
            allowed = f"{k.min} .. {k.max}" + (" or null" if k.nullable else "")
        elif k.type == "hex":
            allowed = f"{k.max} hex digits"
        elif k.type == "bool":
            allowed = "true, false"
        else:
            allowed = ", ".join(k.choices)
        default = "" if k.default == "" else f"`{_shown(k.default).strip(chr(39))}`"
        lines.append(f"| `{k.name}` | {k.unit} | {allowed} | {default} | {k.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
