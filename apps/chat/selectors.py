"""Reads for the chat pages: the conversation list (search, filters) and one conversation's
messages with their rendered HTML."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from apps.chat.models import Attachment, Conversation, Message
from apps.core.markdown import render_markdown
from apps.credits.models import RateCard, Service
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


@dataclass(frozen=True)
class ModelChoice:
    """A model of the composer's picker with its current price (credits per 1K tokens)."""

    model: AIModel
    input_per_1k: Decimal | None
    output_per_1k: Decimal | None

    @property
    def price(self) -> str:
        if self.input_per_1k is None and self.output_per_1k is None:
            return "no price set"
        if not self.input_per_1k and not self.output_per_1k:
            return "free"
        return f"{_amount(self.input_per_1k)} in / {_amount(self.output_per_1k)} out per 1K tokens"


def _amount(value: Decimal | None) -> str:
    return "0" if value is None else f"{value.normalize():f}"


def chat_model_choices(*, workspace: Workspace) -> list[ModelChoice]:
    """The models the workspace's plan lets it chat with, each with its current text rate
    card (one query for the prices)."""
    models = chat_models(workspace=workspace)
    cards = {
        card.model: card
        for card in RateCard.objects.current().filter(service=Service.TEXT, model__in=[m.model_id for m in models])
    }
    return [
        ModelChoice(
            model=m,
            input_per_1k=cards[m.model_id].input_per_1k if m.model_id in cards else None,
            output_per_1k=cards[m.model_id].output_per_1k if m.model_id in cards else None,
        )
        for m in models
    ]


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
    attachments: tuple[Attachment, ...] = ()  # without their bytes

    @property
    def is_user(self) -> bool:
        return self.message.role == Message.Role.USER


def message_view(message: Message, attachments: Iterable[Attachment] | None = None) -> MessageView:
    """A message as the page shows it: an assistant's finished answer rendered from Markdown,
    anything else (the user's text, an answer still streaming) as plain text; a question with
    its files (read here when not given)."""
    rendered = (
        render_markdown(message.content)
        if message.role == Message.Role.ASSISTANT and message.status != Message.Status.STREAMING
        else ""
    )
    if attachments is None:
        attachments = (
            _attachments(Attachment.objects.filter(message=message)) if message.role == Message.Role.USER else ()
        )
    return MessageView(message=message, html=rendered, attachments=tuple(attachments))


def _attachments(qs: QuerySet[Attachment]) -> QuerySet[Attachment]:
    return qs.defer("data", "text").order_by("created_at", "id")


def conversation_messages(*, conversation: Conversation) -> list[MessageView]:
    messages = (
        Message.objects.filter(conversation=conversation, workspace_id=conversation.workspace_id)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("created_at", "id")
        .prefetch_related(Prefetch("attachments", queryset=_attachments(Attachment.objects.all())))
    )
    return [message_view(message, message.attachments.all()) for message in messages]


def pending_attachments(*, conversation: Conversation) -> list[Attachment]:
    """Files uploaded for the next message and not sent yet (shown again after a reload)."""
    return list(_attachments(Attachment.objects.filter(conversation=conversation, message__isnull=True)))


# ---------------------------------------------------------------------------- sidebar

SIDEBAR_LIMIT = 60


def sidebar_conversations(*, workspace: Workspace, q: str = "", limit: int = SIDEBAR_LIMIT) -> list[Conversation]:
    """The conversations the app sidebar lists: pinned first (most recently pinned on top),
    then the most recently active, at most `limit`; `q` matches titles and message text.
    One query, whatever the workspace holds: only the columns the sidebar draws are read."""
    qs = Conversation.objects.for_workspace(workspace).only("id", "workspace_id", "title", "updated_at", "pinned_at")
    q = q.strip()
    if q:
        matching = Message.objects.filter(conversation=OuterRef("pk"), workspace=workspace, content__icontains=q)
        qs = qs.filter(Q(title__icontains=q) | Exists(matching))
    return list(qs.order_by(F("pinned_at").desc(nulls_last=True), "-updated_at", "-id")[:limit])


@dataclass(frozen=True)
class SidebarGroup:
    label: str
    conversations: list[Conversation]


SIDEBAR_GROUPS = ("Pinned", "Today", "Yesterday", "Previous 7 days", "Older")


def _sidebar_group(conversation: Conversation, today: date) -> str:
    if conversation.pinned_at is not None:
        return "Pinned"
    age = (today - timezone.localdate(conversation.updated_at)).days
    if age <= 0:
        return "Today"
    if age == 1:
        return "Yesterday"
    if age <= 7:
        return "Previous 7 days"
    return "Older"


def sidebar_groups(conversations: list[Conversation], *, today: date | None = None) -> list[SidebarGroup]:
    """`conversations` in the sidebar's sections, empty sections left out. Days are the
    current time zone's (the user's, activated by `UserPreferencesMiddleware`), so a chat at
    00:30 in Berlin is "Today" there although it is still yesterday in UTC."""
    today = today or timezone.localdate()
    sections: dict[str, list[Conversation]] = {label: [] for label in SIDEBAR_GROUPS}
    for conversation in conversations:
        sections[_sidebar_group(conversation, today)].append(conversation)
    return [SidebarGroup(label, items) for label, items in sections.items() if items]
