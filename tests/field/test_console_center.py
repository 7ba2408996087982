"""A change at a station's console reaches the hydrology center as an event, end to end.

As a technician and the center see it: ``hydrolink build`` / ``provision`` / ``flash --image``
make a virtual board (the real firmware on the MicroPython VM, sim/repl.py) that reports to
the real ``hydrolink gateway`` over TCP; the gateway publishes to the real Mosquitto; the
center's receiver stores what it hears. ``hydrolink console PORT --pin ... -c "config set
report_interval 1800"`` on the board's port then has to show up in the center's events table
(kind ``console``, the station, the text), once, and in the status the center keeps.

The conversion on its own (no servers): a status message and the gateway's event for the same
change store one row, however often either is delivered again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.helpers import GatewayProc, Mosquitto

from host_tools.center import open_store
from host_tools.center.messages import convert, store_messages
from host_tools.center.receiver import Center
from host_tools.gateway.payload import console_events, encode_json, frame_payload
from host_tools.gateway.spool_commands import event_statement
from host_tools.siview import iso
from protocol import codec
from protocol.codec import EPOCH_UNIX

from .flashkit import board, hydrolink, key_of, ok, wait_for

SID = 91101  # an id no other test publishes
PIN = "482916"
PREFIX = "tconsole/hydrolink/v1"  # this test's own topics on the shared broker
T = 80_000_000  # hydrolink s: 2026-07-14 (a fixed time; the center takes it as a past one)


def _status_frame(seq: int, console: list[list[Any]]) -> codec.Frame:
    raw = codec.encode_frame(codec.STATUS, SID, seq, T, codec.Status({"queue_depth": 3, "console": console}),
                             b"k" * 32)
    return codec.decode_frame(raw, {SID: b"k" * 32})


def _messages(frame: codec.Frame) -> list[tuple[str, bytes]]:
    """What the gateway publishes for a status frame: its events, then the frame."""
    out = []
    for e in console_events(frame):
        _, (topic, payload, _, _) = event_statement(frame.station, e)
        out.append((f"{PREFIX}/{topic}", payload.encode()))
    status = frame_payload(frame, name="s", received=(T + EPOCH_UNIX + 1), link="tcp:1")
    out.append((f"{PREFIX}/{SID}/status", encode_json(status)))
    return out


def test_console_changes_are_events_stored_once(tmp_path: Path) -> None:
    f = _status_frame(7, [[T - 60, "config report_interval 3600 -> 1800"], [T - 5, "clock set a -> b"]])
    msgs = _messages(f)
    assert [json.loads(p)["event"] for _, p in msgs[:2]] == ["console", "console"]
    assert json.loads(msgs[2][1])["console"][0] == {"time": iso(T - 60),
                                                   "text": "config report_interval 3600 -> 1800"}
    batch = convert(*msgs[0], received=T + EPOCH_UNIX + 2, prefix=PREFIX)
    (ev,) = batch.events
    assert (ev.station, ev.kind, ev.key, ev.time) == (SID, "console", "7:0", T - 60 + EPOCH_UNIX)
    assert json.loads(ev.payload)["text"] == "config report_interval 3600 -> 1800"
    s = open_store(f"sqlite:///{tmp_path}/center.db")
    try:
        # the events, the status carrying the same changes, then all of it delivered again
        _, rejects = store_messages(s, msgs + msgs + list(reversed(msgs)), T + EPOCH_UNIX + 2, PREFIX)
        assert rejects == 0
        got = s.events(SID, 0, 2**40)
        assert [(e.kind, e.key, json.loads(e.payload)["text"]) for e in got] == [
            ("console", "7:0", "config report_interval 3600 -> 1800"), ("console", "7:1", "clock set a -> b")]
        # the same text in a later status frame is another change: stored too
        store_messages(s, _messages(_status_frame(9, [[T - 60, "config report_interval 3600 -> 1800"]])),
                       T + EPOCH_UNIX + 3, PREFIX)
        assert len(s.events(SID, 0, 2**40)) == 3
    finally:
        s.close()
    # a console list the center cannot read is rejected with its reason, the rest kept
    bad = convert(f"{PREFIX}/{SID}/events", json.dumps({"v": 1, "event": "console", "seq": 3, "index": 0,
                                                        "time": iso(T)}).encode(),
                  received=T + EPOCH_UNIX, prefix=PREFIX)
    assert [r.reason for r in bad.rejects] == ["bad_payload"] and "needs a time and a text" in bad.rejects[0].detail


def test_a_console_change_reaches_the_centers_events(tmp_path: Path, mosquitto: Mosquitto) -> None:
    d = tmp_path
    ok(hydrolink(d, "build", "--board", "sim", "--out", str(d / "build")))
    ok(hydrolink(d, "provision", str(SID), "--name", "console station", "--pin", PIN, "--set", "holdoff_s=5"))
    img = d / "station.img"
    ok(hydrolink(d, "flash", "--board", "sim", "--build", str(d / "build" / "sim"), "--image", str(img),
                 "--station", str(SID), "--block-count", "256"))
    gw = GatewayProc(d, d / "registry.toml", mosquitto.url, extra=["--topic-prefix", PREFIX]).start()
    url = f"sqlite:///{d}/center.db"
    cen = Center(url, mosquitto.url, topic_prefix=PREFIX, client_id="center-console-e2e")
    cen.start()
    b = link = None
    try:
        assert cen.wait_connected(30)
        b, link = board(d / "board", img, gw.port)
        b.start()
        gw.wait_log(f"station heard station={SID}", 120)
        key = key_of(d, SID)
        r = hydrolink(d, "console", b.port, "--pin", PIN, "-c", "config set report_interval 1800",
                      "--timeout", "120")
        assert r.returncode == 0, (r.stdout, b.output[-3000:].decode(errors="replace"))  # the board's log
        assert "report_interval: 3600 -> 1800 s (saved; the center is told)" in r.stdout, r.stdout
        store = open_store(url)
        try:
            def console_events_stored() -> list[Any]:
                return [e for e in store.events(SID, 0, 2**40) if e.kind == "console"]

            wait_for(lambda: bool(console_events_stored()), 120, "the console change in the center's events")
            (ev,) = console_events_stored()
            doc = json.loads(ev.payload)
            assert ev.station == SID and doc["station"] == SID
            assert doc["text"] == "config report_interval 3600 -> 1800"
            # the station's clock when it was made: within the run (the board's clock follows the ACKs)
            assert abs(ev.time - ev.received) < 86_400
            # the status frame that carried it came from the board, signed with its key
            sent = [codec.decode_frame(raw, {SID: key}) for raw in link.sent]
            carrier = [f for f in sent if f.type == codec.STATUS and "console" in f.body.fields]  # type: ignore[union-attr]
            assert [f.seq for f in carrier] == [int(ev.key.split(":")[0])]
        finally:
            store.close()
    finally:
        if b is not None:
            b.stop()
        if link is not None:
            link.close()
        cen.stop()
        gw.close()

