"""``firmware/sha256.py`` (viper SHA-256 / HMAC-SHA256) on the MicroPython VM.

Each check runs twice: from ``.mpy`` compiled by ``mpy-cross -march=x64`` (as a board
loads it) and from source (the VM's own native emitter). The oracle is CPython's
``hashlib``/``hmac``, and the published vectors (FIPS 180 examples, RFC 4231):

- SHA-256 of the NIST messages, of 1,000,000 × ``a``, and of seeded random messages of
  every length 0..300 (all the padding cases: 55, 56, 63, 64, 119, 120 bytes...);
- HMAC-SHA256 of RFC 4231 cases 1-7 (5 truncated to 128 bits) and of random keys
  (0..200 bytes: shorter than, equal to and longer than the block) and messages, whole,
  truncated to 8 bytes, and over a prefix of a larger buffer (``n``);
- no heap allocation per call after warm-up (``gc.mem_alloc()`` around 100 calls with
  the collector off), on a 128 KB heap; and ``report.encode_report`` + ``frame.wrap``
  allocate <= 256 bytes per frame; an ``n`` past the end of the message raises;
- ``frame.Key`` falls back on ``hashlib`` (same tags) when ``sha256`` does not import
  (an ``.mpy`` built for the ESP32) or fails its self-test.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import shutil
import subprocess
from pathlib import Path

import mpvm
import pytest

MODES = ("mpy", "source")

NIST = {
    b"": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    b"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq":
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
    b"lmnopqrsmnopqrstnopqrstu": "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
}
MILLION_A = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

# RFC 4231 §4: (key, data, HMAC-SHA-256); case 5 is truncated to 128 bits
RFC4231 = {
    1: (b"\x0b" * 20, b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    2: (b"Jefe", b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    3: (b"\xaa" * 20, b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    4: (bytes(range(1, 26)), b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    5: (b"\x0c" * 20, b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),
    6: (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    7: (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than "
        b"block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
}

# Reads case lines from the file argv[1], prints one hex result per case:
#   S <msg>                 sha256(msg)
#   H <key> <msg> <outlen>  HMAC into a bytearray(outlen)
#   P <key> <msg> <n>       HMAC of buf[:n], buf = msg + junk, through a memoryview
#   K <key> <msg>           frame.Key(key).sign(msg)
#   A <count> <byte>        sha256 of count copies of byte
CASES_VM = r"""
import sys
from binascii import hexlify, unhexlify
import sha256
import frame

def uh(s):
    return b"" if s == "-" else unhexlify(s)

d = bytearray(32)
print("selftest", sha256.OK, frame.OK)
with open(sys.argv[1]) as f:
    for line in f:
        w = line.split()
        if w[0] == "S":
            sha256.digest_into(uh(w[1]), d)
            print(hexlify(d).decode())
        elif w[0] == "H":
            out = bytearray(int(w[3]))
            sha256.Hmac(uh(w[1])).tag_into(uh(w[2]), out)
            print(hexlify(out).decode())
        elif w[0] == "P":
            buf = bytearray(uh(w[2]) + b"\xa5" * 70)
            out = bytearray(32)
            sha256.Hmac(uh(w[1])).tag_into(memoryview(buf), memoryview(out), int(w[3]))
            print(hexlify(out).decode())
        elif w[0] == "K":
            print(hexlify(frame.Key(uh(w[1])).sign(uh(w[2]))).decode())
        elif w[0] == "A":
            m = bytes([int(w[2])]) * int(w[1])
            sha256.digest_into(m, d)
            m = None
            print(hexlify(d).decode())
"""

ALLOC_VM = r"""
import gc
import sha256
import frame
import report
big = bytearray(bytes(range(256)) * 4)
mv = memoryview(big)
out8 = bytearray(8)
out32 = memoryview(bytearray(32))
key = sha256.Hmac(b"k" * 32)
longkey = sha256.Hmac(b"k" * 100)
fk = frame.Key(bytes(32))
cases = {
    "tag0": lambda: key.tag_into(b"", out8),
    "tag44": lambda: key.tag_into(mv, out8, 44),
    "tag55": lambda: key.tag_into(mv, out32, 55),
    "tag56": lambda: key.tag_into(mv, out32, 56),
    "tag64": lambda: longkey.tag_into(mv, out8, 64),
    "tag1012": lambda: key.tag_into(mv, out8, 1012),
    "tagall": lambda: key.tag_into(big, out32),
    "sha300": lambda: sha256.digest_into(mv, out32, 300),
    "sign": lambda: fk.sign(mv[:44]),
}
def per_call(fn, n=100):
    for _ in range(10):
        fn()
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(n):
        fn()
    b = gc.mem_alloc()
    gc.enable()
    return (b - a) / n
base = per_call(lambda: None)
for name, fn in cases.items():
    print(name, per_call(fn) - base)
# the whole hot path of the issue: an hourly report encoded and wrapped
T = 77450403
S = T - T % 300 - 3300
series = [(1, 300, S, [0] * 12, None),
          (2, 300, S, [70123, 70124, 70124, 70124, 70121, 70121, 70122, 70122, 70123, 70123,
                       70123, 70124], bytearray(12))]
buf = memoryview(bytearray(frame.MAX_FRAME))
wire = bytearray(frame.MAX_WIRE + 1)
def enc():
    frame.wrap(buf, report.encode_report(buf, 1, 1001, 42, T, fk, series), wire)
print("frame", per_call(enc) - base)
for name, fn in (("bounds_tag", lambda: key.tag_into(b"abc", out8, 4)),
                 ("bounds_sha", lambda: sha256.digest_into(b"", out8, 1))):
    try:
        fn()
        print(name, 1)  # read past the message
    except ValueError:
        print(name, 0)
"""


MODULES = ("sha256.py", "frame.py", "report.py", "cbor.py")  # what these checks import


@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("sha_src")
    for name in MODULES:
        shutil.copy(mpvm.FIRMWARE / name, src / name)
    d = tmp_path_factory.mktemp("sha_mpy")
    mpvm.build_mpy(d, src)
    return d


def run_vm(code: str, mode: str, mpy_dir: Path, args: tuple[str, ...] = (),
           heapsize: str = "128K") -> list[str]:
    res = mpvm.run(code=code, args=args, heapsize=heapsize,
                   mpy_dir=mpy_dir if mode == "mpy" else None)
    assert res.returncode == 0, f"VM exit {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res.stdout.splitlines()


def hx(b: bytes) -> str:
    return b.hex() if b else "-"


def cases() -> list[tuple[str, str]]:
    """(case line, expected hex) pairs, expected from the published vectors or CPython."""
    rng = random.Random(4231)
    out: list[tuple[str, str]] = []
    for m, want in NIST.items():
        assert hashlib.sha256(m).hexdigest() == want
        out.append((f"S {hx(m)}", want))
    assert hashlib.sha256(b"a" * 1_000_000).hexdigest() == MILLION_A
    out.append(("A 1000000 97", MILLION_A))
    for n in range(301):
        m = rng.randbytes(n)
        out.append((f"S {hx(m)}", hashlib.sha256(m).hexdigest()))
    for key, data, want in RFC4231.values():
        assert hmac.new(key, data, "sha256").hexdigest()[:len(want)] == want
        out.append((f"H {hx(key)} {hx(data)} {len(want) // 2}", want))
    for kn in (0, 1, 20, 32, 63, 64, 65, 100, 131, 200):
        for _ in range(3):
            key = rng.randbytes(kn)
            m = rng.randbytes(rng.choice((0, 1, 44, 55, 56, 63, 64, 119, 120, 300, 1012)))
            tag = hmac.new(key, m, "sha256").digest()
            out.append((f"H {hx(key)} {hx(m)} 32", tag.hex()))
            out.append((f"H {hx(key)} {hx(m)} 8", tag[:8].hex()))
            out.append((f"K {hx(key)} {hx(m)}", tag[:8].hex()))
            n = rng.randrange(len(m) + 1)
            out.append((f"P {hx(key)} {hx(m)} {n}",
                        hmac.new(key, m[:n], "sha256").hexdigest()))
    return out


@pytest.mark.parametrize("mode", MODES)
def test_digests_and_tags_equal_cpython(mode: str, mpy_dir: Path, tmp_path: Path) -> None:
    todo = cases()
    f = tmp_path / "cases.txt"
    f.write_text("".join(line + "\n" for line, _ in todo))
    lines = run_vm(CASES_VM, mode, mpy_dir, (str(f),), heapsize="4M")
    assert lines[0] == "selftest True True"
    got = lines[1:]
    assert len(got) == len(todo)
    bad = [(line[:60], want, g) for (line, want), g in zip(todo, got, strict=True) if g != want]
    assert not bad, bad[:5]


@pytest.mark.parametrize("mode", MODES)
def test_no_allocation_per_call(mode: str, mpy_dir: Path) -> None:
    got = {}
    for line in run_vm(ALLOC_VM, mode, mpy_dir):
        name, n = line.split()
        got[name] = float(n)
    assert (got.pop("bounds_tag"), got.pop("bounds_sha")) == (0, 0)  # n > len(msg) raises
    frame_bytes = got.pop("frame")
    sign = got.pop("sign")
    assert got == dict.fromkeys(got, 0.0), got
    assert len(got) == 8
    assert sign <= 32  # the caller's mv[:44] slice, nothing for the tag
    assert frame_bytes <= 256, frame_bytes


FALLBACK_VM = r"""
import hashlib
import frame
from binascii import hexlify
print("fast", frame.OK)
for key in (b"", b"k", bytes(range(64)), bytes(range(100))):
    for m in (b"", b"abc", bytes(range(200))):
        print(hexlify(frame.Key(key).sign(m)).decode())
"""


def fallback_lines(d: Path) -> list[str]:
    res = mpvm.run(code=FALLBACK_VM, mpy_dir=d, heapsize="128K")
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.splitlines()


def fallback_expected() -> list[str]:
    return [hmac.new(key, m, "sha256").digest()[:8].hex()
            for key in (b"", b"k", bytes(range(64)), bytes(range(100)))
            for m in (b"", b"abc", bytes(range(200)))]


@pytest.mark.parametrize("how", ["esp32_mpy", "selftest_fails", "fast"])
def test_frame_key_fallback(how: str, mpy_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "mpy"
    shutil.copytree(mpy_dir, d)
    if how == "esp32_mpy":  # ValueError: incompatible .mpy arch
        proc = subprocess.run([str(mpvm.mpy_cross()), "-march=xtensawin", "-o",
                               str(d / "sha256.mpy"), "-s", "sha256.py",
                               str(mpvm.FIRMWARE / "sha256.py")],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    elif how == "selftest_fails":
        (d / "sha256.mpy").unlink()
        (d / "sha256.py").write_text("OK = False\n\n\nclass Hmac:\n    pass\n")
    lines = fallback_lines(d)
    assert lines[0] == f"fast {how == 'fast'}"
    assert lines[1:] == fallback_expected()
