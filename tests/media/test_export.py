"""The studio's part of "export my data": the user's jobs with their prompts and files
(transcripts inline, other files as links bound to the user) and the voices they cloned, and
nothing of anyone else's."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.services import user_export_data
from apps.generation.models import AIModel
from apps.media.models import MediaKind, Voice
from apps.media.storage import transcript_file_create
from tests.conftest import Team
from tests.media.conftest import fund, image_job

pytestmark = pytest.mark.django_db


def test_export_lists_the_users_jobs_with_prompts_files_and_transcripts(
    alpha: Team, beta: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    fund(alpha.workspace)
    fund(beta.workspace)
    job = image_job(alpha, image_model, django_capture_on_commit_callbacks, key="mine", prompt="a red kite")
    image_job(beta, image_model, django_capture_on_commit_callbacks, key="theirs", prompt="a secret plan")
    transcript_file_create(job=job, text="Hello from the meeting.", fmt="text", metadata={})

    data = user_export_data(user=alpha.member)

    [exported] = data["studio_jobs"]
    assert exported["id"] == job.pk
    assert exported["parameters"]["prompt"] == "a red kite"
    kinds = {item["kind"] for item in exported["files"]}
    assert kinds == {MediaKind.IMAGE, MediaKind.TRANSCRIPT}
    [transcript] = [item for item in exported["files"] if item["kind"] == MediaKind.TRANSCRIPT]
    assert transcript["text"] == "Hello from the meeting."
    [image] = [item for item in exported["files"] if item["kind"] == MediaKind.IMAGE]
    assert image["download_url"]
    assert "a secret plan" not in str(data)


def test_export_lists_the_voices_the_user_cloned_with_their_consent(alpha: Team, beta: Team) -> None:
    def voice(team: Team, name: str) -> Voice:
        return Voice.objects.create(
            workspace=team.workspace,
            name=name,
            provider_voice_id=f"pv-{name}",
            created_by=team.member,
            consent_at=timezone.now(),
            consent_text="I own this voice.",
        )

    mine = voice(alpha, "Narrator")
    voice(beta, "Their voice")

    data = user_export_data(user=alpha.member)

    assert [(v["id"], v["name"], v["consent_text"]) for v in data["voices"]] == [
        (mine.pk, "Narrator", "I own this voice.")
    ]
