"""What a workspace's plan lets it do. The one place other apps ask: models allowed, voice
cloning, API access, workspace/member/storage/upload limits, result retention, rate limits.

A workspace is on the plan of its `BillingAccount` while that plan applies (an active or
trialing subscription, or a staff/code/trial assignment not past `plan_expires_at`), and not
restricted for non-payment; otherwise on the default plan. With no plans at all (a fresh
install before `seed_demo`/`billing seed_plans`) every gate is open and limits are the site
defaults, so nothing breaks before billing is set up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils import timezone

if TYPE_CHECKING:
    from apps.billing.models import BillingAccount, Plan
    from apps.workspaces.models import Workspace

MB = 1024 * 1024


@dataclass(frozen=True)
class Entitlements:
    plan_code: str | None
    plan_name: str
    voice_cloning: bool = True
    api_access: bool = True
    max_workspaces: int | None = None
    max_members: int | None = None
    storage_bytes: int | None = None
    upload_max_bytes: int | None = None
    result_retention_days: int | None = None
    rate_limits: dict[str, int] = field(default_factory=dict)


OPEN = Entitlements(plan_code=None, plan_name="")


def _applies(account: BillingAccount, now: Any) -> bool:
    from apps.billing.models import PlanSource

    if account.plan_id is None or account.restricted:
        return False
    if account.plan_expires_at is not None and account.plan_expires_at <= now:
        return False
    if account.plan_source == PlanSource.STRIPE:
        return account.has_subscription
    return True


_MEMO = "_billing_plan_memo"


def plan_for(workspace: Workspace | int) -> Plan | None:
    """The plan in force for the workspace (one query; two without an own plan). Remembered
    on the workspace instance, so the checks of one request (API access, rate limits, models)
    look it up once."""
    if not isinstance(workspace, int) and _MEMO in workspace.__dict__:
        return workspace.__dict__[_MEMO]
    plan = _plan_lookup(workspace)
    if not isinstance(workspace, int):
        workspace.__dict__[_MEMO] = plan
    return plan


def loaded_account(workspace: Workspace) -> tuple[bool, BillingAccount | None]:
    """The billing account loaded with the workspace (`select_related("billing__plan")`), if it
    was: (True, account or None when it has none); (False, None) when it was not loaded."""
    cache = workspace._state.fields_cache
    return ("billing" in cache, cache.get("billing"))


def plan_of(account: BillingAccount | None, default: Plan | None) -> Plan | None:
    """The plan in force for a workspace with this billing account."""
    if account is not None and _applies(account, timezone.now()):
        return account.plan
    return default


def _plan_lookup(workspace: Workspace | int) -> Plan | None:
    from apps.billing.models import BillingAccount, Plan

    loaded, account = (False, None) if isinstance(workspace, int) else loaded_account(workspace)
    if not loaded:
        workspace_id = workspace if isinstance(workspace, int) else workspace.pk
        account = BillingAccount.objects.select_related("plan").filter(workspace_id=workspace_id).first()
    return plan_of(account, None) or Plan.objects.filter(is_default=True).first()


def entitlements_from_plan(plan: Plan | None) -> Entitlements:
    if plan is None:
        return OPEN
    rate_limits = {k: int(v) for k, v in (plan.rate_limits or {}).items() if isinstance(v, int) and v >= 0}
    return Entitlements(
        plan_code=plan.code,
        plan_name=plan.name,
        voice_cloning=plan.voice_cloning,
        api_access=plan.api_access,
        max_workspaces=plan.max_workspaces,
        max_members=plan.max_members,
        storage_bytes=plan.storage_mb * MB if plan.storage_mb is not None else None,
        upload_max_bytes=plan.upload_max_mb * MB if plan.upload_max_mb is not None else None,
        result_retention_days=plan.result_retention_days,
        rate_limits=rate_limits,
    )


def workspace_entitlements(workspace: Workspace | int) -> Entitlements:
    return entitlements_from_plan(plan_for(workspace))


def model_plan_code(workspace: Workspace | int) -> str | None:
    """What generation checks `AIModel.plans` against: a model listing plan codes is usable
    only by workspaces on one of those plans; a model listing none, by every plan."""
    plan = plan_for(workspace)
    return plan.code if plan is not None else None


def member_limit(workspace: Workspace | int, default: int) -> int:
    """Members (with pending invitations) the workspace's plan allows; `default` when the plan
    sets none."""
    limit = workspace_entitlements(workspace).max_members
    return default if limit is None else limit


def workspace_limit(owned_workspace_ids: list[int], default: int) -> int:
    """Workspaces a user may own: the most any plan of the workspaces they own allows (a paid
    team workspace lifts the limit), `default` when no plan sets one."""
    limits = [workspace_entitlements(pk).max_workspaces for pk in owned_workspace_ids]
    known = [limit for limit in limits if limit is not None]
    if not known or len(known) < len(limits):
        return max([default, *known])
    return max(known)


def entitlements_forget(workspace: Workspace) -> None:
    """Drop the plan remembered on this workspace instance (after changing its plan)."""
    workspace.__dict__.pop(_MEMO, None)
