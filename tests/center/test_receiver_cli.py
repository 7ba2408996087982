"""``hydrolink center --status`` and bad usage; ``store_messages`` (what ``center import`` calls)."""

from __future__ import annotations

import json
from pathlib import Path

from host_tools.center import open_store
from host_tools.center.messages import convert, store_messages
from tests.gateway.helpers import hydrolink as run_cli

from .feed import Fleet, obs, status


def test_store_messages_and_status(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    fleet = Fleet(range(8001, 8004), 2)
    msgs = [*fleet.messages, status(8001, 9, 80_000_000), ("hydrolink/v1/8001/obs", b"\xff\xfe"),
            ("hydrolink/v1/8001/obs", obs(8001, 1, 80_000_000, 12, seed=3)[1])]
    with open_store(url) as s:
        result, rejected = store_messages(s, msgs)
        first = {r[:3]: r[3] for r in convert(*fleet.messages[0], 1.9e9).observations}
        changed = sum(first[r[:3]] != r[3] for r in convert(*msgs[-1], 1.9e9).observations)
        assert changed > 10 and (result.inserted, result.revised, rejected) == (fleet.readings, changed, 1)
        # the import run again (less the message the revision replaced) stores nothing new
        result, rejected = store_messages(s, msgs[1:])
        assert (result.inserted, result.revised) == (0, 0) and s.count_observations() == fleet.readings
    r = run_cli("center", "--db", url, "--status")
    assert r.returncode == 0, r.stderr
    assert "observations" in r.stdout and f"{fleet.readings:,}" in r.stdout
    assert "bad_json" in r.stdout and "hydrolink/v1/8001/obs bad_json: not JSON" in r.stdout
    r = run_cli("center", "--db", url, "--status", "--json")
    st = json.loads(r.stdout)
    assert st["counts"]["observations"] == fleet.readings and st["rejects"] == {"bad_json": 2}
    assert st["counts"]["status"] == 1 and st["schema_version"] >= 2
    assert st["counts_are"].startswith("rows inserted (highest rowid")  # the cheap count, one seek a table
    r = run_cli("center", "--db", url, "--status", "--exact")
    assert "; rows counted:" in r.stdout and f"{fleet.readings:,}" in r.stdout


def test_conversion_is_pure_and_names_the_reason() -> None:
    topic, payload = obs(8001, 1, 80_000_000, 3)
    a, b = convert(topic, payload, 1.9e9), convert(topic, payload, 1.9e9)
    assert a == b and len(a.observations) == 6 and not a.rejects
    bad = convert("hydrolink/v1/8001/obs", payload.replace(b'"quality":"good"', b'"quality":"great"', 1), 1.9e9)
    assert [r.reason for r in bad.rejects] == ["unknown_quality"] and len(bad.observations) == 3
    assert "quality 'great'" in bad.rejects[0].detail
    doc = json.loads(payload)
    doc["received"] = "2024-02-01T00:00:00.000Z"  # the gateway got it long before its readings' times
    late = convert(topic, json.dumps(doc).encode(), 1.9e9)
    assert late.rejects[0].reason == "bad_time" and not late.observations
    assert convert("hydrolink/v2/8001/obs", payload, 1.9e9).rejects[0].reason == "bad_topic"
    assert convert("other/v1/8001/obs", payload, 1.9e9, prefix="other/v1").observations


def test_bad_usage_is_one_line(tmp_path: Path) -> None:
    for args, words in [
        (["--db", f"sqlite:///{tmp_path}/none/c.db", "--status"], "its directory does not exist"),
        (["--db", "mysql://x/y", "--status"], "unknown database URL"),
        (["--db", f"sqlite:///{tmp_path}/c.db"], "needs --mqtt URL"),
        (["--db", f"sqlite:///{tmp_path}/c.db", "--mqtt", "mqtt://h", "--share", "g", "--mqtt-version", "3.1.1"],
         "--share needs --mqtt-version 5"),
        (["--db", f"sqlite:///{tmp_path}/c.db", "--mqtt", "http://h"], "--mqtt 'http://h'"),
        (["--db", "postgresql://nobody@127.0.0.1:1/x", "--status"], "cannot connect to PostgreSQL"),
        (["--db", f"sqlite:///{tmp_path}/c.db", "--mqtt", "mqtt://h", "--metrics", "nohost"], "--metrics"),
    ]:
        r = run_cli("center", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hydrolink: ") and words in lines[0], (args, r.stderr)
