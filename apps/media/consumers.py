"""The job progress socket (`/ws/jobs/<job id>/`): authenticate, authorise the job's
workspace, relay the `job.progress` events the task sends to the job's group. On connect it
sends the current state, so a page that connects late (or reconnects) misses nothing."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.accounts.models import User
from apps.media.models import GenerationJob, job_group


def _job_for(user: User, job_id: int) -> GenerationJob | None:
    """The job, when it lives in a (not deleted) workspace the user belongs to."""
    return GenerationJob.objects.filter(
        pk=job_id, workspace__deleted_at__isnull=True, workspace__memberships__user=user
    ).first()


class JobProgressConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=4401)
            return
        job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        job = await database_sync_to_async(_job_for)(user, job_id)
        if job is None:
            await self.close(code=4404)
            return
        self.group = job_group(job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        from apps.media.services import job_event

        await self.send_json(job_event(job))

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def job_progress(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
