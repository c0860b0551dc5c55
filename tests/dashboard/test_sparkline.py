"""The dashboard's usage sparkline: one point per day, scaled to the busiest day."""

from __future__ import annotations

from datetime import date, timedelta

from apps.dashboard.sparkline import HEIGHT, PAD, WIDTH, sparkline

END = date(2026, 3, 31)


def _ys(points: str) -> list[float]:
    return [float(pair.split(",")[1]) for pair in points.split()]


def test_one_point_per_day_with_missing_days_as_zero() -> None:
    line = sparkline({END: 30, END - timedelta(days=29): 10}, end=END)

    assert line.start == END - timedelta(days=29)
    assert line.values[0] == 10
    assert line.values[-1] == 30
    assert line.values[1:-1] == [0] * 28
    assert len(line.points.split()) == 30
    assert line.total_units == 40
    assert line.peak_units == 30
    assert line.active_days == 2


def test_busiest_day_touches_the_top_and_empty_days_the_baseline() -> None:
    line = sparkline({END: 50, END - timedelta(days=1): 25}, end=END)

    ys = _ys(line.points)
    assert ys[-1] == PAD
    assert ys[-2] == (HEIGHT - PAD + PAD) / 2
    assert ys[0] == HEIGHT - PAD
    assert line.points.split()[-1].startswith(f"{WIDTH},")


def test_days_outside_the_window_are_ignored() -> None:
    line = sparkline({END + timedelta(days=1): 99, END - timedelta(days=30): 99}, end=END)

    assert line.total_units == 0


def test_no_usage_draws_a_flat_line_and_a_closed_area() -> None:
    line = sparkline({}, end=END, days=7)

    assert set(_ys(line.points)) == {HEIGHT - PAD}
    assert line.area.startswith(f"M0,{HEIGHT} L0,")
    assert line.area.endswith(f"L{WIDTH},{HEIGHT} Z")
