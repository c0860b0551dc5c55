"""A circuit breaker per upstream (provider + base URL + model), with its state in Django's cache.

With Redis as the cache every web and worker process sees the same state; with the local-memory
cache (development, tests) each process has its own.

States, for one key:

- closed: requests pass. Retryable failures (429, 5xx, time-outs, broken connections) are counted
  in a sliding window; `failure_threshold` of them within `window` seconds open the breaker.
- open: requests are refused for `cooldown` seconds.
- half-open: after the cooldown, exactly one request (the probe) is let through per cooldown
  period — claimed with `cache.add`, which is atomic in every backend. Its success closes the
  breaker and forgets the failures; its failure re-opens it for another cooldown. A probe that
  never reports back (a crashed worker) cannot wedge the breaker: the next period has a new slot.

Callers report outcomes: `record_failure` for retryable errors only; configuration errors (401,
400, ...) say nothing about the upstream's health and are not recorded (`release` frees a probe
slot they used). Times come from `clock` (wall-clock seconds, comparable across processes;
injectable for tests). Cache time-outs only garbage-collect keys; the state logic uses `clock`.

If the cache itself fails (Redis down), the breaker fails open: requests are allowed and outcomes
dropped, with a warning in the log.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from asgiref.sync import sync_to_async
from django.core.cache import BaseCache, caches

BreakerState = Literal["closed", "open", "half_open"]

CLOSED: BreakerState = "closed"
OPEN: BreakerState = "open"
HALF_OPEN: BreakerState = "half_open"

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_WINDOW_SECONDS = 60.0
DEFAULT_COOLDOWN_SECONDS = 30.0

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


def _fail_open(default: _T) -> Callable[[Callable[..., _T]], Callable[..., _T]]:
    """The breaker protects the chain from a failing upstream; an outage of its own store (Redis)
    must not stop generations. Cache errors are logged, requests allowed, outcomes dropped."""

    def decorate(method: Callable[..., _T]) -> Callable[..., _T]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> _T:
            try:
                return method(*args, **kwargs)
            except Exception:
                logger.warning("circuit breaker store unavailable in %s", method.__name__, exc_info=True)
                return default

        return wrapper

    return decorate


# How long an open breaker's key lives in the cache if nothing closes it (garbage collection
# only: it is long enough that expiry never replaces the cooldown).
_OPEN_KEY_TTL = 24 * 3600


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        window: float = DEFAULT_WINDOW_SECONDS,
        cooldown: float = DEFAULT_COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.time,
        cache_alias: str = "default",
        prefix: str = "generation:breaker",
    ) -> None:
        if failure_threshold < 1 or window <= 0 or cooldown <= 0:
            raise ValueError("failure_threshold must be >= 1, window and cooldown > 0")
        self.failure_threshold = failure_threshold
        self.window = window
        self.cooldown = cooldown
        self.clock = clock
        self.cache_alias = cache_alias
        self.prefix = prefix

    @classmethod
    def from_config(cls, **overrides: Any) -> CircuitBreaker:
        """A breaker with the thresholds from constance (`BREAKER_FAILURE_THRESHOLD`,
        `BREAKER_WINDOW_SECONDS`, `BREAKER_COOLDOWN_SECONDS`) when those keys exist, else the
        defaults. Reads the database: call it from synchronous code."""
        from constance import config

        options: dict[str, Any] = {
            "failure_threshold": int(getattr(config, "BREAKER_FAILURE_THRESHOLD", DEFAULT_FAILURE_THRESHOLD)),
            "window": float(getattr(config, "BREAKER_WINDOW_SECONDS", DEFAULT_WINDOW_SECONDS)),
            "cooldown": float(getattr(config, "BREAKER_COOLDOWN_SECONDS", DEFAULT_COOLDOWN_SECONDS)),
        }
        options.update(overrides)
        return cls(**options)

    # ------------------------------------------------------------------------------ keys

    @property
    def _cache(self) -> BaseCache:
        return caches[self.cache_alias]

    def _key(self, key: str, *parts: object) -> str:
        # Breaker keys contain URLs; hash them into short keys any cache backend accepts.
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return ":".join([self.prefix, digest, *map(str, parts)])

    def _opened_at(self, key: str) -> float | None:
        value = self._cache.get(self._key(key, "open"))
        return float(value) if value is not None else None

    def _probe_key(self, key: str, opened_at: float, now: float) -> str:
        period = int((now - opened_at) // self.cooldown)
        return self._key(key, "probe", repr(opened_at), period)

    def _bucket(self, now: float) -> int:
        return int(now // self.window)

    # ------------------------------------------------------------------------------ API

    @_fail_open(CLOSED)
    def state(self, key: str) -> BreakerState:
        opened_at = self._opened_at(key)
        if opened_at is None:
            return CLOSED
        return HALF_OPEN if self.clock() - opened_at >= self.cooldown else OPEN

    @_fail_open(True)
    def allow(self, key: str) -> bool:
        """May a request go to this upstream now? In half-open state only the probe's caller
        gets True."""
        opened_at = self._opened_at(key)
        if opened_at is None:
            return True
        now = self.clock()
        if now - opened_at < self.cooldown:
            return False
        return bool(self._cache.add(self._probe_key(key, opened_at, now), now, timeout=_OPEN_KEY_TTL))

    @_fail_open(None)
    def record_success(self, key: str) -> None:
        """The upstream answered: close the breaker (no-op, one cache read, when closed)."""
        if self._opened_at(key) is None:
            return
        bucket = self._bucket(self.clock())
        # Failures that opened the breaker must not re-open it right after it closes.
        self._cache.delete_many(
            [self._key(key, "open"), self._key(key, "fail", bucket), self._key(key, "fail", bucket - 1)]
        )

    @_fail_open(None)
    def record_failure(self, key: str) -> None:
        """A retryable failure (429, 5xx, time-out, broken connection)."""
        now = self.clock()
        opened_at = self._opened_at(key)
        if opened_at is not None:
            if now - opened_at >= self.cooldown:
                # Half-open: the probe failed. Re-open for another cooldown (new probe slots).
                self._cache.set(self._key(key, "open"), now, timeout=_OPEN_KEY_TTL)
            # Open: a request that started before the breaker opened; nothing new to learn.
            return
        if self._failures_in_window(key, now) >= self.failure_threshold:
            # add, not set: concurrent failures all cross the threshold; the first opening wins.
            self._cache.add(self._key(key, "open"), now, timeout=_OPEN_KEY_TTL)

    @_fail_open(None)
    def release(self, key: str) -> None:
        """Free the probe slot of a half-open breaker after an attempt that proved nothing (a
        configuration error, a request cancelled before the upstream answered)."""
        opened_at = self._opened_at(key)
        if opened_at is None:
            return
        now = self.clock()
        if now - opened_at >= self.cooldown:
            self._cache.delete(self._probe_key(key, opened_at, now))

    def _failures_in_window(self, key: str, now: float) -> float:
        """Count this failure and estimate the failures of the last `window` seconds: the current
        fixed bucket plus the previous one weighted by how much of it the window still covers
        (a sliding-window counter: atomic increments, two keys per upstream)."""
        bucket = self._bucket(now)
        current_key = self._key(key, "fail", bucket)
        ttl = int(2 * self.window) + 60
        self._cache.add(current_key, 0, timeout=ttl)
        try:
            current = self._cache.incr(current_key)
        except ValueError:  # expired between add and incr
            self._cache.add(current_key, 1, timeout=ttl)
            current = 1
        previous = self._cache.get(self._key(key, "fail", bucket - 1)) or 0
        weight = 1.0 - (now - bucket * self.window) / self.window
        return current + int(previous) * weight

    # ------------------------------------------------------------------------------ asyncio
    # Django's cache backends are synchronous; run each call in a worker thread so the event
    # loop never waits on a Redis round trip.

    async def aallow(self, key: str) -> bool:
        return await sync_to_async(self.allow, thread_sensitive=False)(key)

    async def arecord_success(self, key: str) -> None:
        await sync_to_async(self.record_success, thread_sensitive=False)(key)

    async def arecord_failure(self, key: str) -> None:
        await sync_to_async(self.record_failure, thread_sensitive=False)(key)

    async def arelease(self, key: str) -> None:
        await sync_to_async(self.release, thread_sensitive=False)(key)

    async def astate(self, key: str) -> BreakerState:
        return await sync_to_async(self.state, thread_sensitive=False)(key)
