from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest


def measure(fn: Callable[[], object], *, runs: int = 50, warmup: int = 5) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return {
        "median_ms": statistics.median(samples) * 1000,
        "p90_ms": samples[int(len(samples) * 0.9) - 1] * 1000,
        "runs": runs,
    }


@pytest.fixture
def report(capsys):  # type: ignore[no-untyped-def]
    def emit(name: str, result: dict[str, float], **extra: object) -> None:
        parts = [f"{name}: median {result['median_ms']:.2f} ms, p90 {result['p90_ms']:.2f} ms ({result['runs']} runs)"]
        parts += [f"{k}={v}" for k, v in extra.items()]
        with capsys.disabled():
            print("BENCH " + ", ".join(parts))

    return emit
