"""paho-mqtt's MQTT 5 ``Properties`` without the per-message table building.

paho decodes every PUBLISH it receives into a fresh ``Properties`` object, whose
constructor rebuilds the two tables of the 27 property names and ids (some sixty dict
and list entries) and whose ``unpack`` starts by testing each of the 27 names to clear
it. On this machine that is about 38 us per message, a third of what a bare paho
subscriber spends on one, all of it holding the GIL the center's converter and writer
need. :class:`SharedTableProperties` is the same class with the tables built once and
shared (paho only reads them) and a ``clear`` that deletes only what was set: the
decoded properties are the same (``tests/center/test_pahofast.py``).
:func:`install` makes paho's packet decoder build it; with a paho whose decoder is not
where this expects it, nothing changes.
"""

from __future__ import annotations

from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_PRIVATE = frozenset(("packetType", "types", "names", "properties"))
_proto = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_TABLES = {"types": _proto.types, "names": _proto.names, "properties": _proto.properties}


class SharedTableProperties(Properties):
    """paho's ``Properties`` sharing one copy of the (read-only) name and type tables."""

    def __init__(self, packetType: int) -> None:  # noqa: N803 - paho's name
        d = self.__dict__
        d.update(_TABLES)
        d["packetType"] = packetType

    def clear(self) -> None:
        d = self.__dict__
        for name in [k for k in d if k not in _PRIVATE]:
            del d[name]


def install() -> bool:
    """Make paho's PUBLISH decoder use :class:`SharedTableProperties`; True if it does."""
    try:
        from paho.mqtt import _packet  # paho >= 2.2's decoder; private, so looked for, not assumed
    except ImportError:
        return False
    current: Any = getattr(_packet, "Properties", None)
    if current is Properties:
        _packet.Properties = SharedTableProperties  # type: ignore[attr-defined]
    return getattr(_packet, "Properties", None) is SharedTableProperties
