"""Fixtures for media jobs: the image catalog (mock-image, dall-e-*) with its rate cards, the
audio and voice models, the billing plans, a funded workspace, a local `moto_server` for S3,
and a real Celery worker on Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.credits.amounts import to_credits
from apps.credits.models import Reservation
from apps.credits.rates import rate_cards_seed_defaults
from apps.credits.services import credits_grant
from apps.generation.catalog import catalog_seed_defaults
from apps.generation.models import AIModel, ModelFallback, Provider
from apps.media.catalog import audio_catalog_seed, image_catalog_seed, voice_catalog_seed
from apps.media.models import GenerationJob, JobKind, JobStatus
from apps.workspaces.models import Workspace
from tests.conftest import Team

FUNDS = 1_000_000  # units (100 credits)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def image_model(db: Any) -> AIModel:
    # Transactional tests flush the rows the migrations seeded: seed them again.
    catalog_seed_defaults(Provider, AIModel, ModelFallback)
    image_catalog_seed(Provider, AIModel)
    rate_cards_seed_defaults()
    Provider.objects.filter(kind="mock").update(options={"latency_ms": 0})
    return AIModel.objects.select_related("provider").get(model_id="mock-image")


@pytest.fixture
def media_models(image_model: AIModel) -> dict[str, AIModel]:
    """Every mock media model (image, speech, transcription, voice cloning), by model id."""
    audio_catalog_seed(Provider, AIModel)
    voice_catalog_seed(Provider, AIModel)
    return {m.model_id: m for m in AIModel.objects.select_related("provider").filter(model_id__startswith="mock-")}


@pytest.fixture
def plans(db: Any) -> None:
    """The default plans (Free is the default: no voice cloning, 10 MB uploads, 500 MB of
    storage, results kept 30 days; Professional clones voices)."""
    from apps.billing.seed import billing_seed_catalogue

    billing_seed_catalogue()


def on_plan(workspace: Workspace, code: str) -> None:
    from apps.billing.models import Plan
    from apps.billing.services import billing_plan_assign

    billing_plan_assign(workspace=workspace, plan=Plan.objects.get(code=code), acting_user=None)


def fund(workspace: Workspace, units: int = FUNDS, key: str = "fund") -> None:
    credits_grant(
        workspace=workspace, amount=to_credits(units), source="purchased", idempotency_key=f"{key}-{workspace.pk}"
    )


def reservation_of(job: GenerationJob) -> Reservation:
    """The job's credits reservation (every job in these tests holds one)."""
    assert job.reservation_id is not None
    return Reservation.objects.get(pk=job.reservation_id)


def image_job(team: Team, model: AIModel, capture: Any, key: str, prompt: str = "a test picture") -> GenerationJob:
    """A 256 px image job run to success (`capture`: `django_capture_on_commit_callbacks`)."""
    from apps.media.services import job_create

    with capture(execute=True):
        job = job_create(
            workspace=team.workspace,
            user=team.member,
            kind=JobKind.IMAGE,
            model=model,
            parameters={"prompt": prompt, "size": "256x256"},
            idempotency_key=key,
        )
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def set_mock_options(**options: Any) -> None:
    Provider.objects.filter(kind="mock").update(options={"latency_ms": 0, **options})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A local S3 (moto_server) for the session, stopped by the PID we started."""
    binary = ROOT / ".venv" / "bin" / "moto_server"
    if not binary.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def s3(settings: Any, moto_endpoint: str) -> str:
    """Default storage on the local S3, in a fresh bucket. Returns the bucket name."""
    import boto3

    bucket = f"media-{time.time_ns()}"
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": moto_endpoint,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "default_acl": None,
                "querystring_auth": True,
                "file_overwrite": False,
            },
        },
    }
    return bucket


REDIS_URL = os.environ.get("REDIS_URL", "")
