"""Conversations and their messages.

The tables keep the names they had when chat lived in `apps.generation` (`generation_conversation`,
`generation_message`, and their index names): the models moved between apps in the migration
state only (chat's 0001), so no row was copied or table renamed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.generation.models import AIModel, Generation
from apps.workspaces.scoping import WorkspaceOwnedModel, WorkspaceScopedQuerySet


class Conversation(WorkspaceOwnedModel):
    """A chat in a workspace: its settings and its messages."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    title = models.CharField(max_length=200, blank=True)
    title_generated = models.BooleanField(default=False)
    model = models.ForeignKey(AIModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    system_prompt = models.TextField(blank=True)
    temperature = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Pinned conversations head the sidebar, most recently pinned first.
    pinned_at = models.DateTimeField(null=True, blank=True)
    # The turn lock: set while an answer is being generated (one turn at a time per conversation).
    turn_started_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        db_table = "generation_conversation"
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-updated_at"], name="generation_conv_ws_updated")]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(WorkspaceOwnedModel):
    """One turn. Assistant messages are persisted while they stream (status `streaming`), so a
    reload or a second tab shows what was generated so far."""

    class Role(models.TextChoices):
        SYSTEM = "system", "System"
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete", "Complete"
        STREAMING = "streaming", "Streaming"
        STOPPED = "stopped", "Stopped"
        ERROR = "error", "Error"

    class Feedback(models.TextChoices):
        UP = "up", "Helpful"
        DOWN = "down", "Not helpful"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model_label = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    credits_units = models.BigIntegerField(default=0)
    generation = models.ForeignKey(Generation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Thumbs up / down on an answer, by whoever in the workspace gave it last (staff read it in
    # the admin to judge models and prompts).
    feedback = models.CharField(max_length=8, choices=Feedback.choices, blank=True)
    feedback_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    feedback_at = models.DateTimeField(null=True, blank=True)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        db_table = "generation_message"
        ordering = ["conversation_id", "created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="generation_msg_conv_created")]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class Attachment(WorkspaceOwnedModel):
    """A file added to a question: an image (sent to vision models as an image part) or a text
    file (its text goes with the question as context). Uploaded before the question is sent
    (`message` empty until then). The bytes are kept in the row: small, private to the
    workspace, and deleted with their message or conversation."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        TEXT = "text", "Text file"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="attachments")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    data = models.BinaryField(blank=True, editable=False)  # an image's bytes
    text = models.TextField(blank=True, editable=False)  # a text file's text
    created_at = models.DateTimeField(default=timezone.now)

    objects = WorkspaceScopedQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name
