from __future__ import annotations

from django.urls import path

from apps.dashboard import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("favicon.ico", views.favicon, name="favicon"),
]
