from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0002_accounts_for_existing_workspaces"),
    ]

    operations = [
        migrations.AddField(
            model_name="creditaccount",
            name="watch_levels",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
