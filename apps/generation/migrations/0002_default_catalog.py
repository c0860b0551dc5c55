from __future__ import annotations

from django.db import migrations


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    from apps.generation.catalog import catalog_seed_defaults

    catalog_seed_defaults(
        apps.get_model("generation", "Provider"),
        apps.get_model("generation", "AIModel"),
        apps.get_model("generation", "ModelFallback"),
    )


class Migration(migrations.Migration):
    dependencies = [("generation", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
