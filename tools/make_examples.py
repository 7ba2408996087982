"""Make ``examples/``: a demo registry and a capture with a storm in it, made by the real
firmware on the MicroPython VM (``sim/vboard.py``) through a scripted link (``sim/link.py``).

Run ``python tools/make_examples.py`` from the repository root; the output is committed
(the README's first commands use it). The same seeds give the same files.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from host_tools.jsonview import frame_to_si  # noqa: E402
from host_tools.registry import load_registry  # noqa: E402
from protocol import codec  # noqa: E402
from sim.link import Peer  # noqa: E402
from sim.sensors import Storm, Weather  # noqa: E402
from sim.vboard import VBoard  # noqa: E402

OUT = ROOT / "examples"
T0 = 80_006_400  # hydrolink seconds: 2026-07-15T00:00:00Z
DAYS = 2
# (id, name, sensors, extra firmware configuration)
STATIONS = [
    (1001, "Gaoqiao upstream (demo)", ["rain", "water_level", "battery_voltage"], {}),
    (1002, "Jiangkou dam (demo)", ["rain", "water_level", "battery_voltage"], {}),
    (1003, "Shangling rain gauge (demo)", ["rain", "battery_voltage"], {"level_sensor": "none"}),
]
STORM = Storm(start_s=22 * 3600, duration_s=8 * 3600, peak_mm_h=36.0)


def demo_key(sid: int) -> bytes:
    """A key anyone can compute: for the examples only, never for a real station."""
    return hashlib.sha256(b"hydrolink DEMO ONLY key %d" % sid).digest()


@dataclass
class Recorder(Peer):
    """The far end of the link, keeping every byte the station wrote (the capture)."""

    tape: list[tuple[int, bytes]] = field(default_factory=list)

    def uplink(self, ms: int, data: bytes) -> list[tuple[int, bytes]]:
        self.tape.append((ms, data))
        return super().uplink(ms, data)


def registry_text() -> str:
    out = ["# Demo stations for the README's examples. The keys below are DEMO-ONLY: anyone",
           "# can compute them (tools/make_examples.py). Never flash them into a real station;",
           '# make real keys with: python3 -c "import secrets; print(secrets.token_hex(32))"', ""]
    for sid, name, sensors, _ in STATIONS:
        out += ["[[station]]", f"id = {sid}", f'name = "{name}"',
                f'key = "{demo_key(sid).hex()}"  # DEMO ONLY', f"sensors = {json.dumps(sensors)}",
                'timezone = "Asia/Shanghai"', ""]
    return "\n".join(out)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    (OUT / "stations.toml").write_text(registry_text())
    (OUT / "stations.toml").chmod(0o600)  # keys, if only demo ones: the owner only
    registry = load_registry(OUT / "stations.toml")
    tape: list[tuple[int, int, bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (sid, _, _, extra) in enumerate(STATIONS):
            peer = Recorder({sid: demo_key(sid)}, t0=T0, seed=sid)
            board = VBoard(Path(tmp) / f"s{sid}", {"station": sid, "key": demo_key(sid).hex(),
                                                   **extra},
                           Weather(seed=sid, days=DAYS + 0.1, storms=[STORM]), peer, t0=T0,
                           seed=sid)
            board.run(DAYS * 86_400_000)
            tape += [(ms, n, data) for ms, data in peer.tape]
            print(f"station {sid}: {len(peer.frames)} frames, {len(peer.readings)} readings",
                  file=sys.stderr)
    tape.sort()
    capture = b"".join(data for _, _, data in tape)
    (OUT / "capture.bin").write_bytes(capture)
    # the same frames as JSON Lines (what decode prints; what encode reads)
    lines: list[str] = []
    kinds: dict[str, int] = {}
    for item in codec.Deframer().feed(capture):
        assert not isinstance(item, Exception), item
        frame = codec.decode_frame(item, registry.keys)
        kinds[frame.type_name] = kinds.get(frame.type_name, 0) + 1
        lines.append(json.dumps(frame_to_si(frame)))
    (OUT / "storm.jsonl").write_text("\n".join(lines) + "\n")
    print(f"examples/: {len(capture)} bytes, {len(lines)} frames {kinds}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
