from __future__ import annotations

from django.apps import AppConfig


class PresetsConfig(AppConfig):
    name = "apps.presets"
    label = "presets"
    verbose_name = "Prompt presets"
