from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from apps.workspaces.entitlements import Entitlements
from apps.workspaces.roles import Role, role_has_perm
from apps.workspaces.scoping import WorkspaceOwnedModel, WorkspaceScopedQuerySet


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def active(self) -> WorkspaceQuerySet:
        return self.filter(deleted_at__isnull=True)

    def for_user(self, user: Any) -> WorkspaceQuerySet:
        return self.active().filter(memberships__user=user)


class Workspace(models.Model):
    """A tenant: members, credits and everything they create belong to one workspace.
    Deleting one keeps the row (soft delete) so ledgers and audit history stay intact."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    is_personal = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    response_cache = models.BooleanField(
        default=False,
        help_text="Serve identical deterministic chat requests (temperature 0, no tools) from the response cache.",
    )

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class MembershipQuerySet(WorkspaceScopedQuerySet["Membership"]):
    def active(self) -> MembershipQuerySet:
        return self.filter(workspace__deleted_at__isnull=True)


class Membership(WorkspaceOwnedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["workspace_id", "created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="workspaces_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    def has_perm(self, perm: str) -> bool:
        return role_has_perm(self.role, perm)


class InvitationQuerySet(WorkspaceScopedQuerySet["Invitation"]):
    def pending(self) -> InvitationQuerySet:
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)

    def open(self) -> InvitationQuerySet:
        return self.pending().filter(expires_at__gt=timezone.now())


class Invitation(WorkspaceOwnedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        EXPIRED = "expired", "Expired"
        ACCEPTED = "accepted", "Accepted"
        REVOKED = "revoked", "Revoked"

    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # Only a SHA-256 of the emailed token is stored; a leaked table cannot be used to join.
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(default=timezone.now)
    send_count = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                "workspace",
                Lower("email"),
                condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="workspaces_invitation_one_pending_per_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.workspace}"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return self.Status.REVOKED
        if self.accepted_at:
            return self.Status.ACCEPTED
        if self.expires_at <= timezone.now():
            return self.Status.EXPIRED
        return self.Status.PENDING

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.PENDING


class WorkspaceEntitlements(models.Model):
    """What a plan lets a workspace do, pushed here by billing whenever a plan, trial, expiry or
    restriction changes, so that the lower layers read it without asking billing.

    A row with a workspace: that workspace's own plan, in force until `expires_at` (a plan
    given for a while by staff, a code or a card-less trial ends without any write). The one
    row without a workspace: the default plan's, for every workspace without a plan in force.
    No row at all: no plans, every gate open (`OPEN`)."""

    workspace = models.OneToOneField(
        Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="entitlements"
    )
    plan_code = models.CharField(max_length=32)
    plan_name = models.CharField(max_length=80)
    voice_cloning = models.BooleanField(default=True)
    api_access = models.BooleanField(default=True)
    max_workspaces = models.PositiveIntegerField(null=True, blank=True)
    max_members = models.PositiveIntegerField(null=True, blank=True)
    max_documents = models.PositiveIntegerField(null=True, blank=True)
    storage_bytes = models.BigIntegerField(null=True, blank=True)
    upload_max_bytes = models.BigIntegerField(null=True, blank=True)
    result_retention_days = models.PositiveIntegerField(null=True, blank=True)
    rate_limits = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "workspace entitlements"
        constraints = [
            # One default row (workspace NULL); the one-to-one keeps one row per workspace.
            models.UniqueConstraint(Coalesce("workspace", Value(0)), name="workspaces_entitlements_one_per_scope")
        ]

    def __str__(self) -> str:
        return f"{self.plan_name} for {self.workspace or 'workspaces without a plan'}"

    def in_force(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def as_entitlements(self) -> Entitlements:
        return Entitlements(
            plan_code=self.plan_code,
            plan_name=self.plan_name,
            voice_cloning=self.voice_cloning,
            api_access=self.api_access,
            max_workspaces=self.max_workspaces,
            max_members=self.max_members,
            max_documents=self.max_documents,
            storage_bytes=self.storage_bytes,
            upload_max_bytes=self.upload_max_bytes,
            result_retention_days=self.result_retention_days,
            rate_limits=dict(self.rate_limits),
        )
