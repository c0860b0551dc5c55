"""Chat turns: persist the user's message, stream the assistant's answer through the charging
pipeline and persist it as it streams, then (after the first exchange) let a cheap model write
the conversation's title.

A turn is prepared by a synchronous step (`chat_send_prepare`, `chat_regenerate_prepare`,
`chat_edit_prepare`: short transactions) and answered by one of two drivers: `achat_answer`
(asyncio, used by the WebSocket consumer: one event loop carries every stream of the process)
or `chat_answer` (a thread; `chat_send` / `chat_regenerate` / `chat_edit_resend` chain both
steps). No database transaction is open while the provider streams: the partial answer is saved
with single UPDATEs at most every `PERSIST_EVERY_SECONDS` or `PERSIST_EVERY_DELTAS` deltas, so a
reload or a second tab shows what was generated so far.

One turn at a time per conversation: preparing a turn takes the conversation's turn lock (a
conditional UPDATE, so it holds across processes); a second tab gets a clear error until the
answer ends. A lock left by a dead worker lapses after `TURN_LOCK_SECONDS`.

How a turn ends (the assistant message's status):

- the stream finished: `complete`;
- the stop button or the socket closed (or a delta could not be relayed: the client is gone):
  `stopped` — the delivered part is kept and charged;
- the user lost access while it streamed (suspended, removed, workspace deleted): `stopped`
  with a message saying so — the delivered part is kept and charged;
- a provider error after the first token: `error`, the delivered part kept and charged;
- refused before the call (credits, spending cap, model disabled or not in the plan) or every
  provider failed before its first token: `error` with a message for the user, nothing charged;
- the worker died: `error` (interrupted), set by `chat_sweep_interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import User
from apps.credits.exceptions import CreditsError
from apps.generation.models import AIModel, Conversation, Generation, Message
from apps.generation.providers.base import TextDelta
from apps.generation.router import AllProvidersFailed
from apps.generation.services import (
    AccessRevoked,
    AsyncGenerationStream,
    GenerationEnd,
    GenerationRefused,
    GenerationStream,
    db_step,
    generation_chat_astream,
    generation_chat_stream,
)

logger = logging.getLogger(__name__)

MAX_CONTENT_CHARS = 20_000
PERSIST_EVERY_SECONDS = 1.0
PERSIST_EVERY_DELTAS = 40
TITLE_WORDS = 8
TITLE_MAX_TOKENS = 24
TURN_LOCK_SECONDS = 600

NO_MODEL_MESSAGE = "No chat model is available right now."
PROVIDERS_DOWN_MESSAGE = "The model is not responding right now. Please try again in a moment."
MID_STREAM_MESSAGE = "The model stopped responding before finishing its answer. Please try again."
UNEXPECTED_MESSAGE = "Something went wrong while generating the answer. Please try again."
BUSY_MESSAGE = "An answer is already being generated in this conversation (another tab?). Wait for it or stop it."
INTERRUPTED_MESSAGE = "The answer was interrupted. Please try again."
ACCESS_ENDED_MESSAGE = "Your access to this workspace has ended, so the answer was stopped."
TITLE_INSTRUCTION = (
    "Write a short title (at most six words) for a conversation that starts with the user's message "
    "below. Reply with the title only, without quotes."
)

OnDelta = Callable[[str], None]
OnStart = Callable[[Message, Message], None]
ClientGone = Callable[[], bool]

_STATUS_FOR_OUTCOME: dict[str, str] = {
    Generation.Outcome.OK: Message.Status.COMPLETE,
    Generation.Outcome.STOPPED: Message.Status.STOPPED,
    Generation.Outcome.CLIENT_GONE: Message.Status.STOPPED,
    Generation.Outcome.ERROR: Message.Status.ERROR,
}


class RelayFailed(Exception):
    """A delta could not be relayed to the client (its socket closed): the client is gone."""


class ChatStreamError(Exception):
    """The turn cannot start (empty message, unknown message to edit, busy...); safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Turn:
    """A prepared turn: the user's message, the (streaming) assistant message, what to send.

    `request_stop(outcome)` asks the driver to end the answer (stopped / client_gone); the
    asyncio driver is then cancelled by its owner while it streams."""

    conversation: Conversation
    user: User
    user_message: Message
    assistant: Message
    model: AIModel | None
    messages: list[dict[str, Any]]
    first_exchange: bool
    stop_outcome: str | None = None
    streaming: bool = False
    access_lost: bool = False
    parts: list[str] = field(default_factory=list)
    stream: AsyncGenerationStream | None = None
    access_check: Callable[[], bool] | None = None

    def request_stop(self, outcome: str = Generation.Outcome.STOPPED) -> None:
        self.stop_outcome = self.stop_outcome or outcome
        if self.stream is not None:
            self.stream.close_outcome = self.stop_outcome


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


def _title_from(content: str, words: int = TITLE_WORDS) -> str:
    parts = content.split()
    title = " ".join(parts[:words])
    if len(parts) > words:
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


# ---------------------------------------------------------------------------- the turn lock


def _lock_turn(conversation: Conversation) -> None:
    now = timezone.now()
    # Two tabs (or two processes) starting a turn at once: the conditional UPDATE lets one in.
    taken = (
        Conversation.objects.filter(pk=conversation.pk)
        .filter(Q(turn_started_at__isnull=True) | Q(turn_started_at__lt=now - timedelta(seconds=TURN_LOCK_SECONDS)))
        .update(turn_started_at=now)
    )
    if not taken:
        raise ChatStreamError(BUSY_MESSAGE)


def _unlock_turn(conversation: Conversation) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(turn_started_at=None)


# ---------------------------------------------------------------------------- preparing a turn


def _begin(conversation: Conversation, user: User, user_message: Message) -> Turn:
    """Create the streaming assistant message for `user_message` (the turn lock is held)."""
    model = conversation.model if conversation.model_id else chat_default_model()
    messages = _history(conversation)
    first_exchange = not Message.objects.filter(conversation=conversation, role=Message.Role.ASSISTANT).exists()
    assistant = Message.objects.create(
        workspace=conversation.workspace,
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_label=model.model_id if model is not None else "",
    )
    return Turn(conversation, user, user_message, assistant, model, messages, first_exchange)


def _locked(conversation: Conversation, prepare: Callable[[], Message], user: User) -> Turn:
    _lock_turn(conversation)
    try:
        return _begin(conversation, user, prepare())
    except BaseException:
        _unlock_turn(conversation)
        raise


def chat_send_prepare(*, conversation: Conversation, user: User, content: str) -> Turn:
    """Add the user's message; the turn answers it."""
    content = _clean_content(content)

    def prepare() -> Message:
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
        return user_message

    return _locked(conversation, prepare, user)


def chat_regenerate_prepare(*, conversation: Conversation, user: User) -> Turn:
    """Drop the answer(s) after the last user message; the turn answers that message again."""

    def prepare() -> Message:
        last_user = (
            Message.objects.filter(conversation=conversation, role=Message.Role.USER)
            .order_by("created_at", "id")
            .last()
        )
        if last_user is None:
            raise ChatStreamError("There is no message to answer again.")
        Message.objects.filter(conversation=conversation).filter(_messages_after(last_user)).delete()
        return last_user

    return _locked(conversation, prepare, user)


def chat_edit_prepare(*, conversation: Conversation, user: User, message_id: int, content: str) -> Turn:
    """Replace one of the user's messages and forget everything after it; the turn answers it."""
    content = _clean_content(content)

    def prepare() -> Message:
        message = Message.objects.filter(conversation=conversation, role=Message.Role.USER, pk=message_id).first()
        if message is None:
            raise ChatStreamError("That message cannot be edited.")
        with transaction.atomic():
            Message.objects.filter(conversation=conversation).filter(_messages_after(message)).delete()
            message.content = content
            message.save(update_fields=["content"])
        return message

    return _locked(conversation, prepare, user)


# ---------------------------------------------------------------------------- answering


def _stream_kwargs(turn: Turn) -> dict[str, Any]:
    conversation = turn.conversation
    return {
        "workspace": conversation.workspace,
        "user": turn.user,
        "model": turn.model,
        "messages": turn.messages,
        "max_tokens": conversation.max_tokens,
        "temperature": float(conversation.temperature) if conversation.temperature is not None else None,
        "idempotency_key": f"chat:{turn.assistant.pk}",
        "access_check": turn.access_check,
    }


class _Persister:
    """Decides when the partial answer is saved while it streams."""

    def __init__(self) -> None:
        self.unsaved = 0
        self.saved_at = time.monotonic()

    def due(self) -> bool:
        self.unsaved += 1
        if self.unsaved >= PERSIST_EVERY_DELTAS or time.monotonic() - self.saved_at >= PERSIST_EVERY_SECONDS:
            self.unsaved, self.saved_at = 0, time.monotonic()
            return True
        return False


def _save_partial(turn: Turn) -> None:
    Message.objects.filter(pk=turn.assistant.pk).update(content="".join(turn.parts))


def _refused(turn: Turn, exc: Exception, generation: Generation | None) -> Message:
    """The ending for an exception raised by the stream (after it ended its hold)."""
    if isinstance(exc, AccessRevoked):  # settled for the delivered part, which is kept
        turn.access_lost = True
        return _finish(turn, "".join(turn.parts), Message.Status.STOPPED, ACCESS_ENDED_MESSAGE, generation)
    if isinstance(exc, GenerationRefused | CreditsError):  # refused before any call: nothing charged
        return _finish(turn, "", Message.Status.ERROR, exc.message, generation)
    if isinstance(exc, AllProvidersFailed):  # nothing delivered: the hold was released
        logger.info("chat %s: every provider failed before the first token", turn.conversation.pk)
        return _finish(turn, "", Message.Status.ERROR, PROVIDERS_DOWN_MESSAGE, generation)
    # The stream was closed (the delivered part is charged); keep what was shown.
    logger.error("chat %s: generation failed", turn.conversation.pk, exc_info=exc)
    return _finish(turn, "".join(turn.parts), Message.Status.ERROR, UNEXPECTED_MESSAGE, generation)


def _ended(turn: Turn, generation: Generation | None) -> Message:
    status = _STATUS_FOR_OUTCOME.get(generation.outcome, Message.Status.ERROR) if generation else Message.Status.ERROR
    error = MID_STREAM_MESSAGE if status == Message.Status.ERROR else ""
    return _finish(turn, "".join(turn.parts), status, error, generation)


def chat_answer(
    turn: Turn,
    *,
    stop_event: threading.Event | None = None,
    on_delta: OnDelta | None = None,
    client_gone: ClientGone | None = None,
) -> Message:
    """Answer a prepared turn in this thread; returns the finished assistant message."""
    if turn.model is None:
        return _finish(turn, "", Message.Status.ERROR, NO_MODEL_MESSAGE)
    stream: GenerationStream = generation_chat_stream(**_stream_kwargs(turn))
    persister = _Persister()
    try:
        with stream:
            for event in stream:
                if isinstance(event, GenerationEnd):
                    break  # the stream wrote its usage row
                if not isinstance(event, TextDelta):
                    continue
                turn.parts.append(event.text)
                if on_delta is not None:
                    on_delta(event.text)
                if client_gone is not None and client_gone():
                    stream.close(Generation.Outcome.CLIENT_GONE)
                    break
                if stop_event is not None and stop_event.is_set():
                    stream.close(Generation.Outcome.STOPPED)
                    break
                if persister.due():
                    _save_partial(turn)
    except Exception as exc:
        return _refused(turn, exc, stream.generation)
    return _ended(turn, stream.generation)


async def achat_answer(turn: Turn, *, on_delta: Callable[[str], Awaitable[None]] | None = None) -> Message:
    """Answer a prepared turn on the event loop. To stop it: `turn.request_stop(outcome)`, then
    cancel the task running this while `turn.streaming` is true (before the first token too);
    the delivered part is charged and the message ends `stopped`.

    The stream is used as a context manager, so its hold ends (settled for what was delivered,
    or released) on every way out of the loop: the end of the answer, the stop button, a
    cancelled task, a delta that could not be relayed (`on_delta` raised: the socket closed
    before its disconnect was noticed; the client is taken as gone) or any other exception.

    Partial saves never hold up the stream: one is in flight at a time, and a save that is
    still queued behind other streams' database steps is simply not doubled (under load the
    saves get rarer instead of piling up)."""
    if turn.model is None:
        return await db_step(_finish, turn, "", Message.Status.ERROR, NO_MODEL_MESSAGE)
    stream: AsyncGenerationStream = generation_chat_astream(**_stream_kwargs(turn))
    turn.stream = stream
    stream.close_outcome = turn.stop_outcome or Generation.Outcome.STOPPED
    persister = _Persister()
    saving: asyncio.Future[None] | None = None
    try:
        async with stream:
            if turn.stop_outcome is not None:  # stopped before the stream could start
                return await db_step(_finish, turn, "", Message.Status.STOPPED)
            turn.streaming = True
            try:
                async for event in stream:
                    if isinstance(event, GenerationEnd):
                        break
                    if not isinstance(event, TextDelta):
                        continue
                    turn.parts.append(event.text)
                    if on_delta is not None:
                        try:
                            await on_delta(event.text)
                        except Exception as exc:
                            # Not delivered: the client is gone (a closed socket raises before
                            # its disconnect arrives). The part it did receive is charged.
                            turn.parts.pop()
                            stream.not_delivered(event)
                            turn.request_stop(Generation.Outcome.CLIENT_GONE)
                            logger.info("chat %s: relay failed (%s)", turn.conversation.pk, type(exc).__name__)
                            break
                    if persister.due() and (saving is None or saving.done()):
                        saving = asyncio.ensure_future(db_step(_save_partial, turn))
            except asyncio.CancelledError:
                pass  # request_stop() came first: leaving the block ends the stream with its outcome
            finally:
                turn.streaming = False
    except Exception as exc:
        await _settled(saving)
        return await db_step(_refused, turn, exc, stream.generation)
    await _settled(saving)
    return await db_step(_ended, turn, stream.generation)


async def _settled(saving: asyncio.Future[None] | None) -> None:
    """Wait for an in-flight partial save, so it cannot land after the final content."""
    if saving is not None:
        with contextlib.suppress(Exception):
            await saving


def _finish(
    turn: Turn,
    content: str,
    status: str,
    error: str = "",
    generation: Generation | None = None,
) -> Message:
    """Write the final state of the assistant message, with the tokens and credits of its usage
    row, bump the conversation and release its turn lock."""
    assistant = turn.assistant
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
        Conversation.objects.filter(pk=turn.conversation.pk).update(updated_at=now, turn_started_at=None)
        turn.conversation.updated_at = now
    return assistant


# ---------------------------------------------------------------------------- sync entry points


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
    turn = chat_send_prepare(conversation=conversation, user=user, content=content)
    return _answer_now(turn, stop_event, on_delta, client_gone, on_start)


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
    turn = chat_regenerate_prepare(conversation=conversation, user=user)
    return _answer_now(turn, stop_event, on_delta, client_gone, on_start)


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
    turn = chat_edit_prepare(conversation=conversation, user=user, message_id=message_id, content=content)
    return _answer_now(turn, stop_event, on_delta, client_gone, on_start)


def _answer_now(
    turn: Turn,
    stop_event: threading.Event | None,
    on_delta: OnDelta | None,
    client_gone: ClientGone | None,
    on_start: OnStart | None,
) -> Message:
    if on_start is not None:
        on_start(turn.user_message, turn.assistant)
    return chat_answer(turn, stop_event=stop_event, on_delta=on_delta, client_gone=client_gone)


# ---------------------------------------------------------------------------- titles


@dataclass(frozen=True)
class _TitleJob:
    conversation: Conversation
    user: User
    model: AIModel
    messages: list[dict[str, Any]]
    charge: bool
    key: str

    def stream_kwargs(self) -> dict[str, Any]:
        return {
            "workspace": self.conversation.workspace,
            "user": self.user,
            "model": self.model,
            "messages": self.messages,
            "max_tokens": TITLE_MAX_TOKENS,
            "temperature": 0.2,
            "idempotency_key": self.key,
            "cache": False,
            "charge": self.charge,
        }


def _title_job(turn: Turn, message: Message) -> _TitleJob | None:
    """What to ask for a title after `message` answered the first exchange, or None."""
    from constance import config

    conversation = turn.conversation
    if not turn.first_exchange or message.status != Message.Status.COMPLETE:
        return None
    if not Conversation.objects.filter(pk=conversation.pk, title_generated=True).exists():
        return None  # renamed by a person meanwhile
    model_id = str(config.TITLE_MODEL or "").strip()
    model = None
    if model_id:
        model = AIModel.objects.available().select_related("provider").filter(model_id=model_id).first()
    model = model or turn.model
    if model is None:
        return None
    messages = [
        {"role": "system", "content": TITLE_INSTRUCTION},
        {"role": "user", "content": turn.user_message.content[:4000]},
    ]
    return _TitleJob(conversation, turn.user, model, messages, bool(config.TITLE_CHARGED), f"title:{message.pk}")


def _clean_title(text: str) -> str:
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = line.strip().strip("\"'*#\u201c\u201d\u2018\u2019").strip()
    return _title_from(line, TITLE_WORDS)


def _save_title(job: _TitleJob, text: str) -> str | None:
    title = _clean_title(text)
    if not title:
        return None
    # Only over the automatic title: a rename by a person wins.
    updated = Conversation.objects.filter(pk=job.conversation.pk, title_generated=True).update(title=title)
    return title if updated else None


async def achat_title(turn: Turn, message: Message) -> str | None:
    """After the first exchange, ask the title model (Config > Chat > TITLE_MODEL, charged only
    when TITLE_CHARGED) for a short title and save it over the automatic one. Returns the new
    title, or None (not the first exchange, renamed meanwhile, or the model failed: the words
    of the first message stay the title)."""
    job = await db_step(_title_job, turn, message)
    if job is None:
        return None
    stream = generation_chat_astream(**job.stream_kwargs())
    parts: list[str] = []
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                parts.append(event.text)
    except Exception:
        logger.info("title generation failed for conversation %s", job.conversation.pk, exc_info=True)
        return None
    if stream.generation is None or stream.generation.outcome != Generation.Outcome.OK:
        return None
    return await db_step(_save_title, job, "".join(parts))


def chat_title(turn: Turn, message: Message) -> str | None:
    """The synchronous twin of `achat_title` (tests, scripts)."""
    job = _title_job(turn, message)
    if job is None:
        return None
    stream = generation_chat_stream(**job.stream_kwargs())
    try:
        parts = [event.text for event in stream if isinstance(event, TextDelta)]
    except Exception:
        logger.info("title generation failed for conversation %s", job.conversation.pk, exc_info=True)
        return None
    if stream.generation is None or stream.generation.outcome != Generation.Outcome.OK:
        return None
    return _save_title(job, "".join(parts))


# ---------------------------------------------------------------------------- sweeping


def chat_sweep_interrupted(*, older_than: timedelta, now: datetime | None = None) -> int:
    """End answers left `streaming` by a worker that died, with the tokens and credits of their
    (swept) usage row, and free their conversations. Returns the messages ended."""
    now = now or timezone.now()
    stale = Message.objects.filter(
        role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, created_at__lt=now - older_than
    )
    ended = 0
    for message in stale:
        generation = (
            Generation.objects.filter(reservation__idempotency_key=f"chat:{message.pk}").first()
            if message.generation_id is None
            else message.generation
        )
        fields: dict[str, Any] = {"status": Message.Status.ERROR, "error": INTERRUPTED_MESSAGE}
        if generation is not None:
            fields |= {
                "generation": generation,
                "input_tokens": generation.input_tokens,
                "output_tokens": generation.output_tokens,
                "credits_units": generation.credits_charged_units,
            }
        ended += Message.objects.filter(pk=message.pk, status=Message.Status.STREAMING).update(**fields)
        Conversation.objects.filter(pk=message.conversation_id).update(turn_started_at=None)
    return ended
