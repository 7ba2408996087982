"""``hydrolink flash --image``: the flash plan as a littlefs2 filesystem image.

The image is what the board's filesystem partition holds: littlefs2 with the partition's
block size (4096 on the ESP32 and the RP2040) and block count (its size / block size:
512 for the 2 MiB ``vfs`` partition of MicroPython's 4 MiB ESP32 table, at 0x200000).
A virtual board boots from it (``sim/repl.py``); ``esptool write_flash 0x200000 FILE``
puts it on a real ESP32. After writing, the image is mounted again and every file hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from littlefs import LittleFS, LittleFSError

from host_tools.field.plan import FlashError, Plan
from host_tools.field.provision import write_atomic


def write_image(plan: Plan, path: Path, block_size: int = 4096, block_count: int = 512) -> list[str]:
    """Write the plan's files into a new image at ``path``; returns what did not read back."""
    if block_size < 128 or block_size & (block_size - 1):
        raise FlashError(f"--block-size {block_size}: must be a power of two, at least 128")
    need = plan.size // block_size + 2 * len(plan.items) + 16
    if block_count < need:
        raise FlashError(f"--block-count {block_count}: {plan.size:,} B of files need about {need} "
                         f"blocks of {block_size} B")
    fs = LittleFS(block_size=block_size, block_count=block_count)
    try:
        for d in plan.dirs:
            with contextlib.suppress(LittleFSError):
                fs.mkdir(d)
        for it in plan.items:
            with fs.open(it.path, "wb") as f:
                f.write(it.data)
    except LittleFSError as e:
        raise FlashError(f"the image is too small for the files ({e}); raise --block-count") from None
    data = bytes(fs.context.buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, 0o600)  # the image holds the station's key
    return verify_image(plan, path, block_size, block_count)


def verify_image(plan: Plan, path: Path, block_size: int, block_count: int) -> list[str]:
    """Mount the image file and compare every file with the plan."""
    raw = path.read_bytes()
    if len(raw) != block_size * block_count:
        return [f"{path}: {len(raw):,} B, expected {block_size * block_count:,} ({block_count} x {block_size})"]
    fs = LittleFS(block_size=block_size, block_count=block_count, mount=False)
    fs.context.buffer = bytearray(raw)
    try:
        fs.mount()
    except LittleFSError as e:
        return [f"{path}: not a littlefs2 image with {block_size} B blocks ({e})"]
    bad = []
    for it in plan.items:
        try:
            with fs.open(it.path, "rb") as f:
                got = hashlib.sha256(f.read()).hexdigest()
        except LittleFSError:
            bad.append(f"{it.path}: missing in the image")
            continue
        if got != it.sha256:
            bad.append(f"{it.path}: differs in the image")
    return bad
