"""`/v1/audio/…`: included in aikeedo/urls.py before the `/v1/` catch-all."""

from __future__ import annotations

from django.urls import path

from apps.media import openai_api

urlpatterns = [
    path("speech", openai_api.audio_speech, name="openai_audio_speech"),
    path("transcriptions", openai_api.audio_transcriptions, name="openai_audio_transcriptions"),
]
