"""`/api/v1/jobs/`: create, list (paginated, filtered), retrieve with result URLs, cancel;
another workspace's job is 404."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.generation.models import AIModel
from apps.media.models import GenerationJob, JobStatus
from tests.api.conftest import make_key
from tests.conftest import Team
from tests.media.conftest import fund

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


BODY = {"kind": "image", "model": "mock-image", "parameters": {"prompt": "a boat", "size": "256x256"}}


def test_session_creates_and_retrieves_a_job(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/jobs/", BODY, content_type="application/json")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    detail = client.get(f"/api/v1/jobs/{job_id}/").json()
    assert detail["status"] == "succeeded"
    assert detail["progress"] == 100
    assert detail["credits_charged"] == detail["credits_reserved"]
    [result] = detail["results"]
    assert (result["width"], result["height"]) == (256, 256)
    assert result["thumbnail_url"]
    assert result["preview_url"]
    download = client.get(result["url"])
    assert download.status_code == 200


def test_key_creates_lists_and_filters(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha)
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert client.post("/api/v1/jobs/", BODY, content_type="application/json", **bearer(raw)).status_code == 202
    listing = client.get("/api/v1/jobs/?kind=image&status=succeeded&page_size=2", **bearer(raw)).json()
    assert listing["count"] == 3
    assert len(listing["results"]) == 2
    assert client.get("/api/v1/jobs/?status=failed", **bearer(raw)).json()["count"] == 0
    assert client.get("/api/v1/jobs/?status=bogus", **bearer(raw)).status_code == 400


def test_key_needs_images_scope_to_create(alpha: Team, image_model: AIModel) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha, scopes=["platform_read", "platform_write"])
    response = Client().post("/api/v1/jobs/", BODY, content_type="application/json", **bearer(raw))
    assert response.status_code == 403
    assert not GenerationJob.objects.exists()


def test_invalid_parameters_are_400_with_param(alpha: Team, image_model: AIModel, client_for: Any) -> None:
    fund(alpha.workspace)
    body = {**BODY, "parameters": {"prompt": "x", "size": "3x3"}}
    response = client_for(alpha.member, alpha.workspace).post("/api/v1/jobs/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["param"] == "size"


def test_insufficient_credits_is_402(alpha: Team, image_model: AIModel, client_for: Any) -> None:
    response = client_for(alpha.member, alpha.workspace).post("/api/v1/jobs/", BODY, content_type="application/json")
    assert response.status_code == 402


def test_cancel_then_cancel_again(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job_id = client.post("/api/v1/jobs/", BODY, content_type="application/json").json()["id"]
    response = client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == JobStatus.CANCELLED
    again = client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]


def test_outsider_gets_404(
    alpha: Team, beta: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job_id = (
            client_for(alpha.member, alpha.workspace)
            .post("/api/v1/jobs/", BODY, content_type="application/json")
            .json()["id"]
        )
    outsider = client_for(beta.owner, beta.workspace)
    assert outsider.get(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert outsider.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 404
    assert outsider.get("/api/v1/jobs/").json()["count"] == 0
    _, raw = make_key(beta)
    assert Client().get(f"/api/v1/jobs/{job_id}/", **bearer(raw)).status_code == 404
    assert GenerationJob.objects.get(pk=job_id).status == JobStatus.QUEUED


def test_anonymous_is_refused() -> None:
    assert Client().get("/api/v1/jobs/").status_code in (401, 403)
