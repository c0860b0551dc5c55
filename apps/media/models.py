"""Long-running AI jobs (images now; speech, transcription and voice cloning next) and the
files they produce.

A `GenerationJob` moves queued → running → succeeded | failed | cancelled. Its credits hold
(`reservation`) is ended exactly once: settled with what was delivered when it succeeds,
released otherwise. `attempts` counts deliveries to a worker and fences a stale worker: a
worker only finishes the job if `attempts` still has the value its claim set.
"""

from __future__ import annotations

import posixpath
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.workspaces.scoping import WorkspaceOwnedModel, WorkspaceScopedQuerySet


class JobKind(models.TextChoices):
    IMAGE = "image", "Image"
    SPEECH = "speech", "Speech"
    TRANSCRIPTION = "transcription", "Transcription"
    VOICE_CLONE = "voice_clone", "Voice clone"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class GenerationJob(WorkspaceOwnedModel):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        "apikeys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="media_jobs"
    )
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    model = models.ForeignKey("generation.AIModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_label = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    reservation = models.ForeignKey(
        "credits.Reservation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    credits_reserved_units = models.BigIntegerField(default=0)
    credits_charged_units = models.BigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the cleanup deleted the job's files (plan retention or `expires_at`): pages and the
    # API say "expired" instead of offering links to files that are gone.
    results_expired_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=150, unique=True)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="media_job_ws_created"),
            models.Index(fields=["status", "heartbeat_at"], name="media_job_status_heartbeat"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="media_job_progress_max_100"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} job {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status not in ACTIVE_STATUSES

    @property
    def group_name(self) -> str:
        return job_group(self.pk)


def job_group(job_id: int) -> str:
    """The channel-layer group that receives a job's progress events."""
    return f"media-job-{job_id}"


class MediaKind(models.TextChoices):
    IMAGE = "image", "Image"
    PREVIEW = "preview", "Preview"
    THUMBNAIL = "thumbnail", "Thumbnail"
    AUDIO = "audio", "Audio"
    TRANSCRIPT = "transcript", "Transcript"
    UPLOAD = "upload", "Upload"


def media_upload_to(instance: MediaFile, filename: str) -> str:
    """`ws/<workspace id>/<yyyy>/<mm>/<uuid>.<ext>`: a random name nobody can guess, grouped by
    owner so a workspace's files can be found (and deleted) together."""
    ext = posixpath.splitext(filename)[1].lower()[:10]
    now = timezone.now()
    return f"ws/{instance.workspace_id}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}{ext}"


class MediaFileQuerySet(WorkspaceScopedQuerySet["MediaFile"]):
    def originals(self) -> MediaFileQuerySet:
        return self.filter(parent__isnull=True)


class MediaFile(WorkspaceOwnedModel):
    job = models.ForeignKey(GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="files")
    kind = models.CharField(max_length=16, choices=MediaKind.choices)
    file = models.FileField(upload_to=media_upload_to, max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField(default=0)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="derivatives")
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MediaFileQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "kind", "-created_at"], name="media_file_ws_kind_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk} ({self.content_type})"

    def derivative(self, kind: str) -> MediaFile | None:
        """A preview/thumbnail of this original (from a prefetch when there is one)."""
        cache: Any = getattr(self, "_prefetched_objects_cache", {})
        items = cache["derivatives"] if "derivatives" in cache else self.derivatives.all()
        return next((d for d in items if d.kind == kind), None)


class Voice(WorkspaceOwnedModel):
    """A voice cloned at a provider from the workspace's samples, usable for speech by its
    `provider_voice_id`. The consent the cloning person gave is kept with it."""

    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    model = models.ForeignKey("generation.AIModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    provider_voice_id = models.CharField(max_length=100)
    job = models.OneToOneField(GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="voice")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    consent_at = models.DateTimeField()
    consent_text = models.TextField()

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["workspace", "provider_voice_id"], name="media_voice_ws_provider_id")]

    def __str__(self) -> str:
        return self.name
