"""Answers that outlive the socket that asked for them.

A turn's answer runs as an `AnswerRun`: a task of the process that prepared the turn, held in
`_RUNS` (a strong reference: the event loop keeps only weak ones), that ends in exactly one
settle (`services.chat_turn_answer`). Closing or reloading the tab is not a stop: the answer
goes on, its partial text is saved as it streams, and any socket showing the conversation, in
any process, sees it live.

Two channel-layer groups per conversation:

- `chat.conversation.<id>` — the sockets showing it. The run fans out `chat.started`,
  `chat.delta` {offset, text}, `chat.done`, `chat.title` and `chat.failed` there. Deltas are
  coalesced (at most one group message every `FANOUT_INTERVAL_SECONDS`), so a fast model does
  not send a channel-layer message per token.
- `chat.answer.<id>` — the run itself (its own channel name, from `new_channel()` with the
  default prefix: see `AnswerRun._join`). Sockets send it `chat.stop` (the
  Stop button, from any tab or device) and `chat.hello` {reply_to} (a socket that just joined:
  the run answers with `chat.snapshot`, the full text so far and its length). Each delta carries
  the offset of its first character, so a joining socket shows the snapshot and then only the
  characters past it: nothing lost, nothing twice.

The run also joins its user's and its workspace's access groups (`apps.core.realtime`): when the
user's access ends, the answer is stopped at once (settled for what was generated), wherever its
sockets are. An answer nobody stops ends at `CHAT_MAX_ANSWER_SECONDS`; a killed process leaves
it to the sweeps (`services.chat_sweep_interrupted`, `generation_sweep`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from apps.chat import services
from apps.chat.fragments import message_html
from apps.chat.models import Message
from apps.core.realtime import user_group, workspace_group
from apps.credits.amounts import to_credits
from apps.generation.models import Generation
from apps.generation.services import db_step
from apps.ratelimits.services import ratelimit_record_tokens

logger = logging.getLogger(__name__)

FANOUT_INTERVAL_SECONDS = 0.05
TIME_LIMIT_MESSAGE = "The answer took too long and was stopped. The part written so far is kept."

_RUNS: dict[int, AnswerRun] = {}  # conversation id -> its running answer in this process
# Strong references to every run's task (the loop keeps only weak ones), a previous answer
# still writing its title included.
_TASKS: set[asyncio.Task[None]] = set()


def conversation_group(conversation_id: int) -> str:
    """The sockets showing a conversation."""
    return f"chat.conversation.{conversation_id}"


def answer_group(conversation_id: int) -> str:
    """The run answering in a conversation (at most one: the turn lock)."""
    return f"chat.answer.{conversation_id}"


def _record_tokens(turn: services.Turn, message: Message) -> None:
    ratelimit_record_tokens(
        workspace=turn.conversation.workspace, user=turn.user, tokens=message.input_tokens + message.output_tokens
    )


class AnswerRun:
    """One answer being generated: owns the task, fans the stream out, obeys stops."""

    def __init__(self, turn: services.Turn, *, origin: str = "") -> None:
        self.turn = turn
        self.conversation_id = turn.conversation.pk
        self.origin = origin  # the channel of the socket that asked (its page clears the composer)
        self.layer = get_channel_layer()
        self.channel_name = ""
        self.groups: list[str] = []
        self.sent = 0  # characters fanned out so far
        self.pending: list[str] = []
        self.flushing: asyncio.Task[None] | None = None
        self.answering: asyncio.Task[Message] | None = None
        self.listener: asyncio.Task[None] | None = None
        self.answered = False
        self.cancelled = False
        self.user_html = ""
        self.task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------ lifecycle

    def start(self) -> asyncio.Task[None]:
        _RUNS[self.conversation_id] = self
        self.task = asyncio.create_task(self._main())
        _TASKS.add(self.task)
        self.task.add_done_callback(self._forget)
        return self.task

    def _forget(self, task: asyncio.Task[None]) -> None:
        _TASKS.discard(task)
        if _RUNS.get(self.conversation_id) is self:
            del _RUNS[self.conversation_id]

    def stop(self, outcome: str = Generation.Outcome.STOPPED, note: str = "") -> None:
        """End the answer (settled for what was generated): before the stream starts, while it
        waits for the first token, or mid-stream. Once it is being finished, nothing to stop."""
        if self.answered:
            return
        if note and not self.turn.stop_note:
            self.turn.stop_note = note
        self.turn.request_stop(outcome)
        # Cancelled once: a stop that also comes back through the channel layer (this tab's
        # stop reaches the run directly and through its group) must not cancel the stream's own
        # clean-up, which settles what was delivered.
        if self.cancelled:
            return
        if self.turn.streaming and self.answering is not None and not self.answering.done():
            self.cancelled = True
            self.answering.cancel()

    async def _main(self) -> None:
        turn = self.turn
        timer = asyncio.get_running_loop().call_later(
            settings.CHAT_MAX_ANSWER_SECONDS, self.stop, Generation.Outcome.STOPPED, TIME_LIMIT_MESSAGE
        )
        try:
            try:
                await self._join()
                self.user_html = await db_step(message_html, turn.user_message)  # reads its files
            except Exception:  # the answer is still generated, saved and settled; pages catch up
                logger.exception("chat answer %s: could not announce it", self.conversation_id)
            await self._fan(
                {
                    "type": "chat.started",
                    "message_id": turn.assistant.pk,
                    "user_message_id": turn.user_message.pk,
                    "user_html": self.user_html,
                    "html": message_html(turn.assistant),
                    "origin": self.origin,
                    "user_id": turn.user.pk,
                }
            )
            self.answering = asyncio.ensure_future(services.chat_turn_answer(turn, on_delta=self._delta))
            try:
                message = await self.answering
            except Exception:
                logger.exception("chat answer failed in conversation %s", self.conversation_id)
                self.answered = True
                await self._flush_all()
                await self._fan({"type": "chat.failed", "message_id": turn.assistant.pk})
                return
            finally:
                timer.cancel()
            self.answered = True
            await self._flush_all()
            try:
                await db_step(_record_tokens, turn, message)
            except Exception:  # a missed count only loosens the token rate limit once
                logger.warning("chat answer %s: tokens not recorded", self.conversation_id, exc_info=True)
            html = await db_step(message_html, message)  # Markdown and Pygments: off the event loop
            await self._fan(self._done_event(message, html))
        finally:
            timer.cancel()
            await self._leave()
        if turn.first_exchange and not turn.access_lost:
            await self._title(message)

    def _done_event(self, message: Message, html: str) -> dict[str, Any]:
        return {
            "type": "chat.done",
            "message_id": message.pk,
            "status": message.status,
            "html": html,
            "usage": {"input_tokens": message.input_tokens, "output_tokens": message.output_tokens},
            "credits": str(to_credits(message.credits_units)),
            "error": message.error,
            "access_lost": self.turn.access_lost,
            "user_id": self.turn.user.pk,
        }

    async def _title(self, message: Message) -> None:
        try:
            title = await services.chat_turn_title(self.turn, message)
        except Exception:  # a title is a nicety: never an error for the user
            logger.exception("title failed in conversation %s", self.conversation_id)
            return
        if title:
            await self._fan({"type": "chat.title", "title": title})

    # ------------------------------------------------------------------------ channel layer

    async def _join(self) -> None:
        if self.layer is None:
            return
        # The default prefix, as every consumer's channel: channels_redis keeps all the
        # process-local channels of one prefix in one Redis list, and a single receive() of the
        # process at a time (one lock) pops it for all of them. A channel with a prefix of its own
        # lives in another list: while a socket held the lock this one was not read (stop and
        # hello waited), and while this run held it no socket of the process got a frame.
        self.channel_name = await self.layer.new_channel()
        workspace_id = self.turn.conversation.workspace_id
        self.groups = [answer_group(self.conversation_id), user_group(self.turn.user.pk), workspace_group(workspace_id)]
        for group in self.groups:
            await self.layer.group_add(group, self.channel_name)
        self.listener = asyncio.create_task(self._listen())

    async def _leave(self) -> None:
        # Out of the groups first: with channels_redis a message still sent to this channel
        # once its receive loop has ended would wait in the process's buffers for good.
        if self.layer is not None:
            for group in self.groups:
                with contextlib.suppress(Exception):
                    await self.layer.group_discard(group, self.channel_name)
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.listener

    async def _listen(self) -> None:
        assert self.layer is not None
        while True:
            try:
                message = await self.layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("chat answer %s: receive failed", self.conversation_id, exc_info=True)
                await asyncio.sleep(0.5)
                continue
            kind = message.get("type")
            if kind == "chat.stop":
                self.stop(Generation.Outcome.STOPPED)
            elif kind == "chat.hello":
                await self._snapshot(str(message.get("reply_to") or ""))
            elif kind == "access.revoked":
                await self._access_revoked(message)

    async def _fan(self, event: dict[str, Any]) -> None:
        if self.layer is None:
            return
        try:
            await self.layer.group_send(conversation_group(self.conversation_id), event)
        except Exception:  # the answer goes on (and is saved); a joining socket catches up
            logger.warning("chat answer %s: fan-out failed", self.conversation_id, exc_info=True)

    async def _snapshot(self, reply_to: str) -> None:
        """Tell a socket that just joined the whole text so far (deltas that reach it after
        this carry offsets, so it applies only what is past the snapshot)."""
        if not reply_to or self.answered or self.layer is None or not self.user_html:
            return
        text = "".join(self.turn.parts)
        partial = copy.copy(self.turn.assistant)
        partial.content = text
        event = {
            "type": "chat.snapshot",
            "message_id": partial.pk,
            "user_message_id": self.turn.user_message.pk,
            "user_html": self.user_html,
            "html": message_html(partial),
            "length": len(text),
        }
        with contextlib.suppress(Exception):
            await self.layer.send(reply_to, event)

    async def _access_revoked(self, event: dict[str, Any]) -> None:
        workspace_id = event.get("workspace")
        if workspace_id is not None and workspace_id != self.turn.conversation.workspace_id:
            return
        check = self.turn.access_check
        if check is None or await db_step(check):
            return
        self.turn.access_lost = True
        self.stop(Generation.Outcome.STOPPED, services.ACCESS_ENDED_MESSAGE)

    # ------------------------------------------------------------------------ deltas

    async def _delta(self, text: str) -> None:
        self.pending.append(text)
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        """Send what is pending as one delta, then wait a little so the next ones coalesce."""
        while self.pending:
            text = "".join(self.pending)
            self.pending.clear()
            offset, self.sent = self.sent, self.sent + len(text)
            await self._fan(
                {"type": "chat.delta", "message_id": self.turn.assistant.pk, "offset": offset, "text": text}
            )
            await asyncio.sleep(FANOUT_INTERVAL_SECONDS)

    async def _flush_all(self) -> None:
        """Every delta out before the done event."""
        if self.flushing is not None:
            with contextlib.suppress(Exception):
                await self.flushing
        if self.pending:
            await self._flush()


def answer_start(turn: services.Turn, *, origin: str = "", stop_outcome: str | None = None) -> AnswerRun:
    """Run a prepared turn's answer in this process, independently of any socket."""
    run = AnswerRun(turn, origin=origin)
    if stop_outcome is not None:
        turn.request_stop(stop_outcome)
    run.start()
    return run


def answer_running(conversation_id: int) -> AnswerRun | None:
    """The answer this process is generating in the conversation, if any (until its title is
    written, after the first exchange)."""
    return _RUNS.get(conversation_id)


def answers_in_progress() -> int:
    """How many answers (titles included) this process is running."""
    return len(_TASKS)


async def answer_stop(conversation_id: int) -> None:
    """Stop the conversation's answer wherever it runs: at once when it runs in this process,
    and through the channel layer for any other process."""
    run = _RUNS.get(conversation_id)
    if run is not None:
        run.stop(Generation.Outcome.STOPPED)
    layer = get_channel_layer()
    if layer is not None:
        with contextlib.suppress(Exception):
            await layer.group_send(answer_group(conversation_id), {"type": "chat.stop"})


async def answer_hello(conversation_id: int, reply_to: str) -> None:
    """Ask the conversation's running answer (in any process) for its text so far."""
    layer = get_channel_layer()
    if layer is not None:
        with contextlib.suppress(Exception):
            await layer.group_send(answer_group(conversation_id), {"type": "chat.hello", "reply_to": reply_to})
