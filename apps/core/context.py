"""Per-request facts (request id, client IP, user agent, impersonator) available to services
without passing the request through every call. Set by the request middleware; empty in
Celery tasks and management commands."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""
    impersonator_id: int | None = None


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "request_context",
    default=RequestContext(),  # noqa: B039 - frozen dataclass, never mutated
)


def current() -> RequestContext:
    return _current.get()


def set_context(ctx: RequestContext) -> contextvars.Token[RequestContext]:
    return _current.set(ctx)


def update_context(**changes: object) -> None:
    _current.set(replace(_current.get(), **changes))  # type: ignore[arg-type]


def reset_context(token: contextvars.Token[RequestContext]) -> None:
    _current.reset(token)
