"""The generation domain's refusals, as `DomainError`s: each surface renders their status, code and
message in one place (see `apps.core.errors`).

Not here: `ProviderError` / `AllProvidersFailed` (`providers.base`, `router`) are upstream
failures, answered 5xx. The chat product's refusals are in `apps.chat.exceptions`.
"""

from __future__ import annotations

from apps.core.errors import DomainError


class GenerationRefused(DomainError):
    """The generation was refused before any call: the model is disabled or not in the plan, an
    API key's spending cap was reached, the request was already processed. An instance may carry
    another status and code (e.g. a spending cap's 429)."""

    status_code = 403
    code = "model_not_available"
    default_message = "This model is not available."


class AccessRevoked(GenerationRefused):
    """The caller lost access while the answer streamed (suspended, removed from the workspace,
    workspace deleted, API key revoked). Raised after the delivered part was settled."""

    status_code = 403
    code = "access_revoked"
    default_message = "Access to this workspace has ended."
