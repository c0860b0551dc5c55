"""Running calls at the same moment in real threads, each with its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_together(*calls: Callable[[], Any], wait: float = 30, join: float = 60) -> list[Any]:
    """Runs each call in its own thread and connection, all released at once by a barrier;
    returns each call's result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def work(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=wait)
            results[index] = call()
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=join)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    return results
