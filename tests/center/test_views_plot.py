"""``hydrolink plot``: the PNG is the right size, not blank, and its curves sit where the data map."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from host_tools.center import Store, open_store
from host_tools.center.plot import LEVEL_COLOR, RAIN_COLOR, drawable, figure, gap_runs, load_panel, save
from host_tools.center.series import gaps
from host_tools.center.views import zone
from host_tools.cli import main
from tests.center import views_data as vd

START, END = vd.D0, vd.D0 + 86400


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    url = f"sqlite:///{tmp_path}/center.db"
    s = open_store(url)
    vd.fill(s, tmp_path)
    s.add_center_alarm(1001, "rain_1h", vd.D0 + 50 * vd.IV, value=40.0, threshold=30.0)
    yield url, s
    s.close()


def _mask(img: np.ndarray, color: str, tol: float = 0.12) -> np.ndarray:
    rgb = np.array([int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return np.linalg.norm(img[:, :, :3] - rgb, axis=2) < tol


def _inside(mask: np.ndarray, ax: object, height: int) -> np.ndarray:
    """The mask limited to the axes' area (legend and labels outside it are ignored)."""
    bb = ax.get_window_extent()  # type: ignore[attr-defined]
    out = np.zeros_like(mask)
    r0, r1 = int(height - bb.y1) + 1, int(height - bb.y0) - 1
    c0, c1 = int(bb.x0) + 1, int(bb.x1) - 1
    out[r0:r1, c0:c1] = mask[r0:r1, c0:c1]
    return out


def _pixel(ax: object, x_unix: float, y: float, height: int) -> tuple[float, float]:
    """(column, row) in the PNG of a data point (rows count down from the top)."""
    px, py = ax.transData.transform((x_unix / 86400, y))  # type: ignore[attr-defined]
    return px, height - py


def test_plot_matches_the_data(filled: tuple[str, Store], tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    _, store = filled
    panels = [load_panel(store, 1001, START, END), load_panel(store, 1002, START, END)]
    fig, axes = figure(panels, START, END, zone("Asia/Shanghai"))
    out = tmp_path / "p.png"
    save(fig, str(out))
    img = mpimg.imread(out)
    h, w = img.shape[:2]
    assert (w, h) == (int(11.7 * 120), int((0.9 + 6.0 * 2) * 120))
    not_white = (img[:, :, :3] < 0.95).any(axis=2).mean()
    assert 0.03 < not_white < 0.6  # drawn on, but not a solid block

    ax_r, ax_l = axes[0]
    line = _inside(_mask(img, LEVEL_COLOR), ax_l, h)
    rows, cols = np.nonzero(line)
    assert rows.size > 500
    levels = [(r[0], r[1]) for r in panels[0].level if r[1] is not None]
    t_hi, v_hi = max(levels, key=lambda p: p[1])
    t_lo, v_lo = min(levels, key=lambda p: p[1])
    _, row_hi = _pixel(ax_l, t_hi, v_hi, h)
    col_lo, row_lo = _pixel(ax_l, t_lo, v_lo, h)
    assert abs(rows.min() - row_hi) <= 4, (rows.min(), row_hi)  # topmost line pixel = the maximum
    assert abs(rows.max() - row_lo) <= 4, (rows.max(), row_lo)  # lowest = the minimum
    lowest_cols = cols[rows >= rows.max() - 1]
    assert abs(lowest_cols.mean() - col_lo) < 25  # ... at the minimum's time
    # the hour without data: no line inside it (a margin of the line's width at its edges)
    g0, _ = _pixel(ax_l, vd.GAP[0], v_lo, h)
    g1, _ = _pixel(ax_l, vd.GAP[-1], v_lo, h)
    assert not line[:, int(g0) + 4:int(g1) - 4].any()
    assert line[:, int(g0) - 30:int(g0) - 10].any() and line[:, int(g1) + 10:int(g1) + 30].any()

    bars = _inside(_mask(img, RAIN_COLOR, 0.1), ax_r, h)
    brow, bcol = np.nonzero(bars)
    wettest = max(vd.rain_mm(k) for k in range(289))
    _, row_max = _pixel(ax_r, START, wettest, h)
    _, row_zero = _pixel(ax_r, START, 0.0, h)
    assert row_max > row_zero  # inverted: more rain reaches further down
    assert abs(brow.max() - row_max) <= 2 and abs(brow.min() - row_zero) <= 2
    first_wet = min(k for k in range(289) if vd.rain_mm(k) > 0)
    c_first, _ = _pixel(ax_r, START + (first_wet - 1) * vd.IV, 0, h)
    assert abs(bcol.min() - c_first) <= 2  # the storm starts where its first interval starts


def test_plot_cli_writes_a_png(filled: tuple[str, Store], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    out = tmp_path / "one.png"
    code = main(["plot", "--db", url, "--station", "1001", "--from", "2026-07-14T08:00",
                 "--to", "2026-07-15T08:00", "--out", str(out), "--tz", "UTC"])
    assert code == 0, capsys.readouterr().err
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    code = main(["plot", "--db", url, "--station", "1001", "--from", "2026-07-14", "--to", "2026-07-13",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("hydrolink: --to 2026-07-13 is not after") and err.count("\n") == 1
    code = main(["plot", "--db", url, "--station", "1001", "--from", "2026-07-14", "--to", "2026-07-14",
                 "--out", str(out), "--tz", "Mars/Olympus"])
    assert code == 2 and "unknown time zone" in capsys.readouterr().err


def test_names_keep_what_the_fonts_can_draw() -> None:
    assert drawable("Gaoqiao") == "Gaoqiao"
    text = drawable("Gaoqiao 高桥")
    assert text.startswith("Gaoqiao")  # with a CJK font installed the Chinese stays too


def test_gap_runs_agree_with_series_gaps() -> None:
    import random

    rnd = random.Random(3)
    rows = [(t, None if rnd.random() < 0.2 else 1.0, "good") for t in range(0, 30000, 300) if rnd.random() < 0.8]
    assert gap_runs(rows, 0, 30000, 300) == gaps(rows, 0, 30000, 300)
    assert gap_runs([], 0, 900, 300) == gaps([], 0, 900, 300)


def test_rain_bins_align_on_the_rain_day() -> None:
    from host_tools.center.plot import rain_bins

    anchor = vd.D0  # 08:00 local
    rows = [(vd.D0 + k * 300, 1.0, "good") for k in range(1, 288 * 3 + 1)]  # three rain days
    width, bins = rain_bins(rows, 300, vd.D0, vd.D0 + 4 * 86400 + 43200, anchor)
    assert width == 1800 and bins[0] == (vd.D0, 6.0)  # 08:05 .. 08:30: the first half hour's 6 readings
    width, bins = rain_bins(rows, 300, vd.D0 - 200 * 86400, vd.D0 + 3 * 86400, anchor)
    assert width == 86400 and [b for b, _ in bins] == [vd.D0, vd.D0 + 86400, vd.D0 + 2 * 86400]
    assert bins[0][1] == 288.0
