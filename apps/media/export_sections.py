"""The studio's part of "export my data": the jobs a user started (prompts and parameters),
the files they produced (transcripts inline, images and audio as download links valid for a
day, bound to the user), and the voices they cloned with the consent they gave."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch
from django.utils import timezone

from apps.accounts.exporters import register
from apps.media.models import GenerationJob, MediaFile, MediaKind, Voice
from apps.media.storage import media_file_url

if TYPE_CHECKING:
    from apps.accounts.models import User

# Long enough to fetch every file of an export after downloading it, short enough that a
# forwarded export stops giving access soon.
EXPORT_LINK_TTL = 24 * 3600
TRANSCRIPT_MAX_BYTES = 5 * 1024 * 1024


def _transcript_text(media_file: MediaFile) -> str | None:
    try:
        with media_file.file.open("rb") as handle:
            return handle.read(TRANSCRIPT_MAX_BYTES).decode("utf-8", errors="replace")
    except OSError:  # the stored file is gone: the row still says what there was
        return None


def _file(media_file: MediaFile, user: User) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": media_file.pk,
        "kind": media_file.kind,
        "content_type": media_file.content_type,
        "size": media_file.size,
        "created_at": media_file.created_at.isoformat(),
        "expires_at": media_file.expires_at.isoformat() if media_file.expires_at else None,
    }
    if media_file.kind == MediaKind.TRANSCRIPT:
        item["text"] = _transcript_text(media_file)
    else:
        item["download_url"] = media_file_url(media_file, ttl=EXPORT_LINK_TTL, user=user, download=True)
    return item


@register("studio_jobs")
def export_jobs(user: User) -> list[dict[str, Any]]:
    now = timezone.now()
    live_originals = MediaFile.objects.filter(parent__isnull=True).exclude(expires_at__lte=now).order_by("id")
    jobs = (
        GenerationJob.objects.filter(user=user)
        .prefetch_related(Prefetch("files", queryset=live_originals, to_attr="export_files"))
        .order_by("created_at", "id")
    )
    return [
        {
            "id": job.pk,
            "workspace_id": job.workspace_id,
            "kind": job.kind,
            "model": job.model_label,
            "parameters": job.parameters,
            "status": job.status,
            "credits_charged_units": job.credits_charged_units,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "files": [_file(media_file, user) for media_file in job.export_files],
        }
        for job in jobs
    ]


@register("voices")
def export_voices(user: User) -> list[dict[str, Any]]:
    return [
        {
            "id": voice.pk,
            "workspace_id": voice.workspace_id,
            "name": voice.name,
            "description": voice.description,
            "consent_at": voice.consent_at.isoformat(),
            "consent_text": voice.consent_text,
            "created_at": voice.created_at.isoformat(),
        }
        for voice in Voice.objects.filter(created_by=user).order_by("created_at", "id")
    ]
