"""`/v1/images/…`: included in aikeedo/urls.py before the `/v1/` catch-all."""

from __future__ import annotations

from django.urls import path

from apps.media import openai_api

urlpatterns = [
    path("generations", openai_api.images_generations, name="openai_images_generations"),
]
