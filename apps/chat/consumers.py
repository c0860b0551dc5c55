"""The chat socket (`/ws/chat/<conversation id>/`): authenticate, authorise the conversation's
workspace, relay.

A socket prepares a turn (`services.chat_*_prepare`: the turn lock, the rate limits) and hands
it to `apps.chat.answers`, which runs the answer independently of any socket: closing or
reloading the tab does not stop it. Every socket showing the conversation (any tab, device or
process) joins the conversation's group and relays what the running answer fans out; the Stop
button of any of them stops it. A socket that joins while an answer runs asks it for the text
so far (`chat.hello` → `chat.snapshot`), then relays only the characters past it (each delta
carries its offset): nothing is lost or shown twice.

Access is checked on connect, again at each turn, and while an answer streams (every
`STREAM_ACCESS_RECHECK_SECONDS`, in the pipeline); suspension, removal from the workspace and
its deletion also reach the socket and the running answer at once through the channel layer.
When access is gone, the user's running answer ends (settled for what was generated) and the
socket closes with `ACCESS_REVOKED_CLOSE_CODE` (4403) after an `error` frame with code
`access_revoked`.

Query string: `history=1` (a page reconnecting: send it every message again), `streaming=<id>`
(the message the page shows as still being generated: send its final state if it has ended).

Client frames: `send` {content[, attachments: file ids from `chat:attach`]}, `stop`, `regenerate`,
`edit` {message_id, content}.
Server frames: `ready`; `history` {html}; `started` {message_id, user_message_id, user_html,
html, offset, mine} (an answer began, or the state of the one running: `user_html` is the
message it answers and `html` the answer so far, both rendered by the server; `mine` when this
socket asked for it); `delta` {message_id, offset, text}; `done` {message_id, status, html,
usage, credits, error}; `title` {title}; `error` {message[, code]} (a refused turn carries its
`DomainError` code, through `apps.core.realtime.error_frame`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from apps.accounts.models import User
from apps.chat import answers, services
from apps.chat.exceptions import ChatStreamError
from apps.chat.fragments import history_html, message_html
from apps.chat.models import Conversation, Message
from apps.core.errors import DomainError
from apps.core.realtime import RevocableConsumer, error_frame
from apps.credits.amounts import to_credits
from apps.generation.services import db_step
from apps.ratelimits.exceptions import RateLimited
from apps.ratelimits.services import ratelimit_enforce
from apps.workspaces.selectors import workspace_access_active

logger = logging.getLogger(__name__)

ACCESS_CLOSE_GRACE_SECONDS = 10.0


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


def _ended_message(conversation_id: int, message_id: int) -> Message | None:
    """The conversation's assistant message, once it is no longer streaming."""
    return (
        Message.objects.filter(conversation_id=conversation_id, pk=message_id, role=Message.Role.ASSISTANT)
        .exclude(status=Message.Status.STREAMING)
        .first()
    )


def _done_frame(message: Message) -> dict[str, Any]:
    return {
        "type": "done",
        "message_id": message.pk,
        "status": message.status,
        "html": message_html(message),
        "usage": {"input_tokens": message.input_tokens, "output_tokens": message.output_tokens},
        "credits": str(to_credits(message.credits_units)),
        "error": message.error,
    }


class AccessEnded(Exception):
    """At the start of a turn: the user may no longer use this conversation."""


class ChatConsumer(RevocableConsumer):
    conversation_id: int
    user: User
    live: dict[int, int]  # the answer(s) being relayed: message id -> characters relayed
    live_user_id: int | None = None  # who asked for the running answer
    gone: bool = False
    close_timer: asyncio.TimerHandle | None = None

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
        self.live = {}
        await self.join_access_groups(user_id=user.pk, workspace_id=conversation.workspace_id)
        # Joined before reading anything: whatever happens from now on reaches this socket.
        await self.channel_layer.group_add(answers.conversation_group(self.conversation_id), self.channel_name)
        await self.accept()
        await self.send_json({"type": "ready", "conversation": self.conversation_id})
        await self._catch_up()

    async def _catch_up(self) -> None:
        """Bring the page up to date: every message when it asks (a reconnect), the end of an
        answer it shows as streaming, then the running answer's text so far."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if query.get("history") == ["1"]:
            html = await database_sync_to_async(history_html)(self.conversation_id)
            await self._send({"type": "history", "html": html})
        streaming = (query.get("streaming") or [""])[0]
        if streaming.isdigit():
            message = await database_sync_to_async(_ended_message)(self.conversation_id, int(streaming))
            if message is not None:
                await self._send(await database_sync_to_async(_done_frame)(message))
        await answers.answer_hello(self.conversation_id, self.channel_name)

    async def access_ok(self) -> bool:
        assert self.access_workspace_id is not None
        return await database_sync_to_async(workspace_access_active)(
            user_id=self.user.pk, workspace_id=self.access_workspace_id
        )

    async def access_ended(self) -> None:
        """Close the socket. When this user's own answer is running, its run (which watches
        the same access) is ending it: show its end first, for at most a few seconds."""
        if self.access_closed or self.close_timer is not None:
            return
        if self.live and self.live_user_id == self.user.pk:
            loop = asyncio.get_running_loop()
            self.close_timer = loop.call_later(
                ACCESS_CLOSE_GRACE_SECONDS, lambda: asyncio.ensure_future(self._close_for_access())
            )
            return
        await self._close_for_access()

    async def _close_for_access(self) -> None:
        if self.close_timer is not None:
            self.close_timer.cancel()
        await RevocableConsumer.access_ended(self)

    async def disconnect(self, code: int) -> None:
        """Leave the groups. A running answer goes on: the browser leaving is not a stop."""
        self.gone = True
        if self.close_timer is not None:
            self.close_timer.cancel()
        await self.leave_access_groups()
        if hasattr(self, "live"):
            await self.channel_layer.group_discard(answers.conversation_group(self.conversation_id), self.channel_name)

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
            await answers.answer_stop(self.conversation_id)
            return
        if kind not in ("send", "regenerate", "edit"):
            return await self._error("Unknown frame.")
        prepare: Callable[..., services.Turn]
        if kind == "send":
            text, attachments = content.get("content"), content.get("attachments", [])
            error = self._content_error(text)
            if not isinstance(attachments, list) or not all(
                isinstance(pk, int) and not isinstance(pk, bool) for pk in attachments
            ):
                error = "attachments must be a list of file ids."
            if error:
                return await self._error(error)
            prepare = partial(services.chat_send_prepare, content=text, attachment_ids=attachments)
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
        await self._start(prepare)

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

    async def _start(self, prepare: Callable[..., services.Turn]) -> None:
        """Prepare the turn (refusals go to this socket only: a second tab, the turn lock), then
        start its answer, which no longer depends on this socket. (A stop frame sent meanwhile
        waits for this: the socket handles one frame at a time.)"""
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
        answers.answer_start(turn, origin=self.channel_name)

    # ------------------------------------------------------------------------ the running answer

    async def chat_started(self, event: dict[str, Any]) -> None:
        self.live[event["message_id"]] = 0
        self.live_user_id = event.get("user_id")
        await self._send(
            {
                "type": "started",
                "message_id": event["message_id"],
                "user_message_id": event["user_message_id"],
                "user_html": event["user_html"],
                "html": event["html"],
                "offset": 0,
                "mine": event.get("origin") == self.channel_name,
            }
        )

    async def chat_snapshot(self, event: dict[str, Any]) -> None:
        message_id, length = event["message_id"], int(event["length"])
        if self.live.get(message_id, -1) >= length and length > 0:
            return  # this socket has relayed as much already
        self.live[message_id] = length
        await self._send(
            {
                "type": "started",
                "message_id": message_id,
                "user_message_id": event["user_message_id"],
                "user_html": event["user_html"],
                "html": event["html"],
                "offset": length,
                "mine": False,
            }
        )

    async def chat_delta(self, event: dict[str, Any]) -> None:
        message_id = event["message_id"]
        relayed = self.live.get(message_id)
        if relayed is None:
            return  # joined mid-answer: the snapshot on its way includes this
        offset, text = int(event["offset"]), str(event["text"])
        end = offset + len(text)
        if end <= relayed:
            return  # already in the snapshot
        if offset > relayed:  # a group message was lost: ask for the text so far again
            await answers.answer_hello(self.conversation_id, self.channel_name)
            return
        self.live[message_id] = end
        piece = text[relayed - offset :]
        await self._send({"type": "delta", "message_id": message_id, "offset": relayed, "text": piece})

    async def chat_done(self, event: dict[str, Any]) -> None:
        self.live.pop(event["message_id"], None)
        frame = {key: event[key] for key in ("message_id", "status", "html", "usage", "credits", "error")}
        await self._send({"type": "done", **frame})
        if self.close_timer is not None:
            await self._close_for_access()
        elif event.get("access_lost"):
            await self.access_revoked({"workspace": None})  # whose access? re-check this socket's

    async def chat_failed(self, event: dict[str, Any]) -> None:
        self.live.pop(event["message_id"], None)
        await self._send({"type": "error", "message": services.UNEXPECTED_MESSAGE})
        if self.close_timer is not None:
            await self._close_for_access()

    async def chat_title(self, event: dict[str, Any]) -> None:
        await self._send({"type": "title", "title": event["title"]})

    # ------------------------------------------------------------------------ sending

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
