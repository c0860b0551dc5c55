"""A chat answer whose client goes away mid-stream, at the level the server meets it: the ASGI
`send` of the server raises once the connection is closed (as daphne's does, with autobahn's
`Disconnected`), and the disconnect notification arrives only afterwards. Whatever the point of
the cut, the answer is not stopped: the browser leaving is not a stop (`apps.chat.answers`). It
is generated to its end, saved, and settled once for all of it; nothing stays held.

Also: access that ends while a socket is open (suspension, removal from the workspace, the
workspace deleted) ends the running answer, settled for what was delivered, and closes the
socket with 4403, whether the news comes through the channel layer or from the socket's own
re-check."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from aikeedo.asgi import application
from apps.accounts.models import User
from apps.accounts.services import user_suspend
from apps.chat import answers, services
from apps.chat.models import Conversation, Message
from apps.core.realtime import ACCESS_REVOKED_CLOSE_CODE
from apps.credits.models import CreditAccount, Reservation
from apps.generation.models import AIModel, Generation
from apps.workspaces.models import Membership
from apps.workspaces.services import workspace_delete, workspace_member_remove
from tests.chat.test_consumer import (
    FUNDS,
    ORIGIN,
    TIMEOUT,
    fund,
    headers_for,
    open_socket,
    path,
    set_options,
)
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.generation.charging import expected_units

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = 40
REPLY = " ".join(f"w{i}" for i in range(WORDS))


class CutAfter:
    """The server side of a connection that closes after `deltas` delta frames went out: the
    next send raises `Disconnected`, like daphne's on a socket that has just closed."""

    def __init__(self, app: Any, deltas: int) -> None:
        self.app = app
        self.deltas = deltas
        self.sent: list[str] = []
        self.closed = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def cut_send(message: dict[str, Any]) -> None:
            if self.closed:
                raise Disconnected("Attempt to send on a closed protocol")
            text = message.get("text") or ""
            if '"type": "delta"' in text or '"type":"delta"' in text:
                if len(self.sent) == self.deltas:
                    self.closed = True
                    raise Disconnected("Attempt to send on a closed protocol")
                self.sent.append(text)
            await send(message)

        await self.app(scope, receive, cut_send)


def _ended(conversation_id: int) -> bool:
    """The answer exists and has ended."""
    return (
        Message.objects.filter(conversation_id=conversation_id, role=Message.Role.ASSISTANT)
        .exclude(status=Message.Status.STREAMING)
        .exists()
    )


async def _wait_idle(conversation_id: int, timeout: float = TIMEOUT) -> None:
    """Wait until the answer has ended, then until its run (title included) is over."""
    deadline = time.monotonic() + timeout
    while not await database_sync_to_async(_ended)(conversation_id):
        assert time.monotonic() < deadline, "the answer was not ended in time"
        await asyncio.sleep(0.02)
    while answers.answer_running(conversation_id) is not None or answers.answers_in_progress():
        assert time.monotonic() < deadline, "the answer was not ended in time"
        await asyncio.sleep(0.02)


def test_a_cut_at_any_point_does_not_stop_the_answer(
    rates: None, alpha: Team, mock_model: AIModel, client_for: Callable[..., Any]
) -> None:
    fund(alpha.workspace)
    set_options(mock_model, latency_ms=2, reply=REPLY)
    headers = headers_for(client_for, alpha.member)
    cuts = [0, 1, 8, 21, WORDS - 1]
    results: list[tuple[Conversation, list[str]]] = []

    async def one_cut(deltas: int) -> None:
        conversation = await database_sync_to_async(Conversation.objects.create)(
            workspace=alpha.workspace, user=alpha.member, model=mock_model
        )
        server = CutAfter(application, deltas)
        communicator = WebsocketCommunicator(server, path(conversation), headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        assert (await communicator.receive_json_from(timeout=TIMEOUT))["type"] == "ready"
        await communicator.send_json_to({"type": "send", "content": "go"})
        await _wait_idle(conversation.pk)  # the answer (and its title) ran to the end
        await communicator.disconnect(timeout=TIMEOUT)
        results.append((conversation, [json.loads(frame)["text"] for frame in server.sent]))

    async def scenario() -> None:
        for deltas in cuts:
            await one_cut(deltas)

    async_to_sync(scenario)()

    assert not Reservation.objects.filter(status=Reservation.Status.HELD).exists()
    for conversation, received in results:
        reply = Message.objects.get(conversation=conversation, role="assistant")
        generation = Generation.objects.select_related("reservation").get(
            reservation__idempotency_key=f"chat:{reply.pk}"
        )
        assert generation.reservation is not None
        assert REPLY.startswith("".join(received))
        assert reply.content == REPLY
        assert reply.status == Message.Status.COMPLETE
        assert generation.outcome == Generation.Outcome.OK
        assert generation.credits_charged_units == expected_units(
            "mock-chat", generation.input_tokens, generation.output_tokens
        )
        assert generation.reservation.status == Reservation.Status.SETTLED
        assert reply.credits_units == generation.credits_charged_units > 0
    account = CreditAccount.objects.get(workspace=alpha.workspace)
    assert account.held_units == 0
    assert account.balance_units == FUNDS - sum(Generation.objects.values_list("credits_charged_units", flat=True))
    assert not Conversation.objects.filter(turn_started_at__isnull=False).exists()
    assert_ledger_consistent()


# ---------------------------------------------------------------------------- access ending


async def _frames_until_closed(communicator: WebsocketCommunicator) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame up to the close, and the close code."""
    frames: list[dict[str, Any]] = []
    while True:
        output = await communicator.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            return frames, output.get("code")
        frames.append(json.loads(output["text"]))


@pytest.fixture
def chat(alpha: Team, mock_model: AIModel, rates: None) -> Conversation:
    fund(alpha.workspace)
    return Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, model=mock_model)


def _assert_stopped_and_settled(conversation: Conversation, frames: list[dict[str, Any]]) -> None:
    reply = Message.objects.get(conversation=conversation, role="assistant")
    deltas = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert reply.status == Message.Status.STOPPED
    assert reply.content == deltas
    assert 0 < len(deltas.split()) < WORDS
    generation = Generation.objects.select_related("reservation").get(reservation__idempotency_key=f"chat:{reply.pk}")
    assert generation.reservation is not None
    assert generation.reservation.status == Reservation.Status.SETTLED
    assert reply.credits_units == generation.credits_charged_units > 0
    assert CreditAccount.objects.get(workspace=conversation.workspace).held_units == 0
    assert_ledger_consistent()


@pytest.mark.parametrize("how", ["suspend", "remove", "delete_workspace"])
def test_access_ended_mid_stream_stops_the_answer_and_closes_the_socket(
    how: str, alpha: Team, mock_model: AIModel, chat: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(mock_model, latency_ms=40, reply=REPLY)
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []
    codes: list[int | None] = []

    def end_access() -> None:
        if how == "suspend":
            user_suspend(user=alpha.member, reason="abuse", acting_user=alpha.owner)
        elif how == "remove":
            workspace_member_remove(membership=alpha.member_membership, acting_user=alpha.owner)
        else:
            workspace_delete(workspace=alpha.workspace, acting_user=alpha.owner, confirm_name=alpha.workspace.name)

    async def scenario() -> None:
        communicator = await open_socket(chat, headers)
        await communicator.send_json_to({"type": "send", "content": "go"})
        for _ in range(3):  # started, then two deltas
            frames.append(await communicator.receive_json_from(timeout=TIMEOUT))
        await database_sync_to_async(end_access)()
        more, code = await _frames_until_closed(communicator)
        frames.extend(more)
        codes.append(code)

    async_to_sync(scenario)()
    assert codes == [ACCESS_REVOKED_CLOSE_CODE]
    kinds = [f["type"] for f in frames]
    assert kinds[-2:] == ["done", "error"]
    assert frames[-2]["status"] == "stopped"
    assert frames[-1]["code"] == "access_revoked"
    _assert_stopped_and_settled(chat, frames)


def test_an_idle_socket_is_closed_on_suspension(
    alpha: Team, chat: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)
    result: list[Any] = []

    async def scenario() -> None:
        communicator = await open_socket(chat, headers)
        await database_sync_to_async(user_suspend)(user=alpha.member, reason="abuse", acting_user=alpha.owner)
        result.append(await _frames_until_closed(communicator))

    async_to_sync(scenario)()
    frames, code = result[0]
    assert code == ACCESS_REVOKED_CLOSE_CODE
    assert frames == [{"type": "error", "message": frames[0]["message"], "code": "access_revoked"}]


def test_removal_from_another_workspace_leaves_the_socket_open(
    alpha: Team, beta: Team, chat: Conversation, client_for: Callable[..., Any]
) -> None:
    membership = Membership.objects.create(workspace=beta.workspace, user=alpha.member, role="member")
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        communicator = await open_socket(chat, headers)
        await database_sync_to_async(workspace_member_remove)(membership=membership, acting_user=beta.owner)
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.send_json_to({"type": "send", "content": "still here"})
        frames = [await communicator.receive_json_from(timeout=TIMEOUT)]
        while frames[-1]["type"] != "done":
            frames.append(await communicator.receive_json_from(timeout=TIMEOUT))
        assert frames[-1]["status"] == "complete"
        await _wait_idle(chat.pk)
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_the_next_turn_rechecks_access_without_any_message(
    alpha: Team, chat: Conversation, client_for: Callable[..., Any]
) -> None:
    """Suspended behind the services' back (no channel-layer message): the next turn is
    refused and the socket closed; nothing is created or charged."""
    headers = headers_for(client_for, alpha.member)
    result: list[Any] = []

    async def scenario() -> None:
        communicator = await open_socket(chat, headers)
        await database_sync_to_async(User.objects.filter(pk=alpha.member.pk).update)(is_active=False)
        await communicator.send_json_to({"type": "send", "content": "hello"})
        result.append(await _frames_until_closed(communicator))

    async_to_sync(scenario)()
    frames, code = result[0]
    assert code == ACCESS_REVOKED_CLOSE_CODE
    assert [f.get("code") for f in frames] == ["access_revoked"]
    assert not Message.objects.filter(conversation=chat).exists()
    assert not Generation.objects.exists()


def test_streaming_rechecks_access_every_few_seconds(
    alpha: Team, mock_model: AIModel, chat: Conversation, client_for: Callable[..., Any], settings: Any
) -> None:
    """Removed behind the services' back while the answer streams: the pipeline's own re-check
    ends it, settled for what was delivered, and the socket closes."""
    settings.STREAM_ACCESS_RECHECK_SECONDS = 0.05
    set_options(mock_model, latency_ms=30, reply=REPLY)
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []
    codes: list[int | None] = []

    async def scenario() -> None:
        communicator = await open_socket(chat, headers)
        await communicator.send_json_to({"type": "send", "content": "go"})
        for _ in range(3):
            frames.append(await communicator.receive_json_from(timeout=TIMEOUT))
        await database_sync_to_async(Membership.objects.filter(pk=alpha.member_membership.pk).delete)()
        more, code = await _frames_until_closed(communicator)
        frames.extend(more)
        codes.append(code)

    async_to_sync(scenario)()
    assert codes == [ACCESS_REVOKED_CLOSE_CODE]
    assert frames[-2]["type"] == "done"
    assert frames[-2]["error"] == services.ACCESS_ENDED_MESSAGE
    assert frames[-1]["code"] == "access_revoked"
    _assert_stopped_and_settled(chat, frames)
    generation = Generation.objects.get()
    assert generation.outcome == Generation.Outcome.STOPPED
    assert "AccessRevoked" in generation.error


def test_a_suspended_users_new_socket_is_refused(
    alpha: Team, chat: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)
    User.objects.filter(pk=alpha.member.pk).update(is_active=False)

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, path(chat), headers=[*headers, ORIGIN])
        connected, code = await communicator.connect()
        assert not connected
        assert code in (4401, 4404)

    async_to_sync(scenario)()


def test_a_frame_nested_very_deep_is_refused_and_the_socket_stays_open(
    alpha: Team, chat: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        communicator = await open_socket(chat, headers)
        await communicator.send_to(text_data="[" * 100_000 + "]" * 100_000)
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        assert frame["type"] == "error"
        await communicator.send_json_to({"type": "stop"})  # still open and listening
        assert await communicator.receive_nothing(timeout=0.2)
        await communicator.disconnect()

    async_to_sync(scenario)()
