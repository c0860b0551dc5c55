from __future__ import annotations

from django.urls import path

from apps.credits import views

app_name = "credits"

urlpatterns = [
    path("", views.overview, name="overview"),
]
