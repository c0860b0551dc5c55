"""Every write to workspaces, memberships and invitations. Views, admin actions, API views
and commands call these; each checks the acting user's role and writes the audit row."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from constance import config
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.audit.services import audit_record
from apps.billing.entitlements import member_limit, workspace_limit
from apps.core.realtime import sockets_revoke
from apps.workspaces.exceptions import (
    InvitationInvalid,
    WorkspaceError,
    WorkspaceLimitReached,
    WorkspacePermissionDenied,
)
from apps.workspaces.models import Invitation, Membership, Workspace
from apps.workspaces.roles import ROLE_RANK, Perm, Role

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
def workspace_create(*, user: User, name: str, is_personal: bool = False) -> Workspace:
    name = _clean_name(name)
    if not is_personal:
        _lock_user(user)
        owned_ids = list(
            Membership.objects.active().filter(user=user, role=Role.OWNER).values_list("workspace_id", flat=True)
        )
        owned = len(owned_ids)
        limit = workspace_limit(owned_ids, config.MAX_WORKSPACES_PER_USER)
        if owned >= limit:
            raise WorkspaceLimitReached(
                f"You already own {owned} workspaces, the most your plan allows ({limit}). "
                "Delete one or ask to raise the limit."
            )
    workspace = Workspace.objects.create(name=name, slug=_unique_slug(name), is_personal=is_personal, created_by=user)
    Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    audit_record(
        actor=user, action="workspace.create", target=workspace, workspace=workspace, metadata={"personal": is_personal}
    )
    from apps.credits.services import credits_account_open, credits_grant_trial

    # Trial credits go to each person's first (personal) workspace only, so creating more
    # workspaces cannot mint more trials.
    if is_personal:
        credits_grant_trial(workspace=workspace)
    else:
        credits_account_open(workspace=workspace)
    return workspace


def workspace_create_personal(*, user: User) -> Workspace:
    return workspace_create(user=user, name=f"{user.name}'s workspace", is_personal=True)


@transaction.atomic
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


@transaction.atomic
def workspace_delete(*, workspace: Workspace, acting_user: User, confirm_name: str) -> None:
    workspace_lock(workspace)
    require_perm(workspace=workspace, user=acting_user, perm=Perm.DELETE)
    if confirm_name.strip() != workspace.name:
        raise WorkspaceError("Type the workspace name exactly to confirm deletion.")
    audit_record(actor=acting_user, action="workspace.delete", target=workspace, workspace=workspace)
    _workspace_soft_delete(workspace)


def workspace_delete_by_system(*, workspace: Workspace, actor: User | None, reason: str) -> None:
    """Delete without a role check, for account deletion and staff tooling."""
    with transaction.atomic():
        workspace_lock(workspace)
        audit_record(
            actor=actor, action="workspace.delete", target=workspace, workspace=workspace, metadata={"reason": reason}
        )
        _workspace_soft_delete(workspace)


# ---------------------------------------------------------------------------- invitations


def _member_limit_check(workspace: Workspace, *, adding: int = 1) -> None:
    members = Membership.objects.filter(workspace=workspace).count()
    pending = Invitation.objects.filter(workspace=workspace).open().count()
    limit = member_limit(workspace, config.MAX_MEMBERS_PER_WORKSPACE)
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

    transaction.on_commit(lambda: send_invitation_email.delay(invitation.pk, token))


@transaction.atomic
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


@transaction.atomic
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


@transaction.atomic
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


@transaction.atomic
def workspace_invitation_accept(*, token: str, user: User) -> Membership:
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
    if not user_has_verified_email(user, invitation.email):
        raise InvitationInvalid(
            f"This invitation was sent to {invitation.email}. Sign in with that address (verified) to accept it."
        )
    membership = Membership.objects.filter(workspace=workspace, user=user).first()
    if membership is None:
        members = Membership.objects.filter(workspace=workspace).count()
        if members + 1 > member_limit(workspace, config.MAX_MEMBERS_PER_WORKSPACE):
            raise WorkspaceLimitReached("This workspace is full. Ask an admin to make room.")
        membership = Membership.objects.create(workspace=workspace, user=user, role=invitation.role)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        actor=user,
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


@transaction.atomic
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


@transaction.atomic
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


@transaction.atomic
def workspace_member_leave(*, workspace: Workspace, user: User) -> None:
    workspace = workspace_lock(workspace)
    membership = Membership.objects.select_for_update().filter(workspace=workspace, user=user).first()
    if membership is None:
        raise WorkspacePermissionDenied("You are not a member of this workspace.")
    if membership.role == Role.OWNER and _owner_count(workspace) <= 1:
        raise WorkspaceError("You are the last owner. Make someone else owner, or delete the workspace.")
    audit_record(
        actor=user,
        action="workspace.member_leave",
        target=user,
        workspace=workspace,
        metadata={"role": membership.role},
    )
    membership.delete()
    sockets_revoke(user_id=user.pk, workspace_id=workspace.pk)
