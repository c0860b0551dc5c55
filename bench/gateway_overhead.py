"""Gateway overhead: the latency `/v1/chat/completions` adds on top of the upstream, at the client.

    .venv/bin/python bench/gateway_overhead.py [--concurrency 1,16,64] [--seconds 5] [--workers 2]
        [--modes plain,stream] [--postgres [--db-pool SIZE] [--conn-max-age 60]] [--rate-limits off|on]
        [--keys 1] [--server auto|daphne|uvicorn] [--pythonpath DIR] [--litellm-proxy PATH | --no-litellm]
        [--profile FILE]

Starts, all on 127.0.0.1 and stopped by PID (process group) at the end:

- the fake OpenAI upstream (`tests/fakes/upstream.py`) in its own process, so that it does not
  share an event loop or a GIL with the client; model `fake-fast` (answers at once, "Echo:" and
  the prompt's words) unless `--upstream-model` says otherwise;
- a database: a fresh SQLite file in a temporary directory, or with `--postgres` the database of
  DATABASE_URL when it points at PostgreSQL, else postgres://postgres@127.0.0.1:5432/
  aikeedo_bench_gateway (created if missing; SKIP and exit 0 without a reachable PostgreSQL). It
  migrates and writes a provider pointing at the fake, the model `bench-fake` with a rate card,
  `--keys` workspaces with credits and one API key each (scope chat);
- the app as production serves it (DEBUG off, DATABASE_CONN_MAX_AGE 60 like the production
  settings, or Django's psycopg pool with `--db-pool`), with several worker processes:
  `uvicorn --workers N` when uvicorn is importable, otherwise N daphne processes on N ports with
  round-robin in the client (daphne has no worker mode). Redis (`--redis-url`, a dedicated db
  and a per-run key prefix) is shared by the workers when reachable, as in production;
- optionally the LiteLLM proxy (its own virtualenv, never the project's), with `--num_workers N`,
  no database, a master key, and a config pointing `bench-fake` at the same fake upstream.

For each mode (plain JSON, and `stream: true` read to `data: [DONE]`) and each concurrency level,
each target (direct to the fake, through the gateway, through LiteLLM) runs a closed loop of N
clients for `--seconds` after a short unmeasured ramp. It prints, per run, requests/s, errors,
latency percentiles (full response; for streams also the first content chunk), the server's CPU
time per request, and then the latency each proxy adds (proxy - direct at the same percentile and
concurrency) with the ratio Aikeedo / LiteLLM. `--profile` records one worker with py-spy (GIL
holder only) during one run and prints where its CPU goes, step by step.

On PostgreSQL it also counts the new database sessions per request and the most connections the
app held at once, and guards the server (which other work may share): a gateway run that could
take it within `--pg-headroom` connections of max_connections is skipped, and one that gets there
is stopped early; connections an earlier run left open are waited for (a minute at most).

Exit codes: 0 after a run (slow or failed requests under load are reported, never asserted) or a
SKIP; 1 when the harness fails (a server does not start, a warm-up request does not succeed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import resource
import shutil
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

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/aikeedo_bench_gateway"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
DEFAULT_LITELLM = Path("/tmp/litellm-proxy-venv/bin/litellm")  # noqa: S108 - where the docs install it
MODEL_ID = "bench-fake"
PROVIDER_NAME = "Bench gateway upstream"
UPSTREAM_KEY = "sk-bench"
LITELLM_MASTER_KEY = "sk-litellm-bench"
CREDITS_PER_KEY = 10_000_000
HUGE_LIMIT = 1_000_000_000  # --rate-limits on: every window is counted, none ever refuses
RATE_LIMIT_KEYS = ("RATE_LIMIT_KEY_RPM", "RATE_LIMIT_KEY_TPM", "RATE_LIMIT_WORKSPACE_RPM", "RATE_LIMIT_WORKSPACE_TPM")

# The fake upstream, run as `python -c`: prints its port, serves until stdin closes. It records
# every request in a list; a thread empties it every second so a long run keeps a flat memory.
UPSTREAM_CODE = """
import sys, threading, time
sys.path.insert(0, {root!r})
from tests.fakes.upstream import FakeUpstream
upstream = FakeUpstream().start()
def trim():
    while True:
        time.sleep(1.0)
        upstream.requests.clear()
        upstream.disconnects.clear()
threading.Thread(target=trim, daemon=True).start()
print(upstream.port, flush=True)
sys.stdin.read()
upstream.stop()
"""

LITELLM_CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{upstream_model}
      api_base: {api_base}
      api_key: {api_key}
litellm_settings:
  telemetry: false
  set_verbose: false
  drop_params: true
  request_timeout: 60
general_settings:
  master_key: {master_key}
  disable_spend_logs: true
  disable_error_logs: true
"""


# ---------------------------------------------------------------------------- small helpers


def _ms(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value * 1000:.{digits}f}"  # NaN check


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return [head.partition("(")[2], *rest.split()]  # [comm, state, ppid, pgrp, session, ...]


def _session_pids(sid: int) -> list[int]:
    """Processes of a session we started (a server and the workers it forked)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None and fields[4] == str(sid):
                out.append(int(entry.name))
    return out


def _cpu_of(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            out[pid] = (int(fields[12]) + int(fields[13])) / tick
    return out


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> tuple[float, bool]:
    """CPU seconds used between two snapshots (a process born in between counts whole), and
    whether a process ended in between (its last share is then missing)."""
    used = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    return used, bool(set(before) - set(after))


def _raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# ---------------------------------------------------------------------------- services


def _postgres_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://", "pgsql://")) else DEFAULT_PG_URL


def _prepare_postgres(url: str) -> str | None:
    """Connect, creating the default bench database if it is missing; why not, or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    parts = urlsplit(url)
    try:
        psycopg.connect(url, connect_timeout=3).close()
        return None
    except psycopg.OperationalError as exc:
        if url != DEFAULT_PG_URL or "does not exist" not in str(exc):
            return str(exc).strip().splitlines()[0]
    try:
        admin = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{parts.path.lstrip("/")}"')
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _pg_sessions(url: str) -> int | None:
    """Sessions ever opened on the bench database (pg_stat_database, PostgreSQL 14+; counted
    when a session ends): new connections per request, whatever else runs on the machine."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row and row[0] is not None else None


def _pg_load(url: str) -> tuple[int, int, int] | None:
    """(connections to the bench database, client connections to the server, max_connections)."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE datname = current_database()) - 1, count(*), "
                "current_setting('max_connections')::int FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).fetchone()
    except psycopg.Error:
        return None
    return (int(row[0]), int(row[1]), int(row[2])) if row else None


async def _pg_admit(target: Target, concurrency: int, headroom: int) -> str | None:
    """Before a gateway run on PostgreSQL: wait (60 s at most) for the connections earlier runs
    left behind to close, then refuse the run if it could take the server within `headroom`
    of max_connections (the app may hold one connection per request in flight; with a pool,
    at most the pools' size). Why the run is skipped, or None."""
    assert target.pg_url is not None
    settled = target.pg_bound if target.pg_bound is not None else 0
    # Once leftovers did not close within a minute, later runs wait a few seconds only.
    deadline = time.monotonic() + (5 if target.pg_stuck else 60)
    load = _pg_load(target.pg_url)
    while load is not None and load[0] > settled + 2 and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        load = _pg_load(target.pg_url)
    if load is None:
        return None
    target.pg_stuck = load[0] > settled + 2
    mine, total, limit = load
    # More connections the run may open: up to the pools' size, or one per request in flight.
    need = max(0, target.pg_bound - mine) if target.pg_bound is not None else concurrency
    if total + need > limit - headroom:
        return (
            f"it could open {need} more PostgreSQL connections"
            f"{'' if target.pg_bound is not None else ' (one per request in flight, no pool)'}; the server "
            f"has {total} of max_connections {limit} in use ({mine} of them the bench database's), and "
            f"{headroom} are kept free for other users (--pg-headroom)"
        )
    return None


class PgWatch:
    """Polls the PostgreSQL server during a gateway run (its own connection, every 0.2 s): the
    peak of connections to the bench database, and a guard: when the whole server gets within
    `headroom` connections of max_connections, `tripped` is set and the clients stop sending, so
    the bench never starves other users of the server (an app that opens a connection per
    request under ASGI can get there)."""

    def __init__(self, url: str, headroom: int) -> None:
        import threading

        self.url = url
        self.headroom = headroom
        self.peak = 0
        self.server_peak = 0
        self.limit = 0
        self.tripped = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-watch", daemon=True)

    def __enter__(self) -> PgWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=3, autocommit=True) as conn:
                row = conn.execute("SELECT current_setting('max_connections')::int").fetchone()
                self.limit = int(row[0]) if row else 0
                while not self._stop.is_set():
                    mine, total = conn.execute(
                        "SELECT count(*) FILTER (WHERE datname = current_database()) - 1, count(*) "
                        "FROM pg_stat_activity WHERE backend_type = 'client backend'"
                    ).fetchone() or (0, 0)
                    self.peak = max(self.peak, int(mine))
                    self.server_peak = max(self.server_peak, int(total))
                    if self.limit and total >= self.limit - self.headroom:
                        self.tripped = True
                    self._stop.wait(0.2)
        except psycopg.Error:
            return


def _redis_reachable(url: str) -> str | None:
    """Why Redis at `url` cannot be used, or None."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:  # any failure means: run without it
        return f"{type(exc).__name__}: {exc}"
    return None


def _redis_forget(url: str, prefix: str) -> int:
    """Delete this run's keys (cache, constance, rate-limit windows) from the bench Redis db."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


@dataclass
class Process:
    """A server we started in its own session, logging to a file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    ports: list[int]

    def pids(self) -> list[int]:
        return _session_pids(self.proc.pid) if self.proc.poll() is None else []

    def stop(self) -> None:
        stop_group(self.proc, self.name)

    def tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
            return "\n".join(line if len(line) < 300 else line[:150] + " ... " + line[-140:] for line in text)
        return ""

    def problems(self) -> Counter[str]:
        """Warning/error lines and traceback ends in the log, numbers blanked, by kind."""
        import re

        found: Counter[str] = Counter()
        pattern = re.compile(
            r"\b(warning|error|critical)\b|^[\w.]+(Error|Exception)\b.*:|Too many open files", re.IGNORECASE
        )
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                if not pattern.search(line):
                    continue
                text = line.strip()
                if text.startswith("{"):  # a JSON log record: its event and the exception's last line
                    with contextlib.suppress(ValueError, AttributeError):
                        record = json.loads(text)
                        last = (str(record.get("exception") or "").strip().splitlines() or [""])[-1]
                        text = f"{record.get('level', '')}: {record.get('event', '')} {last}".strip()
                found[re.sub(r"\d+", "N", text)[:150]] += 1
        return found


def _spawn(name: str, cmd: list[str], env: dict[str, str], log_path: Path, ports: list[int]) -> Process:
    log = log_path.open("ab")
    try:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv: our interpreter's tools or the given LiteLLM
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    return Process(name, proc, log_path, ports)


def _importable(module: str, pythonpath: str) -> bool:
    """Whether the servers (this interpreter with `pythonpath`) can import `module`."""
    try:
        out = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", f"import {module}"],
            env=dict(os.environ, PYTHONPATH=pythonpath),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def _start_app(server: str, workers: int, env: dict[str, str], tmp: Path) -> list[Process]:
    """The project's ASGI app with `workers` processes: one uvicorn, or one daphne per port."""
    if server == "uvicorn":
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "aikeedo.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--lifespan",
            "off",
            "--no-access-log",
        ]
        return [_spawn("uvicorn", cmd, env, tmp / "uvicorn.log", [port])]
    out = []
    for i in range(workers):
        port = free_port()
        cmd = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "aikeedo.asgi:application"]
        out.append(_spawn(f"daphne-{i}", cmd, env, tmp / f"daphne-{i}.log", [port]))
    return out


def _start_litellm(
    executable: Path, workers: int, upstream_url: str, upstream_model: str, tmp: Path
) -> tuple[Process, str]:
    port = free_port()
    config = tmp / "litellm-config.yaml"
    config.write_text(
        LITELLM_CONFIG.format(
            model=MODEL_ID,
            upstream_model=upstream_model,
            api_base=f"{upstream_url}/v1",
            api_key=UPSTREAM_KEY,
            master_key=LITELLM_MASTER_KEY,
        )
    )
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")
    env = {k: v for k, v in os.environ.items() if k in keep}  # no DATABASE_URL / REDIS_URL
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
        LITELLM_DONT_SHOW_FEEDBACK_BOX="True",
        DISABLE_ADMIN_UI="True",
        NO_DOCS="True",
        PYTHONUNBUFFERED="1",
    )
    cmd = [
        str(executable),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]
    return _spawn("litellm", cmd, env, tmp / "litellm.log", [port]), _litellm_version(executable)


def _litellm_version(executable: Path) -> str:
    python = executable.parent / "python"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(  # noqa: S603 - the LiteLLM venv's own interpreter
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return out.stdout.strip() or "?"
    return "?"


# ---------------------------------------------------------------------------- database seed


def _seed(upstream_url: str, upstream_model: str, keys: int, rate_limits: str, run: str) -> list[str]:
    """Provider, model, rate card, `keys` workspaces with credits and a chat key each; the
    rate limits raised out of the way. Returns the raw keys."""
    from constance import config
    from django.db import transaction

    from apps.apikeys.services import apikey_create
    from apps.credits.models import CreditAccount, RateCard
    from apps.credits.rates import rate_card_publish
    from apps.credits.services import credits_account_open, credits_grant
    from apps.generation.models import AIModel, Provider
    from apps.workspaces.models import Workspace

    with transaction.atomic():
        provider = Provider.objects.filter(name=PROVIDER_NAME).first() or Provider(name=PROVIDER_NAME)
        provider.kind = "openai_compatible"
        provider.base_url = f"{upstream_url}/v1"
        provider.enabled = True
        provider.set_api_key(UPSTREAM_KEY)
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
        model.fallbacks.clear()
        if not RateCard.objects.current().filter(service="text", model=MODEL_ID).exists():
            rate_card_publish(
                service="text", model=MODEL_ID, acting_user=None, input_per_1k="0.01", output_per_1k="0.02"
            )
        workspaces = []
        for i in range(keys):
            workspace = Workspace.objects.create(name=f"Bench gateway {run} {i}", slug=f"bench-gw-{run}-{i}")
            credits_account_open(workspace=workspace)
            # No low-balance alerts: the benchmark measures the gateway, not email delivery.
            CreditAccount.objects.filter(workspace=workspace).update(alert_thresholds=[])
            credits_grant(
                workspace=workspace, amount=CREDITS_PER_KEY, source="bonus", idempotency_key=f"bench-gw:{run}:{i}"
            )
            workspaces.append(workspace)
    # Key creation is an outermost (durable) service: after the seeding transaction.
    raw_keys = [
        apikey_create(workspace=workspace, acting_user=None, name=f"bench {run}", scopes=["chat"])[1]
        for workspace in workspaces
    ]
    value = 0 if rate_limits == "off" else HUGE_LIMIT
    for name in RATE_LIMIT_KEYS:
        setattr(config, name, value)
    return raw_keys


def _server_summary(run: str) -> str:
    """What the gateway wrote for this run: usage rows by outcome, holds left open."""
    from apps.credits.models import Reservation
    from apps.generation.models import Generation

    prefix = f"bench-gw-{run}-"
    outcomes = Counter(Generation.objects.filter(workspace__slug__startswith=prefix).values_list("outcome", flat=True))
    held = Reservation.objects.held().filter(account__workspace__slug__startswith=prefix).count()
    return f"gateway wrote: usage rows {dict(outcomes) or '{}'}; credit holds still open {held}"


# ---------------------------------------------------------------------------- client


@dataclass
class Target:
    name: str
    urls: list[str]  # base URLs; requests go round-robin over them
    model: str
    keys: list[str]
    processes: list[Process] = field(default_factory=list)  # whose CPU counts as "server CPU"
    pg_url: str | None = None  # the database whose new sessions per request are counted
    pg_bound: int | None = None  # most connections the app can hold (a pool), None: one per request
    pg_stuck: bool = False  # connections left open by earlier runs did not close
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def next(self) -> tuple[str, str]:
        n = next(self.counter)
        return self.urls[n % len(self.urls)], self.keys[n % len(self.keys)]

    def pids(self) -> list[int]:
        return [pid for p in self.processes for pid in p.pids()]


@dataclass
class Sample:
    ok: bool
    total: float
    first: float | None = None  # streams: first content chunk
    error: str = ""


@dataclass
class Run:
    mode: str
    concurrency: int
    target: str
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    all_done: int = 0  # requests finished during ramp + measurement (for CPU per request)
    server_cpu: float = float("nan")
    cpu_partial: bool = False  # a server process ended during the run: its CPU is missing
    pg_sessions: float = float("nan")  # new PostgreSQL sessions per request (gateway on PostgreSQL)
    pg_peak: int | None = None  # most connections to the bench database at once
    pg_tripped: bool = False  # stopped early by the connection guard
    skipped: str = ""  # why the run did not take place
    client_cpu: float = 0.0  # share of one CPU this process used during the run

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    def totals(self) -> list[float]:
        return [s.total for s in self.ok]

    def firsts(self) -> list[float]:
        return [s.first for s in self.ok if s.first is not None]

    @property
    def rate(self) -> float:
        return len(self.ok) / self.seconds if self.seconds else 0.0

    def errors(self) -> Counter[str]:
        return Counter(s.error for s in self.samples if not s.ok)


_PROMPT_WORDS = 20
_prompt_counter = itertools.count()


def _prompt() -> str:
    # Unique per request, so no response cache anywhere can answer it.
    n = next(_prompt_counter)
    return " ".join(f"r{n}w{i}" for i in range(_PROMPT_WORDS))


async def _request(session: Any, target: Target, stream: bool, timeout: float) -> Sample:
    import aiohttp

    base, key = target.next()
    body: dict[str, Any] = {"model": target.model, "messages": [{"role": "user", "content": _prompt()}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {key}"}
    start = time.perf_counter()
    try:
        async with session.post(
            f"{base}/v1/chat/completions",
            json=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            if response.status != 200:
                await response.read()
                return Sample(False, time.perf_counter() - start, error=f"HTTP {response.status}")
            if not stream:
                data = json.loads(await response.read())
                content = (data.get("choices") or [{}])[0].get("message", {}).get("content") or ""
                if not content.startswith("Echo:"):
                    return Sample(False, time.perf_counter() - start, error="unexpected body")
                return Sample(True, time.perf_counter() - start)
            first: float | None = None
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    if first is None:
                        return Sample(False, time.perf_counter() - start, error="stream without content")
                    return Sample(True, time.perf_counter() - start, first)
                if first is None:
                    chunk = json.loads(data)
                    if "error" in chunk:
                        return Sample(False, time.perf_counter() - start, error="error event in stream")
                    for choice in chunk.get("choices") or []:
                        if (choice.get("delta") or {}).get("content"):
                            first = time.perf_counter() - start
            return Sample(False, time.perf_counter() - start, error="stream ended without [DONE]")
    except TimeoutError:
        return Sample(False, time.perf_counter() - start, error="timeout")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return Sample(False, time.perf_counter() - start, error=type(exc).__name__)


async def _closed_loop(
    session: Any,
    target: Target,
    mode: str,
    concurrency: int,
    seconds: float,
    ramp: float,
    timeout: float,
    pg_url: str | None = None,
    pg_headroom: int = 40,
) -> Run:
    """`concurrency` clients sending back to back for ramp + seconds; samples of requests sent
    after the ramp count."""
    run = Run(mode=mode, concurrency=concurrency, target=target.name)
    stream = mode == "stream"
    sessions0 = _pg_sessions(pg_url) if pg_url else None
    watch = PgWatch(pg_url, pg_headroom) if pg_url else None
    cpu0, client0 = _cpu_of(target.pids()), time.process_time()
    t0 = time.perf_counter()
    measure_from = t0 + ramp
    end = measure_from + seconds
    last_done = measure_from

    async def client() -> None:
        nonlocal last_done
        while True:
            start = time.perf_counter()
            if start >= end or (watch is not None and watch.tripped):
                return
            sample = await _request(session, target, stream, timeout)
            run.all_done += 1
            if start >= measure_from:
                run.samples.append(sample)
                last_done = max(last_done, time.perf_counter())

    with watch if watch is not None else contextlib.nullcontext():
        await asyncio.gather(*(client() for _ in range(concurrency)))
    if watch is not None:
        run.pg_peak, run.pg_tripped = watch.peak, watch.tripped
        if watch.tripped:
            print(
                f"  stopped early: the PostgreSQL server reached {watch.server_peak} of {watch.limit} connections "
                f"({watch.peak} to the bench database)",
                flush=True,
            )
    run.seconds = max(seconds, last_done - measure_from) if not run.pg_tripped else max(last_done - measure_from, 1e-3)
    run.server_cpu, run.cpu_partial = _cpu_delta(cpu0, _cpu_of(target.pids()))
    run.client_cpu = (time.process_time() - client0) / max(time.perf_counter() - t0, 1e-9)
    if sessions0 is not None and pg_url:
        await asyncio.sleep(0.5)  # sessions are counted when they end; let the request threads finish
        sessions1 = _pg_sessions(pg_url)
        if sessions1 is not None:
            run.pg_sessions = max(0, sessions1 - sessions0 - 1) / max(run.all_done, 1)  # less our own read
    return run


async def _wait_http(url: str, processes: list[Process], timeout: float) -> str | None:
    """Wait for GET `url` to answer 200; why not, or None."""
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            for p in processes:
                if p.proc.poll() is not None:
                    return f"{p.name} exited with code {p.proc.returncode}"
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return None
            await asyncio.sleep(0.3)
    return f"{url} did not answer within {timeout:.0f} s"


async def _warm_up(session: Any, target: Target, modes: list[str], requests: int, timeout: float) -> str | None:
    """Requests that are not measured: every worker's first call (imports, connections), then
    a few concurrent ones. A failure of the sequential ones is the harness's failure."""
    for mode in modes:
        for _ in range(max(len(target.urls), 1) * 2):
            sample = await _request(session, target, mode == "stream", timeout)
            if not sample.ok:
                return f"warm-up {mode} request through {target.name} failed: {sample.error}"
        samples = await asyncio.gather(*(_request(session, target, mode == "stream", timeout) for _ in range(requests)))
        bad = Counter(s.error for s in samples if not s.ok)
        if bad:
            # Failures under concurrency (SQLite's write lock) are what the runs report, not a harness failure.
            kinds = ", ".join(f"{k} x{v}" for k, v in bad.most_common(3))
            print(
                f"  note: {sum(bad.values())}/{requests} concurrent warm-up {mode} requests via {target.name} "
                f"failed ({kinds})"
            )
    return None


async def _profile(pid: int, seconds: float, out: Path) -> str | None:
    """py-spy record (raw collapsed stacks) of one worker; why not, or None."""
    py_spy = BIN / "py-spy"
    if not py_spy.exists():
        return f"{py_spy} not found"
    proc = await asyncio.create_subprocess_exec(
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--rate",
        "250",
        "--gil",  # only the thread holding the GIL: where the Python CPU time goes
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), seconds + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return "py-spy did not finish"
    if proc.returncode != 0:
        return f"py-spy exited {proc.returncode}: {err.decode(errors='replace').strip()[-200:]}"
    return None


# Where a gateway worker's CPU goes: a sample belongs to the first of these whose frame is on its
# stack (the step it is part of), else to the innermost frame of the machinery below.
PROFILE_STEPS = (
    ("upstream call: litellm + openai SDK + HTTP client", ("chat_stream (apps/generation/providers/llm.py",)),
    (
        "before the call: key, body, model, rate limit, quote, reserve",
        ("_prepare_chat (", "ChatGeneration._prepare ("),
    ),
    (
        "after the call: settle, usage row, token windows, balance",
        (
            "ChatGeneration._finish (",
            "ChatGeneration._log (",
            "ChatGeneration._checkpoint (",
            "_after (apps/api",
            "_remaining (apps/api",
        ),
    ),
    ("other gateway code: view, router, breaker, SSE", ("(apps/", f"({ROOT}/apps/")),
)
PROFILE_MACHINERY = (
    ("Django handler + middleware", ("django/", "allauth/", "whitenoise/", "django_htmx/", "structlog/")),
    ("daphne / twisted / uvicorn HTTP", ("daphne/", "twisted/", "autobahn/", "uvicorn/", "h11/", "httptools/")),
    (
        "asgiref thread hops + event loop",
        ("asgiref/", "asyncio/", "concurrent/futures", "threading.py", "selectors.py", "channels/"),
    ),
)


def _profile_summary(path: Path, top: int = 12) -> str:
    """py-spy's collapsed stacks (GIL holder only) as shares per step, plus the hottest frames."""
    total = 0
    steps: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        if frames:
            own[_frame_name(frames[-1])] += count
        step = next((name for name, keys in PROFILE_STEPS if any(k in f for f in frames for k in keys)), None)
        if step is None:
            step = next(
                (name for f in reversed(frames) for name, keys in PROFILE_MACHINERY if any(k in f for k in keys)),
                "other",
            )
        steps[step] += count
    if not total:
        return "profile: no samples"
    lines = [f"profile of one worker ({total} samples of the thread holding the GIL), by step:"]
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in steps.most_common()]
    lines.append("hottest frames (self time):")
    lines += [f"  {100 * c / total:5.1f}%  {name}" for name, c in own.most_common(top)]
    return "\n".join(lines)


def _frame_name(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (package/module.py)`, shortened to site-packages."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


async def _measure(
    targets: list[Target],
    modes: list[str],
    levels: list[int],
    args: argparse.Namespace,
    profile: tuple[Target, Path] | None,
) -> list[Run] | str:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        for target in targets:
            reason = await _warm_up(session, target, modes, args.warmup, timeout=120)
            if reason:
                return reason
        runs = []
        for mode in modes:
            for concurrency in levels:
                for target in targets:
                    if target.pg_url is not None:
                        why = await _pg_admit(target, concurrency, args.pg_headroom)
                        if why:
                            runs.append(Run(mode=mode, concurrency=concurrency, target=target.name, skipped=why))
                            print(f"  {mode:<6} c={concurrency:<3} {target.name:<8} skipped: {why}", flush=True)
                            continue
                    job = None
                    if (
                        profile is not None
                        and target is profile[0]
                        and mode == modes[0]
                        and concurrency == args.profile_concurrency
                        and target.pids()
                    ):
                        # One worker, during one run of the first mode.
                        pid = target.processes[0].proc.pid
                        job = asyncio.ensure_future(_profile(pid, args.ramp + args.seconds, profile[1]))
                    run = await _closed_loop(
                        session,
                        target,
                        mode,
                        concurrency,
                        args.seconds,
                        args.ramp,
                        args.request_timeout,
                        target.pg_url,
                        args.pg_headroom,
                    )
                    if job is not None:
                        error = await job
                        print(f"  profile: {error or f'written to {profile[1]}'}", flush=True)
                    runs.append(run)
                    _progress(run)
                    await asyncio.sleep(0.5)  # let trailing writes and sockets settle
        return runs


# ---------------------------------------------------------------------------- report


def _progress(run: Run) -> None:
    errors = sum(run.errors().values())
    print(
        f"  {run.mode:<6} c={run.concurrency:<3} {run.target:<8} {len(run.ok):>6} ok {errors:>5} errors "
        f"{run.rate:>7.0f} req/s  p50 {_ms(pct(run.totals(), 0.5))} ms",
        flush=True,
    )


def _print_tables(runs: list[Run]) -> None:
    print()
    print(
        "per run (latency in ms at the client, full response; 'first' = first content chunk of a stream; "
        "srv CPU = CPU time of the target's processes per request, ms; PG new/req = new PostgreSQL sessions per "
        "request, PG peak = most connections to the bench database at once; client = this process's CPU share)"
    )
    head = (
        f"{'mode':<6} {'conc':>4} {'target':<8} {'ok':>6} {'err':>5} {'req/s':>7} | {'p50':>6} {'p95':>6} {'p99':>6} | "
        f"{'first p50':>9} {'p95':>6} {'p99':>6} | {'srv CPU':>7} {'PG new/req':>10} {'peak':>4} {'client':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        if r.skipped:
            print(f"{r.mode:<6} {r.concurrency:>4} {r.target:<8} skipped (PostgreSQL connections, see below)")
            continue
        totals, firsts = r.totals(), r.firsts()
        per = max(r.all_done, 1)
        first_cols = (
            f"{_ms(pct(firsts, 0.5)):>9} {_ms(pct(firsts, 0.95)):>6} {_ms(pct(firsts, 0.99)):>6}"
            if r.mode == "stream"
            else f"{'':>9} {'':>6} {'':>6}"
        )
        print(
            f"{r.mode:<6} {r.concurrency:>4} {r.target:<8} {len(r.ok):>6} {sum(r.errors().values()):>5} "
            f"{r.rate:>7.0f} | {_ms(pct(totals, 0.5)):>6} {_ms(pct(totals, 0.95)):>6} {_ms(pct(totals, 0.99)):>6} | "
            f"{first_cols} | {_ms(r.server_cpu / per, 2) + ('?' if r.cpu_partial else ''):>7} "
            f"{'' if r.pg_sessions != r.pg_sessions else f'{r.pg_sessions:.2f}':>10} "
            f"{'' if r.pg_peak is None else str(r.pg_peak) + ('!' if r.pg_tripped else ''):>4} "
            f"{r.client_cpu * 100:>5.0f}%"
        )

    by_key = {(r.mode, r.concurrency, r.target): r for r in runs}
    proxies = [t for t in ("gateway", "litellm") if any(r.target == t for r in runs)]
    if "direct" not in {r.target for r in runs} or not proxies:
        return
    print()
    print(
        "added latency, ms = proxy - direct at the same percentile and concurrency "
        "(streams: full stream; 'first' = first content chunk); ratios = Aikeedo / LiteLLM"
    )
    cols = " | ".join(f"{name + ' added p50':>17} {'p95':>6} {'p99':>6}" for name in proxies)
    head = f"{'mode':<10} {'conc':>4} | {cols}"
    if len(proxies) == 2:
        head += f" | {'ratio p50':>9} {'p95':>5} {'p99':>5} | {'req/s':>5} {'CPU/req':>7}"
    print(head)
    print("-" * len(head))
    seen = sorted({(r.mode, r.concurrency) for r in runs}, key=lambda k: (k[0] != "plain", k[1]))
    for mode, conc in seen:
        direct = by_key.get((mode, conc, "direct"))
        if direct is None:
            continue
        for measure in ("total", "first") if mode == "stream" else ("total",):
            added: dict[str, list[float]] = {}
            for name in proxies:
                r = by_key.get((mode, conc, name))
                if r is None:
                    added[name] = [float("nan")] * 3
                    continue
                mine = r.totals() if measure == "total" else r.firsts()
                base = direct.totals() if measure == "total" else direct.firsts()
                added[name] = [pct(mine, q) - pct(base, q) for q in (0.5, 0.95, 0.99)]
            label = mode if measure == "total" else f"{mode} 1st"
            line = f"{label:<10} {conc:>4} | " + " | ".join(
                f"{_ms(a[0]):>17} {_ms(a[1]):>6} {_ms(a[2]):>6}" for a in added.values()
            )
            if len(proxies) == 2:
                ratios = [
                    f"{g / lt:.1f}" if lt > 0 and g == g else "-"
                    for g, lt in zip(added["gateway"], added["litellm"], strict=True)
                ]
                gw, ll = by_key.get((mode, conc, "gateway")), by_key.get((mode, conc, "litellm"))
                rps = cpu = ""
                if measure == "total" and gw and ll and ll.rate:
                    rps = f"{gw.rate / ll.rate:.2f}"
                    gw_cpu, ll_cpu = gw.server_cpu / max(gw.all_done, 1), ll.server_cpu / max(ll.all_done, 1)
                    cpu = f"{gw_cpu / ll_cpu:.1f}" if ll_cpu > 0 else "-"
                line += f" | {ratios[0]:>9} {ratios[1]:>5} {ratios[2]:>5} | {rps:>5} {cpu:>7}"
            print(line)

    failures = [(r, r.errors()) for r in runs if r.errors() or r.pg_tripped or r.skipped]
    if failures:
        print()
        for r, errors in failures:
            kinds = ", ".join(f"{k} x{v}" for k, v in errors.most_common(4))
            guard = "stopped early by the PostgreSQL connection guard" if r.pg_tripped else ""
            guard = f"skipped: {r.skipped}" if r.skipped else guard
            print(f"{r.mode} c={r.concurrency} {r.target}: {'; '.join(x for x in (kinds, guard) if x)}")


# ---------------------------------------------------------------------------- main


def _parse_levels(text: str, parser: argparse.ArgumentParser) -> list[int]:
    try:
        levels = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        parser.error("--concurrency needs comma-separated integers")
    if not levels or min(levels) < 1:
        parser.error("--concurrency needs positive integers")
    return levels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated concurrent clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per target, mode and level")
    parser.add_argument("--ramp", type=float, default=0.5, help="unmeasured seconds before each measurement")
    parser.add_argument("--warmup", type=int, default=16, help="concurrent warm-up requests per target and mode")
    parser.add_argument("--workers", type=int, default=2, help="app (and LiteLLM) worker processes")
    parser.add_argument("--modes", default="plain,stream", help="plain (JSON), stream (SSE), or both")
    parser.add_argument("--targets", default="direct,gateway,litellm", help="what to measure")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL (DATABASE_URL or aikeedo_bench_gateway)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="shared cache / rate limits when reachable")
    parser.add_argument("--no-redis", action="store_true", help="per-process memory cache and rate limits")
    parser.add_argument(
        "--rate-limits",
        choices=("off", "on"),
        default="off",
        help="off: RPM/TPM limits 0 (unlimited, nothing counted); on: limits of 10^9 (every window counted)",
    )
    parser.add_argument("--keys", type=int, default=1, help="API keys, each in its own workspace (round-robin)")
    parser.add_argument("--server", choices=("auto", "uvicorn", "daphne"), default="auto", help="ASGI server")
    parser.add_argument("--settings", default="aikeedo.settings.local", help="DJANGO_SETTINGS_MODULE (DEBUG off)")
    parser.add_argument("--conn-max-age", type=int, default=60, help="DATABASE_CONN_MAX_AGE (production: 60)")
    parser.add_argument(
        "--db-pool",
        type=int,
        default=0,
        metavar="SIZE",
        help="PostgreSQL only: serve with Django's psycopg pool of SIZE connections per worker (CONN_MAX_AGE 0); "
        "needs psycopg_pool importable by the servers (see --pythonpath)",
    )
    parser.add_argument(
        "--pg-headroom",
        type=int,
        default=40,
        help="keep this many PostgreSQL connections free: skip a gateway run that could use them, stop one that does",
    )
    parser.add_argument(
        "--pythonpath",
        action="append",
        default=[],
        metavar="DIR",
        help="prepend DIR to the servers' PYTHONPATH (e.g. a `pip install --target DIR uvicorn psycopg-pool`, "
        "to try them without touching the venv); repeatable",
    )
    parser.add_argument("--upstream-model", default="fake-fast", help="the fake's model: fake-fast, fake-slow:0.01")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--litellm-proxy", type=Path, default=None, help=f"LiteLLM executable ({DEFAULT_LITELLM})")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy column")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy one app worker (raw stacks to this file) during one run"
    )
    parser.add_argument(
        "--profile-concurrency",
        type=int,
        default=None,
        help="the level to profile (default: the highest level up to 16)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, SQLite file)")
    args = parser.parse_args()
    levels = _parse_levels(args.concurrency, parser)
    if args.profile_concurrency is None:
        args.profile_concurrency = max([c for c in levels if c <= 16] or [min(levels)])
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not modes or set(modes) - {"plain", "stream"}:
        parser.error("--modes takes plain and/or stream")
    if not wanted or set(wanted) - {"direct", "gateway", "litellm"}:
        parser.error("--targets takes direct, gateway and/or litellm")
    if args.workers < 1 or args.keys < 1:
        parser.error("--workers and --keys must be at least 1")
    if args.db_pool and not args.postgres:
        parser.error("--db-pool needs --postgres")
    server_path = os.pathsep.join([*(str(Path(d).resolve()) for d in args.pythonpath), str(ROOT)])

    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("SKIP gateway overhead benchmark: aiohttp is not installed")
        return 0
    has_uvicorn = _importable("uvicorn", server_path)
    server_kind = args.server if args.server != "auto" else ("uvicorn" if has_uvicorn else "daphne")
    if server_kind == "uvicorn" and not has_uvicorn:
        print("SKIP gateway overhead benchmark: uvicorn is not importable by the servers (see --pythonpath)")
        return 0
    if args.db_pool and not _importable("psycopg_pool", server_path):
        print("SKIP gateway overhead benchmark: --db-pool needs psycopg_pool importable by the servers (--pythonpath)")
        return 0
    if server_kind == "daphne" and not (BIN / "daphne").exists():
        print(f"SKIP gateway overhead benchmark: {BIN / 'daphne'} not found")
        return 0

    litellm_exe: Path | None = None
    litellm_note = ""
    if "litellm" in wanted and not args.no_litellm:
        candidate = args.litellm_proxy or DEFAULT_LITELLM
        if candidate.exists():
            litellm_exe = candidate
        else:
            litellm_note = (
                f"LiteLLM proxy column skipped: {candidate} not found "
                f"(python3.11 -m venv {DEFAULT_LITELLM.parent.parent} "
                f"&& {DEFAULT_LITELLM.parent / 'pip'} install 'litellm[proxy]')"
            )
    elif "litellm" in wanted:
        litellm_note = "LiteLLM proxy column skipped (--no-litellm)"

    tmp = Path(tempfile.mkdtemp(prefix="aikeedo-bench-gateway-"))
    if args.postgres:
        url = _postgres_url()
        reason = _prepare_postgres(url)
        if reason is not None:
            print(f"SKIP gateway overhead benchmark: PostgreSQL unavailable at {shown(url)} ({reason})")
            shutil.rmtree(tmp, ignore_errors=True)
            return 0
    else:
        url = f"sqlite:///{tmp / 'bench.sqlite3'}"

    run_id = uuid.uuid4().hex[:8]
    redis_url = ""
    redis_note = "no Redis (--no-redis): per-process cache and rate limits"
    if not args.no_redis:
        why = _redis_reachable(args.redis_url)
        if why is None:
            redis_url = args.redis_url
            redis_note = f"Redis {redis_url} (key prefix aikeedo-bench-gw-{run_id})"
        else:
            redis_note = f"no Redis ({args.redis_url}: {why}): per-process cache and rate limits"
    cache_prefix = f"aikeedo-bench-gw-{run_id}"

    _raise_open_files(max(levels) * 6 + 1024)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = args.settings
    os.environ["DJANGO_DEBUG"] = "False"
    os.environ["DATABASE_CONN_MAX_AGE"] = str(args.conn_max_age)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["LOG_FORMAT"] = "json"
    os.environ["CACHE_KEY_PREFIX"] = cache_prefix
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    # PYTHONPATH: this checkout's code, whatever the venv's editable install points at.
    server_env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=server_path)
    if args.db_pool:
        # A settings module of our own: the project's settings plus Django's connection pool.
        (tmp / "bench_gateway_pool_settings.py").write_text(
            f"from {args.settings} import *  # noqa: F403\n"
            f"from {args.settings} import DATABASES\n"
            'DATABASES["default"]["CONN_MAX_AGE"] = 0\n'
            'DATABASES["default"].setdefault("OPTIONS", {})["pool"] = '
            f'{{"min_size": 1, "max_size": {args.db_pool}, "timeout": 30}}\n'
        )
        server_env.update(
            DJANGO_SETTINGS_MODULE="bench_gateway_pool_settings",
            DATABASE_CONN_MAX_AGE="0",
            PYTHONPATH=os.pathsep.join([str(tmp), server_path]),
        )

    upstream: subprocess.Popen[str] | None = None
    processes: list[Process] = []
    try:
        upstream, started_url = start_upstream(UPSTREAM_CODE.format(root=str(ROOT)))
        if started_url is None:
            return 1
        upstream_url = started_url

        # LiteLLM imports for a long time: start it first, it gets ready while we migrate.
        litellm_proc: Process | None = None
        litellm_version = ""
        if litellm_exe is not None:
            litellm_proc, litellm_version = _start_litellm(
                litellm_exe, args.workers, upstream_url, args.upstream_model, tmp
            )
            processes.append(litellm_proc)

        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection, connections

        t0 = time.monotonic()
        logging.disable(logging.INFO)  # migrations log at INFO; the table is what matters here
        try:
            call_command("migrate", interactive=False, verbosity=0)
        finally:
            logging.disable(logging.NOTSET)
        migrate_s = time.monotonic() - t0
        raw_keys = _seed(upstream_url, args.upstream_model, args.keys, args.rate_limits, run_id)
        db_version = (
            f"PostgreSQL {connection.cursor().connection.info.server_version}"
            if connection.vendor == "postgresql"
            else f"SQLite {connection.Database.sqlite_version}"
        )
        connections.close_all()  # nothing of ours holds the database while the servers run

        app = _start_app(server_kind, args.workers, server_env, tmp)
        processes.extend(app)
        app_urls = [f"http://127.0.0.1:{p}" for proc in app for p in proc.ports]

        async def ready() -> str | None:
            for base in app_urls:
                reason = await _wait_http(f"{base}/healthz", app, 90)
                if reason:
                    return reason
            if litellm_proc is not None:
                base = f"http://127.0.0.1:{litellm_proc.ports[0]}"
                return await _wait_http(f"{base}/health/liveliness", [litellm_proc], 180)
            return None

        reason = asyncio.run(ready())
        if reason:
            print(f"FAIL: {reason}", file=sys.stderr)
            for proc in processes:
                tail = proc.tail()
                if tail:
                    print(f"--- last lines of the {proc.name} log ---\n{tail}", file=sys.stderr)
            return 1

        targets = []
        if "direct" in wanted:
            targets.append(Target("direct", [upstream_url], args.upstream_model, [UPSTREAM_KEY]))
            targets[-1].processes = [Process("fake", upstream, Path(os.devnull), [int(upstream_url.rsplit(":", 1)[1])])]  # type: ignore[arg-type]
        if "gateway" in wanted:
            targets.append(
                Target(
                    "gateway",
                    app_urls,
                    MODEL_ID,
                    raw_keys,
                    processes=app,
                    pg_url=url if args.postgres else None,
                    pg_bound=args.workers * args.db_pool if args.db_pool else None,
                )
            )
        if litellm_proc is not None:
            litellm_url = f"http://127.0.0.1:{litellm_proc.ports[0]}"
            targets.append(Target("litellm", [litellm_url], MODEL_ID, [LITELLM_MASTER_KEY], processes=[litellm_proc]))

        db_note = (
            f"psycopg pool of {args.db_pool} per worker, CONN_MAX_AGE 0"
            if args.db_pool
            else f"CONN_MAX_AGE {args.conn_max_age}"
        )
        workers_note = (
            f"uvicorn --workers {args.workers}"
            if server_kind == "uvicorn"
            else f"{args.workers} daphne process(es), client round-robin"
            + ("" if has_uvicorn else " (uvicorn is not installed)")
        )
        print(
            f"gateway overhead benchmark: {shown(url)} ({db_version}, migrate {migrate_s:.1f} s, "
            f"{db_note}); {workers_note}; settings {args.settings}, DEBUG off; {redis_note}; "
            f"rate limits {args.rate_limits}; {args.keys} API key(s)"
        )
        print(
            f"upstream {upstream_url} model {args.upstream_model} (answer: 21 words); "
            f"LiteLLM {litellm_version + ' proxy, ' + str(args.workers) + ' worker(s)' if litellm_proc else 'absent'}; "
            f"{args.seconds:g} s per run after {args.ramp:g} s ramp; machine {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if litellm_note:
            print(litellm_note)

        profile = None
        if args.profile is not None:
            gateway = next((t for t in targets if t.name == "gateway"), None)
            if gateway is not None:
                profile = (gateway, args.profile.resolve())
        result = asyncio.run(_measure(targets, modes, levels, args, profile))
        if isinstance(result, str):
            print(f"FAIL: {result}", file=sys.stderr)
            for proc in processes:
                tail = proc.tail()
                if tail:
                    print(f"--- last lines of the {proc.name} log ---\n{tail}", file=sys.stderr)
            return 1
        _print_tables(result)
        print()
        for proc in processes:
            problems = proc.problems()
            if problems:
                print(f"{proc.name}: {sum(problems.values())} warning/error lines in its log, most frequent:")
                for line, count in problems.most_common(4):
                    print(f"    {count:>5} x {line}")
        print(_server_summary(run_id))
        if profile is not None and profile[1].exists():
            print(_profile_summary(profile[1]))
        return 0
    finally:
        for proc in reversed(processes):
            proc.stop()
        if upstream is not None:
            if upstream.stdin is not None:
                with contextlib.suppress(OSError):
                    upstream.stdin.close()  # the fake stops itself at end of input
            try:
                upstream.wait(timeout=15)
            except subprocess.TimeoutExpired:
                stop_group(upstream, "fake upstream")
        if redis_url:
            with contextlib.suppress(Exception):
                _redis_forget(redis_url, cache_prefix)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
