"""What a workspace's plan lets it do — models allowed, voice cloning, API access,
workspace/member/storage/upload limits, result retention, rate limits — computed by billing,
which owns plans, and pushed down to the workspaces app (`entitlements_push*`), where the lower
layers read it (`apps.workspaces.selectors.workspace_entitlements`) without importing billing.

A workspace is on the plan of its `BillingAccount` while that plan applies (an active or
trialing subscription, or a staff/code/trial assignment not past `plan_expires_at`), and not
restricted for non-payment; otherwise on the default plan. With no plans at all (a fresh
install before `seed_demo`/`billing seed_plans`) every gate is open and limits are the site
defaults, so nothing breaks before billing is set up.

What is pushed: a row per workspace whose own plan applies, with `plan_expires_at` as its
expiry (a time-limited plan ends without any write; the hourly `billing_plan_expire` tidies up
after), and the default plan's row. Every change to a plan, trial, expiry or restriction pushes
in its own transaction; a plan edited in the admin is pushed to its workspaces in one statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils import timezone

from apps.workspaces.entitlements import MB, OPEN, Entitlements
from apps.workspaces.models import Workspace
from apps.workspaces.selectors import workspace_entitlements_forget
from apps.workspaces.services import (
    workspace_entitlements_set,
    workspace_entitlements_set_default,
    workspace_entitlements_update,
)

if TYPE_CHECKING:
    from apps.billing.models import BillingAccount, Plan


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
        max_documents=plan.max_documents,
        storage_bytes=plan.storage_mb * MB if plan.storage_mb is not None else None,
        upload_max_bytes=plan.upload_max_mb * MB if plan.upload_max_mb is not None else None,
        result_retention_days=plan.result_retention_days,
        rate_limits=rate_limits,
    )


def workspace_entitlements(workspace: Workspace | int) -> Entitlements:
    return entitlements_from_plan(plan_for(workspace))


def entitlements_forget(workspace: Workspace) -> None:
    """Drop the plan and entitlements remembered on this workspace instance (after changing
    its plan)."""
    workspace.__dict__.pop(_MEMO, None)
    workspace_entitlements_forget(workspace)


# ---------------------------------------------------------------------------- pushing down


def entitlements_push(*, account: BillingAccount) -> None:
    """Push the workspace's own plan in force (or none: the default applies) with its expiry.
    Call in the transaction that changed the account's plan, trial, expiry or restriction."""
    plan = account.plan if _applies(account, timezone.now()) else None
    workspace_entitlements_set(
        workspace=account.workspace_id,
        entitlements=entitlements_from_plan(plan) if plan is not None else None,
        expires_at=account.plan_expires_at if plan is not None else None,
    )


def entitlements_push_default() -> None:
    """Push the default plan's entitlements (for every workspace without a plan in force), or
    none when there is no default plan (everything open)."""
    from apps.billing.models import Plan

    default = Plan.objects.filter(is_default=True).first()
    workspace_entitlements_set_default(entitlements=entitlements_from_plan(default) if default is not None else None)


def entitlements_push_plan(*, plan: Plan) -> int:
    """A plan was created or edited: push it to every workspace that has it in force (one
    statement) and refresh the default row (it may have become, or stopped being, the default).
    Returns the number of workspaces updated."""
    updated = workspace_entitlements_update(
        workspaces=Workspace.objects.filter(billing__plan=plan), entitlements=entitlements_from_plan(plan)
    )
    entitlements_push_default()
    return updated
