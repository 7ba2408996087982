"""A non-editable install (``pip install .``) holds every package and the data files the
code opens at run time: a wheel is built from a copy of the source and checked."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "host_tools", "sim")
# what the code opens next to its modules (Path(__file__).with_name(...)), by directory
RUNTIME_DATA = ("host_tools/center/schemas", "host_tools/dashboard/templates", "protocol/vectors")
RUNTIME_FILES = ("protocol/elements.csv", "protocol/config_keys.csv")


def _source_files() -> set[str]:
    """Every module of the packages and every run-time data file, relative to the root."""
    want = set(RUNTIME_FILES)
    for top in PACKAGES:
        want |= {p.relative_to(ROOT).as_posix() for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts}
    for d in RUNTIME_DATA:
        want |= {p.relative_to(ROOT).as_posix() for p in (ROOT / d).rglob("*") if p.is_file()}
    return want


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"  # a copy: the build's build/ and egg-info stay out of the work tree
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for top in PACKAGES:
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(work / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (built,) = (work / "dist").glob("hydrolink-*.whl")
    return built


def test_wheel_holds_every_package_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    want = _source_files()
    assert any(n.startswith("host_tools/center/schemas/") and n.endswith(".xsd") for n in want)
    missing = sorted(want - names)
    assert not missing, f"{len(missing)} of {len(want)} files not in the wheel, e.g. {missing[:5]}"


def test_installed_wheel_finds_its_data(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    checks = ["import host_tools, host_tools.center.waterml as w, host_tools.dashboard.web as d",
              "import protocol.elements as e",
              "print(host_tools.__file__)",
              "assert (w.SCHEMAS / 'schemas.opengis.net/waterml/2.0/waterml2.xsd').is_file()",
              "assert (d.TEMPLATES / 'base.html').is_file() and e.TABLE.is_file()"]
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}  # the unpacked wheel, not the work tree
    r = subprocess.run([sys.executable, "-c", "; ".join(checks)], cwd=tmp_path, capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().startswith(str(site))  # the wheel's copy, not the work tree's
