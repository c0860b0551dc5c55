from __future__ import annotations

from django.db import migrations


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    from apps.media.catalog import image_catalog_seed

    image_catalog_seed(apps.get_model("generation", "Provider"), apps.get_model("generation", "AIModel"))


class Migration(migrations.Migration):
    dependencies = [("media", "0001_initial"), ("generation", "0006_aimodel_images")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
