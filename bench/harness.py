"""What the process-level benchmarks share: paths, percentiles, free ports, starting the fake
upstream in its own process and stopping process groups."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(proc: subprocess.Popen[Any], name: str) -> None:
    """Stop a process we started in its own session: SIGTERM to its group, then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
    print(f"warning: {name} (pid {proc.pid}) did not stop", file=sys.stderr)


def shown(url: str) -> str:
    """A database URL without its credentials, for the report."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 5432}"))


def start_upstream(code: str) -> tuple[subprocess.Popen[str], str | None]:
    """Run `code` (a launcher that prints the fake upstream's port, then serves until its stdin
    closes) in its own session; returns the process and the upstream's URL (None if it failed)."""
    upstream = subprocess.Popen(  # noqa: S603 - our interpreter running the project's fake
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert upstream.stdout is not None
    port_line = upstream.stdout.readline().strip()
    if not port_line.isdigit():
        print(f"FAIL: the fake upstream did not start (printed {port_line!r})", file=sys.stderr)
        return upstream, None
    return upstream, f"http://127.0.0.1:{port_line}"
