from __future__ import annotations

from django.urls import path

from apps.credits import views

app_name = "credits"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("usage/<int:reservation_id>/", views.usage_detail, name="usage_detail"),
    path("usage/export.csv", views.usage_export, name="usage_export"),
    path("settings/", views.credit_settings, name="settings"),
]
