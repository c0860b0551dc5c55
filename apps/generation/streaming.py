"""Chat turns: persist the user's message, stream the assistant's answer through the charging
pipeline (`generation_chat_stream`) and persist it as it streams.

These functions are synchronous and run in a worker thread owned by the WebSocket consumer (or
in a test). No database transaction is open while the provider streams: the messages are
written in short transactions before and after, and the partial answer is saved with single
UPDATEs at most every `PERSIST_EVERY_SECONDS` or `PERSIST_EVERY_DELTAS` deltas, so a reload or a
second tab shows what was generated so far.

How a turn ends (the assistant message's status):

- the stream finished: `complete`;
- `stop_event` was set (stop button) or `client_gone()` answered true (socket closed):
  `stopped` — the delivered part is kept and charged;
- a provider error after the first token: `error`, the delivered part kept and charged;
- refused before the call (credits, spending cap, model disabled or not in the plan) or every
  provider failed before its first token: `error` with a message for the user, nothing charged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import User
from apps.credits.exceptions import CreditsError
from apps.generation.models import AIModel, Conversation, Generation, Message
from apps.generation.providers.base import TextDelta
from apps.generation.router import AllProvidersFailed
from apps.generation.services import GenerationRefused, generation_chat_stream

logger = logging.getLogger(__name__)

MAX_CONTENT_CHARS = 20_000
PERSIST_EVERY_SECONDS = 0.5
PERSIST_EVERY_DELTAS = 40
TITLE_WORDS = 8

NO_MODEL_MESSAGE = "No chat model is available right now."
PROVIDERS_DOWN_MESSAGE = "The model is not responding right now. Please try again in a moment."
MID_STREAM_MESSAGE = "The model stopped responding before finishing its answer. Please try again."
UNEXPECTED_MESSAGE = "Something went wrong while generating the answer. Please try again."

OnDelta = Callable[[str], None]
OnStart = Callable[[Message, Message], None]
ClientGone = Callable[[], bool]

_STATUS_FOR_OUTCOME: dict[str, str] = {
    Generation.Outcome.OK: Message.Status.COMPLETE,
    Generation.Outcome.STOPPED: Message.Status.STOPPED,
    Generation.Outcome.CLIENT_GONE: Message.Status.STOPPED,
    Generation.Outcome.ERROR: Message.Status.ERROR,
}


class ChatStreamError(Exception):
    """The turn cannot start (empty message, unknown message to edit...); safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def chat_default_model() -> AIModel | None:
    """The first available chat model in picker order."""
    return (
        AIModel.objects.available().filter(supports_chat=True).select_related("provider").order_by("position").first()
    )


def _clean_content(content: str) -> str:
    content = (content or "").strip()
    if not content:
        raise ChatStreamError("The message is empty.")
    if len(content) > MAX_CONTENT_CHARS:
        raise ChatStreamError(f"The message is too long (at most {MAX_CONTENT_CHARS:,} characters).")
    return content


def _title_from(content: str) -> str:
    words = content.split()
    title = " ".join(words[:TITLE_WORDS])
    if len(words) > TITLE_WORDS:
        title += "…"
    return title[:200]


def _history(conversation: Conversation) -> list[dict[str, Any]]:
    """The OpenAI-format messages: the system prompt, then the finished user/assistant turns."""
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    turns = (
        Message.objects.filter(
            conversation=conversation,
            role__in=[Message.Role.USER, Message.Role.ASSISTANT],
            status__in=[Message.Status.COMPLETE, Message.Status.STOPPED],
        )
        .exclude(content="")
        .order_by("created_at", "id")
        .values_list("role", "content")
    )
    messages += [{"role": role, "content": content} for role, content in turns]
    return messages


def _messages_after(message: Message) -> Q:
    return Q(created_at__gt=message.created_at) | Q(created_at=message.created_at, id__gt=message.pk)


def chat_send(
    *,
    conversation: Conversation,
    user: User,
    content: str,
    stop_event: threading.Event | None = None,
    on_delta: OnDelta | None = None,
    client_gone: ClientGone | None = None,
    on_start: OnStart | None = None,
) -> Message:
    """Add the user's message and answer it; returns the finished assistant message."""
    content = _clean_content(content)
    with transaction.atomic():
        user_message = Message.objects.create(
            workspace=conversation.workspace,
            conversation=conversation,
            role=Message.Role.USER,
            content=content,
            status=Message.Status.COMPLETE,
        )
        if not conversation.title:
            conversation.title = _title_from(content)
            conversation.title_generated = True
            conversation.save(update_fields=["title", "title_generated"])
    return _answer(
        conversation=conversation,
        user=user,
        user_message=user_message,
        stop_event=stop_event,
        on_delta=on_delta,
        client_gone=client_gone,
        on_start=on_start,
    )


def chat_regenerate(
    *,
    conversation: Conversation,
    user: User,
    stop_event: threading.Event | None = None,
    on_delta: OnDelta | None = None,
    client_gone: ClientGone | None = None,
    on_start: OnStart | None = None,
) -> Message:
    """Drop the answer(s) after the last user message and answer that message again."""
    last_user = (
        Message.objects.filter(conversation=conversation, role=Message.Role.USER).order_by("created_at", "id").last()
    )
    if last_user is None:
        raise ChatStreamError("There is no message to answer again.")
    Message.objects.filter(conversation=conversation).filter(_messages_after(last_user)).delete()
    return _answer(
        conversation=conversation,
        user=user,
        user_message=last_user,
        stop_event=stop_event,
        on_delta=on_delta,
        client_gone=client_gone,
        on_start=on_start,
    )


def chat_edit_resend(
    *,
    conversation: Conversation,
    user: User,
    message_id: int,
    content: str,
    stop_event: threading.Event | None = None,
    on_delta: OnDelta | None = None,
    client_gone: ClientGone | None = None,
    on_start: OnStart | None = None,
) -> Message:
    """Replace one of the user's messages, forget everything after it, and answer it again."""
    content = _clean_content(content)
    message = Message.objects.filter(conversation=conversation, role=Message.Role.USER, pk=message_id).first()
    if message is None:
        raise ChatStreamError("That message cannot be edited.")
    with transaction.atomic():
        Message.objects.filter(conversation=conversation).filter(_messages_after(message)).delete()
        message.content = content
        message.save(update_fields=["content"])
    return _answer(
        conversation=conversation,
        user=user,
        user_message=message,
        stop_event=stop_event,
        on_delta=on_delta,
        client_gone=client_gone,
        on_start=on_start,
    )


def _answer(
    *,
    conversation: Conversation,
    user: User,
    user_message: Message,
    stop_event: threading.Event | None,
    on_delta: OnDelta | None,
    client_gone: ClientGone | None,
    on_start: OnStart | None,
) -> Message:
    model = conversation.model if conversation.model_id else chat_default_model()
    messages = _history(conversation)
    assistant = Message.objects.create(
        workspace=conversation.workspace,
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_label=model.model_id if model is not None else "",
    )
    if on_start is not None:
        on_start(user_message, assistant)
    if model is None:
        return _finish(conversation, assistant, "", Message.Status.ERROR, NO_MODEL_MESSAGE)

    stream = generation_chat_stream(
        workspace=conversation.workspace,
        user=user,
        model=model,
        messages=messages,
        max_tokens=conversation.max_tokens,
        temperature=float(conversation.temperature) if conversation.temperature is not None else None,
        idempotency_key=f"chat:{assistant.pk}",
    )
    parts: list[str] = []
    unsaved = 0
    saved_at = time.monotonic()
    try:
        with stream:
            for event in stream:
                if not isinstance(event, TextDelta):
                    break  # the GenerationEnd: the stream wrote its usage row
                parts.append(event.text)
                if on_delta is not None:
                    on_delta(event.text)
                if client_gone is not None and client_gone():
                    stream.close(Generation.Outcome.CLIENT_GONE)
                    break
                if stop_event is not None and stop_event.is_set():
                    stream.close(Generation.Outcome.STOPPED)
                    break
                unsaved += 1
                if unsaved >= PERSIST_EVERY_DELTAS or time.monotonic() - saved_at >= PERSIST_EVERY_SECONDS:
                    Message.objects.filter(pk=assistant.pk).update(content="".join(parts))
                    unsaved, saved_at = 0, time.monotonic()
    except (GenerationRefused, CreditsError) as exc:  # refused before any call: nothing charged
        return _finish(conversation, assistant, "", Message.Status.ERROR, exc.message, stream.generation)
    except AllProvidersFailed:  # nothing delivered: the hold was released
        logger.info("chat %s: every provider failed before the first token", conversation.pk)
        return _finish(conversation, assistant, "", Message.Status.ERROR, PROVIDERS_DOWN_MESSAGE, stream.generation)
    except Exception:
        # `with` closed the stream (the delivered part is charged); keep what was shown.
        logger.exception("chat %s: generation failed", conversation.pk)
        return _finish(
            conversation, assistant, "".join(parts), Message.Status.ERROR, UNEXPECTED_MESSAGE, stream.generation
        )
    generation = stream.generation
    status = _STATUS_FOR_OUTCOME.get(generation.outcome, Message.Status.ERROR) if generation else Message.Status.ERROR
    error = MID_STREAM_MESSAGE if status == Message.Status.ERROR else ""
    return _finish(conversation, assistant, "".join(parts), status, error, generation)


def _finish(
    conversation: Conversation,
    assistant: Message,
    content: str,
    status: str,
    error: str = "",
    generation: Generation | None = None,
) -> Message:
    """Write the final state of the assistant message, with the tokens and credits of its usage
    row, and bump the conversation."""
    assistant.content = content
    assistant.status = status
    assistant.error = error
    if generation is not None:
        assistant.generation = generation
        assistant.input_tokens = generation.input_tokens
        assistant.output_tokens = generation.output_tokens
        assistant.credits_units = generation.credits_charged_units
    with transaction.atomic():
        assistant.save(
            update_fields=["content", "status", "error", "generation", "input_tokens", "output_tokens", "credits_units"]
        )
        now = timezone.now()
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now)
        conversation.updated_at = now
    return assistant
