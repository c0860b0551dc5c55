"""The model catalog (providers, models, fallback chains) and the usage log of generations."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.generation import crypto
from apps.generation.providers.base import ModelTarget, ProviderConfig, ProviderKind
from apps.workspaces.scoping import WorkspaceOwnedModel, WorkspaceScopedQuerySet
from apps.workspaces.selectors import workspace_plan_code

if TYPE_CHECKING:
    from apps.workspaces.models import Workspace

# Where a provider's key comes from when none is stored in the admin.
ENV_KEYS = {
    ProviderKind.OPENAI: "OPENAI_API_KEY",
    ProviderKind.ANTHROPIC: "ANTHROPIC_API_KEY",
    ProviderKind.GEMINI: "GEMINI_API_KEY",
    ProviderKind.MISTRAL: "MISTRAL_API_KEY",
}
ENV_BASE_URLS = {ProviderKind.OLLAMA: "OLLAMA_BASE_URL"}


class Provider(models.Model):
    """Credentials and options for one AI provider account."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    base_url = models.URLField(blank=True, help_text="For Ollama and OpenAI-compatible endpoints, or a proxy.")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_key_hint = models.CharField(max_length=16, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    timeout_seconds = models.PositiveIntegerField(default=60)
    options = models.JSONField(
        default=dict, blank=True, help_text='Mock provider: {"latency_ms": 20, "fail": "before:429" | "after:5"}.'
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_api_key(self, value: str) -> None:
        self.api_key_encrypted = crypto.encrypt(value)
        self.api_key_hint = crypto.mask(value)

    @property
    def api_key(self) -> str:
        stored = crypto.decrypt(self.api_key_encrypted)
        return stored or os.environ.get(ENV_KEYS.get(self.kind, ""), "")

    @property
    def resolved_base_url(self) -> str:
        return self.base_url or os.environ.get(ENV_BASE_URLS.get(self.kind, ""), "")

    @property
    def is_configured(self) -> bool:
        if self.kind == ProviderKind.MOCK:
            return True
        if self.kind in (ProviderKind.OLLAMA, ProviderKind.OPENAI_COMPATIBLE):
            return bool(self.resolved_base_url)
        return bool(self.api_key)

    def config(self) -> ProviderConfig:
        return ProviderConfig(
            kind=self.kind,
            api_key=self.api_key,
            base_url=self.resolved_base_url,
            timeout=float(self.timeout_seconds),
            options=dict(self.options or {}),
        )


class Capability(models.TextChoices):
    """What a model is used for; each is one `supports_*` flag on `AIModel`."""

    CHAT = "chat", "Chat"
    EMBEDDINGS = "embeddings", "Embeddings"
    IMAGES = "images", "Images"
    SPEECH = "speech", "Text to speech"
    TRANSCRIPTION = "transcription", "Transcription"
    VOICE_CLONING = "voice_cloning", "Voice cloning"


CAPABILITY_FLAGS: dict[str, str] = {
    Capability.CHAT: "supports_chat",
    Capability.EMBEDDINGS: "supports_embeddings",
    Capability.IMAGES: "supports_images",
    Capability.SPEECH: "supports_speech",
    Capability.TRANSCRIPTION: "supports_transcription",
    Capability.VOICE_CLONING: "supports_voice_cloning",
}


class Unusable(models.TextChoices):
    """Why a model may not serve a request (`AIModel.unusable_reason`)."""

    DISABLED = "disabled", "The model or its provider is off or not configured"
    UNSUPPORTED = "unsupported", "The model does not do this"
    PLAN = "plan", "The workspace's plan does not include the model"


_PLAN_OF_WORKSPACE = object()


class AIModelQuerySet(models.QuerySet["AIModel"]):
    def available(self) -> AIModelQuerySet:
        return self.filter(enabled=True, provider__enabled=True)

    def usable_for(
        self,
        workspace: Workspace | int | None,
        capability: Capability | str | None,
        *,
        plan_code: str | None | object = _PLAN_OF_WORKSPACE,
    ) -> list[AIModel]:
        """The one answer to "which models may this workspace use for this": the models of this
        queryset that are enabled, on an enabled and configured provider, flagged for
        `capability` (None: for anything), and allowed by the workspace's plan
        (`AIModel.plans`), in the queryset's order. One query for the models; the plan comes
        from the workspace's entitlements (remembered on the instance) unless the caller
        already knows it (`plan_code`)."""
        code = workspace_plan_code(workspace) if plan_code is _PLAN_OF_WORKSPACE else plan_code
        candidates = self.available().select_related("provider")
        if capability is not None:
            candidates = candidates.filter(**{CAPABILITY_FLAGS[capability]: True})
        return [model for model in candidates if model.unusable_reason(capability, plan_code=code) is None]  # type: ignore[arg-type]


class AIModel(models.Model):
    """A model as users see it; calls go to `provider` / `upstream_model`, then down the
    fallback chain."""

    model_id = models.SlugField(max_length=100, unique=True, help_text="Shown to users and used in the API.")
    display_name = models.CharField(max_length=100)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    upstream_model = models.CharField(max_length=200)
    supports_chat = models.BooleanField(default=True)
    supports_vision = models.BooleanField(default=False)
    supports_tools = models.BooleanField(default=False)
    supports_embeddings = models.BooleanField(default=False)
    supports_images = models.BooleanField(default=False)
    supports_speech = models.BooleanField(default=False, help_text="Text to speech (TTS).")
    supports_transcription = models.BooleanField(default=False, help_text="Speech to text (Whisper-class).")
    supports_voice_cloning = models.BooleanField(default=False, help_text="Clones voices from audio samples.")
    image_options = models.JSONField(
        default=dict,
        blank=True,
        help_text='Image models: {"sizes": ["1024x1024"], "qualities": ["standard", "hd"], '
        '"styles": ["vivid", "natural"], "max_n": 1, "negative_prompt": false}.',
    )
    context_window = models.PositiveIntegerField(default=8192)
    max_output_tokens = models.PositiveIntegerField(default=4096)
    enabled = models.BooleanField(default=True)
    plans = models.JSONField(
        default=list, blank=True, help_text="Plan codes allowed to use this model; empty means every plan."
    )
    position = models.PositiveIntegerField(default=100, help_text="Order in model pickers.")
    fallbacks = models.ManyToManyField(  # type: ignore[var-annotated]
        "self", through="ModelFallback", symmetrical=False, related_name="+", blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = AIModelQuerySet.as_manager()

    class Meta:
        ordering = ["position", "display_name"]
        verbose_name = "AI model"

    def __str__(self) -> str:
        return self.model_id

    def target(self) -> ModelTarget:
        return ModelTarget(provider=self.provider.config(), upstream_model=self.upstream_model, label=self.model_id)

    def allowed_for_plan(self, plan_code: str | None) -> bool:
        return not self.plans or (plan_code is not None and plan_code in self.plans)

    def unusable_reason(self, capability: Capability | str | None, *, plan_code: str | None) -> Unusable | None:
        """Why this model (with its provider loaded) may not serve `capability` for a workspace
        on the plan `plan_code`, or None when it may: the one rule behind `usable` and
        `AIModelQuerySet.usable_for`. Surfaces turn the reason into their own error (the API
        answers an unknown or disabled model 404, an unsupported one 400)."""
        provider = self.provider
        if not (self.enabled and provider.enabled and provider.is_configured):
            return Unusable.DISABLED
        if capability is not None and not getattr(self, CAPABILITY_FLAGS[capability]):
            return Unusable.UNSUPPORTED
        if not self.allowed_for_plan(plan_code):
            return Unusable.PLAN
        return None

    def usable(self, capability: Capability | str | None, *, plan_code: str | None) -> bool:
        return self.unusable_reason(capability, plan_code=plan_code) is None


class ModelFallback(models.Model):
    """One step of a model's ordered fallback chain."""

    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="fallback_links")
    fallback = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["model", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "fallback"], name="generation_fallback_unique"),
            models.CheckConstraint(
                condition=~models.Q(model=models.F("fallback")), name="generation_fallback_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} → {self.fallback} (#{self.position})"


class Generation(WorkspaceOwnedModel):
    """The usage log, the one place reports read: a row per chat answer or embeddings call (one
    attempt chain as billed) and per finished media job (`reference` names the job)."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "In progress"
        OK = "ok", "OK"
        STOPPED = "stopped", "Stopped by user"
        CLIENT_GONE = "client_gone", "Client disconnected"
        ERROR = "error", "Error"
        REFUSED = "refused", "Refused before the call"
        INTERRUPTED = "interrupted", "Interrupted (worker stopped)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(
        "apikeys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="generations"
    )
    capability = models.CharField(max_length=16, choices=Capability.choices, default=Capability.CHAT)
    reference = models.CharField(
        max_length=64, blank=True, help_text="What the row is for outside the pipeline, e.g. media_job:42."
    )
    model = models.ForeignKey(AIModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_label = models.CharField(max_length=100)
    provider_kind = models.CharField(max_length=32, blank=True)
    upstream_model = models.CharField(max_length=200, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cached_input_tokens = models.PositiveIntegerField(default=0)
    usage_reported = models.BooleanField(default=True)
    provider_cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    credits_charged_units = models.BigIntegerField(default=0)
    reservation = models.ForeignKey(
        "credits.Reservation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    total_ms = models.PositiveIntegerField(null=True, blank=True)
    cached = models.BooleanField(default=False, help_text="Served from the response cache.")
    attempts = models.JSONField(default=list, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="generation_ws_created")]

    def __str__(self) -> str:
        return f"{self.model_label} {self.outcome} ({self.created_at:%Y-%m-%d %H:%M})"
