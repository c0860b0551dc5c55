"""Streaming chat overhead: the latency the platform adds to a token stream over the WebSocket.

    .venv/bin/python bench/streaming.py [--concurrency 1,100,500,1000] [--tokens 40]
        [--token-delay 0.02] [--postgres] [--asgi-threads N] [--level-timeout 180]

Starts the fake OpenAI upstream (`tests/fakes/upstream.py`, in its own process so that it does
not share a GIL with the client), prepares a database (a fresh SQLite file in a temporary
directory; with `--postgres`, DATABASE_URL when it points at PostgreSQL, otherwise a new
database `aikeedo_bench_streaming_<run>` on postgres://postgres@127.0.0.1:5432, dropped at the
end), seeds a provider pointing at the fake upstream, a priced model, one user + personal
workspace + credits + session per concurrent stream, and serves `aikeedo.asgi:application`
with daphne (a subprocess in its own session, as production runs it). The client (aiohttp, in
this process) then runs, for each concurrency level, the same streams twice:

- direct: N concurrent POSTs to the fake upstream's `/v1/chat/completions` (SSE);
- platform: N WebSockets on `/ws/chat/<id>/`, connected first, then all sent at once.

Per stream it records the time from sending to the first text (TTFT) and the gaps between
successive texts; "added" is platform minus direct at the same percentile and concurrency. It
also samples daphne's RSS and thread count, its CPU time, and scans its log for errors.

Exits 0 with a SKIP line when something it needs is missing (daphne, aiohttp, PostgreSQL for
`--postgres`); exits 1 only when the harness itself fails (server does not start, the warm-up
stream does not complete). Slow or failed streams under load are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Run as a script (`python bench/<name>.py`): make the project importable first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import BIN, ROOT, free_port, pct, shown, start_upstream, stop_group

LOCAL_PG_SERVER = "postgres://postgres@127.0.0.1:5432"
MODEL_ID = "bench-fake"
PROVIDER_NAME = "Bench fake upstream"
SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"
CONNECT_PARALLEL = 50  # WebSocket handshakes in flight at once (daphne's listen backlog is 50)
WARMUP_STREAMS = 2
DRAIN_MAX_SECONDS = 120.0  # after a level, wait this long at most for the server to go idle
IDLE_CPU_SECONDS = 0.05  # "idle": less CPU than this in one second

# The fake upstream, run as `python -c`: prints its port, serves until stdin closes.
UPSTREAM_CODE = """
import sys
sys.path.insert(0, {root!r})
from tests.fakes.upstream import FakeUpstream
upstream = FakeUpstream().start()
print(upstream.port, flush=True)
sys.stdin.read()
upstream.stop()
"""

# Lines of the server log worth counting: log records at warning level and above (console and
# JSON formats), and the last line of each traceback ("sqlite3.OperationalError: ...").
LOG_PROBLEM = re.compile(
    r"\[(warning|error|critical)\s*\]|\"level\": \"(warning|error|critical)\"|"
    r"^[\w.]+(Error|Exception|Exit)\b.*:|Too many open files",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------------- small helpers


def _ms(value: float) -> str:
    return "-" if value != value else f"{value * 1000:.1f}"  # NaN check


def _problem_kind(line: str) -> str:
    """A log line without its timestamp, reprs (`<Task ...>`) and numbers: one row per kind."""
    text = re.sub(r"^\S+Z\s+", "", line.strip())
    while True:
        shorter = re.sub(r"<[^<>]*>", "<>", text)
        if shorter == text:
            break
        text = shorter
    return re.sub(r"\d+", "N", text)[:140]


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS (KiB) and Threads of a live process, from /proc."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _raise_open_files(wanted: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return f"open files limit {soft}"
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    note = "" if target >= wanted else f" (hard limit; {wanted} wanted)"
    return f"open files limit raised {soft} -> {target}{note}"


# ---------------------------------------------------------------------------- database


def _postgres_url(run: str) -> tuple[str, bool]:
    """DATABASE_URL when it points at PostgreSQL; otherwise a new database on the local server,
    ours to create and drop (so a run never meets another checkout's migrations)."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return url, False
    return f"{LOCAL_PG_SERVER}/aikeedo_bench_streaming_{run}", True


def _admin_sql(url: str, sql: str) -> str | None:
    """Run one statement on the server's `postgres` database; why it failed, or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, connect_timeout=3, autocommit=True) as conn:
            conn.execute(sql)
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _prepare_postgres(url: str, create: bool) -> str | None:
    """Create the database when it is ours, else check that it answers; why not, or None."""
    if create:
        return _admin_sql(url, f'CREATE DATABASE "{urlsplit(url).path.lstrip("/")}"')
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


@dataclass
class Seat:
    """One bench user: its session cookie and the conversations its streams use, in order."""

    user_id: int
    session_key: str
    conversations: list[int] = field(default_factory=list)


def _seed(upstream_url: str, upstream_model: str, seats: int, plan: list[int], run: str) -> list[Seat]:
    """Provider, model and rate card; `seats` users with workspace, credits and a session; and
    `plan[i]` fresh conversations for user i (one per stream it will run)."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.db import transaction

    from apps.accounts.services import user_create
    from apps.chat.models import Conversation
    from apps.credits.models import CreditAccount, RateCard
    from apps.credits.rates import rate_card_publish
    from apps.credits.services import credits_grant
    from apps.generation.models import AIModel, Provider
    from apps.workspaces.models import Workspace

    store = import_module(settings.SESSION_ENGINE).SessionStore
    with transaction.atomic():
        provider = Provider.objects.filter(name=PROVIDER_NAME).first() or Provider(name=PROVIDER_NAME)
        provider.kind = "openai"
        provider.base_url = f"{upstream_url}/v1"
        provider.enabled = True
        provider.set_api_key("sk-bench")
        provider.save()
        model, _ = AIModel.objects.update_or_create(
            model_id=MODEL_ID,
            defaults={
                "display_name": "Bench fake",
                "provider": provider,
                "upstream_model": upstream_model,
                "supports_chat": True,
                "max_output_tokens": 256,
                "enabled": True,
                "plans": [],
            },
        )
        if not RateCard.objects.current().filter(service="text", model=MODEL_ID).exists():
            rate_card_publish(
                service="text", model=MODEL_ID, acting_user=None, input_per_1k="0.01", output_per_1k="0.02"
            )
        out = []
        for i in range(seats):
            # No password: hashing one costs ~0.3 s, and the session below is all the login needed.
            user = user_create(email=f"bench-stream-{run}-{i}@bench.invalid", password=None, verified=True)
            workspace = Workspace.objects.for_user(user).get()
            # No low-balance alerts: the benchmark measures streaming, not email delivery.
            CreditAccount.objects.filter(workspace=workspace).update(alert_thresholds=[])
            credits_grant(workspace=workspace, amount=10_000, source="bonus", idempotency_key=f"bench-stream:{run}:{i}")
            session = store()
            session[SESSION_KEY] = str(user.pk)
            session[BACKEND_SESSION_KEY] = SESSION_BACKEND
            session[HASH_SESSION_KEY] = user.get_session_auth_hash()
            session.create()
            conversations = Conversation.objects.bulk_create(
                Conversation(workspace=workspace, user=user, model=model, title=f"Bench {run} {i}.{k}")
                for k in range(plan[i])
            )
            out.append(Seat(user.pk, str(session.session_key), [c.pk for c in conversations]))
    return out


def _server_summary(run: str) -> str:
    """What the server wrote for the bench conversations: message statuses, usage outcomes and
    holds left open."""
    from apps.chat.models import Message
    from apps.credits.models import Reservation
    from apps.generation.models import Generation

    bench_users = {"workspace__memberships__user__email__startswith": f"bench-stream-{run}-"}
    messages = Counter(
        Message.objects.filter(conversation__title__startswith=f"Bench {run} ", role="assistant").values_list(
            "status", flat=True
        )
    )
    outcomes = Counter(
        Generation.objects.filter(model__model_id=MODEL_ID, **bench_users).values_list("outcome", flat=True)
    )
    held = Reservation.objects.held().filter(model=MODEL_ID, **bench_users).count()
    return (
        f"server side: assistant messages {dict(messages) or '{}'}; usage rows {dict(outcomes) or '{}'}; "
        f"holds still open {held}"
    )


# ---------------------------------------------------------------------------- streams


@dataclass
class Stream:
    outcome: str = "pending"  # ok | error: ... | timeout | connect: ...
    ttft: float | None = None
    gaps: list[float] = field(default_factory=list)
    deltas: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _prompt(words: int, tag: str) -> str:
    # Unique per stream, so nothing on the way can answer from a cache.
    return " ".join(f"{tag}w{i}" for i in range(words))


def _remaining(deadline: float) -> float:
    return max(0.01, deadline - time.monotonic())


async def _direct(
    session: Any, base_url: str, model: str, prompt: str, start: asyncio.Event, deadline: float
) -> Stream:
    import aiohttp

    result = Stream()
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    try:
        await asyncio.wait_for(start.wait(), _remaining(deadline))
        sent = last = time.perf_counter()
        async with session.post(
            f"{base_url}/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-bench"},
            timeout=aiohttp.ClientTimeout(total=_remaining(deadline)),
        ) as response:
            if response.status != 200:
                result.outcome = f"error: HTTP {response.status}"
                return result
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    result.outcome = "ok"
                    break
                for choice in json.loads(data).get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        now = time.perf_counter()
                        if result.ttft is None:
                            result.ttft = now - sent
                        else:
                            result.gaps.append(now - last)
                        last = now
                        result.deltas += 1
    except TimeoutError:
        result.outcome = "timeout"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        result.outcome = f"error: {type(exc).__name__}"
    if result.outcome == "pending":
        result.outcome = "error: stream ended without [DONE]"
    return result


class Socket:
    """One chat WebSocket: connected and `ready` before the level starts."""

    def __init__(self, conversation: int, session_key: str) -> None:
        self.conversation = conversation
        self.session_key = session_key
        self.ws: Any = None
        self.result = Stream()

    async def connect(
        self, session: Any, server: str, cookie_name: str, gate: asyncio.Semaphore, deadline: float
    ) -> None:
        import aiohttp

        try:
            async with gate:
                self.ws = await asyncio.wait_for(
                    session.ws_connect(
                        f"ws://{server}/ws/chat/{self.conversation}/",
                        origin=f"http://{server}",
                        headers={"Cookie": f"{cookie_name}={self.session_key}"},
                        max_msg_size=0,
                    ),
                    _remaining(deadline),
                )
            frame = await self._frame(deadline)
            if frame.get("type") != "ready":
                self.result.outcome = f"connect: expected ready, got {frame.get('type')}"
        except TimeoutError:
            self.result.outcome = "connect: timeout"
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            self.result.outcome = f"connect: {type(exc).__name__} {exc}"[:120]

    async def _frame(self, deadline: float) -> dict[str, Any]:
        import aiohttp

        msg = await self.ws.receive(timeout=_remaining(deadline))
        if msg.type != aiohttp.WSMsgType.TEXT:
            code = self.ws.close_code
            raise ConnectionError(f"socket {msg.type.name.lower()} (close code {code})")
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def stream(self, prompt: str, start: asyncio.Event, deadline: float) -> Stream:
        result = self.result
        if result.outcome != "pending":
            return result  # did not connect
        try:
            await asyncio.wait_for(start.wait(), _remaining(deadline))
            sent = last = time.perf_counter()
            await asyncio.wait_for(self.ws.send_json({"type": "send", "content": prompt}), _remaining(deadline))
            while True:
                frame = await self._frame(deadline)
                kind = frame.get("type")
                if kind == "delta":
                    now = time.perf_counter()
                    if result.ttft is None:
                        result.ttft = now - sent
                    else:
                        result.gaps.append(now - last)
                    last = now
                    result.deltas += 1
                elif kind == "done":
                    status = frame.get("status")
                    result.outcome = "ok" if status == "complete" else f"error: done {status}: {frame.get('error')}"
                    return result
                elif kind == "error":
                    result.outcome = f"error: {frame.get('message')}"
                    return result
        except TimeoutError:
            result.outcome = "timeout"
        except (ConnectionError, OSError, ValueError) as exc:
            result.outcome = f"error: {exc}"[:160]
        return result

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)


# ---------------------------------------------------------------------------- levels


@dataclass
class Level:
    concurrency: int
    rounds: int
    direct: list[Stream] = field(default_factory=list)
    platform: list[Stream] = field(default_factory=list)
    connect_s: float = 0.0
    wall_s: float = 0.0
    rss_before_kb: int = 0
    rss_peak_kb: int = 0
    threads_peak: int = 0
    cpu_s: float = 0.0
    drain_s: float = 0.0
    drained: bool = True
    log_problems: Counter[str] = field(default_factory=Counter)

    @staticmethod
    def _ttfts(streams: list[Stream]) -> list[float]:
        return [s.ttft for s in streams if s.ok and s.ttft is not None]

    @staticmethod
    def _gaps(streams: list[Stream]) -> list[float]:
        return [g for s in streams if s.ok for g in s.gaps]


class Server:
    """daphne serving the project, in its own session; RSS / threads / CPU from /proc."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.log = log_path.open("wb")
        self.log_offset = 0
        cmd = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "aikeedo.asgi:application"]
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own venv's daphne
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_group(self.proc, "daphne")
        self.log.close()

    def new_log_problems(self) -> Counter[str]:
        """Problem lines written to the server log since the last call, by first 100 chars."""
        found: Counter[str] = Counter()
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(self.log_offset)
                chunk = fh.read()
                self.log_offset += len(chunk)
        except OSError:
            return found
        for line in chunk.decode(errors="replace").splitlines():
            if LOG_PROBLEM.search(line):
                found[_problem_kind(line)] += 1
        return found

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


async def _wait_ready(server: Server, timeout: float) -> str | None:
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                return f"daphne exited with code {server.proc.returncode}"
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(
                    f"http://{server.address}/healthz", timeout=aiohttp.ClientTimeout(total=2)
                ) as response:
                    if response.status == 200:
                        return None
            await asyncio.sleep(0.2)
    return f"daphne did not answer /healthz within {timeout:.0f} s"


async def _drain(pid: int) -> tuple[float, bool]:
    """Wait until the server is idle (work left by closed or timed-out streams finished), so
    the next level starts from a quiet server; returns the seconds waited and whether it got
    idle within DRAIN_MAX_SECONDS."""
    start = time.monotonic()
    before = _cpu_seconds(pid)
    while time.monotonic() - start < DRAIN_MAX_SECONDS:
        await asyncio.sleep(1.0)
        now = _cpu_seconds(pid)
        if now - before < IDLE_CPU_SECONDS:
            return time.monotonic() - start, True
        before = now
    return time.monotonic() - start, False


async def _sample(server: Server, level: Level, stop: asyncio.Event) -> None:
    while not stop.is_set():
        status = _proc_status(server.proc.pid)
        level.rss_peak_kb = max(level.rss_peak_kb, status.get("VmRSS", 0))
        level.threads_peak = max(level.threads_peak, status.get("Threads", 0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


@dataclass
class Bench:
    server: Server
    upstream_url: str
    upstream_model: str
    seats: list[Seat]
    cookie_name: str
    prompt_words: int
    level_timeout: float
    cursor: list[int] = field(default_factory=list)  # next conversation of each seat

    def __post_init__(self) -> None:
        self.cursor = [0] * len(self.seats)

    def _socket(self, seat_index: int) -> Socket:
        seat = self.seats[seat_index]
        conversation = seat.conversations[self.cursor[seat_index]]
        self.cursor[seat_index] += 1
        return Socket(conversation, seat.session_key)

    async def direct_round(self, session: Any, n: int, tag: str) -> list[Stream]:
        start = asyncio.Event()
        deadline = time.monotonic() + self.level_timeout
        tasks = [
            asyncio.ensure_future(
                _direct(
                    session,
                    self.upstream_url,
                    self.upstream_model,
                    _prompt(self.prompt_words, f"{tag}d{i}"),
                    start,
                    deadline,
                )
            )
            for i in range(n)
        ]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))

    async def platform_round(self, session: Any, n: int, tag: str, level: Level | None) -> list[Stream]:
        sockets = [self._socket(i) for i in range(n)]
        gate = asyncio.Semaphore(CONNECT_PARALLEL)
        t0 = time.monotonic()
        connect_deadline = t0 + self.level_timeout
        try:
            await asyncio.gather(
                *(s.connect(session, self.server.address, self.cookie_name, gate, connect_deadline) for s in sockets)
            )
            t1 = time.monotonic()
            start = asyncio.Event()
            deadline = t1 + self.level_timeout
            tasks = [
                asyncio.ensure_future(s.stream(_prompt(self.prompt_words, f"{tag}p{i}"), start, deadline))
                for i, s in enumerate(sockets)
            ]
            stop = asyncio.Event()
            sampler = asyncio.ensure_future(_sample(self.server, level, stop)) if level is not None else None
            await asyncio.sleep(0)
            start.set()
            results = list(await asyncio.gather(*tasks))
            stop.set()
            if sampler is not None:
                await asyncio.wait_for(sampler, 5)
            if level is not None:
                level.connect_s += t1 - t0
                level.wall_s += time.monotonic() - t1
            return results
        finally:
            await asyncio.gather(*(s.close() for s in sockets))

    async def run_level(self, session: Any, concurrency: int, rounds: int) -> Level:
        level = Level(concurrency=concurrency, rounds=rounds)
        for r in range(rounds):
            level.direct += await self.direct_round(session, concurrency, f"c{concurrency}r{r}")
        self.server.new_log_problems()  # only what this level's platform streams cause
        level.rss_before_kb = _proc_status(self.server.proc.pid).get("VmRSS", 0)
        cpu0 = _cpu_seconds(self.server.proc.pid)
        for r in range(rounds):
            level.platform += await self.platform_round(session, concurrency, f"c{concurrency}r{r}", level)
        level.drain_s, level.drained = await _drain(self.server.proc.pid)
        level.cpu_s = _cpu_seconds(self.server.proc.pid) - cpu0
        level.log_problems = self.server.new_log_problems()
        return level


async def _measure(bench: Bench, levels: list[tuple[int, int]], warmup_timeout: float) -> list[Level] | str:
    import aiohttp

    reason = await _wait_ready(bench.server, 60)
    if reason:
        return reason
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up: the first stream pays for importing litellm (if the server's background
        # warm-up has not finished) and for first-use paths. Not measured.
        saved, bench.level_timeout = bench.level_timeout, warmup_timeout
        for k in range(WARMUP_STREAMS):
            direct = await bench.direct_round(session, 1, f"warm{k}")
            platform = await bench.platform_round(session, 1, f"warm{k}", None)
            if not direct[0].ok:
                return f"warm-up: the fake upstream did not stream ({direct[0].outcome})"
            if not platform[0].ok:
                return f"warm-up: the chat socket did not complete a stream ({platform[0].outcome})"
        bench.level_timeout = saved
        out = []
        for concurrency, rounds in levels:
            level = await bench.run_level(session, concurrency, rounds)
            out.append(level)
            _print_progress(level)
    return out


# ---------------------------------------------------------------------------- report


def _print_progress(level: Level) -> None:
    ok = sum(s.ok for s in level.platform)
    print(
        f"  level {level.concurrency} x{level.rounds}: {ok}/{len(level.platform)} streams ok, "
        f"wall {level.wall_s:.1f} s, RSS peak {level.rss_peak_kb / 1024:.0f} MB",
        flush=True,
    )


def _print_tables(levels: list[Level]) -> None:
    head = (
        f"{'streams':>7} {'ok':>5} {'errors':>6} {'t/o':>5} {'connect':>8} {'wall':>7} {'ok/s':>6} {'deltas':>6} "
        f"{'RSS before':>10} {'RSS peak':>9} {'threads':>7} {'server CPU':>10} {'drain':>6}"
    )
    print()
    print(
        "outcomes per level (wall: first send to last stream ended; deltas: median text frames per ok stream; "
        "drain: until the server was idle after the level)"
    )
    print(head)
    print("-" * len(head))
    for lv in levels:
        n = len(lv.platform)
        ok = sum(s.ok for s in lv.platform)
        timeouts = sum(s.outcome == "timeout" for s in lv.platform)
        deltas = statistics.median([s.deltas for s in lv.platform if s.ok]) if ok else 0
        label = f"{lv.concurrency}" if lv.rounds == 1 else f"{lv.concurrency}x{lv.rounds}"
        rate = ok / lv.wall_s if lv.wall_s else 0.0
        drain = f"{'' if lv.drained else '>'}{lv.drain_s:.0f}s"
        print(
            f"{label:>7} {ok:>5} {n - ok - timeouts:>6} {timeouts:>5} {lv.connect_s:>7.1f}s {lv.wall_s:>6.1f}s "
            f"{rate:>6.1f} {deltas:>6.0f} {lv.rss_before_kb / 1024:>8.0f}MB {lv.rss_peak_kb / 1024:>7.0f}MB "
            f"{lv.threads_peak:>7} {lv.cpu_s:>9.1f}s {drain:>6}"
        )

    head = (
        f"{'streams':>7} | {'TTFT p50':>8} {'p95':>7} | {'direct':>7} {'p95':>7} | {'added':>7} {'p95':>7} | "
        f"{'gap p50':>7} {'p95':>6} | {'direct':>6} {'p95':>6} | {'added':>6} {'p95':>6}"
    )
    print()
    print("latency, ms (TTFT: send to first text; gap: between successive texts; added = platform - direct)")
    print(head)
    print("-" * len(head))
    for lv in levels:
        pt, dt = Level._ttfts(lv.platform), Level._ttfts(lv.direct)
        pg, dg = Level._gaps(lv.platform), Level._gaps(lv.direct)
        label = f"{lv.concurrency}" if lv.rounds == 1 else f"{lv.concurrency}x{lv.rounds}"
        print(
            f"{label:>7} | {_ms(pct(pt, 0.5)):>8} {_ms(pct(pt, 0.95)):>7} | "
            f"{_ms(pct(dt, 0.5)):>7} {_ms(pct(dt, 0.95)):>7} | "
            f"{_ms(pct(pt, 0.5) - pct(dt, 0.5)):>7} {_ms(pct(pt, 0.95) - pct(dt, 0.95)):>7} | "
            f"{_ms(pct(pg, 0.5)):>7} {_ms(pct(pg, 0.95)):>6} | {_ms(pct(dg, 0.5)):>6} {_ms(pct(dg, 0.95)):>6} | "
            f"{_ms(pct(pg, 0.5) - pct(dg, 0.5)):>6} {_ms(pct(pg, 0.95) - pct(dg, 0.95)):>6}"
        )

    print()
    for lv in levels:
        label = f"level {lv.concurrency}"
        direct_bad = Counter(s.outcome for s in lv.direct if not s.ok)
        platform_bad = Counter(s.outcome for s in lv.platform if not s.ok)
        if direct_bad:
            print(f"{label}: direct streams not ok: {dict(direct_bad.most_common(5))}")
        if platform_bad:
            print(f"{label}: platform streams not ok: {dict(platform_bad.most_common(5))}")
            partial = [s.deltas for s in lv.platform if not s.ok and s.deltas]
            if partial:
                print(
                    f"{label}: {len(partial)} of them had received text before they ended "
                    f"(median {statistics.median(partial):.0f} deltas)"
                )
        if lv.log_problems:
            total = sum(lv.log_problems.values())
            print(f"{label}: {total} problem lines in the server log, most frequent:")
            for line, count in lv.log_problems.most_common(5):
                print(f"    {count:>5} x {line}")


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,100,500,1000", help="comma-separated concurrent streams")
    parser.add_argument("--single-rounds", type=int, default=10, help="sequential streams for concurrency 1")
    parser.add_argument("--tokens", type=int, default=40, help="text deltas per answer (2-51)")
    parser.add_argument("--token-delay", type=float, default=0.02, help="fake upstream seconds per token")
    parser.add_argument("--level-timeout", type=float, default=180.0, help="seconds a level may take to stream")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL (DATABASE_URL or aikeedo_bench)")
    parser.add_argument("--asgi-threads", type=int, default=None, help="ASGI_THREADS for daphne (default: unset)")
    parser.add_argument("--settings", default="aikeedo.settings.local", help="DJANGO_SETTINGS_MODULE for both sides")
    parser.add_argument("--debug", action="store_true", help="serve with DJANGO_DEBUG=True (default False)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (SQLite file, server log)")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not levels or min(levels) < 1:
        parser.error("--concurrency needs positive integers")
    if not 2 <= args.tokens <= 51:
        parser.error("--tokens must be between 2 and 51 (the fake upstream echoes at most 50 words)")

    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("SKIP streaming benchmark: aiohttp is not installed")
        return 0
    if not (BIN / "daphne").exists():
        print(f"SKIP streaming benchmark: {BIN / 'daphne'} not found (pip install daphne)")
        return 0

    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="aikeedo-bench-streaming-"))
    drop_database = False
    if args.postgres:
        url, drop_database = _postgres_url(run)
        reason = _prepare_postgres(url, drop_database)
        if reason is not None:
            print(f"SKIP streaming benchmark: PostgreSQL unavailable at {shown(url)} ({reason})")
            shutil.rmtree(tmp, ignore_errors=True)
            return 0
    else:
        url = f"sqlite:///{tmp / 'bench.sqlite3'}"

    limit_note = _raise_open_files(max(levels) * 4 + 512)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = args.settings
    os.environ["DJANGO_DEBUG"] = "True" if args.debug else "False"
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # PYTHONPATH: this checkout's code, whatever the venv's editable install points at.
    server_env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    if args.asgi_threads:
        server_env["ASGI_THREADS"] = str(args.asgi_threads)
    upstream_model = f"fake-slow:{args.token_delay:g}"

    upstream: subprocess.Popen[str] | None = None
    server: Server | None = None
    try:
        upstream, started_url = start_upstream(UPSTREAM_CODE.format(root=str(ROOT)))
        if started_url is None:
            return 1
        upstream_url = started_url

        # Celery's Django fix-up puts the working directory first on sys.path: make that this
        # checkout, or another checkout's `apps` could be imported instead.
        os.chdir(ROOT)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import DatabaseError, connections

        # Conversations per seat: seat 0 runs the warm-up and every round of concurrency 1.
        rounds = [(c, args.single_rounds if c == 1 else 1) for c in levels]
        plan = [sum(r for c, r in rounds if c > i) for i in range(max(levels))]
        plan[0] += WARMUP_STREAMS
        logging.disable(logging.INFO)  # migrations log at INFO; the table is what matters here
        try:
            t0 = time.monotonic()
            call_command("migrate", interactive=False, verbosity=0)
            migrate_s = time.monotonic() - t0
            t0 = time.monotonic()
            seats = _seed(upstream_url, upstream_model, max(levels), plan, run)
            seed_s = time.monotonic() - t0
        except DatabaseError as exc:
            print(f"FAIL: preparing {shown(url)}: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
            return 1
        finally:
            logging.disable(logging.NOTSET)
        connections.close_all()  # nothing of ours holds the database while the server runs

        server = Server(server_env, tmp / "daphne.log")
        threads = args.asgi_threads or min(32, (os.cpu_count() or 1) + 4)
        print(
            f"streaming benchmark: {shown(url)} (migrate {migrate_s:.1f} s, seed {len(seats)} users "
            f"{seed_s:.1f} s); daphne pid {server.proc.pid} on {server.address}, settings {args.settings}, "
            f"DEBUG {args.debug}; ASGI_THREADS {args.asgi_threads or 'unset'} (default executor: {threads} threads)"
        )
        print(
            f"upstream {upstream_url} model {upstream_model}: {args.tokens} deltas of {args.token_delay * 1000:g} ms "
            f"per answer (floor {args.tokens * args.token_delay:.2f} s); machine {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.2f}; {limit_note}",
            flush=True,
        )
        bench = Bench(
            server=server,
            upstream_url=upstream_url,
            upstream_model=upstream_model,
            seats=seats,
            cookie_name=settings.SESSION_COOKIE_NAME,
            prompt_words=args.tokens - 1,  # the fake answers "Echo:" and then the prompt's words
            level_timeout=args.level_timeout,
        )
        result = asyncio.run(_measure(bench, rounds, warmup_timeout=120))
        if isinstance(result, str):
            print(f"FAIL: {result}", file=sys.stderr)
            tail = server.tail()
            if tail:
                print(f"--- last lines of the daphne log ---\n{tail}", file=sys.stderr)
            return 1
        _print_tables(result)
        try:
            print(_server_summary(run))
        except DatabaseError as exc:
            print(f"server side: not read ({str(exc).strip().splitlines()[0]})")
        return 0
    finally:
        if server is not None:
            server.stop()
        if upstream is not None:
            if upstream.stdin is not None:
                with contextlib.suppress(OSError):
                    upstream.stdin.close()  # the fake stops itself at end of input
            try:
                upstream.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop_group(upstream, "fake upstream")
        if drop_database:
            if "django" in sys.modules:
                from django.db import connections

                connections.close_all()
            if args.keep:
                print(f"kept database {shown(url)}")
            elif reason := _admin_sql(url, f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)'):
                print(f"warning: could not drop {shown(url)}: {reason}", file=sys.stderr)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
