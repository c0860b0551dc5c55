from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from apps.generation.breaker import (
    CLOSED,
    DEFAULT_COOLDOWN_SECONDS,
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_WINDOW_SECONDS,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
)
from tests.generation.helpers import FakeClock

KEY = "openai:https://api.example.com/v1:gpt-4o"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, window=60, cooldown=30, clock=clock)


def open_breaker(breaker: CircuitBreaker, key: str = KEY) -> None:
    for _ in range(breaker.failure_threshold):
        breaker.record_failure(key)
    assert breaker.state(key) == OPEN


def test_opens_after_n_failures_within_the_window(breaker: CircuitBreaker, clock: FakeClock) -> None:
    breaker.record_failure(KEY)
    clock.advance(10)
    breaker.record_failure(KEY)
    assert breaker.state(KEY) == CLOSED
    assert breaker.allow(KEY) is True

    clock.advance(10)
    breaker.record_failure(KEY)

    assert breaker.state(KEY) == OPEN
    assert breaker.allow(KEY) is False


def test_failures_spread_beyond_the_window_do_not_open_it(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(5):
        breaker.record_failure(KEY)
        clock.advance(70)
        assert breaker.state(KEY) == CLOSED


def test_successes_while_closed_do_not_forget_failures(breaker: CircuitBreaker) -> None:
    # N failures within the window open the breaker, whatever succeeded in between.
    breaker.record_failure(KEY)
    breaker.record_success(KEY)
    breaker.record_failure(KEY)
    breaker.record_success(KEY)
    breaker.record_failure(KEY)
    assert breaker.state(KEY) == OPEN


def test_half_opens_after_the_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(29.9)
    assert breaker.state(KEY) == OPEN
    assert breaker.allow(KEY) is False
    clock.advance(0.1)
    assert breaker.state(KEY) == HALF_OPEN


def test_lets_exactly_one_probe_through_when_half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    callers = 8
    barrier = threading.Barrier(callers)
    answers: list[bool] = []

    def ask() -> None:
        barrier.wait()
        answers.append(breaker.allow(KEY))

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [False] * (callers - 1) + [True]
    assert breaker.allow(KEY) is False


def test_a_successful_probe_closes_it_and_forgets_the_failures(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow(KEY) is True

    breaker.record_success(KEY)

    assert breaker.state(KEY) == CLOSED
    assert breaker.allow(KEY) is True
    assert breaker.allow(KEY) is True
    breaker.record_failure(KEY)  # one new failure does not re-open it
    assert breaker.state(KEY) == CLOSED


def test_a_failed_probe_reopens_it_for_another_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow(KEY) is True

    breaker.record_failure(KEY)

    assert breaker.state(KEY) == OPEN
    clock.advance(29)
    assert breaker.allow(KEY) is False
    clock.advance(1)
    assert breaker.allow(KEY) is True  # the next probe


def test_a_probe_that_never_reports_back_does_not_wedge_it(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow(KEY) is True  # the probe's worker dies
    clock.advance(29)
    assert breaker.allow(KEY) is False
    clock.advance(1)
    assert breaker.allow(KEY) is True


def test_released_probe_slot_goes_to_the_next_request(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow(KEY) is True
    assert breaker.allow(KEY) is False

    breaker.release(KEY)  # e.g. the probe hit a configuration error

    assert breaker.state(KEY) == HALF_OPEN
    assert breaker.allow(KEY) is True


def test_failures_while_open_do_not_extend_the_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(20)
    breaker.record_failure(KEY)  # a request that started before it opened
    clock.advance(10)
    assert breaker.state(KEY) == HALF_OPEN


def test_keys_are_independent(breaker: CircuitBreaker) -> None:
    open_breaker(breaker)
    assert breaker.state("anthropic::claude-sonnet-4-5") == CLOSED
    assert breaker.allow("anthropic::claude-sonnet-4-5") is True


def test_instances_sharing_the_cache_share_the_state(breaker: CircuitBreaker, clock: FakeClock) -> None:
    other = CircuitBreaker(failure_threshold=3, window=60, cooldown=30, clock=clock)
    breaker.record_failure(KEY)
    other.record_failure(KEY)
    breaker.record_failure(KEY)
    assert other.state(KEY) == OPEN


def test_async_methods_share_the_state(breaker: CircuitBreaker, clock: FakeClock) -> None:
    async def scenario() -> list[object]:
        for _ in range(3):
            await breaker.arecord_failure(KEY)
        seen: list[object] = [await breaker.astate(KEY), await breaker.aallow(KEY)]
        clock.advance(30)
        seen += [await breaker.aallow(KEY), await breaker.aallow(KEY)]
        await breaker.arelease(KEY)
        seen.append(await breaker.aallow(KEY))
        await breaker.arecord_success(KEY)
        seen.append(await breaker.astate(KEY))
        return seen

    assert asyncio.run(scenario()) == [OPEN, False, True, False, True, CLOSED]


def test_fails_open_when_its_cache_is_down(settings: Any, clock: FakeClock) -> None:
    settings.CACHES = {
        **settings.CACHES,
        # Nothing listens on port 1: every cache call fails at once.
        "unreachable": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
    }
    breaker = CircuitBreaker(failure_threshold=1, clock=clock, cache_alias="unreachable")

    breaker.record_failure(KEY)
    breaker.record_failure(KEY)

    assert breaker.allow(KEY) is True
    assert breaker.state(KEY) == CLOSED
    breaker.record_success(KEY)
    breaker.release(KEY)


@pytest.mark.django_db
def test_from_config_reads_the_admin_settings() -> None:
    from constance.test.pytest import override_config

    breaker = CircuitBreaker.from_config()
    assert (breaker.failure_threshold, breaker.window, breaker.cooldown) == (
        DEFAULT_FAILURE_THRESHOLD,
        DEFAULT_WINDOW_SECONDS,
        DEFAULT_COOLDOWN_SECONDS,
    )
    with override_config(BREAKER_FAILURE_THRESHOLD=2, BREAKER_WINDOW_SECONDS=10, BREAKER_COOLDOWN_SECONDS=7):
        breaker = CircuitBreaker.from_config()
    assert (breaker.failure_threshold, breaker.window, breaker.cooldown) == (2, 10, 7)
    assert CircuitBreaker.from_config(cooldown=5).cooldown == 5


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)


OPEN_FROM_ANOTHER_PROCESS = """
import django
django.setup()
from apps.generation.breaker import CircuitBreaker
breaker = CircuitBreaker(failure_threshold=2, clock=lambda: {now})
breaker.record_failure({key!r})
breaker.record_failure({key!r})
"""


def test_another_process_sees_the_same_state_through_redis(breaker: CircuitBreaker, clock: FakeClock) -> None:
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: the local-memory cache is per process")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "aikeedo.settings.test"}
    script = OPEN_FROM_ANOTHER_PROCESS.format(now=clock.now, key=KEY)
    subprocess.run([sys.executable, "-c", script], cwd=root, env=env, check=True, timeout=60)

    assert breaker.state(KEY) == OPEN
    assert breaker.allow(KEY) is False
