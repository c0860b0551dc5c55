from __future__ import annotations

from django.urls import path

from apps.chat import views

app_name = "chat"

urlpatterns = [
    path("", views.chat_list, name="list"),
    path("<int:conversation_id>/", views.chat_detail, name="detail"),
    path("<int:conversation_id>/rename/", views.chat_rename, name="rename"),
    path("<int:conversation_id>/model/", views.chat_switch_model, name="model"),
    path("<int:conversation_id>/settings/", views.chat_settings, name="settings"),
    path("<int:conversation_id>/pin/", views.chat_pin, name="pin"),
    path("<int:conversation_id>/delete/", views.chat_delete, name="delete"),
    path("<int:conversation_id>/messages/<int:message_id>/feedback/", views.chat_feedback, name="feedback"),
    path("<int:conversation_id>/attachments/", views.chat_attach, name="attach"),
    path("<int:conversation_id>/attachments/<int:attachment_id>/", views.chat_attachment, name="attachment"),
    path(
        "<int:conversation_id>/attachments/<int:attachment_id>/remove/",
        views.chat_attachment_remove,
        name="attachment_remove",
    ),
    path("<int:conversation_id>/export/", views.chat_export, name="export"),
    path("sidebar/", views.chat_sidebar, name="sidebar"),
    path("from-preset/<int:preset_id>/", views.chat_from_preset, name="from_preset"),
]
