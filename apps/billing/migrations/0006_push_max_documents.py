"""Plans gained a document limit (`max_documents`): copy it onto the entitlement rows already
pushed, so the lower layers see what each plan says from the upgrade on."""

from django.db import migrations


def push(apps, schema_editor):  # type: ignore[no-untyped-def]
    Plan = apps.get_model("billing", "Plan")
    WorkspaceEntitlements = apps.get_model("workspaces", "WorkspaceEntitlements")
    for code, limit in Plan.objects.values_list("code", "max_documents"):
        WorkspaceEntitlements.objects.filter(plan_code=code).update(max_documents=limit)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_plan_max_documents"),
        ("workspaces", "0004_workspaceentitlements_max_documents"),
    ]

    operations = [migrations.RunPython(push, migrations.RunPython.noop)]
