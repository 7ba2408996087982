"""The README is a test: every example marked ``<!-- readme-test: ... -->`` runs as written
from a fresh clone (or, for tables and files, is checked against the code it describes)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_tools.gateway.config import load_toml
from host_tools.registry import RegistryError, parse_registry

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"<!-- readme-test: (\S+)[^>]*-->\n(?:```(\w*)\n(.*?)\n```|(\|.*?)\n\n)", re.S)
TEXT_KEY = "0123456789abcdef" * 4


def blocks(kind: str) -> list[tuple[str, str]]:
    """(language, text) of each block marked ``kind``, in README order."""
    return [(m.group(2) or "table", m.group(3) if m.group(3) is not None else m.group(4))
            for m in BLOCK.finditer(README) if m.group(1) == kind]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh clone of the committed tree, and an environment whose ``hydrolink`` is it."""
    base = tmp_path_factory.mktemp("readme")
    repo = base / "hydrolink"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True, timeout=120)
    bin_dir = base / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "hydrolink"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m host_tools.cli "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(repo))
    where = subprocess.run([sys.executable, "-c", "import host_tools; print(host_tools.__file__)"],
                           cwd=repo, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(repo)), "the clone's code, not the work tree's"
    yield repo, env


def _gateway_spool(repo: Path, env: dict[str, str]) -> None:
    """What the Commands examples need: a spool that a gateway has run on."""
    proc = subprocess.Popen(["hydrolink", "gateway", "--registry", "examples/stations.toml",
                             "--spool", "spool.db", "--listen", "127.0.0.1:0", "--no-mqtt"],
                            cwd=repo, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    for line in proc.stderr:
        if "gateway running" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(20) == 0


def test_the_readme_marks_its_examples() -> None:
    assert len(blocks("run")) >= 4
    assert blocks("registry") and blocks("registry-errors") and blocks("wiring")
    assert blocks("gateway-toml")


def test_every_runnable_example_runs_from_a_fresh_clone(
        clone: tuple[Path, dict[str, str]]) -> None:
    repo, env = clone
    for m in BLOCK.finditer(README):
        if m.group(1) != "run":
            continue
        lang, text = m.group(2), m.group(3)
        if "spool.db" in m.group(0).split("\n", 1)[0]:
            _gateway_spool(repo, env)
        if lang == "sh":
            r = subprocess.run(["bash", "-e", "-c", text], cwd=repo, env=env,
                               capture_output=True, text=True, timeout=300)
        else:
            assert lang == "python", lang
            r = subprocess.run([sys.executable, "-c", text], cwd=repo, env=env,
                               capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"README example failed:\n{text}\n--- stderr:\n{r.stderr}"
        assert "Traceback" not in r.stderr, r.stderr
    # what the examples promise
    assert (repo / "frames.jsonl").stat().st_size > 0
    status = subprocess.run(["hydrolink", "command", "--spool", "spool.db", "--status",
                             "1001"], cwd=repo, env=env, capture_output=True, text=True)
    states = [line.split()[3] for line in status.stdout.splitlines()[1:]]
    assert states == ["waiting", "waiting", "waiting", "cancelled"], status.stdout


def test_the_registry_example_parses() -> None:
    [(lang, text)] = blocks("registry")
    reg = parse_registry(text, "stations.toml")
    assert lang == "toml" and sorted(reg.stations) == [1001, 1002]


REGISTRY_FOR = {  # each README error line, and a registry that gives it
    "key has 62": f'[[station]]\nid = 1002\nname = "a"\nkey = "{TEXT_KEY[:62]}"\n',
    "duplicate id": "".join(f'[[station]]\nid = {i}\nname = "a"\nkey = "{TEXT_KEY}"\n'
                            for i in (1001, 1002, 1001)),
    "name = 5": f'[[station]]\nid = 1003\nname = 5\nkey = "{TEXT_KEY}"\n',
    "id 4294967295": f'[[station]]\nid = 1\nname = "a"\nkey = "{TEXT_KEY}"\n'
                     f'[[station]]\nid = 4294967295\nname = "b"\nkey = "{TEXT_KEY}"\n',
}


def test_the_registry_error_examples_are_what_the_code_says() -> None:
    [(_, text)] = blocks("registry-errors")
    lines = text.splitlines()
    assert len(lines) == len(REGISTRY_FOR)
    for line in lines:
        [toml] = [t for needle, t in REGISTRY_FOR.items() if needle in line]
        with pytest.raises(RegistryError) as e:
            parse_registry(toml, "stations.toml")
        assert f"hydrolink: {e.value}" == line


def test_the_wiring_table_is_the_board_module() -> None:
    src = (ROOT / "firmware" / "boards" / "esp32.py").read_text()
    const = {k: int(v) for k, v in re.findall(r"^(_\w+) = const\((\d+)\)", src, re.M)}
    baud = int(re.search(r"machine\.UART\(_UART_ID, (\d+)", src).group(1))  # type: ignore[union-attr]
    [(_, table)] = blocks("wiring")
    rows = {r.split("|")[1].strip().split(" (")[0]: r.split("|")[2:4]
            for r in table.splitlines()[2:]}
    assert rows["rain gauge"][0].strip() == f"GPIO{const['_RAIN_PIN']}"
    assert rows["water level"][0].strip() == f"GPIO{const['_LEVEL_ADC']}"
    assert rows["battery voltage"][0].strip() == f"GPIO{const['_BATT_ADC']}"
    assert f"x{const['_BATT_DIV']}" in rows["battery voltage"][1]
    assert rows["data link"][0].strip() == (f"UART{const['_UART_ID']}: TX GPIO{const['_TX']}, "
                                            f"RX GPIO{const['_RX']}")
    assert f"{baud} baud" in rows["data link"][1]
    assert "ATTN_11DB" in src and all("11 dB" in rows[k][1] for k in ("water level",
                                                                          "battery voltage"))


def test_the_gateway_toml_example_is_valid(tmp_path: Path) -> None:
    [(_, text)] = blocks("gateway-toml")
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    cfg = load_toml(str(path))
    assert cfg["registry"] == str(tmp_path / "stations.toml") and cfg["listen"]
