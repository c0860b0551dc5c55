"""Usage data for the credits page tests, made with the real services: grant credits, then
reserve and settle one charge per call, optionally at a chosen moment (the services read the
clock through `django.utils.timezone.now`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from unittest import mock

from apps.accounts.models import User
from apps.credits.models import Reservation, Source
from apps.credits.services import credits_grant, credits_reserve, credits_settle
from apps.workspaces.models import Workspace

_keys = itertools.count()


@contextmanager
def clock(at: datetime | None) -> Iterator[None]:
    if at is None:
        yield
        return
    with mock.patch("django.utils.timezone.now", return_value=at):
        yield


def fund(workspace: Workspace, amount: str = "1000", *, source: str = Source.PURCHASED, **kwargs: Any) -> None:
    credits_grant(
        workspace=workspace, amount=amount, source=source, idempotency_key=f"test-grant-{next(_keys)}", **kwargs
    )


def charge(
    workspace: Workspace,
    user: User | None,
    units: int,
    *,
    service: str = "text",
    model: str = "gpt-4o-mini",
    at: datetime | None = None,
    usage: dict[str, Any] | None = None,
    hold: int | None = None,
) -> Reservation:
    """One settled charge of `units` (held as `hold`, default the same) made by `user`."""
    with clock(at):
        reservation = credits_reserve(
            workspace=workspace,
            units=hold or units,
            idempotency_key=f"test-call-{next(_keys)}",
            user=user,
            service=service,
            model=model,
        )
        return credits_settle(
            reservation=reservation,
            actual_units=units,
            usage=usage if usage is not None else {"input_tokens": 100, "output_tokens": 20},
        )


def hold(workspace: Workspace, user: User | None, units: int, *, model: str = "gpt-4o-mini") -> Reservation:
    """A reservation left held (a call in flight)."""
    return credits_reserve(
        workspace=workspace, units=units, idempotency_key=f"test-hold-{next(_keys)}", user=user, model=model
    )
