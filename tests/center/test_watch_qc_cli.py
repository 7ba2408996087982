"""``hydrolink qc`` on the real store (SQLite and PostgreSQL): approve, provisional, correct, show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.center import ObsRow, Store
from host_tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
SID = 1003
T0 = 1_780_000_200   # 2026-05-28T20:30:00Z


def _fill(store: Store) -> None:
    store.upsert_observations([ObsRow(SID, "water_level", T0 + 300 * i, 68.0 + 0.01 * i, "good", T0)
                               for i in range(6)])


def qc(url: str, *args: str) -> int:
    return main(["qc", "--db", url, *args])


def test_approve_provisional_correct_each_a_revision(store: Store, store_url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _fill(store)
    base = ["--station", str(SID), "--element", "water_level"]
    assert qc(store_url, "approve", *base, "--from", "2026-05-28T20:30Z", "--to", "2026-05-28T20:45Z",
              "--by", "Wang", "--note", "checked against staff gauge") == 0
    marks = store.marks(SID, "water_level", T0, T0 + 3000)
    assert [(m[0], m[1], m[2]) for m in marks] == [(T0 + 300 * i, "approved", "Wang") for i in range(4)]
    assert qc(store_url, "provisional", *base, "--time", "2026-05-28T20:35:00Z", "--by", "Li",
              "--note", "sensor was cleaned") == 0
    assert store.marks(SID, "water_level", T0 + 300, T0 + 300)[0][1:3] == ("provisional", "Li")
    assert qc(store_url, "correct", *base, "--time", "2026-05-28T20:40Z", "--value", "68.5", "--by", "Li",
              "--note", "staff gauge read 68.50") == 0
    got = {o.time: o for o in store.observations(SID, "water_level", T0, T0 + 3000)}
    assert got[T0 + 600].value == 68.5 and got[T0 + 600].quality == "manual"
    assert [o.value for t, o in sorted(got.items()) if t != T0 + 600] == [68.0, 68.01, 68.03, 68.04, 68.05]
    revs = store.revisions(SID, "water_level", T0, T0 + 3000)
    # 4 approvals + 1 provisional (value unchanged) + 1 correction (old -> new)
    assert len(revs) == 6
    corr = [r for r in revs if r.new_value != r.old_value]
    assert [(r.time, r.old_value, r.new_value, r.old_quality, r.new_quality, r.who, r.why) for r in corr] == [
        (T0 + 600, 68.02, 68.5, "good", "manual", "Li", "staff gauge read 68.50")]
    assert {r.why for r in revs if r.who == "Wang"} == {"approved: checked against staff gauge"}
    # station data sent again does not undo the correction
    store.upsert_observations([ObsRow(SID, "water_level", T0 + 600, 68.02, "good", T0 + 9)])
    assert store.observations(SID, "water_level", T0 + 600, T0 + 600)[0].value == 68.5
    # show lists quality, flags and review state
    capsys.readouterr()
    assert qc(store_url, "show", *base, "--from", "2026-05-28T20:30Z", "--to", "2026-05-28T20:55Z") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("time\tvalue") and len(out) == 7
    assert out[1].split("\t")[4:] == ["approved", "Wang"] and out[3].split("\t")[1:3] == ["68.5", "manual"]
    assert out[6].split("\t")[4] == "provisional"


def test_qc_errors_are_one_line(tmp_path: Path, store: Store, store_url: str) -> None:
    _fill(store)
    base = ["qc", "--db", store_url, "--station", str(SID), "--element", "water_level"]
    cases = [
        (["approve", "--time", "2026-05-28T20:30Z"], 2, "needs --by NAME"),
        (["correct", "--time", "2026-05-28T20:30Z", "--by", "Li", "--value", "1"], 2, "--note TEXT"),
        (["correct", "--time", "2026-05-28T20:30Z", "--by", "Li", "--value", "abc", "--note", "x"], 2,
         "not a number"),
        (["approve", "--time", "yesterday", "--by", "Li"], 2, "cannot read time"),
        (["approve", "--from", "2026-05-28T20:30Z", "--by", "Li"], 2, "--from T and --to T"),
        (["approve", "--time", "2027-01-01T00:00Z", "--by", "Li"], 1, "nothing changed"),
    ]
    for args, code, text in cases:
        p = subprocess.run([sys.executable, "-m", "host_tools.cli", *base[:1], *args, *base[1:]], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == code, (args, p.stderr)
        assert p.stderr.startswith("hydrolink: ") and text in p.stderr and p.stderr.count("\n") == 1, p.stderr
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "qc", "--db", f"sqlite:///{tmp_path}/no/such/dir.db",
                        "approve", "--station", "1", "--element", "rain", "--time", "2026-01-01T00:00Z",
                        "--by", "x"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.startswith("hydrolink: ") and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1
    assert store.revisions(SID, "water_level", T0, T0 + 3000) == []


def test_center_watch_flags_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    for extra, text in ((["--gateway-spool", str(tmp_path / "none.db")], "no such file"),
                        (["--gap-attempts", "0"], "--gap-attempts 1 or more"),
                        (["--gap-retry", "0"], "--gap-retry above 0")):
        assert main(["center", "--db", db, "--mqtt", "mqtt://127.0.0.1:1", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("hydrolink: ") and text in err and err.count("\n") == 1, err
