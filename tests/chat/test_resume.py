"""Answers that outlive their socket: reopening a conversation (or a second tab) shows the text
so far and follows the rest live, with nothing lost or repeated; the Stop button of any socket
stops the answer wherever it runs; an abandoned answer ends at the time limit; access that ends
stops it even with no socket open. Each ends in exactly one settle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.accounts.services import user_suspend
from apps.chat import answers, services
from apps.chat.models import Conversation, Message
from apps.credits.models import CreditAccount, Reservation
from apps.generation.models import AIModel, Generation
from tests.chat.test_consumer import (
    FUNDS,
    TIMEOUT,
    body_text,
    close,
    fund,
    headers_for,
    open_socket,
    run,
    set_options,
    until_done,
    until_idle,
)
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = 40
REPLY = " ".join(f"w{i}" for i in range(WORDS))


@pytest.fixture
def conversation(alpha: Team, mock_model: AIModel, rates: None) -> Conversation:
    fund(alpha.workspace)
    return Conversation.objects.create(workspace=alpha.workspace, user=alpha.member, model=mock_model)


def _answer(conversation: Conversation) -> tuple[Message, Generation]:
    reply = Message.objects.get(conversation=conversation, role="assistant")
    generation = Generation.objects.select_related("reservation").get(reservation__idempotency_key=f"chat:{reply.pk}")
    return reply, generation


def _assert_settled_once(conversation: Conversation, reply: Message, generation: Generation) -> None:
    assert generation.reservation is not None
    assert generation.reservation.status == Reservation.Status.SETTLED
    assert reply.credits_units == generation.credits_charged_units > 0
    account = CreditAccount.objects.get(workspace=conversation.workspace)
    assert account.held_units == 0
    assert account.balance_units == FUNDS - sum(Generation.objects.values_list("credits_charged_units", flat=True))
    conversation.refresh_from_db()
    assert conversation.turn_started_at is None
    assert_ledger_consistent()


def _followed(frames: list[dict[str, Any]]) -> str:
    """The answer as a joining page shows it: the snapshot's text, then each delta applied at
    its offset, which must be exactly where the text so far ends (no gap, no repeat)."""
    started = frames[0]
    assert started["type"] == "started"
    text = body_text(started["html"])
    assert started["offset"] == len(text)
    for frame in frames[1:-1]:
        if frame["type"] != "delta":
            continue
        assert frame["offset"] == len(text), (frame, text)
        text += frame["text"]
    return text


def test_reopening_mid_answer_shows_the_text_so_far_then_the_rest(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    """The tab closes mid-answer; a new one opens the conversation: it gets the partial text
    first, then only the newer characters, and the answer completes."""
    set_options(mock_model, latency_ms=25, reply=REPLY)
    first, second = headers_for(client_for, alpha.member), headers_for(client_for, alpha.member)
    seen: list[dict[str, Any]] = []

    async def scenario() -> None:
        one = await open_socket(conversation, first)
        await one.send_json_to({"type": "send", "content": "go"})
        assert (await one.receive_json_from(timeout=TIMEOUT))["type"] == "started"
        for _ in range(3):
            assert (await one.receive_json_from(timeout=TIMEOUT))["type"] == "delta"
        await one.disconnect()
        two = await open_socket(conversation, second)
        seen.extend(await until_done(two))
        await close(two, conversation)

    run(scenario)
    reply, generation = _answer(conversation)
    assert seen[0]["mine"] is False
    assert 0 < seen[0]["offset"] < len(REPLY)  # joined mid-answer
    assert seen[-1]["type"] == "done"
    assert seen[-1]["status"] == "complete"
    assert _followed(seen) == reply.content == REPLY
    assert generation.outcome == Generation.Outcome.OK
    _assert_settled_once(conversation, reply, generation)


def test_a_second_socket_sees_the_same_stream_live(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(mock_model, latency_ms=20, reply=REPLY)
    first, second = headers_for(client_for, alpha.member), headers_for(client_for, alpha.owner)
    frames: dict[str, list[dict[str, Any]]] = {}

    async def scenario() -> None:
        one = await open_socket(conversation, first)
        await one.send_json_to({"type": "send", "content": "go"})
        frames["one"] = [await one.receive_json_from(timeout=TIMEOUT)]
        frames["one"].append(await one.receive_json_from(timeout=TIMEOUT))
        two = await open_socket(conversation, second)  # another member, another device
        frames["two"] = await until_done(two)
        frames["one"] += await until_done(one)
        await close(one, conversation)
        await two.disconnect()

    run(scenario)
    reply, _ = _answer(conversation)
    assert _followed(frames["one"]) == _followed(frames["two"]) == reply.content == REPLY
    assert frames["one"][-1]["html"] == frames["two"][-1]["html"]


def test_stop_from_a_second_socket_stops_the_answer_of_the_first(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(mock_model, latency_ms=30, reply=REPLY)
    first, second = headers_for(client_for, alpha.member), headers_for(client_for, alpha.member)
    frames: dict[str, list[dict[str, Any]]] = {}

    async def scenario() -> None:
        one = await open_socket(conversation, first)
        await one.send_json_to({"type": "send", "content": "go"})
        assert (await one.receive_json_from(timeout=TIMEOUT))["type"] == "started"
        two = await open_socket(conversation, second)
        frames["two"] = [await two.receive_json_from(timeout=TIMEOUT)]
        assert frames["two"][0]["type"] == "started"
        while frames["two"][0]["offset"] == 0 and len(frames["two"]) == 1:  # some text first
            frames["two"].append(await two.receive_json_from(timeout=TIMEOUT))
        await two.send_json_to({"type": "stop"})
        frames["two"] += await until_done(two)
        frames["one"] = await until_done(one)
        await close(one, conversation)
        await two.disconnect()

    run(scenario)
    reply, generation = _answer(conversation)
    assert frames["one"][-1]["status"] == frames["two"][-1]["status"] == "stopped"
    assert reply.status == Message.Status.STOPPED
    assert 0 < len(reply.content.split()) < WORDS
    assert generation.outcome == Generation.Outcome.STOPPED
    _assert_settled_once(conversation, reply, generation)


def test_stop_reaches_the_answer_through_the_channel_layer(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    """A socket in another process has no local reference to the run: its stop is the
    `chat.stop` message to the conversation's answer group, which the run listens to."""
    set_options(mock_model, latency_ms=30, reply=REPLY)
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "go"})
        frames.append(await one.receive_json_from(timeout=TIMEOUT))
        frames.append(await one.receive_json_from(timeout=TIMEOUT))
        layer = answers.get_channel_layer()
        assert layer is not None
        await layer.group_send(answers.answer_group(conversation.pk), {"type": "chat.stop"})
        frames.extend(await until_done(one))
        await close(one, conversation)

    run(scenario)
    reply, generation = _answer(conversation)
    assert frames[-1]["status"] == "stopped"
    assert generation.outcome == Generation.Outcome.STOPPED
    assert 0 < len(reply.content.split()) < WORDS
    _assert_settled_once(conversation, reply, generation)


def test_an_abandoned_answer_ends_at_the_time_limit(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any], settings: Any
) -> None:
    settings.CHAT_MAX_ANSWER_SECONDS = 0.4
    set_options(mock_model, latency_ms=50, reply=REPLY)  # would take ~2 s
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "go"})
        assert (await one.receive_json_from(timeout=TIMEOUT))["type"] == "started"
        await one.disconnect()
        await until_idle(conversation)

    run(scenario)
    reply, generation = _answer(conversation)
    assert reply.status == Message.Status.STOPPED
    assert reply.error == answers.TIME_LIMIT_MESSAGE
    assert 0 < len(reply.content.split()) < WORDS
    assert generation.outcome == Generation.Outcome.STOPPED
    _assert_settled_once(conversation, reply, generation)


def test_access_ended_stops_an_answer_with_no_socket_open(
    alpha: Team, mock_model: AIModel, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    set_options(mock_model, latency_ms=40, reply=REPLY)
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "go"})
        for _ in range(3):
            await one.receive_json_from(timeout=TIMEOUT)
        await one.disconnect()
        await database_sync_to_async(user_suspend)(user=alpha.member, reason="abuse", acting_user=alpha.owner)
        await until_idle(conversation)

    run(scenario)
    reply, generation = _answer(conversation)
    assert reply.status == Message.Status.STOPPED
    assert reply.error == services.ACCESS_ENDED_MESSAGE
    assert 0 < len(reply.content.split()) < WORDS
    _assert_settled_once(conversation, reply, generation)


def test_a_page_showing_an_answer_that_ended_meanwhile_gets_its_final_state(
    alpha: Team, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    """The page was rendered while the answer streamed and connects after it ended: it names the
    message it shows as streaming, and gets the finished one."""
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "hello **there**"})
        await until_done(one)
        await close(one, conversation)
        reply = await database_sync_to_async(Message.objects.get)(conversation=conversation, role="assistant")
        path = f"/ws/chat/{conversation.pk}/?streaming={reply.pk}"
        from aikeedo.asgi import application

        two = WebsocketCommunicator(application, path, headers=headers)
        assert (await two.connect())[0]
        frames.append(await two.receive_json_from(timeout=TIMEOUT))
        frames.append(await two.receive_json_from(timeout=TIMEOUT))
        await two.disconnect()

    run(scenario)
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert frames[0]["type"] == "ready"
    assert (frames[1]["type"], frames[1]["message_id"], frames[1]["status"]) == ("done", reply.pk, "complete")
    assert "<strong>there</strong>" in frames[1]["html"]


def test_a_reconnecting_page_gets_every_message_again(
    alpha: Team, conversation: Conversation, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)
    frames: list[dict[str, Any]] = []

    async def scenario() -> None:
        one = await open_socket(conversation, headers)
        await one.send_json_to({"type": "send", "content": "remember me"})
        await until_done(one)
        await close(one, conversation)
        from aikeedo.asgi import application

        two = WebsocketCommunicator(application, f"/ws/chat/{conversation.pk}/?history=1", headers=headers)
        assert (await two.connect())[0]
        frames.append(await two.receive_json_from(timeout=TIMEOUT))
        frames.append(await two.receive_json_from(timeout=TIMEOUT))
        await two.disconnect()

    run(scenario)
    assert [f["type"] for f in frames] == ["ready", "history"]
    ids = [m.pk for m in Message.objects.filter(conversation=conversation)]
    assert len(ids) == 2
    for pk in ids:
        assert f'data-message-id="{pk}"' in frames[1]["html"]
    assert "remember me" in frames[1]["html"]
