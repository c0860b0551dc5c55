from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from apps.core.realtime import RevocableConsumer, user_group

__all__ = ["NotificationsConsumer", "user_group"]


class NotificationsConsumer(RevocableConsumer):
    """Pushes in-app notifications to a signed-in user's open pages (fan-out through a
    per-user group). Anonymous connections are refused; a suspended or deleted user's open
    pages are closed."""

    user_id: int

    async def connect(self) -> None:
        user = await self.signed_in_user()
        if user is None:
            return
        self.user_id = user.pk
        await self.join_access_groups(user_id=user.pk)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.pk})

    async def disconnect(self, code: int) -> None:
        await self.leave_access_groups()

    async def access_ok(self) -> bool:
        users = get_user_model().objects
        return await database_sync_to_async(users.filter(pk=self.user_id, is_active=True).exists)()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def notify(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "notification", "payload": event.get("payload", {})})
