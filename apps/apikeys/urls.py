from __future__ import annotations

from django.urls import path

from apps.apikeys import views

app_name = "apikeys"

urlpatterns = [
    path("", views.key_list, name="list"),
    path("new/", views.key_create, name="create"),
    path("<int:key_id>/revoke/", views.key_revoke, name="revoke"),
]
