"""hydrolink build and provision: reproducible builds per CPU, provisioning in one atomic step."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from .flashkit import ROOT, hydrolink, ok

# .mpy header byte 2: the native architecture in its upper bits (py/persistentcode.h)
MPY_ARCH = {"sim": 2, "rp2": 4, "esp32": 10}  # x64, armv6m, xtensawin


def test_build_is_reproducible_and_per_architecture(tmp_path: Path) -> None:
    # a snapshot of the tree, so that edits made meanwhile in the shared work tree do not count
    src = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware", src, ignore=shutil.ignore_patterns("__pycache__"))
    for board in ("esp32", "rp2", "sim"):
        ok(hydrolink(tmp_path, "build", "--board", board, "--out", str(tmp_path / "a"), "--src", str(src)))
    ok(hydrolink(tmp_path, "build", "--board", "esp32", "--out", str(tmp_path / "b"), "--src", str(src)))
    a, b = tmp_path / "a" / "esp32", tmp_path / "b" / "esp32"
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel  # byte-identical
    man = json.loads((a / "manifest.json").read_text())
    version = next(ln for ln in (src / "service.py").read_text().splitlines()
                   if ln.startswith("VERSION = ")).split('"')[1]
    assert man["firmware_version"] == version
    assert man["git_revision"] == "unknown"  # the snapshot is outside git
    ok(hydrolink(tmp_path, "build", "--board", "sim", "--out", str(tmp_path / "c")))
    head = subprocess.run(["git", "log", "-1", "--format=%H", "--", "firmware"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    rev = json.loads((tmp_path / "c/sim/manifest.json").read_text())["git_revision"]
    assert rev.split("+")[0] == head  # the last commit of firmware/ (+dirty if edited since)
    listed = {f["path"]: f["sha256"] for f in man["files"]}
    assert set(listed) == {str(p) for p in files_a} - {"manifest.json"}
    for path, digest in listed.items():
        assert hashlib.sha256((a / path).read_bytes()).hexdigest() == digest
    assert "main.py" in listed and "main.mpy" not in listed  # a board runs main.py as source:
    assert (a / "main.py").read_text().splitlines()[-1].startswith("import hlmain")  # a stub, and
    assert (a / "hlmain.mpy").read_bytes()[:1] == b"M"  # the real main compiled (no compiling on the board)
    assert "boards/esp32.mpy" in listed and "boards/sim.mpy" not in listed
    assert "frame_full.mpy" not in listed and "boards/simboot.mpy" not in listed
    # sha256.py has viper code: each build compiled it for its own CPU
    for board, arch in MPY_ARCH.items():
        mpy = (tmp_path / "a" / board / "sha256.mpy").read_bytes()
        assert mpy[0:1] == b"M" and mpy[2] >> 2 == arch, board
    rp2 = {f["path"] for f in json.loads((tmp_path / "a/rp2/manifest.json").read_text())["files"]}
    assert {"boards/rp2040.mpy", "boards/esp32.mpy"} <= rp2  # rp2040 extends the ESP32 HAL


REGISTRY = """# stations of the Jiangkou telemetry system
# (keep this header)

[[station]]
id = 7
name = "Jiangkou dam"  # the oldest one
key = "{key}"
"""


def _pin_module():
    spec = importlib.util.spec_from_file_location("hl_pin", ROOT / "firmware" / "pin.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_provision_writes_config_key_pin_and_registry(tmp_path: Path) -> None:
    old = REGISTRY.format(key="ab" * 32)
    (tmp_path / "registry.toml").write_text(old)
    r = ok(hydrolink(tmp_path, "provision", "1001", "--name", "Gaoqiao upstream", "--lat", "29.871",
                     "--lon", "119.642", "--tip-mm", "0.5", "--alarm-level-m", "68.5",
                     "--report-interval", "1800", "--record-interval", "600", "--pin", "4821",
                     "--kind", "river", "--stage-warning-m", "68.0", "--flood-limit-m", "70.0"))
    cfg = json.loads((tmp_path / "stations/1001/config.json").read_text())
    key = cfg["key"]
    assert len(bytes.fromhex(key)) == 32
    assert key not in r.stdout + r.stderr and "4821" not in r.stdout + r.stderr  # no secrets shown
    assert cfg["station"] == 1001 and cfg["tip_tenths"] == 5 and cfg["level_alarm_mm"] == 68500
    assert cfg["report_interval"] == 1800
    assert _pin_module().check(cfg, "4821") and not _pin_module().check(cfg, "4822")
    text = (tmp_path / "registry.toml").read_text()
    assert text.startswith(old)  # comments and the old entry kept byte for byte
    reg = tomllib.loads(text)["station"]
    new = next(s for s in reg if s["id"] == 1001)
    assert new["key"] == key and new["name"] == "Gaoqiao upstream"
    assert new["location"] == {"lat": 29.871, "lon": 119.642}
    assert new["kind"] == "river" and new["record_interval_s"] == 600
    assert new["stages"] == {"warning": 68.0, "flood_limit": 70.0}
    from host_tools.registry import load_registry
    assert load_registry(tmp_path / "registry.toml").get(1001) is not None  # the gateway takes it

    # a duplicate id is refused and changes nothing
    before = (tmp_path / "registry.toml").read_bytes()
    r = hydrolink(tmp_path, "provision", "7", "--name", "again")
    assert r.returncode == 1 and "already registered" in r.stderr
    assert r.stderr.startswith("hydrolink: ") and "Traceback" not in r.stderr
    # a value the station would refuse: one line saying what is allowed, nothing written
    r = hydrolink(tmp_path, "provision", "1002", "--name", "x", "--report-interval", "7")
    assert r.returncode == 1 and "300 .. 86400" in r.stderr and len(r.stderr.splitlines()) == 1
    r = hydrolink(tmp_path, "provision", "1003", "--name", "x", "--record-interval", "7")
    assert r.returncode == 1 and "record_interval must divide 86400" in r.stderr
    assert (tmp_path / "registry.toml").read_bytes() == before
    assert not (tmp_path / "stations/1002").exists()

    # a generated PIN goes to pin.txt; --show-secrets prints the key and PIN
    r = ok(hydrolink(tmp_path, "provision", "1004", "--name", "y", "--sensors", "rain", "--show-secrets"))
    cfg4 = json.loads((tmp_path / "stations/1004/config.json").read_text())
    pin = (tmp_path / "stations/1004/pin.txt").read_text().split()[-1]
    assert _pin_module().check(cfg4, pin) and cfg4["key"] in r.stdout and pin in r.stdout
    assert cfg4["level_sensor"] == "none"  # no level sensor listed
    assert (tmp_path / "stations/1004/config.json").stat().st_mode & 0o077 == 0


def test_provision_crash_before_rename_leaves_the_old_registry(tmp_path: Path) -> None:
    old = REGISTRY.format(key="cd" * 32)
    (tmp_path / "registry.toml").write_text(old)
    # kill -9 of the provisioning process at the rename that would put the new file in place
    code = ("import os, sys\n"
            "os.rename = lambda a, b: os.kill(os.getpid(), 9)\n"
            "from host_tools.field.provision import cmd_provision\n"
            "cmd_provision(['1001', '--name', 'cut'])\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert p.returncode == -9
    assert (tmp_path / "registry.toml").read_text() == old
    # the half-done temp file is not a registry anyone reads, and the next provision works
    ok(hydrolink(tmp_path, "provision", "1001", "--name", "after the cut"))
    assert (tmp_path / "registry.toml").read_text().startswith(old)


def test_the_progress_bar_on_a_terminal() -> None:
    import io

    from host_tools.field.plan import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    bar = Progress(2000, out, width=10)
    bar.update(500, "store.mpy")
    assert out.getvalue().endswith("\r[##........]  25%     500/2,000 B  store.mpy           ")
    bar.update(2000, "main.py")
    bar.close()
    assert "[##########] 100%   2,000/2,000 B  main.py" in out.getvalue()
    plain = io.StringIO()  # not a terminal: a line per file, no carriage returns
    bar = Progress(10, plain)
    bar.update(10, "main.py")
    bar.file_done("main.py", 10)
    assert plain.getvalue() == "  wrote main.py (10 B)\n"


def test_exit_status_of_build_provision_and_flash(tmp_path: Path) -> None:
    # 2: a bad file or usage; 1: a value refused (README, "Exit status"); one line, no traceback
    (tmp_path / "registry.toml").write_text("[[station]]\nid = 7\n")  # no name, no key
    r = hydrolink(tmp_path, "provision", "8", "--name", "x")
    assert r.returncode == 2 and r.stderr.startswith("hydrolink: registry.toml: station 7")
    r = hydrolink(tmp_path, "provision", "8", "--name", "x", "--registry", "new.toml", "--set", "holdoff_s")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr
    r = hydrolink(tmp_path, "provision", str(2**30), "--name", "x", "--registry", "new.toml")
    assert r.returncode == 1 and "outside 1 .. 1073741823" in r.stderr
    r = hydrolink(tmp_path, "flash", "--image", "x.img", "--station", "8", "--build", str(tmp_path / "nobuild"))
    assert r.returncode == 2 and "run `hydrolink build` first" in r.stderr
    ok(hydrolink(tmp_path, "build", "--board", "sim", "--out", str(tmp_path / "b")))
    build = str(tmp_path / "b" / "sim")
    r = hydrolink(tmp_path, "flash", "--image", "x.img", "--station", "8", "--build", build)
    assert r.returncode == 2 and "provision the station first" in r.stderr
    ok(hydrolink(tmp_path, "provision", "8", "--name", "x", "--registry", "new.toml"))
    r = hydrolink(tmp_path, "flash", "--port", str(tmp_path / "ttyNONE"), "--station", "8", "--build", build)
    assert r.returncode == 2 and r.stderr.startswith("hydrolink: no board answers on")
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
