"""Audit rows for authentication events. Django and allauth announce these only through
signals, so the receivers here write audit rows and nothing else."""

from __future__ import annotations

from typing import Any

from allauth.account.signals import email_changed, password_changed, password_reset, password_set
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from apps.audit.services import audit_record


@receiver(user_logged_in, dispatch_uid="audit_login")
def _audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(actor=user, action="user.login", target=user)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _audit_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    from apps.accounts.models import User

    email = str(credentials.get("email") or credentials.get("username") or "")[:254]
    user = User.objects.filter(email__iexact=email).first() if email else None
    audit_record(actor=None, action="user.login_failed", target=user, metadata={"email": email})


@receiver(password_changed, dispatch_uid="audit_password_changed")
@receiver(password_set, dispatch_uid="audit_password_set")
def _audit_password_changed(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(actor=user, action="user.password_change", target=user)


@receiver(password_reset, dispatch_uid="audit_password_reset")
def _audit_password_reset(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(actor=user, action="user.password_reset", target=user)


@receiver(email_changed, dispatch_uid="audit_email_changed")
def _audit_email_changed(
    sender: Any, request: Any, user: Any, from_email_address: Any, to_email_address: Any, **kwargs: Any
) -> None:
    audit_record(
        actor=user,
        action="user.email_change",
        target=user,
        metadata={"from": getattr(from_email_address, "email", None), "to": getattr(to_email_address, "email", None)},
    )
