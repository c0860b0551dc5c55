from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0006_aimodel_images"),
    ]

    operations = [
        migrations.AddField(
            model_name="aimodel",
            name="supports_speech",
            field=models.BooleanField(default=False, help_text="Text to speech (TTS)."),
        ),
        migrations.AddField(
            model_name="aimodel",
            name="supports_transcription",
            field=models.BooleanField(default=False, help_text="Speech to text (Whisper-class)."),
        ),
    ]
