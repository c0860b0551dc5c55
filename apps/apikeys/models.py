"""Workspace API keys: what integrators send as `Authorization: Bearer ak_…`.

Only a SHA-256 of each key is stored (keys are 240 bits of randomness, so a fast hash is
enough); the raw key is shown once, when it is created. `prefix` is the key's public start,
shown in lists so people can tell their keys apart."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.workspaces.scoping import WorkspaceOwnedModel, WorkspaceScopedQuerySet

KEY_PREFIX = "ak_"
KEY_RANDOM_CHARS = 40  # secrets.token_urlsafe(30): 30 bytes → 40 url-safe characters
KEY_LENGTH = len(KEY_PREFIX) + KEY_RANDOM_CHARS
PREFIX_LENGTH = 12


class Scope(models.TextChoices):
    CHAT = "chat", "Chat completions"
    IMAGES = "images", "Image generation"
    AUDIO = "audio", "Speech and transcription"
    EMBEDDINGS = "embeddings", "Embeddings"
    PLATFORM_READ = "platform_read", "Platform API: read"
    PLATFORM_WRITE = "platform_write", "Platform API: manage conversations and keys"
    DOCUMENTS_READ = "documents_read", "Documents and presets: read"
    DOCUMENTS_WRITE = "documents_write", "Documents and presets: create and change"


# A scope that grants another: a key that may change platform resources may also read them.
IMPLIED_SCOPES: dict[str, frozenset[str]] = {
    Scope.PLATFORM_WRITE: frozenset({Scope.PLATFORM_READ}),
    Scope.DOCUMENTS_WRITE: frozenset({Scope.DOCUMENTS_READ}),
}


class ApiKeyState(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class ApiKeyQuerySet(WorkspaceScopedQuerySet["ApiKey"]):
    def active(self, now: datetime | None = None) -> ApiKeyQuerySet:
        now = now or timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True)


class ApiKey(WorkspaceOwnedModel):
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, help_text="The key's public start.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False, help_text="SHA-256 of the key, hex.")
    scopes = models.JSONField(default=list, help_text="Scope values; see Scope.")
    expires_at = models.DateTimeField(null=True, blank=True)
    # Spending caps in credit units (1 credit = 10,000 units), by UTC day and month; null = none.
    daily_cap_units = models.BigIntegerField(null=True, blank=True)
    monthly_cap_units = models.BigIntegerField(null=True, blank=True)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Catalog model ids; empty means every model the workspace may use."
    )
    # Per-key overrides of the requests / tokens per minute limits, read by the rate limiter.
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ApiKeyQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="apikeys_ws_created")]
        constraints = [
            models.CheckConstraint(
                condition=Q(daily_cap_units__isnull=True) | Q(daily_cap_units__gt=0),
                name="apikeys_daily_cap_positive",
            ),
            models.CheckConstraint(
                condition=Q(monthly_cap_units__isnull=True) | Q(monthly_cap_units__gt=0),
                name="apikeys_monthly_cap_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return ApiKeyState.REVOKED
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return ApiKeyState.EXPIRED
        return ApiKeyState.ACTIVE

    @property
    def is_active(self) -> bool:
        """Neither revoked nor expired. `apikey_authenticate` also refuses a key whose
        creator is suspended or whose workspace was deleted."""
        return self.state == ApiKeyState.ACTIVE

    def get_state_display(self) -> str:
        return str(ApiKeyState(self.state).label)

    def has_scope(self, scope: str) -> bool:
        return any(scope == granted or scope in IMPLIED_SCOPES.get(granted, ()) for granted in self.scopes or [])

    def allows_model(self, model_id: str) -> bool:
        return not self.allowed_models or model_id in self.allowed_models
