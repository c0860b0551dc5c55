"""Reads for the chat pages: the conversation list (search, filters) and one conversation's
messages with their rendered HTML."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.chat.models import Conversation, Message
from apps.chat.rendering import render_markdown
from apps.generation.models import AIModel, Capability

if TYPE_CHECKING:
    from apps.workspaces.models import Workspace


@dataclass(frozen=True)
class ConversationFilters:
    q: str = ""
    start: date | None = None
    end: date | None = None
    model: str = ""


def chat_models(*, workspace: Workspace) -> list[AIModel]:
    """Models the workspace may chat with (its plan included), in picker order."""
    return AIModel.objects.usable_for(workspace, Capability.CHAT)


def conversation_filter_models() -> list[tuple[str, str]]:
    return list(AIModel.objects.filter(supports_chat=True).values_list("model_id", "display_name"))


def conversation_list(*, workspace: Workspace, filters: ConversationFilters) -> QuerySet[Conversation]:
    qs = Conversation.objects.for_workspace(workspace).select_related("model")
    if filters.q:
        matching = Message.objects.filter(
            conversation=OuterRef("pk"), workspace=workspace, content__icontains=filters.q
        )
        qs = qs.filter(Q(title__icontains=filters.q) | Exists(matching))
    if filters.start:
        qs = qs.filter(updated_at__date__gte=filters.start)
    if filters.end:
        qs = qs.filter(updated_at__date__lte=filters.end)
    if filters.model:
        qs = qs.filter(model__model_id=filters.model)
    return qs.order_by("-updated_at", "-id")


@dataclass(frozen=True)
class MessageView:
    message: Message
    html: str  # sanitised HTML for finished assistant messages; "" otherwise

    @property
    def is_user(self) -> bool:
        return self.message.role == Message.Role.USER


def conversation_messages(*, conversation: Conversation) -> list[MessageView]:
    messages = (
        Message.objects.filter(conversation=conversation, workspace_id=conversation.workspace_id)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("created_at", "id")
    )
    rows = []
    for message in messages:
        rendered = (
            render_markdown(message.content)
            if message.role == Message.Role.ASSISTANT and message.status != Message.Status.STREAMING
            else ""
        )
        rows.append(MessageView(message=message, html=rendered))
    return rows
