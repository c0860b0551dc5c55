"""Arithmetic on one sliding-window-counter window, as the `limits` storages report it.

`get_sliding_window(key, expiry)` returns (previous count, previous TTL, current count, current
TTL). The current counter lives `2 * expiry` and becomes the previous one once its TTL drops
below `expiry`; the previous counter weighs `previous TTL / expiry`, decaying linearly to 0. A
request costing `cost` is admitted when `floor(previous * previous_ttl / expiry) + current +
cost <= limit` — the same test the storages' acquire scripts make.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class WindowSnapshot:
    previous: int
    previous_ttl: float
    current: int
    current_ttl: float
    expiry: int

    @classmethod
    def from_storage(cls, raw: tuple[int, float, int, float], expiry: int) -> WindowSnapshot:
        previous, previous_ttl, current, current_ttl = raw
        return cls(int(previous), max(0.0, float(previous_ttl)), int(current), max(0.0, float(current_ttl)), expiry)

    @property
    def used(self) -> int:
        return math.floor(self.previous * self.previous_ttl / self.expiry) + self.current

    def remaining(self, limit: int) -> int:
        return max(0, limit - self.used)

    def fits(self, limit: int, cost: int) -> bool:
        return self.used + cost <= limit

    @property
    def _shift_in(self) -> float:
        """Seconds until the current counter becomes the previous one."""
        return max(0.0, self.current_ttl - self.expiry)

    def seconds_until_fits(self, limit: int, cost: int) -> float | None:
        """Seconds until a request costing `cost` would be admitted, if nothing else is counted
        meanwhile; None when it never fits (`cost > limit`)."""
        if cost > limit:
            return None
        expiry, shift_in = self.expiry, self._shift_in
        # Before the shift: the previous counter decays. floor(prev * (ttl - t) / expiry) <= room
        # holds once prev * (ttl - t) / expiry < room + 1.
        room = limit - cost - self.current
        if room >= 0:
            if self.previous * self.previous_ttl / expiry < room + 1:
                return 0.0
            t = self.previous_ttl - (room + 1) * expiry / self.previous
            if t <= shift_in:
                return max(0.0, t)
        # After the shift: today's current counter is the previous one, starting at full weight.
        if self.current == 0:
            return shift_in
        return shift_in + max(0.0, expiry - (limit - cost + 1) * expiry / self.current)

    def seconds_until_full(self, limit: int) -> float:
        """Seconds until nothing counted now weighs any more: the whole limit is available."""
        return self.seconds_until_fits(limit, limit) or 0.0

    def after_hit(self, cost: int) -> WindowSnapshot:
        """The window once `cost` is added (a first hit creates a current counter living
        `2 * expiry`)."""
        return replace(self, current=self.current + cost, current_ttl=self.current_ttl or 2.0 * self.expiry)


def whole_seconds_after(seconds: float) -> int:
    """The first whole number of seconds strictly after `seconds`, at least 1: admission is a
    strict inequality, so waiting exactly `seconds` may be a hair too early. Rounded to the
    millisecond first (the storages' TTL precision) so float noise cannot land a hair short."""
    return max(1, math.floor(round(seconds, 3)) + 1)


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: `12s`, `1m30s`, `0s`."""
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
