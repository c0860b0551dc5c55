"""Server-side SVG chart of consumption over time: geometry is computed here, the template
only draws it, so the page needs no JavaScript charting library."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from apps.credits.amounts import SCALE

WIDTH = 720
HEIGHT = 220
LEFT = 64  # room for the credit labels of the y axis
RIGHT = 8
TOP = 10
BOTTOM = 26  # room for the date labels
# Empty days shown before the first or after the last day with usage, at most: a filter
# starting in 2000 must not squeeze the bars into hairlines.
MAX_PADDING_DAYS = 92
MAX_BAR_WIDTH = 40.0


@dataclass(frozen=True)
class Bar:
    day: date
    units: int
    calls: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    units: int
    y: float


@dataclass(frozen=True)
class DayLabel:
    day: date
    x: float
    anchor: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[DayLabel]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM
    label_y: int = HEIGHT - 8


def _nice_axis(units: int) -> tuple[int, int]:
    """The smallest 1, 2 or 5 times a power of ten ≥ `units`, and how many gridline steps
    divide it into round numbers (quarters of 1 and 2, fifths of 5)."""
    power = 1
    while True:
        for factor, steps in ((1, 4), (2, 4), (5, 5)):
            if power * factor >= units:
                return power * factor, steps
        power *= 10


def usage_chart(days: list[dict[str, Any]], *, start: date | None = None, end: date | None = None) -> Chart | None:
    """One bar per day that has usage, placed on a time axis from `start` (or the first day)
    to `end` (or the last), so days without usage show as gaps."""
    if not days:
        return None
    first, last = days[0]["day"], days[-1]["day"]
    if start is not None and 0 < (first - start).days <= MAX_PADDING_DAYS:
        first = start
    if end is not None and 0 < (end - last).days <= MAX_PADDING_DAYS:
        last = end
    span = (last - first).days + 1
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / span
    bar_w = min(max(slot * 0.8, 1.0), MAX_BAR_WIDTH) if slot >= 2 else max(slot, 0.5)
    top_units, steps = _nice_axis(max(max(int(d["units"] or 0) for d in days), SCALE // 100))
    bars = []
    for d in days:
        units = int(d["units"] or 0)
        height = plot_h * units / top_units
        x = LEFT + (d["day"] - first).days * slot + (slot - bar_w) / 2
        bars.append(
            Bar(
                day=d["day"],
                units=units,
                calls=int(d["calls"]),
                x=round(x, 2),
                y=round(TOP + plot_h - height, 2),
                width=round(bar_w, 2),
                height=round(height, 2),
            )
        )
    ticks = [
        Tick(units=top_units * i // steps, y=round(TOP + plot_h - plot_h * i / steps, 2)) for i in range(steps + 1)
    ]
    labels = [DayLabel(first, LEFT, "start")]
    if last != first:
        labels.append(DayLabel(last, WIDTH - RIGHT, "end"))
    return Chart(bars=bars, ticks=ticks, labels=labels)
