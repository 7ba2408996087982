"""The center's shared-table paho Properties decode PUBLISH packets as paho's own do."""

from __future__ import annotations

import struct
from typing import Any

from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from host_tools.center import pahofast


def _publish(props: Properties | None) -> bytes:
    """The body of a QoS 1 PUBLISH (after the fixed header) with these properties."""
    topic = b"hydrolink/v1/1001/obs"
    packed = props.pack() if props is not None else b"\x00"  # type: ignore[no-untyped-call]
    return struct.pack("!H", len(topic)) + topic + struct.pack("!H", 7) + packed + b'{"v":1}'


def _cases() -> list[Properties | None]:
    out: list[Properties | None] = [None]
    p = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    p.MessageExpiryInterval = 3600
    p.ContentType = "application/json"
    p.UserProperty = [("gateway", "gw-1"), ("site", "gaoqiao")]
    p.SubscriptionIdentifier = 7
    p.CorrelationData = b"\x01\x02"
    p.PayloadFormatIndicator = 1
    out.append(p)
    return out


def _decode(cls: type[Properties]) -> list[tuple[int, str, Any, bytes | bytearray]]:
    saved = _packet.Properties  # type: ignore[attr-defined]
    _packet.Properties = cls  # type: ignore[attr-defined]
    try:
        got = []
        for props in _cases():
            r = _packet.decode_publish(0x32, _publish(props), MQTTProtocolVersion.MQTTv5)
            assert r.properties is not None
            got.append((r.mid, str(r.properties), r.properties.json(), r.payload))  # type: ignore[no-untyped-call]
        return got
    finally:
        _packet.Properties = saved  # type: ignore[attr-defined]


def test_same_properties_as_paho() -> None:
    fast = _decode(pahofast.SharedTableProperties)
    assert fast == _decode(Properties)
    assert fast[0][1] == "[]" and fast[1][2]["MessageExpiryInterval"] == 3600
    assert fast[1][2]["UserProperty"] == [("gateway", "gw-1"), ("site", "gaoqiao")]


def test_reused_object_is_cleared_and_tables_stay_shared() -> None:
    p = pahofast.SharedTableProperties(PacketTypes.PUBLISH)
    p.unpack(_publish(_cases()[1])[2 + 21 + 2:])  # type: ignore[no-untyped-call]
    assert p.json() == _cases()[1].json()  # type: ignore[union-attr, no-untyped-call]
    p.clear()
    assert str(p) == "[]" and p.isEmpty()  # type: ignore[no-untyped-call]
    q = pahofast.SharedTableProperties(PacketTypes.PUBLISH)
    assert q.names is p.names and len(q.names) == 27  # built once, only read


def test_install_is_idempotent() -> None:
    saved = _packet.Properties  # type: ignore[attr-defined]
    try:
        _packet.Properties = Properties  # type: ignore[attr-defined]
        assert pahofast.install() and pahofast.install()
        assert _packet.Properties is pahofast.SharedTableProperties  # type: ignore[attr-defined]
    finally:
        _packet.Properties = saved  # type: ignore[attr-defined]
