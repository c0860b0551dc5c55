# What each workspace's plan allows is now pushed to the workspaces app
# (`workspaces.WorkspaceEntitlements`), where the lower layers read it. This fills the rows for
# what exists: one per workspace whose own plan applies (with its expiry), and the default
# plan's. The rules are `apps.billing.entitlements` (copied: a migration keeps its own).

from django.db import migrations
from django.utils import timezone

MB = 1024 * 1024
ENDED = ("", "canceled", "incomplete_expired")


def _values(plan):  # type: ignore[no-untyped-def]
    return {
        "plan_code": plan.code,
        "plan_name": plan.name,
        "voice_cloning": plan.voice_cloning,
        "api_access": plan.api_access,
        "max_workspaces": plan.max_workspaces,
        "max_members": plan.max_members,
        "storage_bytes": plan.storage_mb * MB if plan.storage_mb is not None else None,
        "upload_max_bytes": plan.upload_max_mb * MB if plan.upload_max_mb is not None else None,
        "result_retention_days": plan.result_retention_days,
        "rate_limits": {
            k: int(v) for k, v in (plan.rate_limits or {}).items() if isinstance(v, int) and v >= 0
        },
    }


def push(apps, schema_editor):  # type: ignore[no-untyped-def]
    Plan = apps.get_model("billing", "Plan")
    BillingAccount = apps.get_model("billing", "BillingAccount")
    WorkspaceEntitlements = apps.get_model("workspaces", "WorkspaceEntitlements")
    now = timezone.now()
    default = Plan.objects.filter(is_default=True).first()
    if default is not None:
        WorkspaceEntitlements.objects.update_or_create(workspace=None, defaults=_values(default))
    rows = []
    accounts = BillingAccount.objects.select_related("plan").filter(plan__isnull=False, restricted=False)
    for account in accounts.iterator():
        if account.plan_expires_at is not None and account.plan_expires_at <= now:
            continue
        if account.plan_source == "stripe" and (not account.subscription_id or account.subscription_status in ENDED):
            continue
        rows.append(
            WorkspaceEntitlements(
                workspace_id=account.workspace_id, expires_at=account.plan_expires_at, **_values(account.plan)
            )
        )
    WorkspaceEntitlements.objects.bulk_create(rows, batch_size=500)


def unpush(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("workspaces", "WorkspaceEntitlements").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_autotopup"),
        ("workspaces", "0003_workspaceentitlements"),
    ]

    operations = [migrations.RunPython(push, unpush)]
