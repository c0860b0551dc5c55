"""Every write to workspaces, memberships and invitations. Views, admin actions, API views
and commands call these; each checks the acting user's role and writes the audit row.

Transactions: what a person does from the workspace pages is durable (never nested in a
caller's transaction). Deleting for the system runs only inside the account's deletion
(`user_deleting`) and joins it (`savepoint=False`). Creating a workspace is done both ways: from
its page, and inside a new account's transaction (`user_created`): a person never exists
without their personal workspace."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from constance import config
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from apps.audit.services import audit_record
from apps.core.events import send_on_commit
from apps.core.realtime import sockets_revoke
from apps.core.sites import current_base_url
from apps.workspaces.entitlements import Entitlements
from apps.workspaces.exceptions import (
    InvitationInvalid,
    WorkspaceError,
    WorkspaceLimitReached,
    WorkspacePermissionDenied,
)
from apps.workspaces.models import Invitation, Membership, Workspace, WorkspaceEntitlements
from apps.workspaces.roles import ROLE_RANK, Perm, Role
from apps.workspaces.selectors import workspace_entitlements_forget, workspace_member_limit, workspace_owned_limit
from apps.workspaces.signals import member_joined, workspace_created

if TYPE_CHECKING:
    from apps.accounts.models import User


def _clean_name(name: str) -> str:
    # One line: the name goes into email subjects, where a newline is a header injection.
    name = " ".join(name.split())[:100].strip()
    if not name:
        raise WorkspaceError("Give the workspace a name.")
    return name


def _unique_slug(name: str) -> str:
    base = slugify(name)[:48] or "workspace"
    return f"{base}-{secrets.token_hex(4)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def membership_for(*, workspace: Workspace, user: User) -> Membership | None:
    return Membership.objects.filter(workspace=workspace, user=user, workspace__deleted_at__isnull=True).first()


def has_perm(*, workspace: Workspace, user: User, perm: str) -> bool:
    """Whether `user` is a member of `workspace` whose role grants `perm` (pages show buttons by it)."""
    membership = membership_for(workspace=workspace, user=user)
    return membership is not None and membership.has_perm(perm)


def require_perm(*, workspace: Workspace, user: User, perm: str) -> Membership:
    membership = membership_for(workspace=workspace, user=user)
    if membership is None:
        raise WorkspacePermissionDenied("You are not a member of this workspace.")
    if not membership.has_perm(perm):
        raise WorkspacePermissionDenied("Your role in this workspace does not allow this.")
    return membership


def _owner_count(workspace: Workspace) -> int:
    return Membership.objects.filter(workspace=workspace, role=Role.OWNER).count()


def workspace_lock(workspace: Workspace | int) -> Workspace:
    # Serialises membership changes of one workspace: two admins demoting the last two
    # owners, or two accepts racing for the last seat, must not both pass their checks.
    # Every service takes this lock before any invitation or membership lock (fixed order).
    pk = workspace if isinstance(workspace, int) else workspace.pk
    return Workspace.objects.select_for_update().get(pk=pk)


def _lock_user(user: User) -> None:
    # Serialises one user's workspace creations: two at once must not both pass the limit.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


# ---------------------------------------------------------------------------- workspaces


@transaction.atomic
def workspace_create(*, acting_user: User, name: str, is_personal: bool = False) -> Workspace:
    """A new workspace owned by `acting_user`. Beyond their personal one, refused past the
    number of workspaces their plans allow them to own."""
    name = _clean_name(name)
    if not is_personal:
        _lock_user(acting_user)
        owned_ids = list(
            Membership.objects.active().filter(user=acting_user, role=Role.OWNER).values_list("workspace_id", flat=True)
        )
        owned = len(owned_ids)
        limit = workspace_owned_limit(owned_ids, config.MAX_WORKSPACES_PER_USER)
        if owned >= limit:
            raise WorkspaceLimitReached(
                f"You already own {owned} workspaces, the most your plan allows ({limit}). "
                "Delete one or ask to raise the limit."
            )
    workspace = Workspace.objects.create(
        name=name, slug=_unique_slug(name), is_personal=is_personal, created_by=acting_user
    )
    Membership.objects.create(workspace=workspace, user=acting_user, role=Role.OWNER)
    audit_record(
        actor=acting_user,
        action="workspace.create",
        target=workspace,
        workspace=workspace,
        metadata={"personal": is_personal},
    )
    # In this transaction: what other apps keep for every workspace (its credit account) exists
    # whenever the workspace does.
    workspace_created.send(sender=Workspace, workspace=workspace, user=acting_user, is_personal=is_personal)
    return workspace


def workspace_create_personal(*, user: User) -> Workspace:
    """The person's first workspace, made at sign-up whatever the workspace limit; the only one
    that gets trial credits."""
    return workspace_create(acting_user=user, name=f"{user.name}'s workspace", is_personal=True)


@transaction.atomic(durable=True)
def workspace_rename(*, workspace: Workspace, name: str, acting_user: User) -> Workspace:
    require_perm(workspace=workspace, user=acting_user, perm=Perm.MANAGE_SETTINGS)
    name = _clean_name(name)
    old = workspace.name
    workspace.name = name
    workspace.save(update_fields=["name"])
    audit_record(
        actor=acting_user,
        action="workspace.rename",
        target=workspace,
        workspace=workspace,
        metadata={"from": old, "to": workspace.name},
    )
    return workspace


@transaction.atomic(durable=True)
def workspace_response_cache_set(*, workspace: Workspace, enabled: bool, acting_user: User) -> Workspace:
    """Opt the workspace in or out of the chat response cache (admins and owners)."""
    require_perm(workspace=workspace, user=acting_user, perm=Perm.MANAGE_SETTINGS)
    if workspace.response_cache != enabled:
        workspace.response_cache = enabled
        workspace.save(update_fields=["response_cache"])
        audit_record(
            actor=acting_user,
            action="workspace.response_cache",
            target=workspace,
            workspace=workspace,
            metadata={"enabled": enabled},
        )
    return workspace


def _workspace_soft_delete(workspace: Workspace) -> None:
    # Caller holds the workspace lock, taken before the invitation and membership rows like
    # every membership change: otherwise an accept holding the workspace lock while waiting
    # for an invitation row this deletion already updated would deadlock.
    now = timezone.now()
    Invitation.objects.filter(workspace=workspace).pending().update(revoked_at=now)
    Membership.objects.filter(workspace=workspace).delete()
    workspace.deleted_at = now
    workspace.save(update_fields=["deleted_at"])
    sockets_revoke(workspace_id=workspace.pk)


@transaction.atomic(durable=True)
def workspace_delete(*, workspace: Workspace, acting_user: User, confirm_name: str) -> None:
    workspace_lock(workspace)
    require_perm(workspace=workspace, user=acting_user, perm=Perm.DELETE)
    if confirm_name.strip() != workspace.name:
        raise WorkspaceError("Type the workspace name exactly to confirm deletion.")
    audit_record(actor=acting_user, action="workspace.delete", target=workspace, workspace=workspace)
    _workspace_soft_delete(workspace)


@transaction.atomic(savepoint=False)
def workspace_delete_by_system(*, workspace: Workspace, acting_user: User | None, reason: str) -> None:
    """Delete without a role check, for account deletion and staff tooling."""
    workspace_lock(workspace)
    audit_record(
        actor=acting_user,
        action="workspace.delete",
        target=workspace,
        workspace=workspace,
        metadata={"reason": reason},
    )
    _workspace_soft_delete(workspace)


@transaction.atomic(savepoint=False)
def workspace_delete_solely_owned(*, user: User, acting_user: User | None) -> list[int]:
    """Delete the workspaces `user` is the only owner of, before their account goes (other
    memberships end with the account). Returns the ids deleted."""
    owned_ids = list(
        Membership.objects.active()
        .filter(user=user, role=Role.OWNER)
        .order_by("workspace_id")
        .values_list("workspace_id", flat=True)
    )
    deleted = []
    for workspace_id in owned_ids:
        # Two co-owners deleting their accounts at once would each see the other as the
        # remaining owner and leave the workspace with none; the lock (taken in pk order, the
        # same lock membership changes take) makes the second one see the first one gone.
        workspace = workspace_lock(workspace_id)
        if not Membership.objects.filter(workspace=workspace, role=Role.OWNER).exclude(user=user).exists():
            workspace_delete_by_system(workspace=workspace, acting_user=acting_user, reason="owner account deleted")
            deleted.append(workspace_id)
    return deleted


# ---------------------------------------------------------------------------- invitations


def _member_limit_check(workspace: Workspace, *, adding: int = 1) -> None:
    members = Membership.objects.filter(workspace=workspace).count()
    pending = Invitation.objects.filter(workspace=workspace).open().count()
    limit = workspace_member_limit(workspace, config.MAX_MEMBERS_PER_WORKSPACE)
    if members + pending + adding > limit:
        raise WorkspaceLimitReached(
            f"This workspace has {members} members and {pending} pending invitations; "
            f"the plan allows {limit}. Remove someone or revoke an invitation first."
        )


def _new_token() -> tuple[str, str, datetime]:
    token = secrets.token_urlsafe(32)
    return token, hash_token(token), timezone.now() + timedelta(days=config.INVITATION_TTL_DAYS)


def _check_can_grant(acting: Membership, role: str) -> None:
    if role not in Role.values:
        raise WorkspaceError("Choose a valid role.")
    if ROLE_RANK[role] > ROLE_RANK[acting.role]:
        raise WorkspacePermissionDenied("You cannot give a role higher than your own.")


def _send_invitation(invitation: Invitation, token: str) -> None:
    from apps.workspaces.tasks import send_invitation_email

    # The link goes to the address the inviter uses (a worker has no request to read it from).
    base_url = current_base_url()
    transaction.on_commit(lambda: send_invitation_email.delay(invitation.pk, token, base_url))


@transaction.atomic(durable=True)
def workspace_member_invite(
    *, workspace: Workspace, email: str, role: str, acting_user: User
) -> tuple[Invitation, str]:
    """Invite `email`; returns the invitation and the raw token (emailed, never stored)."""
    workspace_lock(workspace)
    acting = require_perm(workspace=workspace, user=acting_user, perm=Perm.MANAGE_MEMBERS)
    _check_can_grant(acting, role)
    email = email.strip().lower()
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise WorkspaceError(f"{email} is already a member of this workspace.")
    existing = Invitation.objects.filter(workspace=workspace, email__iexact=email).pending().first()
    if existing is not None and existing.is_open:
        raise WorkspaceError(f"{email} already has a pending invitation. Resend it instead.")
    if existing is not None:
        # An expired invitation to the same address is replaced by the new one.
        existing.revoked_at = timezone.now()
        existing.save(update_fields=["revoked_at"])
    _member_limit_check(workspace)
    token, token_hash, expires_at = _new_token()
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                workspace=workspace,
                email=email,
                role=role,
                token_hash=token_hash,
                invited_by=acting_user,
                expires_at=expires_at,
            )
    except IntegrityError as exc:
        raise WorkspaceError(f"{email} already has a pending invitation. Resend it instead.") from exc
    audit_record(
        actor=acting_user,
        action="workspace.member_invite",
        target=invitation,
        workspace=workspace,
        metadata={"email": email, "role": role},
    )
    _send_invitation(invitation, token)
    return invitation, token


@transaction.atomic(durable=True)
def workspace_invitation_resend(*, invitation: Invitation, acting_user: User) -> tuple[Invitation, str]:
    workspace = workspace_lock(invitation.workspace)
    require_perm(workspace=workspace, user=acting_user, perm=Perm.MANAGE_MEMBERS)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at or invitation.revoked_at:
        raise InvitationInvalid("This invitation was already accepted or revoked.")
    if not invitation.is_open:
        # An expired invitation holds no seat; resending it takes one again.
        _member_limit_check(workspace)
    token, token_hash, expires_at = _new_token()
    invitation.token_hash = token_hash
    invitation.expires_at = expires_at
    invitation.sent_at = timezone.now()
    invitation.send_count += 1
    invitation.save(update_fields=["token_hash", "expires_at", "sent_at", "send_count"])
    audit_record(
        actor=acting_user,
        action="workspace.invitation_resend",
        target=invitation,
        workspace=invitation.workspace,
        metadata={"email": invitation.email},
    )
    _send_invitation(invitation, token)
    return invitation, token


@transaction.atomic(durable=True)
def workspace_invitation_revoke(*, invitation: Invitation, acting_user: User) -> Invitation:
    workspace_lock(invitation.workspace)
    require_perm(workspace=invitation.workspace, user=acting_user, perm=Perm.MANAGE_MEMBERS)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at or invitation.revoked_at:
        raise InvitationInvalid("This invitation was already accepted or revoked.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(
        actor=acting_user,
        action="workspace.invitation_revoke",
        target=invitation,
        workspace=invitation.workspace,
        metadata={"email": invitation.email},
    )
    return invitation


def invitation_by_token(token: str) -> Invitation | None:
    if not token or len(token) > 200:
        return None
    return Invitation.objects.select_related("workspace", "invited_by").filter(token_hash=hash_token(token)).first()


def user_has_verified_email(user: User, email: str) -> bool:
    from allauth.account.models import EmailAddress

    return EmailAddress.objects.filter(user=user, email__iexact=email, verified=True).exists()


@transaction.atomic(durable=True)
def workspace_invitation_accept(*, token: str, acting_user: User) -> Membership:
    found = invitation_by_token(token)
    if found is None:
        raise InvitationInvalid("This invitation link is not valid.")
    workspace = workspace_lock(found.workspace)
    invitation = Invitation.objects.select_for_update().get(pk=found.pk)
    if workspace.deleted_at:
        raise InvitationInvalid("This workspace no longer exists.")
    if invitation.revoked_at:
        raise InvitationInvalid("This invitation was revoked. Ask for a new one.")
    if invitation.accepted_at:
        raise InvitationInvalid("This invitation was already used.")
    if invitation.expires_at <= timezone.now():
        raise InvitationInvalid("This invitation has expired. Ask for a new one.")
    if not user_has_verified_email(acting_user, invitation.email):
        raise InvitationInvalid(
            f"This invitation was sent to {invitation.email}. Sign in with that address (verified) to accept it."
        )
    membership = Membership.objects.filter(workspace=workspace, user=acting_user).first()
    if membership is None:
        members = Membership.objects.filter(workspace=workspace).count()
        if members + 1 > workspace_member_limit(workspace, config.MAX_MEMBERS_PER_WORKSPACE):
            raise WorkspaceLimitReached("This workspace is full. Ask an admin to make room.")
        membership = Membership.objects.create(workspace=workspace, user=acting_user, role=invitation.role)
        send_on_commit(member_joined, sender=Workspace, membership=membership, invitation=invitation)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = acting_user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        actor=acting_user,
        action="workspace.invitation_accept",
        target=invitation,
        workspace=workspace,
        metadata={"role": membership.role},
    )
    return membership


# ---------------------------------------------------------------------------- members


def _check_can_manage(acting: Membership, target: Membership) -> None:
    if acting.role != Role.OWNER and target.role == Role.OWNER:
        raise WorkspacePermissionDenied("Only an owner can change or remove an owner.")


@transaction.atomic(durable=True)
def workspace_member_role_change(*, membership: Membership, role: str, acting_user: User) -> Membership:
    workspace = workspace_lock(membership.workspace)
    acting = require_perm(workspace=workspace, user=acting_user, perm=Perm.MANAGE_MEMBERS)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _check_can_manage(acting, membership)
    _check_can_grant(acting, role)
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER and _owner_count(workspace) <= 1:
        raise WorkspaceError("A workspace needs at least one owner. Make someone else owner first.")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=acting_user,
        action="workspace.member_role_change",
        target=membership.user,
        workspace=workspace,
        metadata={"from": old, "to": role},
    )
    return membership


@transaction.atomic(durable=True)
def workspace_member_remove(*, membership: Membership, acting_user: User) -> None:
    workspace = workspace_lock(membership.workspace)
    acting = require_perm(workspace=workspace, user=acting_user, perm=Perm.MANAGE_MEMBERS)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _check_can_manage(acting, membership)
    if membership.role == Role.OWNER and _owner_count(workspace) <= 1:
        raise WorkspaceError("You cannot remove the last owner of a workspace.")
    audit_record(
        actor=acting_user,
        action="workspace.member_remove",
        target=membership.user,
        workspace=workspace,
        metadata={"role": membership.role},
    )
    membership.delete()
    sockets_revoke(user_id=membership.user_id, workspace_id=workspace.pk)


@transaction.atomic(durable=True)
def workspace_member_leave(*, workspace: Workspace, acting_user: User) -> None:
    workspace = workspace_lock(workspace)
    membership = Membership.objects.select_for_update().filter(workspace=workspace, user=acting_user).first()
    if membership is None:
        raise WorkspacePermissionDenied("You are not a member of this workspace.")
    if membership.role == Role.OWNER and _owner_count(workspace) <= 1:
        raise WorkspaceError("You are the last owner. Make someone else owner, or delete the workspace.")
    audit_record(
        actor=acting_user,
        action="workspace.member_leave",
        target=acting_user,
        workspace=workspace,
        metadata={"role": membership.role},
    )
    membership.delete()
    sockets_revoke(user_id=acting_user.pk, workspace_id=workspace.pk)


# ---------------------------------------------------------------------------- entitlements
#
# Billing owns plans and pushes what they allow onto `WorkspaceEntitlements` rows through these,
# in the same transaction as the change that caused it (zulip's `do_change_realm_plan_type`).


def _entitlement_values(entitlements: Entitlements) -> dict[str, Any]:
    values = dataclasses.asdict(entitlements)
    values["rate_limits"] = dict(entitlements.rate_limits)
    return values


def workspace_entitlements_set(
    *, workspace: Workspace | int, entitlements: Entitlements | None, expires_at: datetime | None = None
) -> None:
    """Record what the workspace's own plan allows, until `expires_at` (None: until changed).
    `entitlements` None (or without a plan): no plan of its own is in force, the default plan's
    entitlements apply."""
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    if entitlements is None or entitlements.plan_code is None:
        WorkspaceEntitlements.objects.filter(workspace_id=workspace_id).delete()
    else:
        WorkspaceEntitlements.objects.update_or_create(
            workspace_id=workspace_id, defaults={**_entitlement_values(entitlements), "expires_at": expires_at}
        )
    if not isinstance(workspace, int):
        workspace_entitlements_forget(workspace)


def workspace_entitlements_clear(*, workspaces: QuerySet[Workspace]) -> int:
    """None of these workspaces has a plan of its own in force any more (restricted, or a
    time-limited plan ended): the default applies. One statement; returns the rows removed."""
    deleted, _ = WorkspaceEntitlements.objects.filter(workspace__in=workspaces).delete()
    return deleted


def workspace_entitlements_update(*, workspaces: QuerySet[Workspace], entitlements: Entitlements) -> int:
    """A plan's entitlements changed: rewrite them for those of `workspaces` that have it in
    force (those with a row), keeping each row's expiry. One statement; returns the rows
    changed."""
    rows = WorkspaceEntitlements.objects.filter(workspace__in=workspaces)
    return rows.update(**_entitlement_values(entitlements), updated_at=timezone.now())


def workspace_entitlements_set_default(*, entitlements: Entitlements | None) -> None:
    """Record what the default plan allows, for every workspace without a plan of its own in
    force. None (no default plan): those workspaces have everything open."""
    if entitlements is None or entitlements.plan_code is None:
        WorkspaceEntitlements.objects.filter(workspace__isnull=True).delete()
    else:
        WorkspaceEntitlements.objects.update_or_create(
            workspace=None, defaults={**_entitlement_values(entitlements), "expires_at": None}
        )
