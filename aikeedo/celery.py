"""Celery application. Without REDIS_URL tasks run eagerly (inline); `make worker` runs a
worker with beat against Redis."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aikeedo.settings.local")

app = Celery("aikeedo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
