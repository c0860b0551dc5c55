"""Chat: conversations and their turns.

Conversations (`conversation_create`, `conversation_update` to rename, switch model or change
settings, `conversation_delete`, `conversation_export`): every write checks workspace membership
(Perm.USE) and that the workspace may chat with the chosen model (its plan included:
`AIModel.usable`), and writes an audit row.

Turns: persist the user's message, stream the assistant's answer through the engine's charging
pipeline (`apps.generation.services`) and persist it as it streams, then (after the first
exchange) let a cheap model write the conversation's title.

A turn is prepared by a synchronous step (`chat_send_prepare`, `chat_regenerate_prepare`,
`chat_edit_prepare`: short transactions) and answered on the event loop by `chat_turn_answer`
(the WebSocket consumer's: one event loop carries every stream of the process; a thread drives it
through `asgiref.sync.async_to_sync`). No database transaction is open while the provider
streams: the partial answer is saved with single UPDATEs at most every `PERSIST_EVERY_SECONDS` or
`PERSIST_EVERY_DELTAS` deltas, so a reload or a second tab shows what was generated so far.

One turn at a time per conversation: preparing a turn takes the conversation's turn lock (a
conditional UPDATE, so it holds across processes); a second tab gets a clear error until the
answer ends. A lock left by a dead worker lapses after `TURN_LOCK_SECONDS`.

How a turn ends (the assistant message's status):

- the stream finished: `complete`;
- the Stop button (from any tab or device showing the conversation) or the time limit
  (`CHAT_MAX_ANSWER_SECONDS`): `stopped` — the generated part is kept and charged. Closing or
  reloading the tab is not a stop: the answer goes on (`apps.chat.answers`);
- a delta could not be relayed by a caller that streams to one client itself (`on_delta`
  raised): `stopped` as client_gone — the delivered part is kept and charged;
- the user lost access while it streamed (suspended, removed, workspace deleted): `stopped`
  with a message saying so — the delivered part is kept and charged;
- a provider error after the first token: `error`, the delivered part kept and charged;
- refused before the call (credits, spending cap, model disabled or not in the plan) or every
  provider failed before its first token: `error` with a message for the user, nothing charged;
- the worker died: `error` (interrupted), set by `chat_sweep_interrupted`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Prefetch, Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.chat.exceptions import ChatError, ChatStreamError
from apps.chat.models import Attachment, Conversation, Message
from apps.credits.exceptions import CreditsError
from apps.generation.exceptions import AccessRevoked, GenerationRefused
from apps.generation.models import AIModel, Capability, Generation
from apps.generation.providers.base import TextDelta
from apps.generation.router import AllProvidersFailed
from apps.generation.services import ChatGeneration, GenerationEnd, db_step, generation_chat_stream
from apps.workspaces.roles import Perm
from apps.workspaces.selectors import workspace_entitlements, workspace_plan_code
from apps.workspaces.services import require_perm

if TYPE_CHECKING:
    from apps.workspaces.models import Workspace

logger = logging.getLogger(__name__)

TITLE_MAX = 200
SYSTEM_PROMPT_MAX = 20_000
TEMPERATURE_MIN = Decimal("0")
TEMPERATURE_MAX = Decimal("2")
EDITABLE_FIELDS = frozenset({"title", "model", "system_prompt", "temperature", "max_tokens"})
EXPORT_FORMATS = ("md", "json")
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

_STATUS_FOR_OUTCOME: dict[str, str] = {
    Generation.Outcome.OK: Message.Status.COMPLETE,
    Generation.Outcome.STOPPED: Message.Status.STOPPED,
    Generation.Outcome.CLIENT_GONE: Message.Status.STOPPED,
    Generation.Outcome.ERROR: Message.Status.ERROR,
}


# ---------------------------------------------------------------------------- conversations


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    content: str


def _require_usable(model: AIModel | None, workspace: Workspace) -> AIModel:
    """The model, when the workspace may chat with it (its plan included)."""
    if model is None:
        raise ChatError("Pick a model.", param="model")
    if not model.usable(Capability.CHAT, plan_code=workspace_plan_code(workspace)):
        raise ChatError(f"The model {model.model_id} is not available.", param="model")
    return model


def _clean_title(title: str) -> str:
    title = " ".join((title or "").split())
    if len(title) > TITLE_MAX:
        raise ChatError(f"Keep the title to {TITLE_MAX} characters.", param="title")
    return title


def _clean_system_prompt(value: str) -> str:
    value = (value or "").strip()
    if len(value) > SYSTEM_PROMPT_MAX:
        raise ChatError(f"Keep the system prompt to {SYSTEM_PROMPT_MAX} characters.", param="system_prompt")
    return value


def _clean_temperature(value: Decimal | float | str | None) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        temperature = Decimal(str(value))
    except InvalidOperation as exc:
        raise ChatError("Temperature must be a number between 0 and 2.", param="temperature") from exc
    if not temperature.is_finite() or not TEMPERATURE_MIN <= temperature <= TEMPERATURE_MAX:
        raise ChatError("Temperature must be between 0 and 2.", param="temperature")
    return temperature.quantize(Decimal("0.01"))


def _clean_max_tokens(value: int | None, model: AIModel) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ChatError("Max tokens must be a whole number of at least 1.", param="max_tokens")
    if value > model.max_output_tokens:
        raise ChatError(
            f"{model.display_name} answers with at most {model.max_output_tokens} tokens.", param="max_tokens"
        )
    return value


@transaction.atomic(durable=True)
def conversation_create(
    *,
    workspace: Workspace,
    user: User,
    model: AIModel,
    title: str = "",
    system_prompt: str = "",
    temperature: Decimal | float | None = None,
    max_tokens: int | None = None,
) -> Conversation:
    require_perm(workspace=workspace, user=user, perm=Perm.USE)
    model = _require_usable(model, workspace)
    now = timezone.now()
    conversation = Conversation.objects.create(
        workspace=workspace,
        user=user,
        model=model,
        title=_clean_title(title),
        system_prompt=_clean_system_prompt(system_prompt),
        temperature=_clean_temperature(temperature),
        max_tokens=_clean_max_tokens(max_tokens, model),
        created_at=now,
        updated_at=now,
    )
    audit_record(
        actor=user,
        action="conversation.create",
        target=conversation,
        workspace=workspace,
        metadata={"model": model.model_id},
    )
    return conversation


@transaction.atomic(durable=True)
def conversation_update(*, conversation: Conversation, acting_user: User, **fields: Any) -> Conversation:
    """Rename, switch model or change settings. Everything is validated before anything is
    saved: one bad value leaves the conversation as it was."""
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ChatError(f"Cannot change {', '.join(sorted(unknown))}.")
    require_perm(workspace=conversation.workspace, user=acting_user, perm=Perm.USE)
    model = fields.get("model", conversation.model)
    if "model" in fields:
        model = _require_usable(model, conversation.workspace)
    cleaned: dict[str, Any] = {}
    if "title" in fields:
        cleaned["title"] = _clean_title(fields["title"])
    if "model" in fields:
        cleaned["model"] = model
    if "system_prompt" in fields:
        cleaned["system_prompt"] = _clean_system_prompt(fields["system_prompt"])
    if "temperature" in fields:
        cleaned["temperature"] = _clean_temperature(fields["temperature"])
    max_tokens = fields.get("max_tokens", conversation.max_tokens)
    if ("max_tokens" in fields or "model" in fields) and max_tokens is not None:
        if model is None:
            raise ChatError("Pick a model before setting max tokens.", param="max_tokens")
        cleaned["max_tokens"] = _clean_max_tokens(max_tokens, model)
    elif "max_tokens" in fields:
        cleaned["max_tokens"] = None
    changed = {name: value for name, value in cleaned.items() if getattr(conversation, name) != value}
    if not changed:
        return conversation
    if "title" in changed:
        conversation.title_generated = False
        changed["title_generated"] = False
    for name, value in changed.items():
        setattr(conversation, name, value)
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=[*changed, "updated_at"])
    metadata = {name: (value.model_id if isinstance(value, AIModel) else str(value)) for name, value in changed.items()}
    audit_record(
        actor=acting_user,
        action="conversation.update",
        target=conversation,
        workspace=conversation.workspace,
        metadata=metadata,
    )
    return conversation


@transaction.atomic(durable=True)
def conversation_pin(*, conversation: Conversation, pinned: bool, acting_user: User) -> Conversation:
    """Pin the conversation to the top of the workspace's history, or unpin it. Pinning does not
    change when it was last updated (its place in the history once unpinned)."""
    require_perm(workspace=conversation.workspace, user=acting_user, perm=Perm.USE)
    if pinned == (conversation.pinned_at is not None):
        return conversation
    conversation.pinned_at = timezone.now() if pinned else None
    conversation.save(update_fields=["pinned_at"])
    return conversation


FEEDBACK_VALUES = frozenset({"up", "down", ""})


@transaction.atomic(durable=True)
def message_feedback_set(*, message: Message, value: str, acting_user: User) -> Message:
    """Thumbs up (`up`), down (`down`) or neither (`""`) on a finished answer, by a member of
    its workspace. The last person to rate it wins; staff read it in the admin."""
    require_perm(workspace=message.workspace, user=acting_user, perm=Perm.USE)
    if value not in FEEDBACK_VALUES:
        raise ChatError("Rate an answer up or down.", param="value")
    if message.role != Message.Role.ASSISTANT or message.status == Message.Status.STREAMING:
        raise ChatError("Only a finished answer can be rated.", param="message")
    message.feedback = value
    message.feedback_by = acting_user if value else None
    message.feedback_at = timezone.now() if value else None
    message.save(update_fields=["feedback", "feedback_by", "feedback_at"])
    return message


@transaction.atomic(durable=True)
def conversation_delete(*, conversation: Conversation, acting_user: User) -> None:
    require_perm(workspace=conversation.workspace, user=acting_user, perm=Perm.USE)
    audit_record(
        actor=acting_user,
        action="conversation.delete",
        target=conversation,
        workspace=conversation.workspace,
    )
    conversation.delete()


def _size(size: int) -> str:
    return str(filesizeformat(size)).replace("\xa0", " ")


def export_attachments() -> Prefetch:
    """The files of exported messages: what they were, never their bytes."""
    return Prefetch("attachments", queryset=Attachment.objects.defer("data", "text").order_by("created_at", "id"))


def _export_messages(conversation: Conversation) -> list[Message]:
    return list(
        Message.objects.filter(conversation=conversation, workspace_id=conversation.workspace_id)
        .exclude(role=Message.Role.SYSTEM)
        .prefetch_related(export_attachments())
        .order_by("created_at", "id")
    )


def conversation_document(conversation: Conversation, messages: list[Message]) -> dict[str, Any]:
    """A conversation and its messages (without system ones) as JSON-ready data: the shape of the
    JSON export and of the conversations in the account's data export."""
    return {
        "id": conversation.pk,
        "title": str(conversation),
        "model": conversation.model.model_id if conversation.model else "",
        "system_prompt": conversation.system_prompt,
        "temperature": str(conversation.temperature) if conversation.temperature is not None else None,
        "max_tokens": conversation.max_tokens,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "messages": [
            {
                "id": m.pk,
                "role": m.role,
                "content": m.content,
                "status": m.status,
                "model": m.model_label,
                "input_tokens": m.input_tokens,
                "output_tokens": m.output_tokens,
                "created_at": m.created_at.isoformat(),
                "attachments": [
                    {"name": a.name, "kind": a.kind, "content_type": a.content_type, "size": a.size}
                    for a in m.attachments.all()
                ],
            }
            for m in messages
        ],
    }


def conversation_export(*, conversation: Conversation, fmt: str, acting_user: User | None = None) -> ExportFile:
    """The conversation as Markdown or JSON. `acting_user`, when given, must be a member."""
    if fmt not in EXPORT_FORMATS:
        raise ChatError("Export as md or json.", param="format")
    if acting_user is not None:
        require_perm(workspace=conversation.workspace, user=acting_user, perm=Perm.USE)
    messages = _export_messages(conversation)
    model_id = conversation.model.model_id if conversation.model else ""
    stem = f"conversation-{conversation.pk}"
    if fmt == "json":
        return ExportFile(
            filename=f"{stem}.json",
            content_type="application/json; charset=utf-8",
            content=json.dumps(conversation_document(conversation, messages), ensure_ascii=False, indent=2),
        )
    lines = [f"# {conversation}", ""]
    if model_id:
        lines += [f"Model: {model_id}", ""]
    if conversation.system_prompt:
        lines += ["## System", "", conversation.system_prompt, ""]
    for m in messages:
        heading = "User" if m.role == Message.Role.USER else "Assistant"
        if m.status != Message.Status.COMPLETE:
            heading += f" ({m.get_status_display().lower()})"
        lines += [f"## {heading}", "", m.content, ""]
        files = [f"{a.name} ({a.get_kind_display().lower()}, {_size(a.size)})" for a in m.attachments.all()]
        if files:
            lines += [f"Attached: {', '.join(files)}", ""]
    return ExportFile(
        filename=f"{stem}.md", content_type="text/markdown; charset=utf-8", content="\n".join(lines).rstrip() + "\n"
    )


# ---------------------------------------------------------------------------- attachments

MAX_ATTACHMENTS = 4  # per message
MAX_PENDING_ATTACHMENTS = 20  # uploaded and not yet sent, per conversation
IMAGE_MAX_BYTES = 5 * 1024 * 1024
TEXT_MAX_BYTES = 512 * 1024
# Image formats every vision provider accepts, recognised by their first bytes (never by name).
IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
NOT_SUPPORTED_MESSAGE = "Attach an image (PNG, JPEG, GIF or WebP) or a text file (UTF-8 text, code, Markdown, CSV…)."


def _image_type(data: bytes) -> str | None:
    """The image's type from its first bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for signature, kind in IMAGE_SIGNATURES if data.startswith(signature)), None)


def _image_is_whole(data: bytes, content_type: str) -> bool:
    """The file parses as the image its first bytes announce (a renamed or truncated file
    does not)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != PIL_FORMATS[content_type]:
                return False
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False
    return True


def _text_of(data: bytes) -> str | None:
    """The file's text when it is UTF-8 text (a BOM allowed), else None (binary: a NUL byte, or
    more than a few control characters)."""
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    controls = sum(1 for char in text if ord(char) < 32 and char not in "\t\n\r\f")
    return None if controls > max(8, len(text) // 100) else text


def _upload_limit(workspace: Workspace, default: int) -> tuple[int, str]:
    """The byte limit for one file: the site's, or the plan's when lower."""
    entitlements = workspace_entitlements(workspace)
    if entitlements.upload_max_bytes is not None and entitlements.upload_max_bytes < default:
        return entitlements.upload_max_bytes, entitlements.plan_name
    return default, ""


def _too_large(limit: int, plan_name: str) -> ChatError:
    where = f" on the {plan_name} plan" if plan_name else ""
    return ChatError(
        f"The file is too large: at most {limit / (1024 * 1024):.1f} MB{where}.", param="file", status_code=413
    )


UNSENT_ATTACHMENT_DAYS = 7  # a file attached but not sent is kept this long (the composer keeps it)


@transaction.atomic(durable=True)
def chat_attachment_create(*, conversation: Conversation, user: User, name: str, file: Any) -> Attachment:
    """Keep a file for the user's next message: an image (PNG, JPEG, GIF, WebP) or a text file,
    recognised by its content, within the site's and the plan's size limits. `file` is a
    binary file object (an upload)."""
    require_perm(workspace=conversation.workspace, user=user, perm=Perm.USE)
    pending = Attachment.objects.filter(conversation=conversation, message__isnull=True).count()
    if pending >= MAX_PENDING_ATTACHMENTS:
        raise ChatError("Too many files are waiting to be sent. Send or remove some first.", param="file")
    limit, plan_name = _upload_limit(conversation.workspace, IMAGE_MAX_BYTES)
    data = file.read(limit + 1)
    if not data:
        raise ChatError("The file is empty.", param="file")
    if len(data) > limit:
        raise _too_large(limit, plan_name)
    name = " ".join((name or "file").split())[:200] or "file"
    fields: dict[str, Any]
    content_type = _image_type(data)
    if content_type is not None:
        if not _image_is_whole(data, content_type):
            raise ChatError("The image could not be read. It may be damaged.", param="file")
        fields = {"kind": Attachment.Kind.IMAGE, "content_type": content_type, "data": data}
    else:
        text_limit, plan_name = _upload_limit(conversation.workspace, TEXT_MAX_BYTES)
        if len(data) > text_limit:
            raise _too_large(text_limit, plan_name)
        text = _text_of(data)
        if text is None:
            raise ChatError(NOT_SUPPORTED_MESSAGE, param="file", status_code=415)
        if len(text) > MAX_CONTENT_CHARS * 5:
            raise ChatError(f"The text file is too long (at most {MAX_CONTENT_CHARS * 5:,} characters).", param="file")
        fields = {"kind": Attachment.Kind.TEXT, "content_type": "text/plain; charset=utf-8", "text": text}
    return Attachment.objects.create(
        workspace=conversation.workspace,
        conversation=conversation,
        uploaded_by=user,
        name=name,
        size=len(data),
        **fields,
    )


@transaction.atomic(durable=True)
def chat_attachment_delete(*, attachment: Attachment, acting_user: User) -> None:
    """Remove a file that was not sent yet (a sent one stays with its message)."""
    require_perm(workspace=attachment.workspace, user=acting_user, perm=Perm.USE)
    if attachment.message_id is not None:
        raise ChatError("This file was sent with a message and stays with it.", param="file")
    attachment.delete()


def chat_attachments_purge_unsent(*, now: datetime | None = None) -> int:
    """Delete files attached but never sent for `UNSENT_ATTACHMENT_DAYS` days (a composer left
    with files in it); sent files stay with their messages. Returns how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=UNSENT_ATTACHMENT_DAYS)
    deleted, _ = Attachment.objects.filter(message__isnull=True, created_at__lt=cutoff).delete()
    return deleted


def _attachments_for(conversation: Conversation, ids: Sequence[int]) -> list[Attachment]:
    """The conversation's not yet sent files `ids`; refuses images for a model that cannot
    read them."""
    if not ids:
        return []
    attachments = list(
        Attachment.objects.filter(pk__in=set(ids), conversation=conversation, message__isnull=True).defer(
            "data", "text"
        )
    )
    if len(attachments) != len(set(ids)):
        raise ChatStreamError("A file of this message is no longer available. Attach it again.")
    model = conversation.model
    if any(a.kind == Attachment.Kind.IMAGE for a in attachments) and not (model and model.supports_vision):
        name = model.display_name if model else "This model"
        raise ChatStreamError(f"{name} cannot read images. Pick a model that can, or remove the image.")
    return attachments


# ---------------------------------------------------------------------------- turns


class RelayFailed(Exception):
    """A delta could not be relayed to the client (its socket closed): the client is gone."""


@dataclass
class Turn:
    """A prepared turn: the user's message, the (streaming) assistant message, what to send.

    `request_stop(outcome)` asks `chat_turn_answer` to end the answer (stopped / client_gone);
    the task running it is then cancelled by its owner while it streams."""

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
    stop_note: str = ""  # why it was stopped, when not by a person (shown with the message)
    parts: list[str] = field(default_factory=list)
    stream: ChatGeneration | None = None
    access_check: Callable[[], bool] | None = None

    def request_stop(self, outcome: str = Generation.Outcome.STOPPED) -> None:
        self.stop_outcome = self.stop_outcome or outcome
        if self.stream is not None:
            self.stream.close_outcome = self.stop_outcome


def chat_default_model(workspace: Workspace, user: User | None = None) -> AIModel | None:
    """The user's default model (their profile preference) when the workspace may chat with it,
    else the first model the workspace may chat with, in picker order."""
    usable = AIModel.objects.usable_for(workspace, Capability.CHAT)
    preferred = user.preference("default_model") if user is not None else ""
    return next((model for model in usable if model.model_id == preferred), usable[0] if usable else None)


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


def _history(conversation: Conversation, model: AIModel | None = None) -> list[dict[str, Any]]:
    """The OpenAI-format messages: the system prompt, then the finished user/assistant turns,
    the questions with their attachments (`_question_content`)."""
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt.strip():
        messages.append({"role": "system", "content": conversation.system_prompt})
    turns = list(
        Message.objects.filter(
            conversation=conversation,
            role__in=[Message.Role.USER, Message.Role.ASSISTANT],
            status__in=[Message.Status.COMPLETE, Message.Status.STOPPED],
        )
        .exclude(content="")
        .order_by("created_at", "id")
        .values_list("pk", "role", "content")
    )
    attached: dict[int, list[Attachment]] = {}
    for attachment in Attachment.objects.filter(conversation=conversation, message__isnull=False):
        attached.setdefault(attachment.message_id or 0, []).append(attachment)
    vision = bool(model is not None and model.supports_vision)
    for pk, role, content in turns:
        if role == Message.Role.USER and pk in attached:
            messages.append({"role": role, "content": _question_content(content, attached[pk], vision=vision)})
        else:
            messages.append({"role": role, "content": content})
    return messages


def _question_content(content: str, attachments: list[Attachment], *, vision: bool) -> str | list[dict[str, Any]]:
    """A question with its files: text files follow the text as context; images become image
    parts (OpenAI's format, which the provider layer passes on to every provider) for a model
    that reads images, or are named only for one that does not (an earlier turn's image after
    switching model)."""
    text = content
    for attachment in attachments:
        if attachment.kind == Attachment.Kind.TEXT:
            text += f'\n\n<file name="{attachment.name}">\n{attachment.text}\n</file>'
    images = [a for a in attachments if a.kind == Attachment.Kind.IMAGE]
    if not images:
        return text
    if not vision:
        return text + "".join(f"\n\n[image: {image.name}]" for image in images)
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for image in images:
        encoded = base64.b64encode(bytes(image.data)).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": f"data:{image.content_type};base64,{encoded}"}})
    return parts


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
        raise ChatStreamError(BUSY_MESSAGE, status_code=409, code="turn_in_progress")


def _unlock_turn(conversation: Conversation) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(turn_started_at=None)


# ---------------------------------------------------------------------------- preparing a turn


def _begin(conversation: Conversation, user: User, user_message: Message) -> Turn:
    """Create the streaming assistant message for `user_message` (the turn lock is held)."""
    model = conversation.model if conversation.model_id else chat_default_model(conversation.workspace, user)
    messages = _history(conversation, model)
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


def chat_send_prepare(
    *, conversation: Conversation, user: User, content: str, attachment_ids: Sequence[int] = ()
) -> Turn:
    """Add the user's message, with the files uploaded for it (`chat_attachment_create`); the
    turn answers it."""
    content = _clean_content(content)
    if len(attachment_ids) > MAX_ATTACHMENTS:
        raise ChatStreamError(f"Attach at most {MAX_ATTACHMENTS} files to a message.")

    def prepare() -> Message:
        with transaction.atomic():
            attachments = _attachments_for(conversation, attachment_ids)
            user_message = Message.objects.create(
                workspace=conversation.workspace,
                conversation=conversation,
                role=Message.Role.USER,
                content=content,
                status=Message.Status.COMPLETE,
            )
            Attachment.objects.filter(pk__in=[a.pk for a in attachments]).update(message=user_message)
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
    error = MID_STREAM_MESSAGE if status == Message.Status.ERROR else turn.stop_note
    return _finish(turn, "".join(turn.parts), status, error, generation)


async def chat_turn_answer(turn: Turn, *, on_delta: Callable[[str], Awaitable[None]] | None = None) -> Message:
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
    stream: ChatGeneration = generation_chat_stream(**_stream_kwargs(turn))
    turn.stream = stream
    stream.close_outcome = turn.stop_outcome or Generation.Outcome.STOPPED
    persister = _Persister()
    saving: asyncio.Future[None] | None = None
    try:
        async with stream:
            if turn.stop_outcome is not None:  # stopped before the stream could start
                return await db_step(_finish, turn, "", Message.Status.STOPPED, turn.stop_note)
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
    chosen = (
        AIModel.objects.filter(model_id=model_id).usable_for(conversation.workspace, Capability.CHAT)
        if model_id
        else []
    )
    model = chosen[0] if chosen else turn.model
    if model is None:
        return None
    messages = [
        {"role": "system", "content": TITLE_INSTRUCTION},
        {"role": "user", "content": turn.user_message.content[:4000]},
    ]
    return _TitleJob(conversation, turn.user, model, messages, bool(config.TITLE_CHARGED), f"title:{message.pk}")


def _clean_model_title(text: str) -> str:
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = line.strip().strip("\"'*#\u201c\u201d\u2018\u2019").strip()
    return _title_from(line, TITLE_WORDS)


def _save_title(job: _TitleJob, text: str) -> str | None:
    title = _clean_model_title(text)
    if not title:
        return None
    # Only over the automatic title: a rename by a person wins.
    updated = Conversation.objects.filter(pk=job.conversation.pk, title_generated=True).update(title=title)
    return title if updated else None


async def chat_turn_title(turn: Turn, message: Message) -> str | None:
    """After the first exchange, ask the title model (Config > Chat > TITLE_MODEL, charged only
    when TITLE_CHARGED) for a short title and save it over the automatic one. Returns the new
    title, or None (not the first exchange, renamed meanwhile, or the model failed: the words
    of the first message stay the title)."""
    job = await db_step(_title_job, turn, message)
    if job is None:
        return None
    stream = generation_chat_stream(**job.stream_kwargs())
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


# ---------------------------------------------------------------------------- sweeping


def chat_sweep_interrupted(*, older_than: timedelta, now: datetime | None = None) -> int:
    """End answers left `streaming` by a worker that died, with the tokens and credits of their
    usage row, and free their conversations. An answer whose usage row is still pending waits
    for the engine's sweep (`generation_sweep`) to close it, so the message gets what was
    actually charged. Returns the messages ended."""
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
        if generation is not None and generation.outcome == Generation.Outcome.PENDING:
            continue  # still held, or not yet closed by the engine's sweep: a later run ends it
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
