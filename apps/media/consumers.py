"""The job progress socket (`/ws/jobs/<job id>/`): authenticate, authorise the job's
workspace, relay the `job.progress` events the task sends to the job's group. On connect it
sends the current state, so a page that connects late (or reconnects) misses nothing."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from apps.accounts.models import User
from apps.core.realtime import RevocableConsumer
from apps.media.models import GenerationJob, job_group
from apps.workspaces.selectors import workspace_access_active


def _job_for(user: User, job_id: int) -> GenerationJob | None:
    """The job, when it lives in a (not deleted) workspace the user belongs to."""
    return GenerationJob.objects.filter(
        pk=job_id, workspace__deleted_at__isnull=True, workspace__memberships__user=user
    ).first()


class JobProgressConsumer(RevocableConsumer):
    """Closed with `ACCESS_REVOKED_CLOSE_CODE` when the user's access to the job's workspace
    ends (told through the channel layer, and re-checked every few seconds while open)."""

    group: str | None = None
    user_id: int

    async def connect(self) -> None:
        user = await self.signed_in_user()
        if user is None:
            return
        job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        job = await database_sync_to_async(_job_for)(user, job_id)
        if job is None:
            await self.close(code=4404)
            return
        self.group = job_group(job_id)
        self.user_id = user.pk
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.join_access_groups(user_id=user.pk, workspace_id=job.workspace_id)
        await self.accept()
        self.start_access_watch()
        from apps.media.services import job_event

        await self.send_json(job_event(job))

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await self.leave_access_groups()

    async def access_ok(self) -> bool:
        assert self.access_workspace_id is not None
        return await database_sync_to_async(workspace_access_active)(
            user_id=self.user_id, workspace_id=self.access_workspace_id
        )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def job_progress(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
