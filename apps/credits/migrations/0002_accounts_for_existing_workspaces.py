from __future__ import annotations

from django.db import migrations

DEFAULT_THRESHOLDS = [100 * 10_000, 10 * 10_000]


def open_accounts(apps, schema_editor):  # type: ignore[no-untyped-def]
    Workspace = apps.get_model("workspaces", "Workspace")
    CreditAccount = apps.get_model("credits", "CreditAccount")
    have = set(CreditAccount.objects.values_list("workspace_id", flat=True))
    CreditAccount.objects.bulk_create(
        CreditAccount(workspace_id=pk, alert_thresholds=DEFAULT_THRESHOLDS)
        for pk in Workspace.objects.values_list("pk", flat=True)
        if pk not in have
    )


class Migration(migrations.Migration):
    dependencies = [("credits", "0001_initial"), ("workspaces", "0001_initial")]

    operations = [migrations.RunPython(open_accounts, migrations.RunPython.noop)]
