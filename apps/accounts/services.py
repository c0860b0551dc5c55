"""Writes to users: sign-up side effects, suspension, staff support actions, data export and
account deletion. Each writes its audit row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_anonymise_actor, audit_record

if TYPE_CHECKING:
    from django.http import HttpRequest


class AccountError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def user_on_signup(*, user: User, method: str) -> None:
    """Called by the allauth adapters right after a new user row is saved."""
    from apps.workspaces.services import workspace_create_personal

    workspace_create_personal(user=user)
    audit_record(actor=user, action="user.signup", target=user, metadata={"method": method})


@transaction.atomic
def user_create(*, email: str, password: str | None, verified: bool = False, **fields: Any) -> User:
    """Create a user outside the sign-up form (seed data, staff tooling, tests)."""
    from allauth.account.models import EmailAddress

    user = User.objects.create_user(email=email, password=password, **fields)
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=verified)
    user_on_signup(user=user, method="created")
    return user


def _end_sessions(user: User) -> None:
    from allauth.usersessions.models import UserSession
    from django.contrib.sessions.models import Session

    keys = list(UserSession.objects.filter(user=user).values_list("session_key", flat=True))
    Session.objects.filter(session_key__in=keys).delete()
    UserSession.objects.filter(user=user).delete()


@transaction.atomic
def user_suspend(*, user: User, reason: str, acting_user: User) -> User:
    if user.pk == acting_user.pk:
        raise AccountError("You cannot suspend yourself.")
    if user.is_suspended:
        return user
    user.is_active = False
    user.suspended_at = timezone.now()
    user.suspension_reason = reason[:500]
    user.save(update_fields=["is_active", "suspended_at", "suspension_reason"])
    _end_sessions(user)
    audit_record(actor=acting_user, action="user.suspend", target=user, metadata={"reason": reason})
    return user


@transaction.atomic
def user_unsuspend(*, user: User, acting_user: User) -> User:
    if not user.is_suspended:
        return user
    user.is_active = True
    user.suspended_at = None
    user.suspension_reason = ""
    user.save(update_fields=["is_active", "suspended_at", "suspension_reason"])
    audit_record(actor=acting_user, action="user.unsuspend", target=user)
    return user


@transaction.atomic
def user_email_verify(*, user: User, acting_user: User) -> None:
    """Staff marks the user's primary address as verified (support for lost emails)."""
    from allauth.account.models import EmailAddress

    address, _ = EmailAddress.objects.get_or_create(
        user=user, email__iexact=user.email, defaults={"email": user.email, "primary": True}
    )
    if not address.verified:
        address.verified = True
        address.save(update_fields=["verified"])
        audit_record(actor=acting_user, action="user.email_verify", target=user, metadata={"email": address.email})


def user_password_reset_send(*, user: User, request: HttpRequest, acting_user: User) -> None:
    """Email the user a password-reset link, as if they had asked for it."""
    from allauth.account.forms import ResetPasswordForm

    form = ResetPasswordForm(data={"email": user.email})
    if not form.is_valid():
        raise AccountError("; ".join(str(e) for errors in form.errors.values() for e in errors))
    form.save(request)
    audit_record(actor=acting_user, action="user.password_reset_send", target=user)


def user_export_data(*, user: User) -> dict[str, Any]:
    from apps.accounts.exporters import sections

    data: dict[str, Any] = {"exported_at": timezone.now().isoformat(), "format_version": 1}
    for name, exporter in sections().items():
        data[name] = exporter(user)
    audit_record(actor=user, action="user.data_export", target=user)
    return data


@transaction.atomic
def user_delete(*, user: User, acting_user: User) -> None:
    """Delete the account: workspaces the user solely owns are deleted, other memberships end,
    audit rows keep an anonymous label, and the user row (with emails, social logins and
    sessions) is removed."""
    from apps.workspaces.models import Membership
    from apps.workspaces.roles import Role
    from apps.workspaces.services import workspace_delete_by_system

    owned = Membership.objects.active().filter(user=user, role=Role.OWNER).select_related("workspace")
    for membership in owned:
        other_owners = Membership.objects.filter(workspace_id=membership.workspace_id, role=Role.OWNER).exclude(
            user=user
        )
        if not other_owners.exists():
            workspace_delete_by_system(
                workspace=membership.workspace, actor=acting_user, reason="owner account deleted"
            )
    user_id = user.pk
    audit_record(
        actor=acting_user,
        action="user.delete",
        target=user,
        metadata={"self_service": acting_user.pk == user_id},
    )
    _end_sessions(user)
    if user.avatar:
        user.avatar.delete(save=False)
    user.delete()
    audit_anonymise_actor(user_id=user_id, label=f"deleted-user-{user_id}")
    from apps.audit.models import AuditEvent

    AuditEvent.objects.filter(target_type="accounts.user", target_id=str(user_id)).update(
        target_label=f"deleted-user-{user_id}"
    )
