from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import models

from apps.audit.models import AuditEvent
from apps.core import context

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.workspaces.models import Workspace


def audit_record(
    *,
    actor: User | None,
    action: str,
    target: models.Model | None = None,
    workspace: Workspace | None = None,
    metadata: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit row. IP, user agent, request id and the impersonating staff member
    come from the current request context (empty outside a request)."""
    ctx = context.current()
    actor_obj = actor if actor is not None and actor.pk else None
    impersonator_id = ctx.impersonator_id
    # The session outlives the staff account that started impersonating; a dangling id would
    # break the foreign key at commit and take the audited action down with it.
    if impersonator_id is not None and not get_user_model().objects.filter(pk=impersonator_id).exists():
        impersonator_id = None
    return AuditEvent.objects.create(
        actor=actor_obj,
        actor_label=actor_obj.email if actor_obj is not None else "",
        impersonator_id=impersonator_id,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk)[:64] if target is not None and target.pk is not None else "",
        target_label=str(target)[:255] if target is not None else "",
        workspace=workspace,
        ip=ctx.ip,
        user_agent=ctx.user_agent,
        request_id=ctx.request_id,
        metadata=metadata or {},
    )


def audit_anonymise_actor(*, user_id: int, label: str) -> int:
    """Replace a deleted user's identifying label on the rows they acted in."""
    return AuditEvent.objects.filter(actor_id=user_id).update(actor_label=label)
