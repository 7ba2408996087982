"""Center quality control: flags from the registry ``qc`` rules, never a changed value.

Each stored value keeps the station's own quality code; the center adds flags of its
own (comma-separated in ``observations.flags``):

- ``range``: below ``min`` or above ``max``;
- ``step``: differs from the previous reading (at most two intervals earlier) by more
  than ``step``;
- ``flat``: the same value for ``flat_hours`` or longer (a stuck sensor).

:func:`qc_flags` is pure. People review values with ``hydrolink qc`` (see
:mod:`host_tools.center.qc_cli`): approve, mark provisional, or correct with a note;
each change is a revision kept by the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

FLAG_ORDER = ("range", "step", "flat")


def qc_flags(series: Sequence[tuple[int, float | None]], rules: Mapping[str, float],
             interval_s: int, since: int | None = None) -> dict[int, str]:
    """The center's flags for each reading of ``series`` at or after ``since``.

    Args:
        series: (time, value) sorted by time; readings before ``since`` are context
            (the previous value for ``step``, the start of a flat run).
        rules: the element's registry ``qc`` table: ``min``, ``max``, ``step``, ``flat_hours``.
        interval_s: the station's record interval.
        since: first time to flag (default: all).

    Returns:
        time -> flags ("" for a clean reading, so stale flags can be cleared). A missing
        value (None) gets no flags and does not break a flat run.
    """
    lo, hi = rules.get("min"), rules.get("max")
    step, flat_h = rules.get("step"), rules.get("flat_hours")
    flat_s = None if flat_h is None else flat_h * 3600.0
    out: dict[int, str] = {}
    prev: tuple[int, float] | None = None
    run_start: int | None = None   # time of the first reading of the current run of equal values
    for t, v in series:
        if v is None:
            continue
        flags = []
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            flags.append("range")
        if step is not None and prev is not None and t - prev[0] <= 2 * interval_s \
                and abs(v - prev[1]) > step + 1e-9:
            flags.append("step")
        if prev is not None and v == prev[1]:
            pass
        else:
            run_start = t
        if flat_s is not None and run_start is not None and t - run_start >= flat_s:
            flags.append("flat")
        prev = (t, v)
        if since is None or t >= since:
            out[t] = ",".join(flags)
    return out


def context_s(rules: Mapping[str, float], interval_s: int) -> int:
    """How far before new readings :func:`qc_flags` needs context (and after, to re-flag)."""
    flat_h = rules.get("flat_hours")
    return int(max(2 * interval_s, 0 if flat_h is None else flat_h * 3600 + interval_s))
