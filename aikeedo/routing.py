"""WebSocket routes under /ws/. Each app adds its consumers here."""

from __future__ import annotations

from django.urls import path

from apps.core.consumers import NotificationsConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
]
