"""`/v1/…`: the OpenAI-compatible endpoints."""

from __future__ import annotations

from django.urls import path, re_path

from apps.api import openai

app_name = "openai"

urlpatterns = [
    path("models", openai.models_list, name="models"),
    path("models/<path:model_id>", openai.model_detail, name="model"),
    path("chat/completions", openai.chat_completions, name="chat_completions"),
    path("embeddings", openai.embeddings, name="embeddings"),
    re_path(r"^(?P<rest>.*)$", openai.not_found, name="not_found"),
]
