from __future__ import annotations

from django.db import migrations


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    from apps.media.catalog import audio_catalog_seed

    audio_catalog_seed(apps.get_model("generation", "Provider"), apps.get_model("generation", "AIModel"))


class Migration(migrations.Migration):
    dependencies = [("media", "0002_image_catalog"), ("generation", "0007_aimodel_audio")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
