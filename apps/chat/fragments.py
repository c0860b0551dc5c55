"""Server-rendered fragments of the chat page. A message has one markup,
`templates/chat/_message.html`, used for the history, the answer being streamed (its
placeholder and snapshots) and the finished answer: the page's script only inserts or replaces
the HTML it receives."""

from __future__ import annotations

from django.template.loader import render_to_string

from apps.chat.models import Attachment, Conversation, Message
from apps.chat.selectors import conversation_messages, message_view


def message_html(message: Message) -> str:
    """One message as the page shows it (a question's files are read: a database step)."""
    return render_to_string("chat/_message.html", {"row": message_view(message)})


def history_html(conversation_id: int) -> str:
    """Every message of the conversation, for a page that reconnects after missing frames."""
    conversation = Conversation.objects.get(pk=conversation_id)
    return "".join(
        render_to_string("chat/_message.html", {"row": row}) for row in conversation_messages(conversation=conversation)
    )


def attachment_html(attachment: Attachment, *, removable: bool = True) -> str:
    """A file's chip: in the composer (removable, until sent) and on its message."""
    return render_to_string("chat/_attachment.html", {"attachment": attachment, "removable": removable})
