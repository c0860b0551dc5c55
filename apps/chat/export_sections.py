"""The account's data export ("export my data"): the conversations the user started, with their
messages, in every workspace (the shape of a conversation's JSON export, plus its workspace)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from apps.accounts.exporters import register
from apps.chat.models import Conversation, Message
from apps.chat.services import conversation_document, export_attachments

if TYPE_CHECKING:
    from apps.accounts.models import User


@register("conversations")
def export_conversations(user: User) -> list[dict[str, Any]]:
    conversations = Conversation.objects.filter(user=user).select_related("model").order_by("created_at", "id")
    messages: dict[int, list[Message]] = defaultdict(list)
    for message in (
        Message.objects.filter(conversation__user=user)
        .exclude(role=Message.Role.SYSTEM)
        .prefetch_related(export_attachments())
        .order_by("conversation_id", "created_at", "id")
        .iterator(chunk_size=500)
    ):
        messages[message.conversation_id].append(message)
    return [{"workspace_id": c.workspace_id, **conversation_document(c, messages[c.pk])} for c in conversations]
