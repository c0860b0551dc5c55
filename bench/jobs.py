"""Media job pipeline: job throughput and queue latency through Celery, and storage cost per file.

    .venv/bin/python bench/jobs.py [--jobs 200] [--workers 1,2] [--timeout 300] [--files 100]
        [--redis-db 6] [--settings aikeedo.settings.local] [--skip-storage] [--skip-jobs]

Jobs: uses DATABASE_URL when it points at PostgreSQL, otherwise
postgres://postgres@127.0.0.1:5432/aikeedo_bench_jobs (created on first use and kept); migrates,
then seeds one workspace per scenario with credits (`credits_grant`). Per scenario it starts K
Celery worker processes (`celery -A aikeedo worker --concurrency 1 --pool prefork`, each in its
own session, consuming a queue unique to the run on Redis db `--redis-db`), runs 2 unmeasured
warm-up jobs per worker, then submits `--jobs` image jobs (`job_create`, model `mock-image`,
256x256, n=1) back to back from this process and waits until every one has finished. Figures come
from the job rows: queue latency = started_at - created_at (created_at is set just before the job
and its credits hold commit, and the task is enqueued on that commit), run time = finished_at -
started_at, throughput = jobs / (last finished_at - first created_at). Credits are checked: every
job charged once, the account's balance down by exactly the expected amount, nothing still held.

Storage: the time to save one ~50 KB PNG and to make its download URL (`media_file_url`: a signed
local link, or a presigned S3 URL) on local FileSystemStorage and on S3Storage against a local
`moto_server`, over `--files` files after 3 unmeasured ones.

Exits 0 with a SKIP line when PostgreSQL or Redis is missing (jobs), or moto_server/boto3 (S3 part);
exits 1 only when the harness fails (a worker does not start, the warm-up does not finish).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
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

from bench.harness import BIN, ROOT, free_port, pct, shown, stop_group

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/aikeedo_bench_jobs"
MODEL_ID = "mock-image"
PARAMETERS = {"prompt": "a bench test pattern", "size": "256x256", "n": 1}
WARMUP_PER_WORKER = 2
BUCKET = "aikeedo-bench"


def _ms(value: float) -> str:
    return "-" if value != value else f"{value * 1000:.1f}"  # NaN check


# ---------------------------------------------------------------------------- services


def _pg_reason(url: str) -> str | None:
    """Create the database if it is missing; why PostgreSQL is unusable, or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(url, connect_timeout=3).close()
        return None
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "does not exist" not in first:
            return first
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{urlsplit(url).path.lstrip("/")}"')
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _redis_reason(url: str) -> str | None:
    try:
        import redis
    except ImportError:
        return "the redis client is not installed"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # any connection problem means: no Redis
        return str(exc).splitlines()[0]
    return None


# ---------------------------------------------------------------------------- jobs


@dataclass
class Scenario:
    workers: int
    jobs: int
    submit_s: float = 0.0
    wait_s: float = 0.0
    queue: list[float] = field(default_factory=list)
    run: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    span_s: float = float("nan")
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    credits_note: str = ""
    credits_ok: bool = False
    worker_cpu_s: float = 0.0
    idle_queue: list[float] = field(default_factory=list)


def _seed_workspace(run: str, label: str, credits: int) -> Any:
    from apps.accounts.services import user_create
    from apps.credits.models import CreditAccount
    from apps.credits.services import credits_grant
    from apps.workspaces.models import Workspace

    user = user_create(email=f"bench-jobs-{run}-{label}@bench.invalid", password=None, verified=True)
    workspace = Workspace.objects.for_user(user).get()
    # No low-balance alerts: the benchmark measures jobs, not email delivery.
    CreditAccount.objects.filter(workspace=workspace).update(alert_thresholds=[])
    credits_grant(workspace=workspace, amount=credits, source="bonus", idempotency_key=f"bench-jobs:{run}:{label}")
    return workspace


def _start_workers(count: int, run: str, queue: str, env: dict[str, str], logdir: Path) -> list[Any]:
    procs = []
    for i in range(count):
        log = (logdir / f"worker-{i}.log").open("w")
        cmd = [
            str(BIN / "celery"),
            "-A",
            "aikeedo",
            "worker",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "-Q",
            queue,
            "-n",
            f"bench-jobs-{run}-{i}@localhost",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "warning",
        ]
        procs.append(
            subprocess.Popen(  # noqa: S603 - the project's own celery
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
    return procs


def _wait_workers(app: Any, names: list[str], procs: list[Any], timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return "a worker exited during start-up"
        answers = app.control.ping(destination=names, timeout=1.0) or []
        seen = {name for answer in answers for name in answer}
        if set(names) <= seen:
            return None
    return f"workers did not answer a ping within {timeout:.0f} s"


def _submit(workspace: Any, model: Any, count: int, prefix: str) -> list[int]:
    from apps.media.services import job_create

    return [
        job_create(
            workspace=workspace, kind="image", model=model, parameters=dict(PARAMETERS), idempotency_key=f"{prefix}-{i}"
        ).pk
        for i in range(count)
    ]


def _wait_finished(ids: list[int], timeout: float) -> bool:
    from apps.media.models import ACTIVE_STATUSES, GenerationJob

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not GenerationJob.objects.filter(pk__in=ids, status__in=ACTIVE_STATUSES).exists():
            return True
        time.sleep(0.1)
    return False


def _cpu_of_group(procs: list[Any]) -> float:
    """User + system CPU of the workers and their (reaped or live) children, from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for proc in procs:
        pids = [proc.pid]
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            pids += [int(c) for c in children]
        except OSError:
            pass
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
            except (OSError, ValueError, IndexError):
                pass
    return total


def _run_scenario(args: argparse.Namespace, app: Any, model: Any, workers: int, run: str, env: dict[str, str]) -> Any:
    from apps.credits.models import CreditAccount, Reservation
    from apps.media.kinds import KINDS
    from apps.media.models import GenerationJob

    unit_cost = KINDS["image"].quote(model, KINDS["image"].validate(model, dict(PARAMETERS))).units
    label = f"w{workers}"
    warmups = WARMUP_PER_WORKER * workers
    credits = int((args.jobs + warmups + args.idle_jobs) * unit_cost / 10_000) + 100
    workspace = _seed_workspace(run, label, credits)
    queue = f"bench-jobs-{run}"
    logdir = Path(env["BENCH_JOBS_TMP"]) / label
    logdir.mkdir()
    procs = _start_workers(workers, run, queue, env, logdir)
    names = [f"bench-jobs-{run}-{i}@localhost" for i in range(workers)]
    try:
        reason = _wait_workers(app, names, procs, 60)
        if reason:
            return reason
        warm = _submit(workspace, model, warmups, f"bench-jobs-{run}-{label}-warm")
        if not _wait_finished(warm, 120):
            return "the warm-up jobs did not finish within 120 s"
        account = CreditAccount.objects.get(workspace=workspace)
        balance0 = account.balance_units
        cpu0 = _cpu_of_group(procs)
        sc = Scenario(workers=workers, jobs=args.jobs)
        t0 = time.monotonic()
        ids = _submit(workspace, model, args.jobs, f"bench-jobs-{run}-{label}")
        sc.submit_s = time.monotonic() - t0
        finished = _wait_finished(ids, args.timeout)
        sc.wait_s = time.monotonic() - t0
        sc.worker_cpu_s = _cpu_of_group(procs) - cpu0
        if not finished:
            print(f"  {workers} worker(s): not all jobs finished within {args.timeout:.0f} s", flush=True)
        rows = list(
            GenerationJob.objects.filter(pk__in=ids).values(
                "status", "error", "created_at", "started_at", "finished_at", "credits_charged_units", "reservation_id"
            )
        )
        for row in rows:
            sc.statuses[row["status"]] += 1
            if row["error"]:
                sc.errors[row["error"][:100]] += 1
            if row["started_at"]:
                sc.queue.append((row["started_at"] - row["created_at"]).total_seconds())
            if row["started_at"] and row["finished_at"]:
                sc.run.append((row["finished_at"] - row["started_at"]).total_seconds())
                sc.total.append((row["finished_at"] - row["created_at"]).total_seconds())
        done = [r["finished_at"] for r in rows if r["finished_at"]]
        if done:
            sc.span_s = (max(done) - min(r["created_at"] for r in rows)).total_seconds()
        # Credits: each succeeded job charged its quote once, the rest nothing; the account's balance
        # dropped by exactly that much and holds nothing.
        succeeded = sc.statuses.get("succeeded", 0)
        expected = succeeded * unit_cost
        charged_jobs = sum(r["credits_charged_units"] for r in rows)
        reservations = Reservation.objects.filter(pk__in=[r["reservation_id"] for r in rows])
        settled = reservations.filter(status=Reservation.Status.SETTLED).count()
        charged_res = sum(reservations.values_list("charged_units", flat=True))
        account.refresh_from_db()
        spent = balance0 - account.balance_units
        sc.credits_ok = (
            finished
            and charged_jobs == expected == charged_res == spent
            and settled == succeeded
            and not account.held_units
        )
        sc.credits_note = (
            f"expected {expected / 10_000:g} credits ({succeeded} x {unit_cost / 10_000:g}); jobs say "
            f"{charged_jobs / 10_000:g}, settled holds {settled} charging {charged_res / 10_000:g}, balance down "
            f"{spent / 10_000:g}, still held {account.held_units / 10_000:g}"
        )
        # Queue latency without a backlog: one job at a time, each waited for.
        for i in range(args.idle_jobs):
            (one,) = _submit(workspace, model, 1, f"bench-jobs-{run}-{label}-idle{i}")
            _wait_finished([one], 30)
            row = GenerationJob.objects.filter(pk=one).values("created_at", "started_at").get()
            if row["started_at"]:
                sc.idle_queue.append((row["started_at"] - row["created_at"]).total_seconds())
        print(
            f"  {workers} worker(s): {succeeded}/{args.jobs} succeeded, submit {sc.submit_s:.1f} s, "
            f"all done {sc.wait_s:.1f} s",
            flush=True,
        )
        return sc
    finally:
        for proc in procs:
            stop_group(proc, "celery worker")
        problems = []
        for log in sorted(logdir.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()
            problems += [line.strip() for line in lines if "ERROR" in line or "Error:" in line]
        if problems:
            print(f"  worker log: {len(problems)} error lines, e.g. {problems[0][:200]}", flush=True)
        # The queue and its bindings, and the cache / channel-layer keys of our prefix. Task results
        # (celery-task-meta-*) expire after a day.
        _redis_delete(
            env["REDIS_URL"],
            [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"],
            (f"{env['CACHE_KEY_PREFIX']}:*", f"{env['CACHE_KEY_PREFIX']}*"),
        )


def _redis_delete(url: str, keys: list[str], patterns: tuple[str, ...] = ()) -> None:
    import redis

    with contextlib.suppress(redis.RedisError):  # cleanup only
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.delete(*keys)
        for pattern in patterns:
            for key in client.scan_iter(match=pattern, count=500):
                client.delete(key)


def _print_jobs(scenarios: list[Scenario]) -> None:
    print()
    print(
        "media jobs (image, mock-image 256x256 n=1; queue = started_at - created_at, run = finished_at - started_at, "
        "jobs/s over first created_at .. last finished_at)"
    )
    head = (
        f"{'workers':>7} {'jobs':>5} {'ok':>5} {'failed':>6} {'submit/s':>8} {'jobs/s':>7} | "
        f"{'queue p50':>9} {'p95':>8} | {'run p50':>8} {'p95':>7} | {'total p50':>9} {'p95':>8} | "
        f"{'CPU/job':>7} {'credits':>7} | {'idle queue p50':>14} {'p95':>6}"
    )
    print(head)
    print("-" * len(head))
    for sc in scenarios:
        ok = sc.statuses.get("succeeded", 0)
        not_ok = sc.jobs - ok
        rate = ok / sc.span_s if sc.span_s == sc.span_s and sc.span_s > 0 else float("nan")
        submit_rate = sc.jobs / sc.submit_s if sc.submit_s else float("nan")
        cpu = sc.worker_cpu_s / ok if ok else float("nan")
        print(
            f"{sc.workers:>7} {sc.jobs:>5} {ok:>5} {not_ok:>6} {submit_rate:>8.1f} {rate:>7.1f} | "
            f"{_ms(pct(sc.queue, 0.5)):>9} {_ms(pct(sc.queue, 0.95)):>8} | "
            f"{_ms(pct(sc.run, 0.5)):>8} {_ms(pct(sc.run, 0.95)):>7} | "
            f"{_ms(pct(sc.total, 0.5)):>9} {_ms(pct(sc.total, 0.95)):>8} | "
            f"{_ms(cpu):>7} {'ok' if sc.credits_ok else 'WRONG':>7} | "
            f"{_ms(pct(sc.idle_queue, 0.5)):>14} {_ms(pct(sc.idle_queue, 0.95)):>6}"
        )
    print(
        "(ms; CPU/job: user + system CPU of the worker processes per succeeded job; idle queue: the same latency "
        "for jobs submitted one at a time after the batch, no backlog)"
    )
    for sc in scenarios:
        print(f"  {sc.workers} worker(s) credits: {sc.credits_note}")
        if sc.statuses.get("succeeded", 0) != sc.jobs:
            print(f"  {sc.workers} worker(s) statuses: {dict(sc.statuses)}; errors: {dict(sc.errors.most_common(3))}")


def _bench_jobs(args: argparse.Namespace, run: str, tmp: Path) -> int:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        url = DEFAULT_PG_URL
    reason = _pg_reason(url)
    if reason:
        print(f"SKIP jobs benchmark: PostgreSQL unavailable at {shown(url)} ({reason})")
        return 0
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    reason = _redis_reason(redis_url)
    if reason:
        print(f"SKIP jobs benchmark: Redis unavailable at {redis_url} ({reason})")
        return 0
    if not (BIN / "celery").exists():
        print(f"SKIP jobs benchmark: {BIN / 'celery'} not found")
        return 0

    media_root = tmp / "media"
    media_root.mkdir()
    os.environ.update(
        DATABASE_URL=url,
        REDIS_URL=redis_url,
        CACHE_KEY_PREFIX=f"bench-jobs-{run}",
        DJANGO_SETTINGS_MODULE=args.settings,
        DJANGO_DEBUG="False",
        MEDIA_ROOT=str(media_root),
        BENCH_JOBS_TMP=str(tmp),
    )
    os.environ.pop("AWS_STORAGE_BUCKET_NAME", None)  # local files for the job run
    os.environ.pop("CELERY_TASK_ALWAYS_EAGER", None)
    env = dict(os.environ)
    import django

    django.setup()
    from django.core.management import call_command

    from aikeedo.celery import app
    from apps.generation.models import AIModel

    t0 = time.monotonic()
    call_command("migrate", interactive=False, verbosity=0)
    migrate_s = time.monotonic() - t0
    app.conf.task_default_queue = f"bench-jobs-{run}"  # a queue of our own on the shared Redis db
    from apps.credits.rates import rate_cards_seed_defaults

    rate_cards_seed_defaults()  # a model's price, when the database has none yet (idempotent)
    model = AIModel.objects.select_related("provider").get(model_id=MODEL_ID)
    load = os.getloadavg()
    print(
        f"jobs benchmark: {shown(url)} (migrate {migrate_s:.1f} s), broker {redis_url} queue bench-jobs-{run}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f}",
        flush=True,
    )
    scenarios = []
    for workers in args.workers:
        out = _run_scenario(args, app, model, workers, run, env)
        if isinstance(out, str):
            print(f"FAIL: {workers} worker(s): {out}", file=sys.stderr)
            return 1
        scenarios.append(out)
    _print_jobs(scenarios)
    return 0


# ---------------------------------------------------------------------------- storage


def _png(target_bytes: int) -> bytes:
    """A PNG of random pixels (incompressible) of about `target_bytes`."""
    from PIL import Image

    side = int((target_bytes / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _time_storage(storage: Any, data: bytes, files: int) -> tuple[list[float], list[float]]:
    from django.core.files.base import ContentFile

    from apps.media.models import MediaFile
    from apps.media.storage import media_file_url

    saves, urls = [], []
    for i in range(files + 3):
        t0 = time.perf_counter()
        name = storage.save(f"bench/{uuid.uuid4().hex}.png", ContentFile(data))
        t1 = time.perf_counter()
        row = MediaFile(workspace_id=1, kind="image", content_type="image/png", size=len(data))
        row.file.name = name
        row.file.storage = storage
        url = media_file_url(row)
        t2 = time.perf_counter()
        assert url
        if i >= 3:
            saves.append(t1 - t0)
            urls.append(t2 - t1)
    return saves, urls


def _bench_storage(args: argparse.Namespace, run: str, tmp: Path) -> int:
    import django
    from django.conf import settings

    if not settings.configured:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", args.settings)
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'storage.sqlite3'}")
        os.environ.pop("AWS_STORAGE_BUCKET_NAME", None)
        django.setup()
    from django.core.files.storage import FileSystemStorage

    data = _png(50_000)
    rows: list[tuple[str, list[float], list[float]]] = []
    local = FileSystemStorage(location=str(tmp / "files"))
    rows.append(("local", *_time_storage(local, data, args.files)))

    moto = BIN / "moto_server"
    s3_reason = None
    try:
        import boto3
        from storages.backends.s3 import S3Storage
    except ImportError as exc:
        s3_reason = f"{exc.name} is not installed"
    if s3_reason is None and not moto.exists():
        s3_reason = f"{moto} not found"
    if s3_reason:
        print(f"SKIP S3 storage: {s3_reason}")
    else:
        port = free_port()
        log = (tmp / "moto.log").open("w")
        server = subprocess.Popen(  # noqa: S603 - the venv's moto_server
            [str(moto), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            endpoint = f"http://127.0.0.1:{port}"
            creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
            client = boto3.client("s3", endpoint_url=endpoint, **creds)
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.create_bucket(Bucket=BUCKET)
                    break
                except Exception:
                    if server.poll() is not None or time.monotonic() > deadline:
                        print("FAIL: moto_server did not start", file=sys.stderr)
                        return 1
                    time.sleep(0.2)
            s3 = S3Storage(
                bucket_name=BUCKET,
                endpoint_url=endpoint,
                access_key="testing",
                secret_key="testing",  # moto's dummy credentials
                region_name="us-east-1",
                default_acl=None,
                querystring_auth=True,
                querystring_expire=300,
                file_overwrite=False,
            )
            rows.append((f"S3 (moto {endpoint})", *_time_storage(s3, data, args.files)))
        finally:
            stop_group(server, "moto_server")

    print()
    print(f"storage per file ({len(data) / 1024:.0f} KB PNG, {args.files} files after 3 unmeasured; ms)")
    head = f"{'backend':<30} {'save p50':>8} {'p95':>7} {'mean':>7} | {'url p50':>8} {'p95':>7}"
    print(head)
    print("-" * len(head))
    for name, saves, urls in rows:
        print(
            f"{name:<30} {_ms(pct(saves, 0.5)):>8} {_ms(pct(saves, 0.95)):>7} {_ms(statistics.fmean(saves)):>7} | "
            f"{_ms(pct(urls, 0.5)):>8} {_ms(pct(urls, 0.95)):>7}"
        )
    print("(url: `media_file_url` - a signed link to media:download locally, a presigned GET URL on S3)")
    return 0


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs per scenario")
    parser.add_argument(
        "--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2], help="worker processes, e.g. 1,2"
    )
    parser.add_argument("--idle-jobs", type=int, default=20, help="jobs submitted one at a time after the batch")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for a scenario's jobs")
    parser.add_argument("--files", type=int, default=100, help="files per storage backend")
    parser.add_argument("--redis-db", type=int, default=6)
    parser.add_argument("--settings", default="aikeedo.settings.local")
    parser.add_argument("--skip-jobs", action="store_true")
    parser.add_argument("--skip-storage", action="store_true")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        rc = 0
        if not args.skip_jobs:
            rc = _bench_jobs(args, run, tmp)
        if rc == 0 and not args.skip_storage:
            rc = _bench_storage(args, run, tmp)
        return rc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
