"""The windows are shared by every process when REDIS_URL is set."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from apps.ratelimits.selectors import Limits, SubjectLimits
from apps.ratelimits.services import ratelimit_check
from apps.workspaces.models import Workspace

ROOT = Path(__file__).resolve().parents[2]

# Each process waits for the other before its 30 requests, so they run at the same time.
SCRIPT = """
import sys, time
from pathlib import Path
import django
django.setup()
from apps.ratelimits.selectors import Limits, SubjectLimits
from apps.ratelimits.services import ratelimit_check
from apps.workspaces.models import Workspace

run, barrier, me = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
(barrier / me).touch()
deadline = time.monotonic() + 30
while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.005)

requests_only = Limits(workspace=SubjectLimits("workspace", run + "-a", rpm=20, tpm=0))
mixed = Limits(
    workspace=SubjectLimits("workspace", run + "-b", rpm=0, tpm=1500),
    key=SubjectLimits("key", run + "-b", rpm=20, tpm=0),
)
workspace = Workspace(pk=0)
a = [ratelimit_check(workspace=workspace, limits=requests_only) for _ in range(30)]
b = [ratelimit_check(workspace=workspace, limits=mixed, tokens=100) for _ in range(30)]
assert not any(d.degraded for d in a + b), "storage unreachable"
print(sum(d.allowed for d in a), sum(d.allowed for d in b))
"""


def test_two_processes_together_cannot_exceed_the_limit(tmp_path):
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: without it each process has its own in-memory windows")
    run = f"xproc-{uuid.uuid4().hex}"
    # The children use this process's cache namespace as it is (not suffixed again per
    # pytest-xdist worker).
    env = {
        **{name: value for name, value in os.environ.items() if name != "PYTEST_XDIST_WORKER"},
        "DJANGO_SETTINGS_MODULE": "aikeedo.settings.test",
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, run, str(tmp_path), str(n)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    outputs = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=90)
        assert worker.returncode == 0, stderr
        outputs.append([int(n) for n in stdout.split()])

    # Alone, each process would have allowed 20 and 15: together they share one budget.
    assert sum(o[0] for o in outputs) == 20
    assert sum(o[1] for o in outputs) == 15  # 1500 tokens / 100, the key's 20 requests never reached
    # This process sees the same windows, and the 45 refused requests took nothing from the key.
    refused = ratelimit_check(
        workspace=Workspace(pk=0),
        limits=Limits(
            workspace=SubjectLimits("workspace", run + "-b", rpm=0, tpm=1500),
            key=SubjectLimits("key", run + "-b", rpm=20, tpm=0),
        ),
    )
    assert refused.allowed is False
    assert refused.exceeded is not None
    assert refused.exceeded.subject == "workspace"
    assert next(w for w in refused.windows if w.subject == "key").remaining == 5
