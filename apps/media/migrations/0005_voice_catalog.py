from __future__ import annotations

from django.db import migrations


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    from apps.media.catalog import voice_catalog_seed

    voice_catalog_seed(apps.get_model("generation", "Provider"), apps.get_model("generation", "AIModel"))


class Migration(migrations.Migration):
    dependencies = [("media", "0004_voice"), ("generation", "0008_aimodel_supports_voice_cloning")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
