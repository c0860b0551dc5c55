"""Credits ledger throughput: reserve + settle pairs per second on PostgreSQL.

    .venv/bin/python bench/credits_ledger.py [--seconds 3] [--workers 1,8,32]

Runs against DATABASE_URL when it points at PostgreSQL, otherwise against
postgres://postgres@127.0.0.1:5432/aikeedo_bench (created and migrated on first use). Without
a reachable PostgreSQL it prints a SKIP line and exits 0, so `make bench` works everywhere.

Each scenario forks N worker processes (separate processes, so both cores work: threads would
serialise on the GIL); each opens its own connection, waits at a barrier, then loops
reserve(1 credit) → settle(0.7 credit) for a fixed time. "hot" points every worker at one
workspace (every pair serialises on that account's row lock); "spread" gives each worker its
own workspace. A final reconcile proves that no projection drifted from the ledger.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/aikeedo_bench"
HOLD_UNITS = 10_000  # 1 credit
CHARGE_UNITS = 7_000  # 0.7 credit: settle below the hold, so part of it is released
TARGET_PAIRS = 500
TARGET_P99_MS = 20.0


def _database_url() -> tuple[str, bool]:
    """The URL to use, and whether it is the dedicated bench database (ours to create)."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return url, False
    return DEFAULT_URL, True


def _prepare_database(url: str, create: bool) -> str | None:
    """Connect (creating the bench database if needed); returns why it cannot, or None."""
    import psycopg

    parts = urlsplit(url)
    dbname = parts.path.lstrip("/")
    try:
        psycopg.connect(url, connect_timeout=3).close()
        return None
    except psycopg.OperationalError as exc:
        if not create or "does not exist" not in str(exc):
            return str(exc).strip().splitlines()[0]
    try:
        admin = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aikeedo.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


@dataclass
class Result:
    scenario: str
    workers: int
    pairs: int
    refused: int
    seconds: float
    reserve_ms: list[float]
    settle_ms: list[float]

    @property
    def rate(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _worker(workspace_id: int, run: str, index: int, seconds: float, barrier: Any, queue: Any) -> None:
    from django.db import connection

    from apps.credits.exceptions import InsufficientCredits
    from apps.credits.services import credits_reserve, credits_settle
    from apps.workspaces.models import Workspace

    try:
        workspace = Workspace.objects.get(pk=workspace_id)
        reserve_ms: list[float] = []
        settle_ms: list[float] = []
        refused = 0
        barrier.wait(timeout=60)
        start = time.perf_counter()
        deadline = start + seconds
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            t0 = time.perf_counter()
            try:
                reservation = credits_reserve(
                    workspace=workspace, units=HOLD_UNITS, idempotency_key=f"bench:{run}:{index}:{n}"
                )
            except InsufficientCredits:
                refused += 1
                continue
            t1 = time.perf_counter()
            credits_settle(reservation=reservation, actual_units=CHARGE_UNITS)
            t2 = time.perf_counter()
            reserve_ms.append((t1 - t0) * 1000)
            settle_ms.append((t2 - t1) * 1000)
        elapsed = time.perf_counter() - start
        queue.put((index, len(settle_ms), refused, elapsed, reserve_ms, settle_ms, None))
    except Exception as exc:  # reported by the parent
        queue.put((index, 0, 0, 0.0, [], [], repr(exc)))
    finally:
        connection.close()


def _workspaces(count: int, run: str) -> list[int]:
    from apps.credits.models import CreditAccount, Source
    from apps.credits.services import credits_account_open, credits_grant
    from apps.workspaces.models import Workspace

    ids = []
    for i in range(count):
        workspace = Workspace.objects.create(name=f"Bench {run} {i}", slug=f"bench-{run}-{i}")
        credits_account_open(workspace=workspace)
        # No alert thresholds: the benchmark measures the ledger, not email delivery.
        CreditAccount.objects.filter(workspace=workspace).update(alert_thresholds=[])
        # Two buckets, so settling walks the consumption order like production does.
        credits_grant(workspace=workspace, amount=1_000_000, source=Source.PURCHASED, idempotency_key=f"{run}:{i}:p")
        credits_grant(
            workspace=workspace,
            amount=1,
            source=Source.SUBSCRIPTION,
            idempotency_key=f"{run}:{i}:s",
            expires_at=_in_days(30),
        )
        ids.append(workspace.pk)
    return ids


def _in_days(days: int) -> Any:
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() + timedelta(days=days)


def run_scenario(scenario: str, workers: int, seconds: float) -> Result:
    from django.db import connections

    run = uuid.uuid4().hex[:10]
    workspace_ids = _workspaces(1 if scenario == "hot" else workers, run)
    connections.close_all()  # never share a connection with the forked children
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(workspace_ids[0 if scenario == "hot" else i], run, i, seconds, barrier, queue),
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=60)
    outcomes = [queue.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    errors = [o[6] for o in outcomes if o[6]]
    if errors:
        raise RuntimeError(f"{scenario}/{workers}: worker failed: {errors[0]}")
    return Result(
        scenario=scenario,
        workers=workers,
        pairs=sum(o[1] for o in outcomes),
        refused=sum(o[2] for o in outcomes),
        seconds=max(o[3] for o in outcomes),
        reserve_ms=[x for o in outcomes for x in o[4]],
        settle_ms=[x for o in outcomes for x in o[5]],
    )


def count_statements() -> tuple[int, int]:
    """SQL statements of one reserve and one settle, BEGIN and COMMIT included."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.credits.services import credits_reserve, credits_settle
    from apps.workspaces.models import Workspace

    run = uuid.uuid4().hex[:10]
    workspace = Workspace.objects.get(pk=_workspaces(1, run)[0])
    credits_settle(  # warm caches (content types, first-use paths)
        reservation=credits_reserve(workspace=workspace, units=HOLD_UNITS, idempotency_key=f"warm:{run}"),
        actual_units=CHARGE_UNITS,
    )
    with CaptureQueriesContext(connection) as reserve_q:
        reservation = credits_reserve(workspace=workspace, units=HOLD_UNITS, idempotency_key=f"count:{run}")
    with CaptureQueriesContext(connection) as settle_q:
        credits_settle(reservation=reservation, actual_units=CHARGE_UNITS)
    if os.environ.get("BENCH_SHOW_SQL"):
        for label, ctx in (("reserve", reserve_q), ("settle", settle_q)):
            for q in ctx.captured_queries:
                print(f"  {label}: {q['sql'][:160]}")
    return len(reserve_q), len(settle_q)


def commit_latency_ms() -> float:
    """Median time of a one-row UPDATE + COMMIT (a WAL flush) on a bench account: the floor
    under every ledger write on this machine right now. Disk contention from other work shows
    up here first."""
    from django.db import transaction
    from django.db.models import F

    from apps.credits.models import CreditAccount

    account_id = CreditAccount.objects.get(workspace_id=_workspaces(1, uuid.uuid4().hex[:10])[0]).pk
    samples = []
    for _ in range(200):
        start = time.perf_counter()
        with transaction.atomic():
            CreditAccount.objects.filter(pk=account_id).update(updated_at=F("updated_at"))
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each scenario")
    parser.add_argument("--workers", default="1,8,32", help="comma-separated worker counts")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]

    url, dedicated = _database_url()
    parts = urlsplit(url)
    shown = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 5432}"))  # no credentials
    reason = _prepare_database(url, dedicated)
    if reason is not None:
        print(f"SKIP credits ledger benchmark: PostgreSQL unavailable at {shown} ({reason})")
        return 0
    _setup_django(url)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", interactive=False, verbosity=0)
    print(f"credits ledger benchmark on {shown} (PostgreSQL {connection.cursor().connection.info.server_version})")
    reserve_sql, settle_sql = count_statements()
    print(f"SQL statements per operation (BEGIN and COMMIT included): reserve {reserve_sql}, settle {settle_sql}")
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f}, commit latency {commit_latency_ms():.2f} ms")

    results = []
    for scenario in ("hot", "spread"):
        for workers in worker_counts:
            results.append(run_scenario(scenario, workers, args.seconds))

    header = (
        f"{'scenario':<8} {'workers':>7} {'pairs':>7} {'pairs/s':>8} "
        f"{'reserve p50':>11} {'p99':>7} {'settle p50':>10} {'p99':>7} {'refused':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.scenario:<8} {r.workers:>7} {r.pairs:>7} {r.rate:>8.0f} "
            f"{_pct(r.reserve_ms, 0.5):>9.2f}ms {_pct(r.reserve_ms, 0.99):>5.2f}ms "
            f"{_pct(r.settle_ms, 0.5):>8.2f}ms {_pct(r.settle_ms, 0.99):>5.2f}ms {r.refused:>7}"
        )

    from apps.credits.models import Reservation
    from apps.credits.services import credits_reconcile

    drift = credits_reconcile(fix=False)
    held = Reservation.objects.held().filter(idempotency_key__startswith="bench:").count()
    print(f"reconcile: {len(drift)} drifting projections, {held} bench holds left open")
    hot = [r for r in results if r.scenario == "hot"]
    best = max(hot, key=lambda r: r.rate) if hot else None
    if best is not None:
        p99 = max(_pct(best.reserve_ms, 0.99), _pct(best.settle_ms, 0.99))
        met = best.rate >= TARGET_PAIRS and p99 < TARGET_P99_MS
        print(
            f"target (hot workspace >= {TARGET_PAIRS} pairs/s, p99 < {TARGET_P99_MS:.0f} ms): "
            f"{'met' if met else 'MISSED'} — best {best.rate:.0f} pairs/s with {best.workers} workers, "
            f"p99 {p99:.2f} ms; median of all hot runs {statistics.median(r.rate for r in hot):.0f} pairs/s"
        )
    return 1 if drift or held else 0


if __name__ == "__main__":
    sys.exit(main())
