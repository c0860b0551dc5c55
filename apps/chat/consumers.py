"""The chat socket (`/ws/chat/<conversation id>/`): authenticate, authorise the conversation's
workspace, relay. The turn runs as a task on this connection's event loop
(`services.chat_turn_answer`): deltas are sent as they arrive, one frame per chunk (never through
the channel layer), and database steps run in the process's database threads (`db_step`), so one
process carries many concurrent streams without a thread or a connection each.

Access is checked on connect, again at each turn, and while an answer streams (every
`STREAM_ACCESS_RECHECK_SECONDS`, in the pipeline); suspension, removal from the workspace and
its deletion also reach the socket at once through the channel layer. When access is gone the
running answer ends (settled for what was delivered) and the socket closes with
`ACCESS_REVOKED_CLOSE_CODE` (4403) after an `error` frame with code `access_revoked`.

Client frames: `send` {content}, `stop`, `regenerate`, `edit` {message_id, content}.
Server frames: `ready`, `started` {message_id, user_message_id}, `delta` {text}, `done`
{message_id, status, html, usage, credits, error}, `title` {title}, `error` {message[, code]} (a
refused turn carries its `DomainError` code, through `apps.core.realtime.error_frame`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from channels.db import database_sync_to_async

from apps.accounts.models import User
from apps.chat import services
from apps.chat.exceptions import ChatStreamError
from apps.chat.models import Conversation, Message
from apps.chat.rendering import render_markdown
from apps.core.errors import DomainError
from apps.core.realtime import RevocableConsumer, error_frame
from apps.credits.amounts import to_credits
from apps.generation.models import Generation
from apps.generation.services import db_step
from apps.ratelimits.exceptions import RateLimited
from apps.ratelimits.services import ratelimit_enforce, ratelimit_record_tokens
from apps.workspaces.selectors import workspace_access_active

logger = logging.getLogger(__name__)

DISCONNECT_GRACE_SECONDS = 10.0


def _conversation_for(user: User, conversation_id: int) -> Conversation | None:
    """The conversation, when it lives in a (not deleted) workspace the (active) user belongs to."""
    return (
        Conversation.objects.select_related("workspace", "model__provider")
        .filter(
            pk=conversation_id,
            workspace__deleted_at__isnull=True,
            workspace__memberships__user=user,
            workspace__memberships__user__is_active=True,
        )
        .first()
    )


class AccessEnded(Exception):
    """At the start of a turn: the user may no longer use this conversation."""


class ChatConsumer(RevocableConsumer):
    conversation_id: int
    user: User
    task: asyncio.Task[None] | None = None
    title_task: asyncio.Task[None] | None = None
    turn: services.Turn | None = None
    gone: bool = False
    stop_outcome: str | None = None
    access_ending: bool = False

    async def connect(self) -> None:
        user = await self.signed_in_user()
        if user is None:
            return
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        conversation = await database_sync_to_async(_conversation_for)(user, self.conversation_id)
        if conversation is None:
            await self.close(code=4404)
            return
        self.user = user
        await self.join_access_groups(user_id=user.pk, workspace_id=conversation.workspace_id)
        await self.accept()
        await self.send_json({"type": "ready", "conversation": self.conversation_id})

    async def access_ok(self) -> bool:
        assert self.access_workspace_id is not None
        return await database_sync_to_async(workspace_access_active)(
            user_id=self.user.pk, workspace_id=self.access_workspace_id
        )

    async def access_ended(self) -> None:
        """End the running answer (settled for what was delivered), then close."""
        if self.access_closed or self.access_ending:
            return
        self.access_ending = True
        if self.task is not None and not self.task.done() and self.task is not asyncio.current_task():
            self._stop(Generation.Outcome.STOPPED)
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.task), DISCONNECT_GRACE_SECONDS)
        await super().access_ended()

    async def disconnect(self, code: int) -> None:
        self.gone = True
        await self.leave_access_groups()
        if self.title_task is not None and not self.title_task.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.title_task), DISCONNECT_GRACE_SECONDS)
        if self.task is None or self.task.done():
            return
        # End the answer as client_gone: only what was delivered is charged.
        self._stop(Generation.Outcome.CLIENT_GONE)
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self.task), DISCONNECT_GRACE_SECONDS)

    def _stop(self, outcome: str) -> None:
        """Stop the running turn: before it started, while it waits for the first token, or
        mid-stream. Once the answer is being finished, there is nothing left to stop."""
        self.stop_outcome = self.stop_outcome or outcome
        turn = self.turn
        if turn is None:
            return  # still preparing: _run applies stop_outcome when the turn exists
        turn.request_stop(outcome)
        if turn.streaming and self.task is not None:
            self.task.cancel()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if not text_data:
            return await self._error("Frames must be JSON text.")
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            return await self._error("Frames must be JSON text (nested at most 64 levels).")
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "stop":
            if self.task is not None and not self.task.done():
                self._stop(Generation.Outcome.STOPPED)
            return
        if kind not in ("send", "regenerate", "edit"):
            return await self._error("Unknown frame.")
        if self.task is not None and not self.task.done():
            return await self._error("An answer is already being generated.")
        prepare: Callable[..., services.Turn]
        if kind == "send":
            text = content.get("content")
            error = self._content_error(text)
            if error:
                return await self._error(error)
            prepare = partial(services.chat_send_prepare, content=text)
        elif kind == "regenerate":
            prepare = services.chat_regenerate_prepare
        else:
            text, message_id = content.get("content"), content.get("message_id")
            error = self._content_error(text)
            if not isinstance(message_id, int) or isinstance(message_id, bool):
                error = "message_id must be an integer."
            if error:
                return await self._error(error)
            prepare = partial(services.chat_edit_prepare, message_id=message_id, content=text)
        self.turn, self.stop_outcome = None, None
        self.task = asyncio.create_task(self._run(prepare))

    @staticmethod
    def _content_error(text: Any) -> str:
        if not isinstance(text, str) or not text.strip():
            return "The message is empty."
        if len(text) > services.MAX_CONTENT_CHARS:
            return f"The message is too long (at most {services.MAX_CONTENT_CHARS:,} characters)."
        return ""

    def _prepare(self, prepare: Callable[..., services.Turn]) -> services.Turn:
        conversation = _conversation_for(self.user, self.conversation_id)
        if conversation is None:  # suspended, removed, the workspace or conversation deleted
            raise AccessEnded()
        # The same per-member and per-workspace limits as the API (Redis-backed, all processes).
        try:
            ratelimit_enforce(workspace=conversation.workspace, user=self.user)
        except RateLimited as exc:
            raise ChatStreamError(
                f"You are sending messages too quickly. Try again in {exc.retry_after} s.",
                status_code=exc.status_code,
                code=exc.code,
            ) from exc
        turn = prepare(conversation=conversation, user=self.user)
        turn.access_check = partial(
            workspace_access_active, user_id=self.user.pk, workspace_id=conversation.workspace_id
        )
        return turn

    def _record_tokens(self, turn: services.Turn, message: Message) -> None:
        ratelimit_record_tokens(
            workspace=turn.conversation.workspace, user=self.user, tokens=message.input_tokens + message.output_tokens
        )

    async def _run(self, prepare: Callable[..., services.Turn]) -> None:
        """Prepare one turn, stream its answer, then its title; frames in order."""
        try:
            turn = await db_step(self._prepare, prepare)
        except AccessEnded:
            await self.access_ended()
            return
        except DomainError as exc:  # a refused turn: its message and code
            await self._send(error_frame(exc))
            return
        except Exception:
            logger.exception("chat turn failed in conversation %s", self.conversation_id)
            await self._send({"type": "error", "message": services.UNEXPECTED_MESSAGE})
            return
        self.turn = turn
        if self.stop_outcome is not None:
            turn.request_stop(self.stop_outcome)
        await self._send({"type": "started", "message_id": turn.assistant.pk, "user_message_id": turn.user_message.pk})
        try:
            message = await services.chat_turn_answer(turn, on_delta=self._delta)
        except Exception:
            logger.exception("chat turn failed in conversation %s", self.conversation_id)
            await self._send({"type": "error", "message": services.UNEXPECTED_MESSAGE})
            return
        await db_step(self._record_tokens, turn, message)
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
        if turn.access_lost:  # noticed while it streamed
            await self.access_ended()
            return
        if turn.first_exchange and not self.access_ending:
            # Its own task: the next turn may start while the title is being written.
            self.title_task = asyncio.create_task(self._title(turn, message))

    async def _title(self, turn: services.Turn, message: Message) -> None:
        try:
            title = await services.chat_turn_title(turn, message)
        except Exception:  # a title is a nicety: never an error for the user
            logger.exception("title failed in conversation %s", self.conversation_id)
            return
        if title:
            await self._send({"type": "title", "title": title})

    async def _delta(self, text: str) -> None:
        if not await self._send({"type": "delta", "text": text}):
            raise services.RelayFailed("the socket is closed")

    async def _send(self, frame: dict[str, Any]) -> bool:
        """Send a frame; False when the client is gone (sending on a socket that has just
        closed raises before `disconnect()` is called: the client is gone from then on)."""
        if self.gone or self.access_closed:
            return False
        try:
            await self.send_json(frame)
        except Exception:
            self.gone = True
            logger.info("chat %s: the client is gone", self.conversation_id)
            return False
        return True

    async def _error(self, message: str) -> None:
        await self.send_json({"type": "error", "message": message})
