"""Reads of media jobs and files for pages and APIs: always within one workspace, with the
queries bounded (previews and thumbnails prefetched)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from django.db.models import Prefetch, QuerySet, Sum

from apps.media.models import GenerationJob, MediaFile, MediaKind, Voice

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.http import HttpRequest

    from apps.accounts.models import User
    from apps.workspaces.models import Workspace


def _with_derivatives(queryset: QuerySet[MediaFile]) -> QuerySet[MediaFile]:
    return queryset.prefetch_related(
        Prefetch("derivatives", queryset=MediaFile.objects.filter(kind__in=[MediaKind.PREVIEW, MediaKind.THUMBNAIL]))
    )


def job_list(*, workspace: Workspace, kind: str = "", status: str = "") -> QuerySet[GenerationJob]:
    jobs = GenerationJob.objects.for_workspace(workspace)
    if kind:
        jobs = jobs.filter(kind=kind)
    if status:
        jobs = jobs.filter(status=status)
    return jobs.order_by("-created_at", "-id")


def job_results(*, job: GenerationJob) -> QuerySet[MediaFile]:
    """The job's original files (previews prefetched), in the order they were made."""
    originals = MediaFile.objects.filter(job=job, workspace_id=job.workspace_id, parent__isnull=True)
    return _with_derivatives(originals).order_by("id")


@dataclass(frozen=True)
class GalleryFilters:
    model: str = ""
    start: date | None = None
    end: date | None = None


def gallery_images(*, workspace: Workspace, filters: GalleryFilters | None = None) -> QuerySet[MediaFile]:
    filters = filters or GalleryFilters()
    images = MediaFile.objects.for_workspace(workspace).filter(kind=MediaKind.IMAGE, parent__isnull=True)
    if filters.model:
        images = images.filter(job__model_label=filters.model)
    if filters.start:
        images = images.filter(created_at__date__gte=filters.start)
    if filters.end:
        images = images.filter(created_at__date__lte=filters.end)
    return _with_derivatives(images.select_related("job")).order_by("-created_at", "-id")


def gallery_models(*, workspace: Workspace) -> list[str]:
    labels = (
        GenerationJob.objects.for_workspace(workspace)
        .filter(files__kind=MediaKind.IMAGE)
        .values_list("model_label", flat=True)
        .distinct()
        .order_by("model_label")
    )
    return list(labels)


def media_file_json(
    media_file: MediaFile, *, request: HttpRequest | None = None, user: User | None = None, ttl: int = 300
) -> dict[str, Any]:
    """A file with short-lived URLs for it and its previews (absolute when `request` is given)."""
    from apps.media.storage import media_file_url

    def url(item: MediaFile | None, download: bool = False) -> str | None:
        if item is None:
            return None
        value = media_file_url(item, ttl=ttl, user=user, download=download)
        return request.build_absolute_uri(value) if request is not None else value

    return {
        "id": media_file.pk,
        "kind": media_file.kind,
        "content_type": media_file.content_type,
        "size": media_file.size,
        "width": media_file.width,
        "height": media_file.height,
        "duration": str(media_file.duration) if media_file.duration is not None else None,
        "metadata": media_file.metadata,
        "created_at": media_file.created_at.isoformat(),
        "url": url(media_file),
        "download_url": url(media_file, download=True),
        "preview_url": url(media_file.derivative(MediaKind.PREVIEW)),
        "thumbnail_url": url(media_file.derivative(MediaKind.THUMBNAIL)),
    }


def audio_results(*, workspace: Workspace, kind: str) -> QuerySet[MediaFile]:
    """The workspace's speech audio (`kind=audio`) or transcripts (`kind=transcript`), newest
    first, with their job (for its id and model)."""
    files = MediaFile.objects.for_workspace(workspace).filter(kind=kind, parent__isnull=True)
    return _with_derivatives(files.select_related("job")).order_by("-created_at", "-id")


def workspace_storage_used(*, workspace: Workspace | int) -> int:
    """Bytes the workspace stores (files, previews, uploads kept with their job). Uploads no
    job took yet are left out: they become a job's input or are deleted within the hour."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    files = MediaFile.objects.filter(workspace_id=workspace_id).exclude(kind=MediaKind.UPLOAD, job__isnull=True)
    return int(files.aggregate(total=Sum("size"))["total"] or 0)


def speech_voice_names(*, workspace: Workspace, voices: Iterable[str]) -> dict[str, str]:
    """The names to show for the voices of past speech (by voice id): the workspace's cloned
    voices by their current name (one query), stock voices by their label. Ids neither knows
    (a cloned voice deleted since) are left out: the file's own `voice_name` names them."""
    from apps.media.kinds import stock_voice_label

    wanted = {voice for voice in voices if voice}
    names = {voice: label for voice in wanted if (label := stock_voice_label(voice)) is not None}
    cloned = Voice.objects.for_workspace(workspace).filter(provider_voice_id__in=wanted - set(names))
    names.update(cloned.values_list("provider_voice_id", "name"))
    return names


def speech_voice_choices(*, workspace: Workspace, models: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """The speech studio's voice picker: each speech provider's stock voices, then the voices
    this workspace cloned (only its own), as grouped choices."""
    from apps.media.kinds import stock_voices

    groups: list[tuple[str, list[tuple[str, str]]]] = []
    providers: set[int] = set()
    for model in models:
        if model.provider_id not in providers:
            providers.add(model.provider_id)
            groups.append((f"{model.provider.name} voices", stock_voices(model.provider.kind)))
    cloned = [
        (voice.provider_voice_id, f"{voice.name} (cloned)")
        for voice in Voice.objects.for_workspace(workspace).order_by("name", "id")
    ]
    if cloned:
        groups.append(("Your cloned voices", cloned))
    return groups
