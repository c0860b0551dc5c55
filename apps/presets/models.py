"""Prompt presets: a named prompt template with typed variables (`{{topic}}`) and optional
defaults (model, temperature, system prompt, what it makes), used wherever a prompt is written.

Three scopes: `personal` (its owner's, in one workspace), `workspace` (published to everyone in
the workspace by an owner or admin) and `library` (curated by staff for every workspace; no
workspace)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.generation.models import AIModel

MAX_TEMPLATE = 20_000


class Preset(models.Model):
    class Scope(models.TextChoices):
        PERSONAL = "personal", "Personal"
        WORKSPACE = "workspace", "Workspace"
        LIBRARY = "library", "Library"

    class Category(models.TextChoices):
        WRITING = "writing", "Writing"
        MARKETING = "marketing", "Marketing"
        CODE = "code", "Code"
        SUMMARISING = "summarising", "Summarising"
        TRANSLATION = "translation", "Translation"
        IMAGE = "image", "Image prompts"
        OTHER = "other", "Other"

    class Output(models.TextChoices):
        CHAT = "chat", "Chat"
        DOCUMENT = "document", "Document"
        IMAGE = "image", "Image"

    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.PERSONAL)
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="presets"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.OTHER)
    tags = models.JSONField(default=list, blank=True)
    icon = models.CharField(max_length=8, blank=True, help_text="An emoji shown beside the name.")
    template = models.TextField(help_text="The prompt; {{name}} marks a variable.")
    variables = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "One entry per variable: name, label, type (short, long, select, number), required, "
            "options (select), max_length, min and max (number), default."
        ),
    )
    default_model = models.ForeignKey(AIModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    temperature = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    system_prompt = models.TextField(blank=True)
    output = models.CharField(max_length=16, choices=Output.choices, default=Output.CHAT)
    is_active = models.BooleanField(default=True, help_text="Shown to users (library presets can be hidden).")
    usage_count = models.PositiveIntegerField(default=0, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["workspace", "scope"], name="presets_ws_scope")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope="library", workspace__isnull=True)
                | (~models.Q(scope="library") & models.Q(workspace__isnull=False)),
                name="presets_scope_matches_workspace",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PresetFavourite(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    preset = models.ForeignKey(Preset, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "preset"], name="presets_favourite_once")]

    def __str__(self) -> str:
        return f"{self.user_id} ♥ {self.preset_id}"
