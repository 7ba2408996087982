"""The CBOR subset and deterministic encoding of SPEC §4, checked on the bytes.

``check_cbor_py`` is the pure-Python reference of the compiled ``check_cbor``
(protocol/_speedups.c); ``check_cbor`` is the compiled one when it was built.
"""

from __future__ import annotations

from protocol.errors import Malformed
from protocol.model import MAX_DEPTH


def _head(data: bytes, p: int, end: int) -> tuple[int, int, int]:
    """Major type, argument (shortest form only) and the position after one CBOR head.
    Major type 7 comes back with its additional information as the argument."""
    if p >= end:
        raise Malformed("body ends inside an item")
    mt, ai = data[p] >> 5, data[p] & 0x1F
    p += 1
    if mt == 7 or ai < 24:
        return mt, ai, p
    if ai == 31:
        raise Malformed("indefinite length (outside the subset of SPEC §4)")
    if ai > 27:
        raise Malformed("reserved additional information in a CBOR head")
    n = 1 << (ai - 24)
    if end - p < n:
        raise Malformed("body ends inside an item")
    v = int.from_bytes(data[p : p + n], "big")
    if v < (24 if n == 1 else 1 << (4 * n)):
        raise Malformed("integer or length not in its shortest form (SPEC §4)")
    return mt, v, p + n


def check_cbor_py(data: bytes) -> None:
    """``Malformed`` unless ``data`` is one CBOR item in the subset and deterministic
    encoding of SPEC §4: shortest heads, definite lengths, no tags, simple values false,
    true, null, floats as float64, integers within 64 bits, at most 16 nested arrays and
    maps, map keys all unsigned or all text in strictly ascending order of their encodings,
    nothing after the item. Walks the bytes only (UTF-8 is left to ``cbor2.loads``).

    The reference for the compiled ``check_cbor`` (protocol/_speedups.c).
    """
    end, p = len(data), 0
    stack: list[list[int]] = []  # open containers: [left, is_map, key type, key start, key end]
    while True:
        if stack:
            top = stack[-1]
            top[0] -= 1
            if top[1]:  # a key first
                start = p
                mt, n, p = _head(data, p, end)
                if mt != 0 and mt != 3:
                    raise Malformed("map keys must be unsigned integers or text")
                if mt == 3:
                    if end - p < n:
                        raise Malformed("body ends inside an item")
                    p += n
                if top[2] < 0:
                    top[2] = mt
                elif mt != top[2]:
                    raise Malformed("map keys must be all unsigned integers or all text")
                elif data[top[3] : top[4]] >= data[start:p]:
                    raise Malformed("map keys are not in ascending order of their encodings")
                top[3], top[4] = start, p
        mt, n, p = _head(data, p, end)
        if mt == 1:
            if n > 2**63 - 1:
                raise Malformed("integer outside 64 bits")
        elif mt == 2 or mt == 3:
            if end - p < n:
                raise Malformed("body ends inside an item")
            p += n
        elif mt == 4 or mt == 5:
            if len(stack) >= MAX_DEPTH:
                raise Malformed(f"arrays and maps nested deeper than {MAX_DEPTH}")
            if n > end - p:  # every item is at least one byte
                raise Malformed("body ends inside an item")
            if n:
                stack.append([n, mt == 5, -1, 0, 0])
                continue
        elif mt == 6:
            raise Malformed("CBOR tag (outside the subset of SPEC §4)")
        elif mt == 7:
            if n == 27:
                if end - p < 8:
                    raise Malformed("body ends inside an item")
                p += 8
            elif not 20 <= n <= 22:
                raise Malformed("simple value or float other than false, true, null or float64")
        while stack and not stack[-1][0]:
            stack.pop()
        if not stack:
            break
    if p != end:
        raise Malformed(f"{end - p} bytes after the body")

try:  # the compiled twin: setup.py builds it, tests/test_speedups.py checks they agree
    from protocol._speedups import check_cbor as check_cbor
except ImportError:  # pragma: no cover - built without a C compiler: same results, slower
    check_cbor = check_cbor_py
