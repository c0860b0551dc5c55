"""The one error model: every rule of a domain that refuses an operation raises a `DomainError`.

A `DomainError` carries what every surface needs to render it without knowing which app raised
it: an HTTP status (always 4xx, the caller can act on it), a stable machine `code`, a message
safe to show to whoever made the request, and optionally the `param` (request field) it is
about and response `headers` (e.g. `Retry-After`). Each surface renders them in one place:

- pages: `apps.core.middleware.DomainErrorMiddleware` (the message, with the status);
- `/api/v1`: the platform's JSON shape (`apps.api.errors`);
- `/v1`: OpenAI's error shape (`apps.api.errors`);
- WebSocket: an `{"type": "error", "code", "message"}` frame (`apps.core.realtime`).

Apps subclass it once per domain (`CreditsError`, `BillingError`, …) and per rule beneath that,
setting `status_code` and `code` as class attributes; a subclass may pass another status or
code per instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class DomainError(Exception):
    """A domain rule refused the operation; render as `status_code` with `code` and `message`."""

    status_code: int = 400
    code: str = "invalid_request"
    default_message: ClassVar[str] = "The request was refused."
    param: str | None = None

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        param: str | None = None,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        if code is not None:
            self.code = code
        if param is not None:
            self.param = param
        if status_code is not None:
            self.status_code = status_code
        self.headers: dict[str, str] = dict(headers or {})

    def details(self) -> dict[str, Any]:
        """Extra fields a surface may add to the body (e.g. balances); none by default."""
        return {}


def domain_error_classes() -> list[type[DomainError]]:
    """Every `DomainError` subclass defined by the imported apps (for the surface tests)."""
    found: list[type[DomainError]] = []
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found
