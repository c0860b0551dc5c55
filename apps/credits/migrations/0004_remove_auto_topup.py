# The auto top-up settings moved to billing (`billing.AutoTopup`, filled by billing's migration
# 0003, which runs before this one); the ledger keeps only the threshold, as a watched level.
# Reversing re-adds the columns empty, and billing's migration, reversed next, refills them.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0003_watch_levels"),
    ]

    operations = [
        migrations.RemoveField(model_name="creditaccount", name="auto_topup_enabled"),
        migrations.RemoveField(model_name="creditaccount", name="auto_topup_pack"),
        migrations.RemoveField(model_name="creditaccount", name="auto_topup_threshold_units"),
    ]
