"""The chat product's refusals, as `DomainError`s: each surface renders their status, code and
message in one place (see `apps.core.errors`).

Not here: the engine's refusals (`GenerationRefused`, `AccessRevoked`, in
`apps.generation.exceptions`), which a turn turns into its assistant message's error;
`services.RelayFailed` never leaves the chat driver.
"""

from __future__ import annotations

from apps.core.errors import DomainError


class ChatStreamError(DomainError):
    """A chat turn cannot start (empty message, no message to answer again, a message that cannot
    be edited, another turn running); the message is safe to show to the user."""

    status_code = 400
    code = "chat_turn_refused"
    default_message = "This message cannot be answered."


class ChatError(DomainError):
    """A conversation rule refused the change (bad title, settings, model, export format); the
    message is safe to show to the user, `param` names the field."""

    status_code = 400
    code = "invalid_conversation"
    default_message = "The conversation cannot be changed that way."
