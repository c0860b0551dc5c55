"""Sliding-window-counter arithmetic: admission, when a refused request would fit, formats."""

from __future__ import annotations

import pytest

from apps.ratelimits.windows import WindowSnapshot, format_duration, whole_seconds_after


def snap(previous: int, previous_ttl: float, current: int, current_ttl: float) -> WindowSnapshot:
    return WindowSnapshot(previous, previous_ttl, current, current_ttl, expiry=60)


def test_previous_minute_weighs_by_its_overlap_rounded_down():
    window = snap(previous=10, previous_ttl=30, current=2, current_ttl=90)  # half the previous minute

    assert window.used == 5 + 2
    assert window.remaining(10) == 3
    assert window.fits(10, 3) is True
    assert window.fits(10, 4) is False


def test_current_minute_full_waits_for_its_shift_and_decay():
    # 10 s into a minute, 3 requests this minute, limit 3: the minute ends in 50 s, then the
    # three weigh 3 * ttl / 60 and fall below 3 the moment the ttl is under 60.
    window = snap(previous=0, previous_ttl=0, current=3, current_ttl=110)

    assert window.seconds_until_fits(3, 1) == pytest.approx(50)
    assert whole_seconds_after(50) == 51


def test_previous_minute_decay_frees_room_before_the_shift():
    # Previous minute 60 requests with 45 s of overlap left (weight 45): limit 60, 10 this minute,
    # which becomes the previous one when the other has slid out (current TTL = 45 + 60).
    # One more fits when floor(60 * (45 - t) / 60) <= 49, i.e. 45 - t < 50 -> already.
    assert snap(60, 45, 10, 105).seconds_until_fits(60, 1) == 0.0
    # 40 more fit when floor(60 * (45 - t) / 60) <= 10 -> 45 - t < 11 -> t > 34.
    assert snap(60, 45, 10, 105).seconds_until_fits(60, 40) == pytest.approx(34)


def test_after_the_shift_the_current_minute_decays_in_turn():
    # Nothing left from the previous minute; 40 this minute, shifting in 20 s; limit 50.
    # 20 more fit once floor(40 * (60 - (t - 20)) / 60) <= 30 -> 60 - (t - 20) < 46.5 -> t > 33.5.
    assert snap(0, 0, 40, 80).seconds_until_fits(50, 20) == pytest.approx(33.5)
    # 10 more fit right away; 11 as soon as the minute shifts (40 * just under 1, rounded down: 39).
    assert snap(0, 0, 40, 80).seconds_until_fits(50, 10) == 0.0
    assert snap(0, 0, 40, 80).seconds_until_fits(50, 11) == pytest.approx(20)


def test_a_cost_above_the_limit_never_fits():
    assert snap(0, 0, 0, 0).seconds_until_fits(100, 101) is None


def test_full_reset_after_a_first_hit_is_one_minute_of_weight_after_the_minute():
    fresh = snap(0, 0, 0, 0).after_hit(1)  # Redis: a first hit creates a counter living 120 s

    assert fresh.current_ttl == 120
    assert fresh.seconds_until_full(60) == pytest.approx(60)
    assert snap(0, 0, 0, 0).seconds_until_full(60) == 0


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (12, "12s"), (12.2, "13s"), (60, "1m0s"), (90, "1m30s"), (119.5, "2m0s")]
)
def test_durations_read_like_openai_reset_headers(seconds, text):
    assert format_duration(seconds) == text


def test_retry_after_is_a_whole_second_strictly_after_and_at_least_one():
    assert [whole_seconds_after(s) for s in (0, 0.2, 1, 1.5, 49.9999999)] == [1, 1, 2, 2, 51]
