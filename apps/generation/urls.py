from __future__ import annotations

from django.urls import path

from apps.generation import views

app_name = "generation"

urlpatterns = [
    path("", views.chat_list, name="chat_list"),
    path("<int:conversation_id>/", views.chat_detail, name="chat_detail"),
    path("<int:conversation_id>/rename/", views.chat_rename, name="chat_rename"),
    path("<int:conversation_id>/model/", views.chat_switch_model, name="chat_model"),
    path("<int:conversation_id>/settings/", views.chat_settings, name="chat_settings"),
    path("<int:conversation_id>/delete/", views.chat_delete, name="chat_delete"),
    path("<int:conversation_id>/export/", views.chat_export, name="chat_export"),
]
