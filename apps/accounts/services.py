"""Writes to users: sign-up side effects, suspension, staff support actions, data export and
account deletion. Each writes its audit row.

Transactions: the staff actions run from the admin's list (suspend, unsuspend, verify) are
durable. What the admin's save page calls runs inside its transaction and joins it
(`savepoint=False`). Sign-up, creation and deletion are called both ways (on their own, or inside
`seed_demo`'s or the admin's delete page's transaction) and keep a savepoint when nested."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.signals import user_created, user_deleting, user_signed_up
from apps.audit.services import audit_anonymise_actor, audit_record
from apps.core.errors import DomainError
from apps.core.events import send_on_commit
from apps.core.realtime import sockets_revoke

if TYPE_CHECKING:
    from django.http import HttpRequest


# What staff grant in the back office: who may use it and what they may do there.
ACCESS_FIELDS = frozenset({"is_staff", "is_superuser", "groups", "user_permissions"})

# Metadata keys that hold an email address in rows about a user (login_failed, email_verify,
# email_change); cleared when the user is deleted.
_ADDRESS_KEYS = ("email", "from", "to")


class AccountError(DomainError):
    """An account action refused by a rule; the message is safe to show to the user."""

    status_code = 400
    code = "account_refused"


@transaction.atomic
def user_on_signup(*, user: User, method: str) -> None:
    """Called by the allauth adapters right after a new user row is saved: what every person has
    is created with the account (`user_created`, in this transaction), and the sign-up is
    announced once it commits (`user_signed_up`)."""
    user_created.send(sender=User, user=user, method=method)
    audit_record(actor=user, action="user.signup", target=user, metadata={"method": method})
    send_on_commit(user_signed_up, sender=User, user=user, method=method)


@transaction.atomic
def user_create(*, email: str, password: str | None, verified: bool = False, **fields: Any) -> User:
    """Create a user outside the sign-up form (seed data, staff tooling, tests)."""
    from allauth.account.models import EmailAddress

    user = User.objects.create_user(email=email, password=password, **fields)
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=verified)
    user_on_signup(user=user, method="created")
    return user


@transaction.atomic(savepoint=False)
def user_on_staff_create(*, user: User, acting_user: User) -> None:
    """Called by the admin right after staff saved a new user row: the same address and
    personal workspace as a sign-up. The address stays unverified until the user confirms it
    at their first login (or staff verify it)."""
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    user_created.send(sender=User, user=user, method="staff")
    audit_record(actor=acting_user, action="user.create", target=user)


def user_on_staff_change(*, user: User, changed: dict[str, Any], acting_user: User) -> None:
    """Called by the admin right after staff saved a user's row with `changed` (field: new
    value): a change of access (`ACCESS_FIELDS`) is audited as `user.access_change`."""
    access = {field: str(value) for field, value in sorted(changed.items()) if field in ACCESS_FIELDS}
    if access:
        audit_record(actor=acting_user, action="user.access_change", target=user, metadata=access)


def user_on_staff_password_set(*, user: User, acting_user: User) -> None:
    """Called by the admin right after staff set a user's password (Django's own form): audited
    as `user.password_set_by_staff`."""
    audit_record(actor=acting_user, action="user.password_set_by_staff", target=user)


@transaction.atomic(savepoint=False)
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


@transaction.atomic(durable=True)
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


@transaction.atomic(durable=True)
def user_unsuspend(*, user: User, acting_user: User) -> User:
    if not user.is_suspended:
        return user
    user.is_active = True
    user.suspended_at = None
    user.suspension_reason = ""
    user.save(update_fields=["is_active", "suspended_at", "suspension_reason"])
    audit_record(actor=acting_user, action="user.unsuspend", target=user)
    return user


@transaction.atomic(durable=True)
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
    """Delete the account: what was theirs goes first (`user_deleting`, in this transaction:
    workspaces the user solely owns are deleted), other memberships end with the row, audit
    rows keep an anonymous label, and the user row (with emails, social logins and sessions) is
    removed."""
    from allauth.account.models import EmailAddress

    user_deleting.send(sender=User, user=user, acting_user=acting_user)
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
