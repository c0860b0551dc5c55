"""WebSocket routes under /ws/. Each app adds its consumers here."""

from __future__ import annotations

from django.urls import path

from apps.chat.consumers import ChatConsumer
from apps.core.consumers import NotificationsConsumer
from apps.media.consumers import JobProgressConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
    path("ws/chat/<int:conversation_id>/", ChatConsumer.as_asgi()),
    path("ws/jobs/<int:job_id>/", JobProgressConsumer.as_asgi()),
]
