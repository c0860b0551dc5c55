"""The built-in mock chat model reads images (it names each image part it is sent), so image
attachments can be tried offline."""

from django.db import migrations


def forwards(apps, schema_editor):
    apps.get_model("generation", "AIModel").objects.filter(model_id="mock-chat").update(supports_vision=True)


class Migration(migrations.Migration):
    dependencies = [("generation", "0010_usage_capability_reference")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
