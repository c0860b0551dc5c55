"""Writes to users: sign-up side effects, suspension, staff support actions, data export and
account deletion. Each writes its audit row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_anonymise_actor, audit_record
from apps.core.realtime import sockets_revoke

if TYPE_CHECKING:
    from django.http import HttpRequest


# Metadata keys that hold an email address in rows about a user (login_failed, email_verify,
# email_change); cleared when the user is deleted.
_ADDRESS_KEYS = ("email", "from", "to")


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


@transaction.atomic
def user_on_staff_create(*, user: User, acting_user: User) -> None:
    """Called by the admin right after staff saved a new user row: the same address and
    personal workspace as a sign-up. The address stays unverified until the user confirms it
    at their first login (or staff verify it)."""
    from allauth.account.models import EmailAddress

    from apps.workspaces.services import workspace_create_personal

    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    workspace_create_personal(user=user)
    audit_record(actor=acting_user, action="user.create", target=user)


@transaction.atomic
def user_email_set(*, user: User, email: str, acting_user: User) -> User:
    """Staff replace a user's login address. The new address replaces every other one (an
    old address must not keep signing in) and is unverified until the user confirms it."""
    from allauth.account.models import EmailAddress

    email = User.objects.normalize_email(email.strip()).lower()
    old = User.objects.filter(pk=user.pk).values_list("email", flat=True).get()
    if email == old:
        return user
    user.email = email
    user.save(update_fields=["email"])
    EmailAddress.objects.filter(user=user).delete()
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=False)
    audit_record(actor=acting_user, action="user.email_change", target=user, metadata={"from": old, "to": email})
    return user


def _end_sessions(user: User) -> None:
    # Through the configured session engine (database or cache alike); each UserSession row
    # names one session of the user, recorded at login and on every signed-in request.
    from allauth.usersessions.models import UserSession

    for session in UserSession.objects.filter(user=user):
        session.end()
    # Sockets opened before are not sessions: they are told to close once this commits.
    sockets_revoke(user_id=user.pk)


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
        user=user, email__iexact=user.email, defaults={"email": user.email, "primary": False}
    )
    if not address.primary:
        # Demotes the previous primary first: a user has at most one primary address.
        address.set_as_primary()
    if not address.verified:
        address.verified = True
        address.save(update_fields=["verified"])
        audit_record(actor=acting_user, action="user.email_verify", target=user, metadata={"email": address.email})


def user_password_reset_send(*, user: User, request: HttpRequest, acting_user: User) -> None:
    """Email the user a password-reset link, as if they had asked for it."""
    from allauth.account.forms import ResetPasswordForm

    if not user.is_active:
        # allauth finds no active account for the address and would mail "no account here".
        raise AccountError("The account is suspended; unsuspend it before sending a reset link.")
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
    from allauth.account.models import EmailAddress

    from apps.workspaces.models import Membership
    from apps.workspaces.roles import Role
    from apps.workspaces.services import workspace_delete_by_system, workspace_lock

    owned_ids = list(
        Membership.objects.active()
        .filter(user=user, role=Role.OWNER)
        .order_by("workspace_id")
        .values_list("workspace_id", flat=True)
    )
    for workspace_id in owned_ids:
        # Two co-owners deleting their accounts at once would each see the other as the
        # remaining owner and leave the workspace with none; the lock (taken in pk order, the
        # same lock membership changes take) makes the second one see the first one gone.
        workspace = workspace_lock(workspace_id)
        other_owners = Membership.objects.filter(workspace=workspace, role=Role.OWNER).exclude(user=user)
        if not other_owners.exists():
            workspace_delete_by_system(workspace=workspace, actor=acting_user, reason="owner account deleted")
    user_id = user.pk
    addresses = sorted({user.email, *EmailAddress.objects.filter(user=user).values_list("email", flat=True)})
    audit_record(
        actor=acting_user,
        action="user.delete",
        target=user,
        metadata={"self_service": acting_user.pk == user_id},
    )
    _end_sessions(user)
    # Before the row goes: deleting it sets actor_id to NULL, after which the rows to
    # anonymise can no longer be found.
    label = f"deleted-user-{user_id}"
    audit_anonymise_actor(user_id=user_id, label=label)
    _audit_forget_user(user_id=user_id, addresses=addresses, label=label)
    avatar, storage = user.avatar.name, user.avatar.storage
    user.delete()
    if avatar:
        # Only once the deletion is committed: a rollback must not leave a dangling avatar.
        transaction.on_commit(lambda: storage.delete(avatar))


def _audit_forget_user(*, user_id: int, addresses: list[str], label: str) -> None:
    """Rows about the deleted user keep their action and time but not their addresses: the
    target label, and the address fields of sign-in, verification and email-change rows."""
    from django.db.models import Q

    from apps.audit.models import AuditEvent

    about = AuditEvent.objects.filter(target_type=User._meta.label_lower, target_id=str(user_id))
    about.update(target_label=label)
    rows = AuditEvent.objects.filter(
        Q(target_type=User._meta.label_lower, target_id=str(user_id))
        | Q(action="user.login_failed", target_id="", metadata__email__in=addresses)
    )
    changed = []
    for event in rows.only("id", "metadata").iterator():
        metadata = dict(event.metadata or {})
        for key in _ADDRESS_KEYS:
            if isinstance(metadata.get(key), str) and "@" in metadata[key]:
                metadata[key] = label
        if metadata != event.metadata:
            event.metadata = metadata
            changed.append(event)
    AuditEvent.objects.bulk_update(changed, ["metadata"], batch_size=500)
