"""What a flash writes: the build's files, the station's configuration and the manifest.

Shared by ``flash --port`` (over the REPL) and ``flash --image`` (a littlefs2 image). The
order is part of the plan: ``main.py`` is removed first and written last, so a board whose
flash is cut part-way holds no ``main.py`` and boots to its REPL, never into a mix of old
and new modules.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.field.build import MANIFEST, Manifest
from host_tools.field.provision import firmware_config

CONFIG = "config.json"
LAST = "main.py"


class FlashError(Exception):
    """Nothing to flash, a bad file, a board that did not answer. ``str()`` is one line.

    ``status``: the exit status it means: 2 a bad file or usage (the default), 1 the board
    (it failed or went away part-way).
    """

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Item:
    """One file for the board: its path there, its bytes, their sha256."""

    path: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Plan:
    """The files in the order they are written (``main.py`` last), and what the board is."""

    items: tuple[Item, ...]
    manifest: Manifest
    station: int

    @property
    def dirs(self) -> list[str]:
        """Folders the files need, parents first."""
        out: set[str] = set()
        for it in self.items:
            parts = it.path.split("/")[:-1]
            out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        return sorted(out)

    @property
    def size(self) -> int:
        return sum(len(it.data) for it in self.items)

    def describe(self) -> list[str]:
        """One line per file for ``--dry-run``."""
        lines = [f"remove  {LAST} (first: a cut flash then boots to the REPL)"]
        lines += [f"mkdir   {d}" for d in self.dirs]
        lines += [f"write   {it.path:<22} {len(it.data):>7,} B  sha256 {it.sha256[:16]}" for it in self.items]
        return lines


def load_config(path: Path, station: int) -> dict[str, Any]:
    """The provisioned config.json; refused if it is not station ``station``'s or the board would refuse it."""
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise FlashError(f"{path}: no such file; provision the station first "
                         f"(hydrolink provision {station} --name ...)") from None
    except (OSError, ValueError) as e:
        raise FlashError(f"{path}: not a station configuration ({e})") from None
    if not isinstance(cfg, dict):
        raise FlashError(f"{path}: not a JSON object")
    if cfg.get("station") != station:
        raise FlashError(f"{path} is the configuration of station {cfg.get('station')}, not {station}")
    fw = firmware_config()
    _, errors = fw.validate(cfg)
    if errors:
        raise FlashError(f"{path}: the station would refuse it: {'; '.join(errors)}")
    if not cfg.get("key"):
        raise FlashError(f"{path}: no key; provision the station (hydrolink provision)")
    return cfg


def make_plan(build_dir: Path, config_path: Path, station: int) -> Plan:
    """Check the build against its manifest and put the flash together."""
    man = Manifest.load(build_dir)
    items = []
    for rel, digest in sorted(man.files.items(), key=lambda kv: (kv[0] == LAST, kv[0])):
        try:
            data = (build_dir / rel).read_bytes()
        except OSError as e:
            raise FlashError(f"{build_dir / rel}: {e.strerror or e}; run `hydrolink build` again") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise FlashError(f"{build_dir / rel} does not match its manifest; run `hydrolink build` again")
        items.append(Item(rel, data))
    load_config(config_path, station)
    cfg_item = Item(CONFIG, config_path.read_bytes())
    man_item = Item(MANIFEST, (build_dir / MANIFEST).read_bytes())
    last = [it for it in items if it.path == LAST]
    rest = [it for it in items if it.path != LAST]
    if not last:
        raise FlashError(f"{build_dir}: the build has no {LAST}")
    return Plan((*rest, cfg_item, man_item, *last), man, station)


class Progress:
    """A one-line progress bar on a terminal (a line per file when the output is not one)."""

    def __init__(self, total: int, stream: Any, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.width = width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.done = 0

    def update(self, done: int, name: str) -> None:
        self.done = done
        if not self.tty:
            return
        n = self.width * done // self.total
        self.stream.write(f"\r[{'#' * n}{'.' * (self.width - n)}] {100 * done // self.total:3d}% "
                          f"{done:>7,}/{self.total:,} B  {name:<20.20}")
        self.stream.flush()

    def file_done(self, name: str, size: int) -> None:
        if not self.tty:
            self.stream.write(f"  wrote {name} ({size:,} B)\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
