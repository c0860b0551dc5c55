"""Where the rate limit windows live, and what happens when that place is gone.

With `REDIS_URL` the windows are in Redis, shared by every web worker, consumer and Celery
process, under `<CACHES default KEY_PREFIX>:ratelimit:` so parallel test runs on one Redis do
not see each other's counts. Without it they are in this process's memory (`memory://`): fine
for development, per process.

Failure policy: rate limiting must never take a request down. Any storage error (Redis
unreachable, timed out, refusing writes) makes the caller fail open, logs one warning, and
pauses this storage for `FAIL_OPEN_SECONDS` so a hanging Redis costs one time-out per pause, not
one per request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, RedisStorage, storage_from_string

logger = logging.getLogger(__name__)

T = TypeVar("T")

RateLimitStorage = RedisStorage | MemoryStorage

FAIL_OPEN_SECONDS = 10.0
# A rate limit check sits in front of every generation: give up quickly on a sick Redis.
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass
class _Backend:
    storage: RateLimitStorage
    paused_until: float = 0.0  # time.monotonic(); fail open without trying before this


_backends: dict[tuple[str, str], _Backend] = {}
_lock = threading.Lock()


def storage_location() -> tuple[str, str]:
    """(storage URI, key prefix) from the current settings."""
    url = getattr(settings, "REDIS_URL", "") or ""
    if not url:
        return "memory://", ""
    cache_prefix = settings.CACHES.get("default", {}).get("KEY_PREFIX") or os.environ.get("CACHE_KEY_PREFIX", "aikeedo")
    return url, f"{cache_prefix}:ratelimit"


def _backend() -> _Backend:
    location = storage_location()
    backend = _backends.get(location)
    if backend is None:
        with _lock:
            backend = _backends.get(location)
            if backend is None:
                backend = _backends[location] = _Backend(_build(*location))
    return backend


def _build(url: str, prefix: str) -> RateLimitStorage:
    if url == "memory://":
        storage = storage_from_string(url, wrap_exceptions=True)
    else:
        # redis-py connects lazily: building the storage never touches the network.
        storage = storage_from_string(
            url,
            key_prefix=prefix,
            wrap_exceptions=True,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
    if not isinstance(storage, RedisStorage | MemoryStorage):
        raise ConfigurationError(f"unsupported rate limit storage: {url}")
    return storage


def ratelimit_storage() -> RateLimitStorage:
    """The storage for the current settings (built once per process and location)."""
    return _backend().storage


def with_storage(operation: Callable[[RateLimitStorage], T]) -> T | None:
    """Run `operation` against the storage; None when the storage failed or is paused after a
    recent failure (the caller fails open)."""
    try:
        backend = _backend()
    except (ConfigurationError, ValueError):  # an unknown scheme, a malformed REDIS_URL
        logger.warning("Rate limit storage misconfigured; requests are not rate limited", exc_info=True)
        return None
    if time.monotonic() < backend.paused_until:
        return None
    try:
        return operation(backend.storage)
    except StorageError as exc:
        backend.paused_until = time.monotonic() + FAIL_OPEN_SECONDS
        logger.warning(
            "Rate limit storage unavailable (%s); allowing requests without limits for %ss",
            exc.storage_error,
            FAIL_OPEN_SECONDS,
        )
        return None


def ratelimit_storage_forget() -> None:
    """Forget the storages built so far and their fail-open pauses (tests; settings changes)."""
    with _lock:
        _backends.clear()
