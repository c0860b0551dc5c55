"""The studio, the job status JSON, the gallery (pinned query count) and deletes; another
workspace's jobs, files and gallery are 404 / empty."""

from __future__ import annotations

import re
from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.generation.models import AIModel
from apps.media.models import GenerationJob, JobKind, JobStatus, MediaFile, MediaKind
from apps.media.services import job_create
from tests.conftest import Team
from tests.media.conftest import fund, reservation_of

pytestmark = pytest.mark.django_db


def make_jobs(team: Team, model: AIModel, capture: Any, count: int, start: int = 0) -> list[GenerationJob]:
    fund(team.workspace, key=f"fund{start}")
    jobs = []
    with capture(execute=True):
        for i in range(start, start + count):
            jobs.append(
                job_create(
                    workspace=team.workspace,
                    user=team.member,
                    kind=JobKind.IMAGE,
                    model=model,
                    parameters={"prompt": f"picture {i}", "size": "256x256"},
                    idempotency_key=f"view-{team.workspace.pk}-{i}",
                )
            )
    return jobs


def test_studio_submits_a_job_and_shows_its_results(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    page = client.get("/studio/images/?prompt=reused+prompt&model=mock-image")
    assert page.status_code == 200
    assert b"reused prompt" in page.content
    form = {"model": "mock-image", "prompt": "a tree", "size": "256x256", "quality": "standard", "n": 1, "nonce": "n1"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/studio/images/", form)
    assert response.status_code == 302
    job = GenerationJob.objects.get()
    assert response["Location"].endswith(f"?job={job.pk}")
    shown = client.get(response["Location"])
    assert shown.status_code == 200
    assert b'data-testid="media-result"' in shown.content
    status = client.get(f"/studio/jobs/{job.pk}/").json()
    assert status["status"] == "succeeded"
    assert status["results"][0]["thumbnail_url"]


def test_studio_page_with_a_job_prints_no_template_comment(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The job panel's own description is a template comment, never page text."""
    (job,) = make_jobs(alpha, image_model, django_capture_on_commit_callbacks, 1)
    body = client_for(alpha.member, alpha.workspace).get(f"/studio/images/?job={job.pk}").content.decode()
    assert 'data-testid="job"' in body
    assert "{#" not in body
    assert "#}" not in body
    assert "The live panel" not in body


def test_studio_shows_service_errors_on_the_form(alpha: Team, image_model: AIModel, client_for: Any) -> None:
    fund(alpha.workspace)
    form = {"model": "mock-image", "prompt": "a tree", "size": "256x256", "quality": "standard", "n": 1, "style": ""}
    dalle2 = AIModel.objects.get(model_id="dall-e-2")
    dalle2.provider.enabled = True
    dalle2.provider.set_api_key("sk-test")
    dalle2.provider.save()
    response = client_for(alpha.member, alpha.workspace).post(
        "/studio/images/", {**form, "model": "dall-e-2", "quality": "hd"}
    )
    assert response.status_code == 400
    assert b"Invalid quality" in response.content
    assert not GenerationJob.objects.exists()


def test_gallery_lists_filters_and_pins_queries(
    alpha: Team,
    image_model: AIModel,
    client_for: Any,
    django_capture_on_commit_callbacks: Any,
    django_assert_max_num_queries: Any,
) -> None:
    client = client_for(alpha.member, alpha.workspace)
    make_jobs(alpha, image_model, django_capture_on_commit_callbacks, 3)
    with django_assert_max_num_queries(20) as few:  # session, workspace, balance widget…
        response = client.get("/studio/gallery/")
    assert response.status_code == 200
    assert response.content.count(b'data-testid="gallery-item"') == 3
    make_jobs(alpha, image_model, django_capture_on_commit_callbacks, 30, start=3)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/studio/gallery/")
    assert response.content.count(b'data-testid="gallery-item"') == 24  # one page
    assert client.get("/studio/gallery/?page=2").content.count(b'data-testid="gallery-item"') == 9
    assert client.get("/studio/gallery/?model=dall-e-3").status_code == 400  # no such image in this workspace
    filtered = client.get("/studio/gallery/?model=mock-image&start=2000-01-01&page=2")
    assert filtered.content.count(b'data-testid="gallery-item"') == 9
    assert client.get("/studio/gallery/?end=2000-01-01").content.count(b'data-testid="gallery-item"') == 0
    assert client.get("/studio/gallery/?start=not-a-date").status_code == 400


def test_gallery_shows_each_images_size_once(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    make_jobs(alpha, image_model, django_capture_on_commit_callbacks, 1)
    image = MediaFile.objects.get(kind=MediaKind.IMAGE, parent__isnull=True)

    html = client_for(alpha.member, alpha.workspace).get("/studio/gallery/").content.decode()

    caption = html.split('data-testid="gallery-item"')[1].split("<figcaption>")[1].split("<br>")[0]
    assert (
        " ".join(re.sub(r"<[^>]+>", " ", caption).split())
        == f"mock-image · {image.width}\N{MULTIPLICATION SIGN}{image.height}"
    )
    assert "256x256" not in caption  # the size asked for, printed again beside the size made


def test_delete_removes_rows_and_stored_files_and_is_audited(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    [job] = make_jobs(alpha, image_model, django_capture_on_commit_callbacks, 1)
    image = MediaFile.objects.get(job=job, kind=MediaKind.IMAGE)
    storage = image.file.storage
    names = [f.file.name for f in MediaFile.objects.filter(job=job)]
    assert len(names) == 3
    assert all(storage.exists(n) for n in names)
    response = client_for(alpha.member, alpha.workspace).post(f"/studio/files/{image.pk}/delete/")
    assert response.status_code == 302
    assert not MediaFile.objects.filter(job=job).exists()
    assert not any(storage.exists(n) for n in names)
    assert AuditEvent.objects.filter(action="media.file_delete", actor=alpha.member).exists()


@pytest.mark.outsider("media:job_status", "media:images", "media:file_delete", "media:gallery")
def test_outsider_gets_404_on_jobs_files_and_an_empty_gallery(
    alpha: Team, beta: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    [job] = make_jobs(alpha, image_model, django_capture_on_commit_callbacks, 1)
    image = MediaFile.objects.get(job=job, kind=MediaKind.IMAGE)
    outsider = client_for(beta.owner, beta.workspace)
    assert outsider.get(f"/studio/jobs/{job.pk}/").status_code == 404
    assert outsider.post(f"/studio/jobs/{job.pk}/cancel/").status_code == 404
    assert outsider.get(f"/studio/images/?job={job.pk}").status_code == 404
    assert outsider.post(f"/studio/files/{image.pk}/delete/").status_code == 404
    gallery = outsider.get("/studio/gallery/")
    assert gallery.status_code == 200
    assert b'data-testid="gallery-item"' not in gallery.content
    assert MediaFile.objects.filter(pk=image.pk).exists()


def test_cancel_from_the_page(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = job_create(
            workspace=alpha.workspace,
            user=alpha.member,
            kind=JobKind.IMAGE,
            model=image_model,
            parameters={"prompt": "x", "size": "256x256"},
            idempotency_key="page-cancel",
        )
    client = client_for(alpha.member, alpha.workspace)
    response = client.post(f"/studio/jobs/{job.pk}/cancel/", HTTP_ACCEPT="application/json")
    assert response.json()["status"] == JobStatus.CANCELLED
    again = client.post(f"/studio/jobs/{job.pk}/cancel/", HTTP_ACCEPT="application/json")
    assert again.status_code == 409


def test_pages_need_sign_in(client: Any) -> None:
    assert client.get("/studio/images/").status_code == 302
    assert client.get("/studio/gallery/").status_code == 302


@pytest.mark.outsider("media:job_cancel")
def test_another_workspace_cannot_cancel_alphas_queued_job(
    alpha: Team,
    beta: Team,
    outsider: Any,
    client: Any,
    image_model: AIModel,
    client_for: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from apps.credits.models import Reservation

    fund(alpha.workspace)
    with django_capture_on_commit_callbacks(execute=False):
        job = job_create(
            workspace=alpha.workspace,
            user=alpha.member,
            kind=JobKind.IMAGE,
            model=image_model,
            parameters={"prompt": "x", "size": "256x256"},
            idempotency_key="outsider-cancel",
        )
    url = f"/studio/jobs/{job.pk}/cancel/"
    beta_owner = client_for(beta.owner, alpha.workspace)  # asks for Alpha; not a member of it

    assert beta_owner.post(url).status_code == 404
    assert beta_owner.post(url, HTTP_ACCEPT="application/json").status_code == 404
    stranger = client_for(outsider, alpha.workspace)
    assert stranger.post(url)["Location"] == "/workspaces/new/"
    anonymous = client.post(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")

    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert reservation_of(job).status == Reservation.Status.HELD
