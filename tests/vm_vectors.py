# Golden vectors (protocol/vectors/*.json) against the board codec. A
# MicroPython script, run on the VM by tests/test_board_codec.py:
#   micropython tests/vm_vectors.py [vectors_dir]
# with firmware/ on MICROPYPATH. Prints one line per failure and a summary
# "vectors: N passed, M failed"; exits 1 on any failure.
import gc
import json
import sys
from binascii import hexlify, unhexlify

import frame_full as frame

TYPES = {"data": 1, "alarm": 2, "status": 3, "test": 4, "result": 5, "ack": 8, "command": 9}
NAMES = {v: k for k, v in TYPES.items()}
STATUS = {
    "battery_mv": 1, "temperature": 2, "firmware": 3, "uptime": 4, "reset_cause": 5,
    "queue_depth": 6, "oldest_unacked": 7, "free_heap": 8, "free_flash": 9,
    "clock_offset": 10, "counters": 11, "flags": 12, "console": 13,
}
STATUS_NAMES = {v: k for k, v in STATUS.items()}


def opt(d, k, base):
    # [a, b] + [d[k]] when the JSON has k
    if k in d:
        base.append(d[k])
    return base


# ---- message JSON (SPEC §10.1) <-> board body model


def encode_message(buf, m, key):
    ft = TYPES[m["type"]]
    b = m["body"]
    args = (buf, m["station"], m["seq"], m["time"], key)
    if ft in (1, 2, 4):
        series = [(s["element"], s["interval"], s["start"], s["values"], s["quality"])
                  for s in b["series"]]
        alarms = [opt(a, "window", [a["kind"], a["state"], a["value"], a["threshold"]])
                  for a in b["alarms"]]
        return frame.encode_report(buf, ft, m["station"], m["seq"], m["time"], key,
                                   series, b["dropped"], alarms, b["flags"])
    if ft == 3:
        st = {}
        for name in b:
            v = b[name]
            if name == "counters":
                v = {int(c): v[c] for c in v}
            st[STATUS[name]] = v
        return frame.encode_status(*args, st)
    if ft == 5:
        return frame.encode_result(*args, [opt(r, "detail", [r["id"], r["code"]])
                                           for r in b["results"]])
    cmds = [opt(c, "args", [c["id"], c["op"]]) for c in b["commands"]]
    if ft == 8:
        return frame.encode_ack(*args, b["acks"], cmds)
    return frame.encode_command(*args, cmds)


def _cmd_msg(c, third):
    d = {"id": c[0], "op" if third == "args" else "code": c[1]}
    if len(c) == 3:
        d[third] = c[2]
    return d


def to_message(f):
    ft, station, seq, time, body = f
    if ft in (1, 2, 4):
        series, dropped, alarms, flags = body
        b = {"series": [], "dropped": dropped, "alarms": [], "flags": flags}
        for el, iv, start, vals, q in series:
            b["series"].append({"element": el, "interval": iv, "start": start,
                                "values": vals, "quality": list(q) if q else [0] * len(vals)})
        for a in alarms:
            d = {"kind": a[0], "state": a[1], "value": a[2], "threshold": a[3]}
            if len(a) == 5:
                d["window"] = a[4]
            b["alarms"].append(d)
    elif ft == 3:
        b = {}
        for k in body:
            v = body[k]
            if k == 11:
                v = {str(c): v[c] for c in v}
            b[STATUS_NAMES[k]] = v
    elif ft == 5:
        b = {"results": [_cmd_msg(r, "detail") for r in body]}
    elif ft == 8:
        b = {"acks": body[0], "commands": [_cmd_msg(c, "args") for c in body[1]]}
    else:
        b = {"commands": [_cmd_msg(c, "args") for c in body]}
    return {"type": NAMES[ft], "station": station, "seq": seq, "time": time, "body": b}


def same(a, b):
    # equality that also tells int from float from bool (1 == 1.0 == True)
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(same(a[i], b[i]) for i in range(len(a)))
    if type(a) is dict:
        return len(a) == len(b) and all(k in b and same(a[k], b[k]) for k in a)
    return a == b


def deframe(wire, chunk):
    d = frame.Deframer()
    out = []
    for i in range(0, len(wire), chunk):
        out.extend(d.feed(wire[i:i + chunk]))
    return out


# ---- the checks


def check_valid(v, keys, buf, wire):
    m = v["message"]
    key = keys[m["station"]]
    raw = unhexlify(v["frame"])
    n = encode_message(buf, m, key)
    if bytes(buf[:n]) != raw:
        return "encode: got " + hexlify(bytes(buf[:n])).decode()
    w = frame.wrap(buf, n, wire)
    if bytes(wire[:w]) != unhexlify(v["wire"]):
        return "wire: got " + hexlify(bytes(wire[:w])).decode()
    wb = unhexlify(v["wire"])
    for chunk in (len(wb), 1, 7):
        got = deframe(wb, chunk)
        if len(got) != 1 or not isinstance(got[0], bytes) or got[0] != raw:
            return f"deframe (chunk {chunk}): {got!r}"
    f = frame.decode(got[0], keys.get)
    msg = to_message(f)
    if not same(msg, m):
        return "decode: got " + json.dumps(msg)
    # the board model round-trips too
    n = frame.encode(buf, f[0], f[1], f[2], f[3], key, f[4])
    if bytes(buf[:n]) != raw:
        return "re-encode differs"
    return None


def check_invalid(v, keys):
    got = deframe(unhexlify(v["wire"]), 5)
    if len(got) != 1:
        return f"deframer gave {len(got)} items"
    r = got[0]
    err = "accepted"
    if isinstance(r, frame.FrameError):
        err = type(r).__name__
    else:
        try:
            f = frame.decode(r, keys.get)
            if "accepted" in v:
                w = frame.ReplayWindow()
                for s in v["accepted"]:
                    w.accept(s)
                w.check(f[2])
        except frame.FrameError as e:
            err = type(e).__name__
    if err != v["error"]:
        return f"error {err}, want {v['error']}"
    return None


def objects(path):
    # the objects of a JSON array file one at a time, whitespace dropped:
    # valid.json parsed whole would take 80 KB of the 128 KB heap, and a
    # bytearray grown a byte at a time fragments it
    buf = bytearray(12288)  # the largest vector is 8.3 KB without whitespace
    n = 0
    depth = 0
    in_str = esc = False
    with open(path, "rb") as f:
        while True:
            chunk = f.read(512)
            if not chunk:
                return
            for c in chunk:
                if in_str:
                    if esc:
                        esc = False
                    elif c == 0x5C:  # backslash
                        esc = True
                    elif c == 0x22:
                        in_str = False
                elif c == 0x22:
                    in_str = True
                elif c == 0x20 or c == 0x0A or c == 0x0D or c == 0x09:
                    continue
                elif c == 0x7B or c == 0x5B:  # { [
                    depth += 1
                elif c == 0x7D or c == 0x5D:  # } ]
                    depth -= 1
                if depth >= 2 or (depth == 1 and n):
                    if n == len(buf):
                        buf = buf + bytearray(4096)
                    buf[n] = c
                    n += 1
                    if depth == 1:
                        text = str(memoryview(buf)[:n], "utf-8")
                        n = 0
                        yield json.loads(text)


def main(d):
    with open(d + "/keys.json") as f:
        keys = {int(s): frame.Key(unhexlify(k)) for s, k in json.load(f).items()}
    buf = memoryview(bytearray(frame.MAX_FRAME))
    wire = bytearray(frame.MAX_WIRE + 1)
    passed = failed = 0
    for fname, valid in (("valid.json", True), ("invalid.json", False)):
        for v in objects(d + "/" + fname):
            gc.collect()
            try:
                why = check_valid(v, keys, buf, wire) if valid else check_invalid(v, keys)
            except Exception as e:
                why = f"raised {type(e).__name__}: {e}"
            if why is None:
                passed += 1
            else:
                failed += 1
                print(f"FAIL {fname} {v['name']}: {why}")
    print(f"vectors: {passed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    if main(sys.argv[1] if len(sys.argv) > 1 else "protocol/vectors"):
        sys.exit(1)
