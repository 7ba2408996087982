"""One exit-status rule for every ``hydrolink`` command (README, "Exit status"):
0 ok, 1 data rejected, 2 bad usage or a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host_tools import cli
from host_tools.registry import registry_toml

KEY = bytes(range(32))


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_exits_2_on_bad_usage_and_0_on_help(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([command, "--definitely-not-a-flag"]) == 2
    assert "hydrolink" in capsys.readouterr().err
    assert cli.main([command, "--help"]) == 0


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "stations.toml"
    path.write_text(registry_toml({1001: KEY}))
    path.chmod(0o600)
    return path


def test_data_rejected_is_1_and_a_bad_file_is_2(
        keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x05not a frame\x00")
    assert cli.main(["decode", "--keys", str(keys), str(garbage)]) == 1  # a frame rejected
    assert cli.main(["decode", "--keys", str(keys), str(tmp_path / "nope.bin")]) == 2
    assert cli.main(["decode", "--keys", str(tmp_path / "nope.toml"), str(garbage)]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[[station]]\nid = 1\n")
    assert cli.main(["decode", "--keys", str(bad), str(garbage)]) == 2
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"station": 1001,\n')
    assert cli.main(["encode", "--keys", str(keys), "--hex", str(lines)]) == 1  # a line refused
    js = tmp_path / "frames.jsonl"
    js.write_text(json.dumps({"station": 1001, "seq": 1}) + "\n")
    assert cli.main(["decode", "--keys", str(keys), str(js)]) == 2  # JSON is not a capture
    err = capsys.readouterr().err
    assert "looks like JSON Lines; decode reads frames" in err and "hydrolink encode" in err
    assert cli.main(["gateway", "--config", str(tmp_path / "nope.toml")]) == 2
    assert cli.main(["command", "--spool", str(tmp_path / "nope.db"), "1001", "reboot"]) == 2
    assert cli.main(["gateway", "--status", "--spool", str(tmp_path / "nope.db")]) == 2


def test_encode_says_which_form_it_expected(
        keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    si = {"station": 1001, "seq": 1, "type": "data", "time": "2026-07-14T10:00:00Z",
          "series": [], "dropped": 0, "alarms": [], "flags": []}
    src = tmp_path / "si.jsonl"
    src.write_text(json.dumps(si) + "\n")
    assert cli.main(["encode", "--keys", str(keys), "--raw", "--hex", str(src)]) == 1
    err = capsys.readouterr().err
    assert "SI form that 'hydrolink decode' prints" in err and "without --raw" in err
    assert "KeyError" not in err
