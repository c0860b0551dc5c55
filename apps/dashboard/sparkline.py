"""A 30-day usage sparkline computed server-side: the template draws the points as an inline
SVG, so the dashboard needs no charting script."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

WIDTH = 300
HEIGHT = 56
PAD = 3  # room for the stroke at the top and bottom edges


@dataclass(frozen=True)
class Sparkline:
    start: date
    end: date
    values: list[int]  # credit units per day, oldest first, one per day from start to end
    points: str  # "x,y x,y …" for <polyline>
    area: str  # a closed path under the line for the fill
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def total_units(self) -> int:
        return sum(self.values)

    @property
    def peak_units(self) -> int:
        return max(self.values, default=0)

    @property
    def active_days(self) -> int:
        return sum(1 for value in self.values if value)


def sparkline(units_by_day: dict[date, int], *, end: date, days: int = 30) -> Sparkline:
    """One point per day for the `days` days ending on `end` (days without usage are 0), scaled
    so the busiest day touches the top; all zeros draw a flat line on the baseline."""
    start = end - timedelta(days=days - 1)
    values = [int(units_by_day.get(start + timedelta(days=i), 0)) for i in range(days)]
    peak = max(values) or 1
    step = WIDTH / (days - 1) if days > 1 else 0
    usable = HEIGHT - 2 * PAD
    coords = [(round(i * step, 2), round(HEIGHT - PAD - usable * value / peak, 2)) for i, value in enumerate(values)]
    points = " ".join(f"{x:g},{y:g}" for x, y in coords)
    area = f"M0,{HEIGHT} L" + " L".join(f"{x:g},{y:g}" for x, y in coords) + f" L{WIDTH},{HEIGHT} Z"
    return Sparkline(start=start, end=end, values=values, points=points, area=area)
