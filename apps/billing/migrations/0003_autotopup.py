# The auto top-up settings move from the credits account (a free-text pack code) to billing,
# with the pack as a foreign key; the threshold of an enabled top-up becomes a level the ledger
# watches. Runs before credits' 0004, which drops the old columns.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

WATCH = "auto_topup"


def settings_to_billing(apps, schema_editor):  # type: ignore[no-untyped-def]
    CreditAccount = apps.get_model("credits", "CreditAccount")
    CreditPack = apps.get_model("billing", "CreditPack")
    AutoTopup = apps.get_model("billing", "AutoTopup")
    packs = {pack.code.lower(): pack for pack in CreditPack.objects.all()}
    rows = []
    for account in CreditAccount.objects.exclude(
        auto_topup_enabled=False, auto_topup_threshold_units__isnull=True, auto_topup_pack=""
    ).iterator():
        pack = packs.get(account.auto_topup_pack.strip().lower())
        threshold = account.auto_topup_threshold_units
        # A code that names no pack never bought anything: kept off rather than guessed.
        enabled = account.auto_topup_enabled and pack is not None and threshold is not None and threshold > 0
        rows.append(
            AutoTopup(workspace_id=account.workspace_id, enabled=enabled, threshold_units=threshold, pack=pack)
        )
        if enabled:
            account.watch_levels = {**(account.watch_levels or {}), WATCH: threshold}
            account.save(update_fields=["watch_levels"])
    AutoTopup.objects.bulk_create(rows, batch_size=500)


def settings_to_credits(apps, schema_editor):  # type: ignore[no-untyped-def]
    CreditAccount = apps.get_model("credits", "CreditAccount")
    AutoTopup = apps.get_model("billing", "AutoTopup")
    for topup in AutoTopup.objects.select_related("pack").iterator():
        CreditAccount.objects.filter(workspace_id=topup.workspace_id).update(
            auto_topup_enabled=topup.enabled,
            auto_topup_threshold_units=topup.threshold_units,
            auto_topup_pack=topup.pack.code if topup.pack_id else "",
        )
    for account in CreditAccount.objects.exclude(watch_levels={}).iterator():
        account.watch_levels.pop(WATCH, None)
        account.save(update_fields=["watch_levels"])


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_card_updated_at"),
        ("credits", "0003_watch_levels"),
        ("workspaces", "0002_workspace_response_cache"),
    ]
    run_before = [("credits", "0004_remove_auto_topup")]

    operations = [
        migrations.CreateModel(
            name="AutoTopup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("enabled", models.BooleanField(default=False)),
                (
                    "threshold_units",
                    models.BigIntegerField(
                        blank=True,
                        help_text="Top up when available credits fall below this, units of 1/10,000.",
                        null=True,
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "pack",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="billing.creditpack",
                    ),
                ),
                (
                    "workspace",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="auto_topup",
                        to="workspaces.workspace",
                    ),
                ),
            ],
            options={
                "verbose_name": "auto top-up",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("enabled", False),
                            models.Q(("pack__isnull", False), ("threshold_units__gt", 0)),
                            _connector="OR",
                        ),
                        name="billing_topup_complete_when_enabled",
                    )
                ],
            },
        ),
        migrations.RunPython(settings_to_billing, settings_to_credits),
    ]
