"""Open connections that must end when access ends.

A WebSocket is authorised when it connects; a user suspended, removed from a workspace or whose
workspace is deleted afterwards must not keep using it. The services that end access call
`sockets_revoke` (sent after their transaction commits); every socket consumer joins its user's
group (and its workspace's group) and, on `access.revoked`, re-checks its own access and closes
with `ACCESS_REVOKED_CLOSE_CODE` when it is gone. Sockets that stream also re-check on their own
every `STREAM_ACCESS_RECHECK_SECONDS`, so a lost group message only delays the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from apps.core.errors import DomainError
from apps.core.jsondepth import loads_bounded
from apps.core.sites import base_url_scope, scope_base_url

logger = logging.getLogger(__name__)

ACCESS_REVOKED_CLOSE_CODE = 4403
ACCESS_ENDED_MESSAGE = "Your access has ended. Reload the page."


def error_frame(exc: DomainError) -> dict[str, Any]:
    """A domain error as the socket's error frame: the one shape every consumer sends (the page
    shows `message`; `code` is for scripts, as in the APIs)."""
    return {"type": "error", "message": exc.message, "code": exc.code}


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def workspace_group(workspace_id: int) -> str:
    return f"workspace.{workspace_id}"


def _send_revoked(group: str, workspace_id: int | None) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "access.revoked", "workspace": workspace_id})
    except Exception:  # the sockets' own re-checks end them anyway
        logger.warning("could not notify the sockets of %s", group, exc_info=True)


def sockets_revoke(*, user_id: int | None = None, workspace_id: int | None = None) -> None:
    """Tell open sockets that access ended, once the current transaction commits: a user's
    sockets (all of them, or with `workspace_id` only those on that workspace), or with only
    `workspace_id` every socket on the workspace."""
    if user_id is not None:
        group = user_group(user_id)
    elif workspace_id is not None:
        group = workspace_group(workspace_id)
    else:
        raise ValueError("sockets_revoke needs a user or a workspace")
    transaction.on_commit(lambda: _send_revoked(group, workspace_id))


class RevocableConsumer(AsyncJsonWebsocketConsumer):
    """A socket that ends when its user's access ends. Subclasses call `join_access_groups`
    once accepted, answer `access_ok()` from the database, and may extend `access_ended()`
    (e.g. to stop a running answer first)."""

    access_groups: tuple[str, ...] = ()
    access_workspace_id: int | None = None
    access_watch: asyncio.Task[None] | None = None
    access_closed: bool = False

    async def dispatch(self, message: Any) -> None:
        # What a frame causes (a charge that crosses a low-balance level) is mailed with links to
        # the address this socket was opened at, as a page's request would (`apps.core.sites`).
        with base_url_scope(scope_base_url(self.scope)):
            await super().dispatch(message)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        return loads_bounded(text_data)  # a frame nested thousands deep is refused, not a crash

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        # The base class raises on binary or malformed frames, which tears the socket down and
        # logs a traceback for any client that sends garbage; such frames are ignored instead.
        if not text_data:
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            return
        await self.receive_json(content, **kwargs)

    async def signed_in_user(self) -> Any:
        """The connection's signed-in, active user; for anyone else the socket is closed (4401)
        and this is None."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=4401)
            return None
        return user

    async def join_access_groups(self, *, user_id: int, workspace_id: int | None = None) -> None:
        self.access_workspace_id = workspace_id
        groups = [user_group(user_id)]
        if workspace_id is not None:
            groups.append(workspace_group(workspace_id))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.access_groups = tuple(groups)

    async def leave_access_groups(self) -> None:
        if self.access_watch is not None:
            self.access_watch.cancel()
        for group in self.access_groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.access_groups = ()

    async def access_ok(self) -> bool:
        raise NotImplementedError

    async def access_ended(self) -> None:
        if self.access_closed:
            return
        self.access_closed = True
        with contextlib.suppress(Exception):  # the socket may be closing already
            await self.send_json({"type": "error", "message": ACCESS_ENDED_MESSAGE, "code": "access_revoked"})
            await self.close(code=ACCESS_REVOKED_CLOSE_CODE)

    async def access_revoked(self, event: dict[str, Any]) -> None:
        workspace_id = event.get("workspace")
        if workspace_id is not None and self.access_workspace_id not in (None, workspace_id):
            return  # about another workspace of this user
        if not await self.access_ok():  # re-read: access may have been given back meanwhile
            await self.access_ended()

    def start_access_watch(self) -> None:
        """Re-check access every `STREAM_ACCESS_RECHECK_SECONDS` while the socket is open."""

        async def watch() -> None:
            while True:
                await asyncio.sleep(settings.STREAM_ACCESS_RECHECK_SECONDS)
                try:
                    ok = await self.access_ok()
                except Exception:
                    logger.warning("access re-check failed", exc_info=True)
                    continue
                if not ok:
                    await self.access_ended()
                    return

        self.access_watch = asyncio.create_task(watch())
