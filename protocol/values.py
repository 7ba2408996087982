"""Values and quality of a series (SPEC §5.2, §5.3): delta/run tokens and quality runs.

``decode_values_py`` is the pure-Python reference of the compiled ``decode_values``
(protocol/_speedups.c); ``decode_values`` is the compiled one when it was built.
"""

from __future__ import annotations

from itertools import accumulate, chain
from typing import Any

from protocol.errors import Malformed
from protocol.model import MAX_VALUES

_INT32 = (-(2**31), 2**31 - 1)


def _zz(v: int) -> int:
    return v << 1 if v >= 0 else (-v << 1) - 1


def _unzz(z: int) -> int:
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


def _varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def fill_no_value(values: tuple[int | None, ...] | list[int | None]) -> list[int]:
    """Slots without a value carry the previous value (leading ones: the first value)."""
    first = next((v for v in values if v is not None), 0)
    out: list[int] = []
    prev = first
    for v in values:
        prev = prev if v is None else v
        out.append(prev)
    return out


def encode_values(values: list[int]) -> bytes:
    """Zigzag first value, then even tokens for deltas and odd tokens for zero runs."""
    out = bytearray()
    if not values:
        return b""
    _varint(out, _zz(values[0]))
    run = 0
    for prev, v in zip(values, values[1:], strict=False):
        d = v - prev
        if d == 0:
            run += 1
            continue
        if run:
            _varint(out, ((run - 1) << 1) | 1)
            run = 0
        _varint(out, _zz(d) << 1)
    if run:
        _varint(out, ((run - 1) << 1) | 1)
    return bytes(out)


# Deltas of each one-byte token (SPEC §5.2): even t is one delta, odd t a run of zeros.
_TOKEN_DELTAS = tuple(((0,) * ((t >> 1) + 1)) if t & 1 else (_unzz(t >> 1),) for t in range(128))


def decode_values_py(data: bytes) -> list[int]:
    """Inverse of :func:`encode_values`; ``Malformed`` on bad varints or int32 overflow.

    The reference for the compiled ``decode_values`` (protocol/_speedups.c).
    """
    if not data:
        return []
    n, pos = _read_varint(data, 0)
    first = _unzz(n)
    rest = data[pos:]
    if rest.isascii():  # the common case: one-byte tokens only, decoded in C loops
        values = list(accumulate(chain.from_iterable(map(_TOKEN_DELTAS.__getitem__, rest)), initial=first))
        if len(values) > MAX_VALUES:
            raise Malformed(f"more than {MAX_VALUES} values in a series")
        if abs(first) + 32 * len(rest) < _INT32[1]:  # one-byte deltas cannot leave int32
            return values
    else:
        values = [first]
        last, n, shift = first, 0, 0
        for b in rest:
            if b & 0x80:
                n |= (b & 0x7F) << shift
                shift += 7
                if shift >= 35:
                    raise Malformed("values varint longer than 5 bytes")
                continue
            n |= b << shift
            if n & 1:
                if len(values) + (n >> 1) >= MAX_VALUES:
                    raise Malformed(f"more than {MAX_VALUES} values in a series")
                values.extend([last] * ((n >> 1) + 1))
            else:
                last += _unzz(n >> 1)
                values.append(last)
            n = shift = 0
        if len(values) > MAX_VALUES:
            raise Malformed(f"more than {MAX_VALUES} values in a series")
        if shift:
            raise Malformed("values end inside a varint")
    if min(values) < _INT32[0] or max(values) > _INT32[1]:
        raise Malformed("value outside int32")
    return values


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise Malformed("values end inside a varint")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7
        if shift >= 35:
            raise Malformed("values varint longer than 5 bytes")


def quality_runs(quality: tuple[int, ...] | list[int]) -> list[int]:
    """Per-value codes to the flat ``[start, count, code, ...]`` runs of SPEC §5.3."""
    runs: list[int] = []
    i = 0
    while i < len(quality):
        code = quality[i]
        j = i
        while j < len(quality) and quality[j] == code:
            j += 1
        if code:
            runs += [i, j - i, code]
        i = j
    return runs


def expand_quality(runs: Any, n: int) -> list[int]:
    """Inverse of :func:`quality_runs` for ``n`` values; ``Malformed`` on runs SPEC §5.3 forbids."""
    if not isinstance(runs, list) or not runs or len(runs) % 3:
        raise Malformed("quality must be a non-empty list of start, count, code triples")
    quality = [0] * n
    pos = 0
    prev_end, prev_code = -1, -1
    for k in range(0, len(runs), 3):
        start, count, code = runs[k : k + 3]
        if not all(type(x) is int for x in (start, count, code)):
            raise Malformed("quality run fields must be integers")
        if not 1 <= code <= 6:
            raise Malformed(f"quality code {code} is not 1..6")
        if start < pos or count < 1 or start + count > n:
            raise Malformed("quality runs overlap, are out of order or leave the series")
        if start == prev_end and code == prev_code:
            raise Malformed("adjacent quality runs with the same code are not merged")
        quality[start : start + count] = [code] * count
        pos = prev_end = start + count
        prev_code = code
    return quality


try:  # the compiled twin: setup.py builds it, tests/test_speedups.py checks they agree
    from protocol._speedups import decode_values as decode_values
except ImportError:  # pragma: no cover - built without a C compiler: same results, slower
    decode_values = decode_values_py
