"""Board codec cost per hourly report, measured on the MicroPython VM (unix port).

The frame is the SPEC example, the golden vector ``data_hourly_dry``: 12 rain + 12 level
values at 5 minutes, 56-byte raw frame. ``firmware/`` is compiled to ``.mpy`` and run with
``-X heapsize=128K``. Per frame, after a warm-up:

* **report**: ``report.encode_report`` into a preallocated buffer (header, CBOR body, delta
  coding, HMAC tag, CRC), and the same plus ``frame.wrap`` (COBS + delimiter): microseconds
  (best of 5 runs of 1,000 frames) and heap bytes allocated (``gc.mem_alloc()`` difference
  with the collector off, over 200 frames in batches of 20).
* **floor**: ``binascii.crc32`` alone on the same frame bytes, and the HMAC alone
  (``frame.Key.sign``).

Two runs: the HMAC of ``firmware/sha256.py`` (viper SHA-256 over preallocated buffers:
no allocation per tag), and its ``hashlib`` fallback (``sha256.mpy`` left out of the
image, as on a port without the native emitter: two ``hashlib.sha256`` objects and two
digests per tag, 448 bytes on the 64-bit VM, since MicroPython's ``hashlib`` has no
``copy()``).

Target: ≤ 256 bytes allocated per frame. Exits 1 if the sha256 run misses it, or if the
codec's own allocation (total minus the HMAC's) exceeds ``OWN_LIMIT``, a regression guard.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import mpvm  # noqa: E402

TARGET = 256  # bytes allocated per frame
OWN_LIMIT = 64  # bytes per frame the codec may add to the HMAC's
VECTOR = "data_hourly_dry"

VM_CODE = """
import gc, time, binascii
from binascii import unhexlify
import frame
from report import encode_report
M = {message}
key = frame.Key(unhexlify({key!r}))
want = unhexlify({frame!r})
series = [(s["element"], s["interval"], s["start"], s["values"], None)
          for s in M["body"]["series"]]
buf = memoryview(bytearray(frame.MAX_FRAME))
wire = bytearray(frame.MAX_WIRE + 1)
T = M["time"]

def report():
    return encode_report(buf, 1, M["station"], M["seq"], T, key, series)

def report_wire():
    return frame.wrap(buf, encode_report(buf, 1, M["station"], M["seq"], T, key,
                                               series), wire)

raw = bytes(buf[:report()])
assert raw == want, "frame differs from the vector"
signed = memoryview(raw)[:len(raw) - 12]
def crc():
    return binascii.crc32(raw)
def hmac():
    return key.sign(signed)

def alloc(fn, n=200, batch=20):
    for _ in range(20):
        fn()
    total = 0
    for _ in range(n // batch):
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        for _ in range(batch):
            fn()
        total += gc.mem_alloc() - a
        gc.enable()
    return total / n

def usec(fn, n=1000):
    best = None
    for _ in range(5):
        gc.collect()
        t = time.ticks_us()
        for _ in range(n):
            fn()
        d = time.ticks_diff(time.ticks_us(), t) / n
        best = d if best is None or d < best else best
    return best

print("fast", int(frame.OK))
print("frame_len", len(raw))
print("wire_len", report_wire())
for name, fn in (("report", report), ("report_wire", report_wire), ("crc", crc),
                 ("hmac", hmac)):
    print(name, usec(fn), alloc(fn))
"""


def measure(code: str, mpy_dir: Path) -> dict[str, list[float]]:
    res = mpvm.run(code=code, heapsize="128K", mpy_dir=mpy_dir)
    if res.returncode != 0:
        raise RuntimeError(res.stdout + res.stderr)
    out: dict[str, list[float]] = {}
    for line in res.stdout.splitlines():
        name, *nums = line.split()
        out[name] = [float(x) for x in nums]
    return out


def report(out: dict[str, list[float]], label: str, judged: bool) -> tuple[float, float]:
    """Print one run; returns (bytes per frame with wrap, the codec's own bytes)."""
    rep_us, rep_b = out["report"]
    wire_us, wire_b = out["report_wire"]
    crc_us, crc_b = out["crc"]
    hmac_us, hmac_b = out["hmac"]
    own = wire_b - hmac_b
    print(f"  HMAC: {label}")
    print(f"    report          encode_report         : {rep_us:7.1f} us/frame "
          f"{rep_b:6.0f} B/frame")
    print(f"    report + wire   encode_report + wrap  : {wire_us:7.1f} us/frame "
          f"{wire_b:6.0f} B/frame")
    print(f"    floor           binascii.crc32 alone  : {crc_us:7.1f} us/frame "
          f"{crc_b:6.0f} B/frame")
    print(f"    floor           HMAC alone (Key.sign) : {hmac_us:7.1f} us/frame "
          f"{hmac_b:6.0f} B/frame")
    print(f"    ratio report+wire / crc32 time: {wire_us / crc_us:.0f}x; "
          f"/ HMAC time: {wire_us / hmac_us:.1f}x")
    verdict = "TARGET MET" if wire_b <= TARGET else "TARGET MISSED"
    if not judged:
        verdict = "for comparison, not judged" if wire_b > TARGET else verdict
    print(f"    allocation: {wire_b:.0f} B/frame = HMAC {hmac_b:.0f} + codec {own:.0f}; "
          f"target <= {TARGET} B/frame: {verdict}")
    return wire_b, own


def main() -> int:
    vectors = json.loads((ROOT / "protocol" / "vectors" / "valid.json").read_text())
    keys = json.loads((ROOT / "protocol" / "vectors" / "keys.json").read_text())
    v = next(x for x in vectors if x["name"] == VECTOR)
    code = VM_CODE.format(message=json.dumps(v["message"]).replace("null", "None"),
                          key=keys[str(v["message"]["station"])], frame=v["frame"])
    with tempfile.TemporaryDirectory() as tmp:
        fast_dir = Path(tmp) / "fast"
        mpvm.build_mpy(fast_dir)
        slow_dir = Path(tmp) / "fallback"
        shutil.copytree(fast_dir, slow_dir)
        (slow_dir / "sha256.mpy").unlink()
        try:
            fast = measure(code, fast_dir)
            slow = measure(code, slow_dir)
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 1
    if fast["fast"] != [1.0] or slow["fast"] != [0.0]:
        print(f"frame.OK: {fast['fast']} with sha256, {slow['fast']} without",
              file=sys.stderr)
        return 1
    print(f"board codec on the MicroPython VM (unix port, .mpy, heap 128K): hourly report "
          f"{VECTOR}, {fast['frame_len'][0]:.0f}-byte frame, {fast['wire_len'][0]:.0f} bytes "
          "on the wire")
    wire_b, own = report(fast, "firmware/sha256.py (viper)", True)
    _, own_slow = report(slow, "hashlib fallback (no sha256.mpy)", False)
    ok = own <= OWN_LIMIT and own_slow <= OWN_LIMIT and wire_b <= TARGET
    print(f"  codec's own allocation {own:.0f} / {own_slow:.0f} B/frame (limit {OWN_LIMIT}), "
          f"{wire_b:.0f} B/frame with sha256 (target {TARGET}): "
          f"{'OK' if ok else 'REGRESSION'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
