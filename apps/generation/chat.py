"""Conversation services: create, rename / switch model / change settings, delete, export.
Every write checks workspace membership (Perm.USE) and that the chosen model is available,
and writes an audit row. Streaming itself lives in the consumer and `services.py`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.generation.models import AIModel, Conversation, Message
from apps.workspaces.roles import Perm
from apps.workspaces.services import require_perm

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.workspaces.models import Workspace

TITLE_MAX = 200
SYSTEM_PROMPT_MAX = 20_000
TEMPERATURE_MIN = Decimal("0")
TEMPERATURE_MAX = Decimal("2")
EDITABLE_FIELDS = frozenset({"title", "model", "system_prompt", "temperature", "max_tokens"})
EXPORT_FORMATS = ("md", "json")


class ChatError(Exception):
    """A conversation rule refused the change; the message is safe to show to the user."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content_type: str
    content: str


def model_is_available(model: AIModel) -> bool:
    provider = model.provider
    return bool(model.enabled and model.supports_chat and provider.enabled and provider.is_configured)


def _require_available(model: AIModel | None) -> AIModel:
    if model is None:
        raise ChatError("Pick a model.", field="model")
    if not model_is_available(model):
        raise ChatError(f"The model {model.model_id} is not available.", field="model")
    return model


def _clean_title(title: str) -> str:
    title = " ".join((title or "").split())
    if len(title) > TITLE_MAX:
        raise ChatError(f"Keep the title to {TITLE_MAX} characters.", field="title")
    return title


def _clean_system_prompt(value: str) -> str:
    value = (value or "").strip()
    if len(value) > SYSTEM_PROMPT_MAX:
        raise ChatError(f"Keep the system prompt to {SYSTEM_PROMPT_MAX} characters.", field="system_prompt")
    return value


def _clean_temperature(value: Decimal | float | str | None) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        temperature = Decimal(str(value))
    except InvalidOperation as exc:
        raise ChatError("Temperature must be a number between 0 and 2.", field="temperature") from exc
    if not temperature.is_finite() or not TEMPERATURE_MIN <= temperature <= TEMPERATURE_MAX:
        raise ChatError("Temperature must be between 0 and 2.", field="temperature")
    return temperature.quantize(Decimal("0.01"))


def _clean_max_tokens(value: int | None, model: AIModel) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ChatError("Max tokens must be a whole number of at least 1.", field="max_tokens")
    if value > model.max_output_tokens:
        raise ChatError(
            f"{model.display_name} answers with at most {model.max_output_tokens} tokens.", field="max_tokens"
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
    model = _require_available(model)
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
        model = _require_available(model)
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
            raise ChatError("Pick a model before setting max tokens.", field="max_tokens")
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
def conversation_delete(*, conversation: Conversation, acting_user: User) -> None:
    require_perm(workspace=conversation.workspace, user=acting_user, perm=Perm.USE)
    audit_record(
        actor=acting_user,
        action="conversation.delete",
        target=conversation,
        workspace=conversation.workspace,
    )
    conversation.delete()


def _export_messages(conversation: Conversation) -> list[Message]:
    return list(
        Message.objects.filter(conversation=conversation, workspace_id=conversation.workspace_id)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("created_at", "id")
    )


def conversation_export(*, conversation: Conversation, fmt: str, acting_user: User | None = None) -> ExportFile:
    """The conversation as Markdown or JSON. `acting_user`, when given, must be a member."""
    if fmt not in EXPORT_FORMATS:
        raise ChatError("Export as md or json.", field="format")
    if acting_user is not None:
        require_perm(workspace=conversation.workspace, user=acting_user, perm=Perm.USE)
    messages = _export_messages(conversation)
    model_id = conversation.model.model_id if conversation.model else ""
    stem = f"conversation-{conversation.pk}"
    if fmt == "json":
        payload = {
            "id": conversation.pk,
            "title": str(conversation),
            "model": model_id,
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
                }
                for m in messages
            ],
        }
        return ExportFile(
            filename=f"{stem}.json",
            content_type="application/json; charset=utf-8",
            content=json.dumps(payload, ensure_ascii=False, indent=2),
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
    return ExportFile(
        filename=f"{stem}.md", content_type="text/markdown; charset=utf-8", content="\n".join(lines).rstrip() + "\n"
    )
