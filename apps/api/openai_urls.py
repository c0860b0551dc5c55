"""`/v1/…`: every OpenAI-compatible endpoint (text in `apps.api.openai`, images and audio in
`apps.api.openai_media`), then the catch-all that answers unknown routes in OpenAI's shape."""

from __future__ import annotations

from django.urls import path, re_path

from apps.api import openai, openai_media

app_name = "openai"

urlpatterns = [
    path("models", openai.models_list, name="models"),
    path("models/<path:model_id>", openai.model_detail, name="model"),
    path("chat/completions", openai.chat_completions, name="chat_completions"),
    path("embeddings", openai.embeddings, name="embeddings"),
    path("images/generations", openai_media.images_generations, name="images_generations"),
    path("audio/speech", openai_media.audio_speech, name="audio_speech"),
    path("audio/transcriptions", openai_media.audio_transcriptions, name="audio_transcriptions"),
    re_path(r"^(?P<rest>.*)$", openai.not_found, name="not_found"),
]
