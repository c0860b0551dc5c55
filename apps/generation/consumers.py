"""The chat socket (`/ws/chat/<conversation id>/`): authenticate, authorise the conversation's
workspace, relay. The turn itself (`apps.generation.streaming`) runs in a worker thread; its
deltas come back to this event loop with `call_soon_threadsafe` into a queue that the turn's
task sends from, one frame per chunk (never through the channel layer).

Client frames: `send` {content}, `stop`, `regenerate`, `edit` {message_id, content}.
Server frames: `ready`, `started` {message_id, user_message_id}, `delta` {text}, `done`
{message_id, status, html, usage, credits, error}, `error` {message}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import connection

from apps.accounts.models import User
from apps.credits.amounts import to_credits
from apps.generation import streaming
from apps.generation.models import Conversation, Message
from apps.generation.rendering import render_markdown

logger = logging.getLogger(__name__)

DISCONNECT_GRACE_SECONDS = 10.0


def _conversation_for(user: User, conversation_id: int) -> Conversation | None:
    """The conversation, when it lives in a (not deleted) workspace the user belongs to."""
    return (
        Conversation.objects.select_related("workspace", "model__provider")
        .filter(
            pk=conversation_id,
            workspace__deleted_at__isnull=True,
            workspace__memberships__user=user,
        )
        .first()
    )


class ChatConsumer(AsyncJsonWebsocketConsumer):
    conversation_id: int
    user: User
    task: asyncio.Task[None] | None = None
    stop_event: threading.Event
    gone: threading.Event

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=4401)
            return
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        if await database_sync_to_async(_conversation_for)(user, self.conversation_id) is None:
            await self.close(code=4404)
            return
        self.user = user
        self.gone = threading.Event()
        self.stop_event = threading.Event()
        await self.accept()
        await self.send_json({"type": "ready", "conversation": self.conversation_id})

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "gone"):
            return
        # The worker sees this at its next delta and ends the generation as client_gone: only
        # what was delivered is charged.
        self.gone.set()
        if self.task is not None and not self.task.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.task), DISCONNECT_GRACE_SECONDS)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if not text_data:
            return await self._error("Frames must be JSON text.")
        try:
            content = json.loads(text_data)
        except ValueError:
            return await self._error("Frames must be JSON text.")
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "stop":
            self.stop_event.set()
            return
        if kind not in ("send", "regenerate", "edit"):
            return await self._error("Unknown frame.")
        if self.task is not None and not self.task.done():
            return await self._error("An answer is already being generated.")
        turn: Callable[..., Message]
        if kind == "send":
            text = content.get("content")
            error = self._content_error(text)
            if error:
                return await self._error(error)
            turn = partial(streaming.chat_send, content=text)
        elif kind == "regenerate":
            turn = streaming.chat_regenerate
        else:
            text, message_id = content.get("content"), content.get("message_id")
            error = self._content_error(text)
            if not isinstance(message_id, int) or isinstance(message_id, bool):
                error = "message_id must be an integer."
            if error:
                return await self._error(error)
            turn = partial(streaming.chat_edit_resend, message_id=message_id, content=text)
        self.stop_event = threading.Event()
        self.task = asyncio.create_task(self._run(turn))

    @staticmethod
    def _content_error(text: Any) -> str:
        if not isinstance(text, str) or not text.strip():
            return "The message is empty."
        if len(text) > streaming.MAX_CONTENT_CHARS:
            return f"The message is too long (at most {streaming.MAX_CONTENT_CHARS:,} characters)."
        return ""

    async def _run(self, turn: Callable[..., Message]) -> None:
        """Run one turn in a worker thread and send its frames in order."""
        loop = asyncio.get_running_loop()
        frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def put(frame: dict[str, Any]) -> None:  # called from the worker thread
            loop.call_soon_threadsafe(frames.put_nowait, frame)

        def on_start(user_message: Message, assistant: Message) -> None:
            put({"type": "started", "message_id": assistant.pk, "user_message_id": user_message.pk})

        def work() -> Message:
            try:
                conversation = _conversation_for(self.user, self.conversation_id)
                if conversation is None:  # removed from the workspace, or the conversation deleted
                    raise streaming.ChatStreamError("This conversation is no longer available.")
                return turn(
                    conversation=conversation,
                    user=self.user,
                    stop_event=self.stop_event,
                    on_delta=lambda text: put({"type": "delta", "text": text}),
                    client_gone=self.gone.is_set,
                    on_start=on_start,
                )
            finally:
                # The connection was opened in this call's copied context, where the cleanup of
                # database_sync_to_async does not see it: close it here or it leaks.
                connection.close()

        # Not thread-sensitive: a long stream must not hold the shared sync thread.
        worker = asyncio.ensure_future(database_sync_to_async(work, thread_sensitive=False)())
        # Scheduled after every frame the worker queued (same loop, FIFO).
        worker.add_done_callback(lambda _: frames.put_nowait(None))
        while (frame := await frames.get()) is not None:
            await self._send(frame)
        try:
            message = worker.result()
        except streaming.ChatStreamError as exc:
            await self._send({"type": "error", "message": exc.message})
            return
        except Exception:
            logger.exception("chat turn failed in conversation %s", self.conversation_id)
            await self._send({"type": "error", "message": streaming.UNEXPECTED_MESSAGE})
            return
        await self._send(
            {
                "type": "done",
                "message_id": message.pk,
                "status": message.status,
                "html": render_markdown(message.content),
                "usage": {"input_tokens": message.input_tokens, "output_tokens": message.output_tokens},
                "credits": str(to_credits(message.credits_units)),
                "error": message.error,
            }
        )

    async def _send(self, frame: dict[str, Any]) -> None:
        if not self.gone.is_set():
            await self.send_json(frame)

    async def _error(self, message: str) -> None:
        await self.send_json({"type": "error", "message": message})
