"""Helpers for the accounts tests: audit-row lookups, links out of sent mail, real logins and
real image bytes for avatar uploads."""

from __future__ import annotations

import io
import os
import re
from typing import Any

from django.core import mail
from django.test import Client
from PIL import Image

from apps.accounts.models import User
from apps.audit.models import AuditEvent

LINK_RE = re.compile(r"https?://testserver(/\S+)")


def audit_rows(action: str, **filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


def link_in_mail(to: str, path_fragment: str) -> str:
    """The path of the first link containing `path_fragment` in the last message sent to `to`."""
    messages = [m for m in mail.outbox if to in m.to]
    assert messages, f"no mail sent to {to}; outbox: {[m.to for m in mail.outbox]}"
    for path in LINK_RE.findall(str(messages[-1].body)):
        if path_fragment in path:
            return path
    raise AssertionError(f"no link with {path_fragment!r} in: {messages[-1].body}")


def login_post(client: Client, email: str, password: str, **extra: Any) -> Any:
    return client.post("/accounts/login/", {"login": email, "password": password}, **extra)


def is_authenticated_as(client: Client, user: User) -> bool:
    return client.session.get("_auth_user_id") == str(user.pk)


def png_bytes(size: tuple[int, int] = (8, 8), noise: bool = False) -> bytes:
    """A real PNG. With `noise` the pixels are random, so the file does not compress."""
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (200, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
