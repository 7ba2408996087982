"""The CDDL schema (protocol/frame.cddl) against the golden vectors and hand-made bodies.

Every check runs the real ``cddl-verify`` command line (its ``main()``: argv, JSON
diagnostics, exit status), many bodies to a process, one process per core. A body's
verdict combines two checks:

- the schema, with the rule for the frame type in the header (``data-body`` ...);
- deterministic encoding (SPEC §4), with ``--require-deterministic``. The SPEC's
  encoding is RFC 8949 §4.2.1 except that floats are always float64, which that
  option rejects when a shorter float holds the value. So for a body with floats
  the schema runs on the body as is (``float64`` in the schema insists on 0xfb)
  and the encoding check on a copy whose floats are re-encoded shortest.

Vectors that the generator marks ``cddl_detects: false`` break rules no schema can
state (the content of ``values``, the order of quality runs): the schema must
accept them, so that the flag stays true.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cobs import cobs

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "protocol" / "frame.cddl"
VECTORS = ROOT / "protocol" / "vectors"
CDDL_VERIFY = Path(sys.executable).with_name("cddl-verify")

VALID: list[dict[str, Any]] = json.loads((VECTORS / "valid.json").read_text())
INVALID: list[dict[str, Any]] = json.loads((VECTORS / "invalid.json").read_text())
BODY_INVALID = [v for v in INVALID if v["error"] == "Malformed" and "body" in v]

HEADER, TRAILER = 13, 8 + 4
TYPE_RULES = {1: "data-body", 2: "alarm-body", 3: "status-body", 4: "test-body",
              5: "result-body", 8: "ack-body", 9: "command-body"}
NAME_RULES = {"data": "data-body", "alarm": "alarm-body", "status": "status-body",
              "test": "test-body", "result": "result-body", "ack": "ack-body",
              "command": "command-body"}


# ------------------------------------------------------------ hand-made bodies


def enc(obj: Any) -> bytes:
    """Deterministic CBOR of ``obj`` (cbor2 canonical; floats must be given raw)."""
    return cbor2.dumps(obj, canonical=True)


def f64(x: float) -> bytes:
    return b"\xfb" + struct.pack(">d", x)


SER = [2, 300, 11, bytes.fromhex("d6c70804030a")]  # the SPEC §5.2 example, 5 values
ALARM = [2, 1, 70500, 70000]

# (name, rule, body, schema should accept it)
HANDMADE: list[tuple[str, str, bytes, bool]] = [
    # reports
    ("report_basic", "data-body", enc({1: [SER]}), True),
    ("report_no_series_values", "data-body", enc({1: []}), True),
    ("report_quality_runs", "data-body", enc({1: [SER + [[0, 1, 1, 1, 2, 3, 3, 1, 6]]]}), True),
    ("report_all_keys", "data-body", enc({1: [SER], 2: 7, 3: [ALARM], 4: 9}), True),
    ("report_negative_offset", "data-body", enc({1: [[2, 300, -2, b""]]}), True),
    ("report_unknown_element", "data-body", enc({1: [[200, 60, 0, b"\x00"]]}), True),
    ("report_unknown_reserved_key", "data-body", enc({1: [SER], 5: 1}), True),
    ("report_unknown_key_0", "data-body", enc({0: "x", 1: [SER]}), True),
    ("report_vendor_key", "data-body", enc({1: [SER], 64: [1, {"a": b""}, None, True]}), True),
    ("report_quality_9", "data-body", enc({1: [SER + [[1, 2, 9]]]}), False),
    ("report_quality_0", "data-body", enc({1: [SER + [[1, 2, 0]]]}), False),
    ("report_quality_count_0", "data-body", enc({1: [SER + [[1, 0, 3]]]}), False),
    ("report_quality_not_triples", "data-body", enc({1: [SER + [[1, 2]]]}), False),
    ("report_quality_empty", "data-body", enc({1: [SER + [[]]]}), False),
    ("report_negative_element", "data-body", enc({1: [[-1, 300, 0, b""]]}), False),
    ("report_interval_too_long", "data-body", enc({1: [[2, 86400 * 31 + 1, 0, b""]]}), False),
    ("report_offset_below_int64", "data-body", enc({1: [[2, 300, -(2**63) - 1, b""]]}), False),
    ("report_values_text", "data-body", enc({1: [[2, 300, 0, "x"]]}), False),
    ("report_float_values", "data-body", bytes.fromhex("a10181840219012c00") + f64(1.5), False),
    ("report_float_offset", "data-body", bytes.fromhex("a10181840219012c") + f64(0.0) + b"\x40",
     False),
    ("report_dropped_0", "data-body", enc({1: [SER], 2: 0}), False),
    ("report_dropped_negative", "data-body", enc({1: [SER], 2: -1}), False),
    ("report_flags_0", "data-body", enc({1: [SER], 4: 0}), False),
    ("report_alarms_empty", "data-body", enc({1: [SER], 3: []}), False),
    ("report_vendor_key_float", "data-body", enc({1: [SER], 64: 0})[:-1] + f64(1.0), True),
    ("report_vendor_key_undefined", "data-body", enc({1: [SER], 64: 0})[:-1] + b"\xf7", False),
    ("report_text_key", "data-body", enc({1: [SER], "x": 1}), False),
    ("report_tag", "data-body", enc({1: [SER], 64: cbor2.CBORTag(1, 5)}), False),
    ("test_basic", "test-body", enc({1: [SER]}), True),
    # alarms
    ("alarm_level_high", "alarm-body", enc({1: [SER], 3: [ALARM]}), True),
    ("alarm_rain_window", "alarm-body", enc({1: [], 3: [[1, 1, 300, 250, 1800]]}), True),
    ("alarm_rise_and_battery", "alarm-body",
     enc({1: [], 3: [[3, 2, 300, 250, 1800], [5, 0, 11000, 11500]], 4: 4}), True),
    ("alarm_without_alarms", "alarm-body", enc({1: [SER]}), False),
    ("alarm_kind_0", "alarm-body", enc({1: [], 3: [[0, 1, 1, 1]]}), False),
    ("alarm_kind_6", "alarm-body", enc({1: [], 3: [[6, 1, 1, 1]]}), False),
    ("alarm_state_3", "alarm-body", enc({1: [], 3: [[2, 3, 1, 1]]}), False),
    ("alarm_window_on_level_high", "alarm-body", enc({1: [], 3: [[2, 1, 1, 1, 60]]}), False),
    ("alarm_too_short", "alarm-body", enc({1: [], 3: [[2, 1, 1]]}), False),
    # status
    ("status_empty", "status-body", enc({}), True),
    ("status_all_keys", "status-body",
     enc({1: 12400, 2: -35, 3: "1.0.0", 4: 3600, 5: 2, 6: 10, 7: 77450000, 8: 50000,
          9: 100000, 10: -3, 11: {1: 5, 4: 10, 99: 1}, 12: 0}), True),
    ("status_unknown_key", "status-body", enc({4: 1, 14: "x"}), True),
    ("status_console", "status-body", enc({13: [[1, "config x"], [2, ""]]}), True),
    ("status_reset_cause_6", "status-body", enc({5: 6}), False),
    ("status_firmware_bytes", "status-body", enc({3: b"1.0"}), False),
    ("status_uptime_negative", "status-body", enc({4: -1}), False),
    ("status_counter_negative", "status-body", enc({11: {1: -1}}), False),
    ("status_counter_text_key", "status-body", enc({11: {"tips": 1}}), False),
    ("status_oldest_past_uint32", "status-body", enc({7: 2**32}), False),
    # ack
    ("ack_one", "ack-body", enc({1: [42]}), True),
    ("ack_commands", "ack-body", enc({1: [42, 43], 2: [[7, 4], [8, 3, [100, 200]]]}), True),
    ("ack_empty_list", "ack-body", enc({1: []}), False),
    ("ack_seq_0", "ack-body", enc({1: [0]}), False),
    ("ack_seq_past_uint32", "ack-body", enc({1: [2**32]}), False),
    ("ack_commands_empty", "ack-body", enc({1: [42], 2: []}), False),
    ("ack_command_id_0", "ack-body", enc({1: [42], 2: [[0, 4]]}), False),
    # commands
    ("command_set_config", "command-body",
     enc({2: [[1, 1, {"interval": 300, "name": "x", "on": True, "k": None}]]}), True),
    ("command_set_config_float64", "command-body",
     bytes.fromhex("a10281830101a16167") + f64(0.2), True),
    ("command_unknown_op", "command-body", enc({2: [[1, 99, [1, {2: b""}]]]}), True),
    ("command_wrong_args_for_op", "command-body", enc({2: [[1, 3, "yesterday"]]}), True),
    ("command_float16", "command-body", bytes.fromhex("a10281830101a16167f93c00"), False),
    ("command_float32", "command-body", bytes.fromhex("a10281830101a16167fa3f800000"), False),
    ("command_args_undefined", "command-body", bytes.fromhex("a10281830101f7"), False),
    ("command_mixed_keys", "command-body", enc({2: [[1, 1, {"a": 1, 2: 3}]]}), False),
    ("command_without_op", "command-body", enc({2: [[1]]}), False),
    ("command_without_commands", "command-body", enc({1: [5]}), False),
    # results
    ("result_mixed", "result-body",
     enc({1: [[1, 0], [2, 2, "bad key"], [3, 0, {"interval": 300, "x": None}]]}), True),
    ("result_float_detail", "result-body", bytes.fromhex("a10181830100") + f64(-1.25), True),
    ("result_code_5", "result-body", enc({1: [[1, 5]]}), False),
    ("result_detail_null", "result-body", enc({1: [[1, 3, None]]}), False),
    ("result_empty", "result-body", enc({1: []}), False),
    # the default root takes a body of any type
    ("root_report", "frame-body", enc({1: [SER], 3: [ALARM]}), True),
    ("root_status", "frame-body", enc({5: 2}), True),
    ("root_commands", "frame-body", enc({2: [[1, 4]]}), True),
    ("root_results", "frame-body", enc({1: [[1, 0]]}), True),
    ("root_integer", "frame-body", enc(5), False),
    # encoding, which the schema cannot see and --require-deterministic does
    ("encoding_long_int", "status-body", bytes.fromhex("a1041805"), False),
    ("encoding_unsorted", "status-body", bytes.fromhex("a204010301"), False),
    ("encoding_indefinite_map", "status-body", bytes.fromhex("bf0401ff"), False),
    ("encoding_trailing_byte", "status-body", bytes.fromhex("a0a0"), False),
    ("encoding_float64_unsorted", "command-body",  # {"k": 0.5, "j": 1}: keys out of order
     bytes.fromhex("a10281830101a2616b") + f64(0.5) + bytes.fromhex("616a01"), False),
]


# ------------------------------------------------------------- the checking


def normalize_floats(data: bytes) -> tuple[bytes, bool]:
    """``data`` with each float64 re-encoded in its shortest form, and whether it had any.

    Returns ``data`` unchanged when it is not well-formed definite-length CBOR (the
    encoding check then rejects it as it is).
    """
    out = bytearray()

    def item(pos: int) -> int:
        ib = data[pos]
        major, ai = ib >> 5, ib & 0x1F
        if ai >= 28:
            raise ValueError("indefinite length or reserved")
        size = 1 + (0 if ai < 24 else 1 << (ai - 24))
        arg = int.from_bytes(data[pos + 1 : pos + size], "big") if ai >= 24 else ai
        if pos + size > len(data):
            raise ValueError("truncated")
        if major == 7 and ai == 27:
            out.extend(cbor2.dumps(struct.unpack(">d", data[pos + 1 : pos + 9])[0], canonical=True))
            found.append(True)
            return pos + size
        out.extend(data[pos : pos + size])
        pos += size
        if major in (2, 3):
            out.extend(data[pos : pos + arg])
            return pos + arg
        for _ in range({4: arg, 5: 2 * arg, 6: 1}.get(major, 0)):
            pos = item(pos)
        return pos

    found: list[bool] = []
    try:
        end = item(0)
    except (ValueError, IndexError, RecursionError):
        return data, False
    return bytes(out) + data[end:], bool(found)


@dataclass(frozen=True)
class Verdict:
    valid: bool
    problems: tuple[str, ...]


Check = tuple[Path, str, Path, bool]  # schema, rule, body file, --require-deterministic

# The real ``cddl-verify`` command line (the console script's ``main()``, argv in, JSON on
# stdout, exit status) run for many bodies in one process: a Python start and the verifier's
# import per body were 0.11 s of each 0.13 s check.
DRIVER = """
import contextlib, io, json, sys
from cddl_verifier.cli import main
out = []
for argv in json.load(sys.stdin):
    so = io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    out.append([code, so.getvalue()])
json.dump(out, sys.stdout)
"""


def verify_argv(check: Check) -> list[str]:
    schema, rule, body, deterministic = check
    argv = [str(schema), str(body), "--type", rule, "--diagnostics", "json"]
    return [*argv, "--require-deterministic"] if deterministic else argv


def run_verify(checks: list[Check]) -> list[Verdict]:
    """Every check through the command line's ``main()`` in one driver process."""
    p = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps([verify_argv(c) for c in checks]),
                       capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    out = []
    for (schema, rule, _, _), (code, stdout) in zip(checks, json.loads(p.stdout), strict=True):
        report = json.loads(stdout)
        problems = tuple(f"{d['category']}: {d['message']}" for d in report["diagnostics"]
                         if d["severity"] == "error")
        schema_errors = [d for d in report["diagnostics"] if d["category"] == "schema"]
        # A broken schema or a missing rule is a failure of the test, never a rejection.
        assert not schema_errors, f"{schema.name} / {rule}: {schema_errors}"
        assert (code == 0) == report["valid"], (code, report)
        out.append(Verdict(report["valid"], problems))
    return out


def body_checks(workdir: Path, name: str, rule: str, body: bytes) -> list[Check]:
    """The checks whose verdicts together are the schema and encoding verdict on one body."""
    original = workdir / f"{name}.cbor"
    original.write_bytes(body)
    normalized, has_floats = normalize_floats(body)
    if not has_floats:
        return [(SCHEMA, rule, original, True)]
    shortest = workdir / f"{name}.shortest.cbor"
    shortest.write_bytes(normalized)
    return [(SCHEMA, rule, original, False), (workdir / "anything.cddl", "anything", shortest, True)]


def frame_body(frame_hex: str) -> tuple[int, bytes]:
    raw = bytes.fromhex(frame_hex)
    return raw[0] & 0x0F, raw[HEADER:-TRAILER]


def cases() -> dict[str, tuple[str, bytes]]:
    """Every body to check: name -> (rule, body)."""
    out: dict[str, tuple[str, bytes]] = {}
    for v in VALID:
        ftype, body = frame_body(v["frame"])
        assert TYPE_RULES[ftype] == NAME_RULES[v["message"]["type"]], v["name"]
        out[f"valid-{v['name']}"] = (NAME_RULES[v["message"]["type"]], body)
        out[f"root-{v['name']}"] = ("frame-body", body)
    for v in BODY_INVALID:
        ftype, body = frame_body(cobs.decode(bytes.fromhex(v["wire"])[:-1]).hex())
        assert body.hex() == v["body"], v["name"]
        out[f"invalid-{v['name']}"] = (TYPE_RULES[ftype], body)
    for name, rule, body, _ in HANDMADE:
        out[f"hand-{name}"] = (rule, body)
    return out


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Verdict]:
    assert CDDL_VERIFY.exists(), f"{CDDL_VERIFY} not installed (pip install cddl-verifier)"  # its main() runs
    workdir = tmp_path_factory.mktemp("cddl")
    (workdir / "anything.cddl").write_text("anything = any\n")
    todo = cases()
    checks = {n: body_checks(workdir, n, *todo[n]) for n in todo}
    flat = [c for n in todo for c in checks[n]]
    workers = max(2, os.cpu_count() or 2)  # one driver process per core, an equal share each
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(run_verify, [flat[i::workers] for i in range(workers)]))
    done = {c: v for i, part in enumerate(parts) for c, v in zip(flat[i::workers], part, strict=True)}
    return {n: Verdict(all(done[c].valid for c in checks[n]), sum((done[c].problems for c in checks[n]), ()))
            for n in todo}


# --------------------------------------------------------------------- tests


def test_vectors_have_bodies_of_every_type() -> None:
    assert {v["message"]["type"] for v in VALID} == set(NAME_RULES)
    assert len(BODY_INVALID) >= 10


def test_float_normalization() -> None:
    body = bytes.fromhex("a10281830101a16167") + f64(1.0)
    assert normalize_floats(body) == (bytes.fromhex("a10281830101a16167f93c00"), True)
    assert normalize_floats(b"\xa1\x01\x80") == (b"\xa1\x01\x80", False)
    assert normalize_floats(b"\xbf\xff") == (b"\xbf\xff", False)


@pytest.mark.parametrize("v", VALID, ids=[v["name"] for v in VALID])
def test_valid_vector_body_matches_its_type(
    v: dict[str, Any], verdicts: dict[str, Verdict]
) -> None:
    verdict = verdicts[f"valid-{v['name']}"]
    assert verdict.valid, verdict.problems


@pytest.mark.parametrize("v", VALID, ids=[v["name"] for v in VALID])
def test_valid_vector_body_matches_root(v: dict[str, Any], verdicts: dict[str, Verdict]) -> None:
    verdict = verdicts[f"root-{v['name']}"]
    assert verdict.valid, verdict.problems


@pytest.mark.parametrize("v", BODY_INVALID, ids=[v["name"] for v in BODY_INVALID])
def test_malformed_vector_body(v: dict[str, Any], verdicts: dict[str, Verdict]) -> None:
    verdict = verdicts[f"invalid-{v['name']}"]
    if v.get("cddl_detects", True):
        assert not verdict.valid, f"{v['name']} ({v['description']}) passes the schema"
    else:
        assert verdict.valid, (
            f"{v['name']} is marked cddl_detects=false but the schema rejects it: "
            f"set the flag in protocol/make_vectors.py. {verdict.problems}")


@pytest.mark.parametrize(("name", "rule", "body", "accept"), HANDMADE,
                         ids=[h[0] for h in HANDMADE])
def test_handmade_body(name: str, rule: str, body: bytes, accept: bool,
                       verdicts: dict[str, Verdict]) -> None:
    verdict = verdicts[f"hand-{name}"]
    assert verdict.valid == accept, f"{body.hex()} under {rule}: {verdict.problems}"
