# Conversation and Message, moved here from the generation app (its 0009 removes them from its
# state). Only the migration state is created: the models keep the existing tables
# (`generation_conversation`, `generation_message`) and their indexes, so no row moves. Their
# content types are renamed to this app, so the permissions given to groups and users, and the
# admin's history, follow the models.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ('conversation', 'message')


def _relabel(apps, schema_editor, *, source, target):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    rows = ContentType.objects.using(schema_editor.connection.alias)
    for model in MOVED:
        # A row for the new label exists only if content types were created for it before this
        # ran (e.g. `migrate` to an older state with this code); the old row is then left alone.
        if not rows.filter(app_label=target, model=model).exists():
            rows.filter(app_label=source, model=model).update(app_label=target)


def content_types_to_chat(apps, schema_editor):
    _relabel(apps, schema_editor, source='generation', target='chat')


def content_types_to_generation(apps, schema_editor):
    _relabel(apps, schema_editor, source='chat', target='generation')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('generation', '0009_chat_moved_out'),
        ('workspaces', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Conversation',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('title', models.CharField(blank=True, max_length=200)),
                        ('title_generated', models.BooleanField(default=False)),
                        ('system_prompt', models.TextField(blank=True)),
                        ('temperature', models.DecimalField(blank=True, decimal_places=2, max_digits=3, null=True)),
                        ('max_tokens', models.PositiveIntegerField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('turn_started_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('model', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='generation.aimodel')),
                        ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('workspace', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='%(class)ss', to='workspaces.workspace')),
                    ],
                    options={
                        'db_table': 'generation_conversation',
                        'ordering': ['-updated_at', '-id'],
                        'indexes': [models.Index(fields=['workspace', '-updated_at'], name='generation_conv_ws_updated')],
                    },
                ),
                migrations.CreateModel(
                    name='Message',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('role', models.CharField(choices=[('system', 'System'), ('user', 'User'), ('assistant', 'Assistant')], max_length=16)),
                        ('content', models.TextField(blank=True)),
                        ('status', models.CharField(choices=[('complete', 'Complete'), ('streaming', 'Streaming'), ('stopped', 'Stopped'), ('error', 'Error')], default='complete', max_length=16)),
                        ('model_label', models.CharField(blank=True, max_length=100)),
                        ('input_tokens', models.PositiveIntegerField(default=0)),
                        ('output_tokens', models.PositiveIntegerField(default=0)),
                        ('credits_units', models.BigIntegerField(default=0)),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('conversation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='chat.conversation')),
                        ('generation', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='generation.generation')),
                        ('workspace', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='%(class)ss', to='workspaces.workspace')),
                    ],
                    options={
                        'db_table': 'generation_message',
                        'ordering': ['conversation_id', 'created_at', 'id'],
                        'indexes': [models.Index(fields=['conversation', 'created_at'], name='generation_msg_conv_created')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_to_chat, content_types_to_generation),
    ]
