# Conversation and Message moved to the chat app (`apps.chat`, its 0001). Only the migration state
# changes here: the tables stay as they are and are owned by chat from now on.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0008_aimodel_supports_voice_cloning'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='Message'),
                migrations.DeleteModel(name='Conversation'),
            ],
            database_operations=[],
        ),
    ]
